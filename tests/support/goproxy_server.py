"""Fixture Go modules in GOPROXY layout, a loopback HTTP proxy for them, and real-go projects."""

from __future__ import annotations

import base64
import io
import json
import ssl
import subprocess
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable

from bundler.throwaway_tls import HTTPSServer
from manifests.modpath import escape_path, escape_version, max_version, sort_versions

FIXED_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass
class FixtureModule:
    path: str
    version: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    requires: list[tuple[str, str]] = field(default_factory=list)
    has_gomod: bool = True  # False models a pre-modules repo (+incompatible versions)
    go: str | None = "1.21"  # the go line; below 1.17 (or None) the module graph is unpruned
    time: str = "2024-01-01T00:00:00Z"

    @property
    def key(self) -> str:
        return f"{self.path}@{self.version}"

    def gomod(self) -> bytes:
        """The go.mod in the zip; without one, proxies serve the synthesized `module M`."""
        if not self.has_gomod:
            return f"module {self.path}\n".encode()
        text = f"module {self.path}\n" + (f"\ngo {self.go}\n" if self.go else "")
        if self.requires:
            text += "\nrequire (\n" + "".join(f"\t{m} {v}\n" for m, v in self.requires) + ")\n"
        return text.encode()

    def zip_bytes(self) -> bytes:
        files = {n: (c.encode() if isinstance(c, str) else c) for n, c in self.files.items()}
        if self.has_gomod:
            files["go.mod"] = self.gomod()
        return build_zip(f"{self.path}@{self.version}/", sorted(files.items()))


