"""TLS on the connected side: a real HTTPS GOPROXY on 127.0.0.1 with certificates made here.
A private CA is trusted only when the operator says so (SSL_CERT_FILE or the spec's
ca_bundle); an unknown CA, an expired certificate and a wrong host name stop the build with
the host and the fix; nothing turns verification off."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from bundler import cli as bundler_cli
from bundler import tls
from bundler.throwaway_tls import CA, server_context
from keys import sshkey
from tests.support import bundles, upstream, users
from tests.support.goproxy_server import FixtureModule, ProxyServer, write_modules
from tests.support.modbundles import modules_table

ROOT = Path(__file__).resolve().parents[1]
MODULE = FixtureModule("example.com/tlsmod", "v1.0.0",
                       {"tlsmod.go": "package tlsmod\n\nfunc Name() string { return \"tls\" }\n"})


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA("rescue test private CA")


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_modules(tmp_path_factory.mktemp("tlsproxy"), [MODULE])


@pytest.fixture(scope="module")
def https_proxy(ca: CA, proxy_dir: Path) -> Iterator[ProxyServer]:
    """The module proxy over HTTPS with a certificate for 127.0.0.1 from the private CA."""
    with ProxyServer(proxy_dir, tls=server_context(ca.issue())) as srv:
        yield srv


def write_ca(ca: CA, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ca.cert_pem)
    return path


def modules_spec(tmp_path: Path, key: Path, goproxy: str, upstream_lines: str = "") -> Path:
    """A modules-only spec (no toolchain: fast, no rehearsal) fetching MODULE from `goproxy`;
    `upstream_lines` land in its [upstream] table."""
    return bundles.write_spec(tmp_path / "spec.toml", key, "http://127.0.0.1:9", versions="[]",
                              extra=upstream_lines + modules_table(goproxy,
                                                                  require=[MODULE.key]))


def rescue_build(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                 *extra: str) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = bundler_cli.main(["build", str(spec), "-o", str(tmp_path / "out"), "--cache",
                             str(tmp_path / "cache"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def host_of(url: str) -> str:
    return url.split("://", 1)[1]


def test_proxy_signed_by_an_unknown_ca_stops_the_build_naming_the_host_and_the_fix(
        https_proxy: ProxyServer, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    spec = modules_spec(tmp_path, signing.key, https_proxy.url)
    started = time.monotonic()
    code, _out, err = rescue_build(spec, tmp_path, capsys)
    seconds = time.monotonic() - started
    host = host_of(https_proxy.url)
    assert code == 2, err
    assert err.startswith(
        f"rescue: connecting to {host}: its TLS certificate is not signed by a CA this machine "
        "trusts; if it is your private CA (or your TLS-inspecting proxy's), give its PEM file "
        "with SSL_CERT_FILE=FILE or `ca_bundle = \"FILE\"` under [upstream] in the spec\n"
        f"\turl: {https_proxy.url}/example.com/tlsmod/@v/v1.0.0"), err
    assert "SECURITY ERROR" not in err
    # Refused at once, not retried with backoff: a certificate does not change in a second.
    assert seconds < 1.5, seconds
    assert https_proxy.requests == []  # no request was ever sent over the refused connection
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_unknown_ca_in_json_names_the_operation_host_and_fix(
        https_proxy: ProxyServer, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    spec = modules_spec(tmp_path, signing.key, https_proxy.url)
    code, out, _err = rescue_build(spec, tmp_path, capsys, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and doc["ok"] is False
    error = doc["error"]
    assert (error["type"], error["operation"], error["subject"]) == (
        "not-ready", "connecting to", host_of(https_proxy.url))
    assert "SSL_CERT_FILE=FILE" in error["hint"] and error["security_error"] is False


def test_ssl_cert_file_with_the_private_ca_lets_the_build_through(
        ca: CA, https_proxy: ProxyServer, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(write_ca(ca, tmp_path / "ca.pem")))
    spec = modules_spec(tmp_path, signing.key, https_proxy.url)
    code, out, err = rescue_build(spec, tmp_path, capsys, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["modules"] == [{"path": MODULE.path, "version": MODULE.version}]
    assert f"/{MODULE.path}/@v/{MODULE.version}.zip" in https_proxy.requests


def test_spec_ca_bundle_relative_to_the_spec_lets_the_build_through(
        ca: CA, https_proxy: ProxyServer, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    write_ca(ca, tmp_path / "certs" / "corp-ca.pem")
    spec = modules_spec(tmp_path, signing.key, https_proxy.url,
                        'ca_bundle = "certs/corp-ca.pem"\n')
    code, out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 0, err
    assert "modules: 1" in out


def test_ca_bundle_adds_to_the_public_cas_instead_of_replacing_them(ca: CA,
                                                                    tmp_path: Path) -> None:
    # A CA for the company mirror must not cut the build off from go.dev and proxy.golang.org.
    public = tls.client_context().cert_store_stats()["x509_ca"]
    with_private = tls.client_context(write_ca(ca, tmp_path / "ca.pem"))
    assert public > 10 and with_private.cert_store_stats()["x509_ca"] == public + 1


def test_expired_certificate_stops_the_build_saying_expired_and_how_to_fix(
        ca: CA, proxy_dir: Path, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    write_ca(ca, tmp_path / "ca.pem")
    with ProxyServer(proxy_dir, tls=server_context(ca.issue(expired=True))) as srv:
        spec = modules_spec(tmp_path, signing.key, srv.url, 'ca_bundle = "ca.pem"\n')
        code, _out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 2, err
    assert err.startswith(
        f"rescue: connecting to {host_of(srv.url)}: its TLS certificate has expired; renew the "
        "server's certificate, or set this machine's clock right (it says 20"), err


def test_certificate_for_another_host_stops_the_build_saying_it_does_not_match(
        ca: CA, proxy_dir: Path, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    write_ca(ca, tmp_path / "ca.pem")
    with ProxyServer(proxy_dir, tls=server_context(ca.issue(["mirror.example"]))) as srv:
        spec = modules_spec(tmp_path, signing.key, srv.url, 'ca_bundle = "ca.pem"\n')
        code, _out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 2, err
    assert err.startswith(
        f"rescue: connecting to {host_of(srv.url)}: its TLS certificate does not match the host "
        "name 127.0.0.1; use the host name the certificate was issued for in the URL, or have "
        "it reissued with this name in its subjectAltName"), err


def test_download_index_behind_an_unknown_ca_is_refused_without_retries(
        ca: CA, signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture
        ) -> None:
    # The go.dev-style index goes through fetch.py, not the GOPROXY client: same message.
    routes = upstream.Routes()
    with upstream.serve(routes, tls=server_context(ca.issue())) as url:
        spec = bundles.write_spec(tmp_path / "spec.toml", signing.key, url)
        started = time.monotonic()
        code, _out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 2, err
    assert err.startswith(f"rescue: connecting to {host_of(url)}: its TLS certificate is not "
                          "signed by a CA this machine trusts;"), err
    assert f"\turl: {url}/dl/?mode=json&include=all" in err
    assert time.monotonic() - started < 1.5 and routes.hits == {}


@pytest.mark.parametrize("variable, value", [
    ("PYTHONHTTPSVERIFY", "0"), ("CURL_CA_BUNDLE", ""), ("REQUESTS_CA_BUNDLE", ""),
    ("SSL_CERT_DIR", "an empty directory"), ("HTTPX_VERIFY", "0"),
])
def test_no_environment_variable_turns_certificate_checks_off(
        variable: str, value: str, https_proxy: ProxyServer, signing: bundles.Signing,
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    if variable == "SSL_CERT_DIR":
        (tmp_path / "empty-certs").mkdir()
        monkeypatch.setenv(variable, str(tmp_path / "empty-certs"))
    spec = modules_spec(tmp_path, signing.key, https_proxy.url)
    code, _out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 2 and "is not signed by a CA this machine trusts" in err, err


def test_every_client_verifies_certificates_and_host_names(ca: CA, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(write_ca(ca, tmp_path / "ca.pem")))
    for bundle in (None, tmp_path / "ca.pem"):
        ctx = tls.client_context(bundle)
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


@pytest.mark.parametrize("variable, kind", [("SSL_CERT_FILE", "file"),
                                             ("SSL_CERT_DIR", "directory")])
def test_ssl_cert_variable_naming_a_missing_path_is_a_clear_error(
        variable: str, kind: str, https_proxy: ProxyServer, signing: bundles.Signing,
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "nope"))
    spec = modules_spec(tmp_path, signing.key, https_proxy.url)
    code, _out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 2
    assert err.startswith(f"rescue: setting up TLS: {variable}={tmp_path / 'nope'}: no such "
                          f"{kind}; point it at your CA's PEM file, or unset it to use the "
                          "built-in CAs"), err


def test_ssl_cert_file_that_is_not_pem_is_a_clear_error(
        https_proxy: ProxyServer, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.der").write_bytes(b"\x30\x82garbage")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.der"))
    spec = modules_spec(tmp_path, signing.key, https_proxy.url)
    code, _out, err = rescue_build(spec, tmp_path, capsys)
    assert code == 2
    assert err.startswith(f"rescue: setting up TLS: SSL_CERT_FILE={tmp_path / 'ca.der'}: not a "
                          "PEM file of CA certificates ("), err


def test_ssl_cert_file_this_user_cannot_read_is_a_clear_error(ca: CA, tmp_path: Path) -> None:
    # Root reads any file: as root, the build runs as the unprivileged user instead.
    nobody = users.make_user("nobody")
    try:
        work = nobody.work if os.geteuid() == 0 else tmp_path
        unreadable = write_ca(ca, work / "ca.pem")
        unreadable.chmod(0o600 if os.geteuid() == 0 else 0o000)  # root's own, or made unreadable
        (work / "keys").mkdir()
        sshkey.generate_keypair(work / "keys" / "release", "release")
        spec = modules_spec(work, work / "keys" / "release", "https://127.0.0.1:9")
        users.chown_tree(work / "keys", nobody.uid if os.geteuid() == 0 else os.getuid())
        cmd = [sys.executable, "-m", "bundler.cli", "build", str(spec), "-o", str(work / "out")]
        env = {**nobody.env(), "SSL_CERT_FILE": str(unreadable)}
        done = subprocess.run(nobody.argv(cmd) if os.geteuid() == 0 else cmd, cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(
            f"rescue: setting up TLS: SSL_CERT_FILE={unreadable}: cannot read it (Permission "
            "denied); make it readable by this user, or unset it"), done.stderr
    finally:
        users.remove_user_dirs(nobody)
