"""`rescue drill proxy-cert`: a module proxy behind a private CA, rehearsed end to end on
loopback with throw-away data: the build must fail naming the host, then pass with ca_bundle."""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import time
import zipfile
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Iterator, Optional

import tomli_w

from bundler import build, spec
from bundler.blobstore import BlobStore
from bundler.throwaway_tls import CA, server_context, serving
from keys import sshkey
from manifests.drillreport import Drill
from manifests.errors import RescueError

MODULE, VERSION = "example.com/rescue-drill", "v1.0.0"
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)
_GO_MOD = f"module {MODULE}\n\ngo 1.21\n"
_GO_FILE = "// Package drill is the module `rescue drill proxy-cert` serves.\npackage drill\n"


def write_fixture_proxy(root: Path) -> Path:
    """MODULE@VERSION in GOPROXY layout under `root` (the files a proxy serves)."""
    vdir = root / MODULE / "@v"  # all lower case: escape_path would not change it
    vdir.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("go.mod", _GO_MOD), ("drill.go", _GO_FILE)):
            info = zipfile.ZipInfo(f"{MODULE}@{VERSION}/{name}", _ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text)
    (vdir / f"{VERSION}.zip").write_bytes(buf.getvalue())
    (vdir / f"{VERSION}.mod").write_text(_GO_MOD)
    (vdir / f"{VERSION}.info").write_text(json.dumps({"Version": VERSION,
                                                      "Time": "2024-01-01T00:00:00Z"}))
    (vdir / "list").write_text(VERSION + "\n")
    return root


class _Files(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_https(root: Path, ca: CA) -> Iterator[str]:
    """`root` over HTTPS on 127.0.0.1 with a certificate `ca` issued; yields the base URL."""
    with serving(functools.partial(_Files, directory=str(root)),
                 server_context(ca.issue())) as url:
        yield url


@contextmanager
def _loopback_direct() -> Iterator[None]:
    """Loopback requests bypass the operator's HTTPS_PROXY, which cannot reach our 127.0.0.1."""
    saved = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    for k, v in saved.items():
        os.environ[k] = ",".join(filter(None, [v, "127.0.0.1"]))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _write_spec(path: Path, goproxy: str, ca_bundle: Optional[str]) -> Path:
    doc = {"bundle": {"name": "drill", "channel": "drill", "sequence": 1,
                      "signing_key": "keys/drill", "valid_days": 1, "compression_level": 1},
           "upstream": {"ca_bundle": ca_bundle} if ca_bundle else {},
           # The drill's module is made up: no checksum database knows it.
           "modules": {"require": [f"{MODULE}@{VERSION}"], "goproxy": goproxy,
                       "sumdb": "off"}}
    path.write_text("# Written by `rescue drill proxy-cert`: thrown away when it ends.\n"
                    + tomli_w.dumps(doc))
    return path


def _build(spec_path: Path, work: Path) -> tuple[Optional[build.BuildResult], str, float]:
    """(result, error message, seconds) of a real build of `spec_path`, as `rescue build`
    runs it; no rehearsal: the drill must not need a Go toolchain."""
    started = time.monotonic()
    try:
        result = build.build(spec.load(spec_path), work / "out", BlobStore(work / "cache"),
                             force=True, rehearse=False)
    except RescueError as exc:
        return None, str(exc), time.monotonic() - started
    return result, "", time.monotonic() - started


def proxy_cert() -> Drill:
    """Run the drill in a temporary directory that is removed afterwards."""
    d = Drill("proxy-cert", fault="the module proxy's TLS certificate is signed by a private "
                                  "CA this machine does not trust")
    with tempfile.TemporaryDirectory(prefix="rescue-drill-proxy-cert-") as tmp, \
            _loopback_direct():
        work = Path(tmp)
        started = time.monotonic()
        ca = CA("rescue drill private CA")
        (work / "ca.pem").write_bytes(ca.cert_pem)
        (work / "keys").mkdir()
        sshkey.generate_keypair(work / "keys" / "drill", "rescue-drill")  # 0600, thrown away
        proxy = write_fixture_proxy(work / "proxy")
        with serve_https(proxy, ca) as url:
            host = url.split("://", 1)[1]
            d.step("inject", f"serve {MODULE}@{VERSION} at {url} with a certificate from a "
                             "throw-away private CA", True, time.monotonic() - started)
            _detect_and_recover(d, work, url, host)
    d.ok = bool(d.steps) and all(s.ok for s in d.steps)
    return d


def _detect_and_recover(d: Drill, work: Path, url: str, host: str) -> None:
    plain = _write_spec(work / "without-ca.toml", url, None)
    result, error, seconds = _build(plain, work)
    expected = (f"connecting to {host}: its TLS certificate is not signed by a CA this machine "
                "trusts")
    caught = result is None and error.startswith(expected)
    d.detect_seconds = round(seconds, 2)
    d.step("detect", f"rescue build {plain.name}", caught, seconds,
           error or "the build passed: a CA nobody gave was trusted")
    if not caught:
        return
    d.detected_by = "rescue build: certificate check"
    with_ca = _write_spec(work / "with-ca.toml", url, "ca.pem")
    result, error, seconds = _build(with_ca, work)
    d.recover_seconds = round(seconds, 2)
    d.step("recover", f"rescue build {with_ca.name} (ca_bundle = \"ca.pem\")", result is not None,
           seconds, error or f"wrote {result.path.name if result else ''}")
    if result is None:
        return
    d.recovered_by = 'ca_bundle = "ca.pem" in the spec'
    carried = [(m.path, m.version) for m in result.manifest.modules]
    d.step("check", f"the bundle carries {MODULE}@{VERSION}", carried == [(MODULE, VERSION)], 0,
           f"modules: {', '.join(f'{p}@{v}' for p, v in carried) or 'none'}")