def build_zip(prefix: str, entries: list[tuple[str, bytes]]) -> bytes:
    """A zip as x/mod zip.Create writes it: `prefix + name` entries, deflated, no directories."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(prefix + name, FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _go_file(pkg_comment: str, body: str = "", imports: str = "") -> str:
    return f"// {pkg_comment}\npackage fixture\n\n{imports}func Name() string {{ return {body} }}\n"


def fixture_modules() -> list[FixtureModule]:
    """The set the tests need: upper case, +incompatible, pseudo-version, /v2, a dependency."""

    def simple(path: str, version: str, **kw: object) -> FixtureModule:
        src = _go_file(path, f'"{path}@{version}"')
        return FixtureModule(path, version, {"fixture.go": src, "LICENSE": "MIT\n"}, **kw)  # type: ignore[arg-type]

    app_src = _go_file("example.com/app", '"app+" + dep.Name()', 'import dep "example.com/dep"\n\n')
    return [
        simple("example.com/Upper/Mod", "v1.0.0-Beta"),
        simple("example.com/old", "v2.0.0+incompatible", has_gomod=False),
        simple("example.com/pseudo", "v0.0.0-20240101000000-abcdefabcdef"),
        simple("example.com/lib/v2", "v2.1.0", requires=[("example.com/dep", "v1.0.0")]),
        simple("example.com/dep", "v1.0.0"),
        simple("example.com/dep", "v1.2.0"),
        FixtureModule("example.com/app", "v1.0.0", {"app.go": app_src},
                      requires=[("example.com/dep", "v1.2.0")]),
    ]


def graph_modules() -> tuple[list[FixtureModule], list[FixtureModule]]:
    """(served, imported): a build list with modules that provide no package.

    `tool` has an unpruned go.mod (go 1.16), so the graph reads the go.mod of what it
    requires: `graphonly/v2` and, through it, `edge` end up in go.sum by `/go.mod` lines only.
    `pruned` (go 1.21) requires `leaf`, which joins the build list with no go.sum line at all.
    """
    def simple(path: str, version: str, **kw: object) -> FixtureModule:
        src = _go_file(path, f'"{path}@{version}"')
        return FixtureModule(path, version, {"fixture.go": src}, **kw)  # type: ignore[arg-type]

    tool = simple("example.com/tool", "v1.0.0", go="1.16",
                  requires=[("example.com/graphonly/v2", "v2.0.3")])
    pruned = simple("example.com/pruned", "v1.0.0", requires=[("example.com/leaf", "v1.1.0")])
    served = [tool, pruned,
              simple("example.com/graphonly/v2", "v2.0.3",
                     requires=[("example.com/edge", "v1.0.0")]),
              simple("example.com/edge", "v1.0.0"),
              simple("example.com/leaf", "v1.0.0"), simple("example.com/leaf", "v1.1.0")]
    return served, [tool, pruned]


def write_module(proxy_dir: Path, mod: FixtureModule, *, zip_data: bytes | None = None) -> Path:
    """Write one module into `proxy_dir/<esc m>/@v/` and add it to `list`."""
    vdir = proxy_dir / escape_path(mod.path) / "@v"
    vdir.mkdir(parents=True, exist_ok=True)
    ev = escape_version(mod.version)
    (vdir / f"{ev}.info").write_text(json.dumps({"Version": mod.version, "Time": mod.time}))
    (vdir / f"{ev}.mod").write_bytes(mod.gomod())
    (vdir / f"{ev}.zip").write_bytes(zip_data if zip_data is not None else mod.zip_bytes())
    listing = vdir / "list"
    known = set(listing.read_text().split()) if listing.exists() else set()
    listing.write_text("".join(v + "\n" for v in sort_versions(known | {mod.version})))
    return vdir


def write_modules(proxy_dir: Path, mods: list[FixtureModule]) -> Path:
    for mod in mods:
        write_module(proxy_dir, mod)
    return proxy_dir


class ProxyServer:
    """Serve a directory over HTTP on 127.0.0.1 (ephemeral port); 404 for anything missing.

    `override(path, status, body)` serves a canned answer (a tampered zip, a 500, a 410) for one
    URL path; `auth=(user, password)` demands HTTP basic auth; `requests` logs paths served;
    `tls` (a server context, bundler.throwaway_tls.server_context) makes it HTTPS.
    `routes` maps a path prefix to a handler that answers the rest of the path with
    (status, body): a checksum database mounted at `/sumdb/<name>` (tests/support/sumdb_server).
    """

    def __init__(self, root: Path, *, auth: tuple[str, str] | None = None,
                 tls: ssl.SSLContext | None = None,
                 routes: dict[str, Callable[[str], tuple[int, bytes]]] | None = None) -> None:
        self.root = Path(root).resolve()
        self.auth = auth
        self.tls = tls
        self.routes = dict(routes or {})
        self.overrides: dict[str, list] = {}  # path -> [status, body, remaining uses or None]
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server: HTTPSServer | None = None
        self._thread: threading.Thread | None = None

    def override(self, path: str, status: int = 200, body: bytes = b"",
                 times: int | None = None) -> None:
        """Answer `path` with status/body (for the next `times` requests, or always)."""
        self.overrides[path] = [status, body, times]

    def _take_override(self, path: str) -> tuple[int, bytes] | None:
        with self._lock:
            o = self.overrides.get(path)
            if o is None or o[2] == 0:
                return None
            if o[2] is not None:
                o[2] -= 1
            return o[0], o[1]

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self._server.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ProxyServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None
                      ) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = urllib.parse.unquote(self.path.split("?", 1)[0])
                with outer._lock:
                    outer.requests.append(path)
                if outer.auth is not None:
                    want = "Basic " + base64.b64encode(":".join(outer.auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self._send(401, b"unauthorized\n", {"WWW-Authenticate": 'Basic realm="p"'})
                        return
                canned = outer._take_override(path)
                if canned is not None:
                    self._send(*canned)
                    return
                for prefix, route in outer.routes.items():
                    if path.startswith(prefix + "/"):
                        self._send(*route(path[len(prefix):]))
                        return
                target = (outer.root / path.lstrip("/")).resolve()
                if outer.root not in target.parents or not target.is_file():
                    self._send(404, b"not found\n")
                    return
                self._send(200, target.read_bytes())

        self._server = HTTPSServer(("127.0.0.1", 0), Handler, self.tls)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def make_project(project: Path, mods: list[FixtureModule],
                 module: str = "example.com/project") -> Path:
    """A main package importing every fixture module's package, requiring each version."""
    project.mkdir(parents=True, exist_ok=True)
    paths = {mod.path for mod in mods}
    newest = {m: max_version(mod.version for mod in mods if mod.path == m) for m in paths}
    req = "".join(f"\t{m} {v}\n" for m, v in sorted(newest.items()))
    (project / "go.mod").write_text(f"module {module}\n\ngo 1.21\n\nrequire (\n{req})\n")
    imports = "".join(f'\tm{i} "{m}"\n' for i, m in enumerate(sorted(newest)))
    calls = "".join(f"\tprintln(m{i}.Name())\n" for i in range(len(newest)))
    (project / "main.go").write_text(f"package main\n\nimport (\n{imports})\n\n"
                                     f"func main() {{\n{calls}}}\n")
    return project


def go_mod_tidy(go: Path, project: Path, proxy_url: str, env: dict[str, str]) -> Path:
    """Run the real `go mod tidy` and `go mod download` against a proxy; returns go.sum."""
    env = dict(env, GOPROXY=proxy_url, GOSUMDB="off", GOFLAGS="-mod=mod -modcacherw")
    for args in (["mod", "tidy"], ["mod", "download"]):
        done = subprocess.run([str(go), *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"go {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return project / "go.sum"


@dataclass
class RealGoProject:
    proxy_dir: Path
    project: Path
    gosum: Path
    modcache: Path  # GOMODCACHE the real go filled from the served proxy
    mods: list[FixtureModule]


def real_go_project(base: Path, go: Path, env: dict[str, str],
                    graph: bool = False) -> RealGoProject:
    """Fixture modules served on loopback, and a project whose go.sum the real `go` wrote.

    `graph=True`: the modules of graph_modules(), whose build list has graph-only modules.
    """
    mods, imported = graph_modules() if graph else (fixture_modules(), None)
    proxy_dir = write_modules(base / "proxy", mods)
    with ProxyServer(proxy_dir) as srv:
        gosum = go_mod_tidy(go, make_project(base / "project", imported or mods), srv.url, env)
    return RealGoProject(proxy_dir, base / "project", gosum,
                         Path(env["GOPATH"]) / "pkg" / "mod", mods)
