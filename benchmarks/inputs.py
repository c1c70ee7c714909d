"""The benchmarks' inputs, made on the fly: keys, the pyz, bundles, plain archives, modules."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, List, TypeVar

from bundler import zipapp
from bundler.spec import DEFAULT_LEVEL
from tests.support import bundles, gobin, upstream
from tests.support.goproxy_server import FixtureModule, ProxyServer, write_modules
from tests.support.modbundles import modules_table

GO = gobin.GO_VERSION  # 1.21.13: the one-toolchain cases
OLDER, NEWER = "1.27.2", "1.27.3"  # two neighbouring releases: how much the second one costs
T = TypeVar("T")
LEVEL = 12  # the level the timings are taken at (the spec's default, 19, for sizes)
ZSTD_ARGS = ["zstd", "-q", f"-{LEVEL}", "-T0", "--long=27"]  # as the bundle writer's window
STOCK_PYTHON = "/usr/bin/python3"  # a stock CPython, as on the isolated host


def user_env(home: Path, **extra: str) -> Dict[str, str]:
    """An operator's plain environment: no GO* settings, a HOME of their own."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


def generate_modules(n: int) -> List[FixtureModule]:
    """n small modules: a few source files each, some with upper case paths, some /v2."""
    mods = []
    for i in range(n):
        path = f"bench.example/Group{i % 7}/mod{i:03d}" + ("/v2" if i % 5 == 0 else "")
        version = ("v2." if i % 5 == 0 else "v1.") + f"{i % 13}.{i % 3}"
        files: Dict[str, str | bytes] = {
            f"f{j}.go": f"// {path} file {j}\npackage mod{i:03d}\n\n"
                        f"func F{j}() int {{ return {i * 10 + j} }}\n" + "// padding\n" * (20 * j)
            for j in range(4)}
        files["LICENSE"] = "MIT License\n" * 20
        files["README.md"] = f"# {path}\n"
        mods.append(FixtureModule(path, version, files))
    return mods


def sums_file(root: Path, dest: Path) -> int:
    """`sha256sum -c` input for every regular file under root; the number of files."""
    lines = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    lines.append(f"{hashlib.sha256(f.read()).hexdigest()}  {p}\n")
    dest.write_text("".join(lines))
    return len(lines)


class Inputs:
    """Each input is made the first time a case asks for it (a run of one case makes only
    what that case reads), under `work`; loopback servers live as long as `stack`."""

    def __init__(self, work: Path, stack: ExitStack, n_modules: int,
                 say: Callable[[str], None] = print) -> None:
        self.work = work
        self.stack = stack
        self.n_modules = n_modules
        self.say = say
        self.setup_seconds: Dict[str, float] = {}

    def _made(self, name: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        value = fn()
        self.setup_seconds[name] = round(time.perf_counter() - started, 2)
        self.say(f"  made {name} ({self.setup_seconds[name]:.1f} s)")
        return value

    def archive(self, version: str = GO) -> Path:
        """go<V>.linux-amd64.tar.gz as go.dev ships it (gzip, default level); cached per machine."""
        return gobin.godl_archive(version)

    def godl_url(self, versions: List[str]) -> str:
        """A go.dev-style download index on 127.0.0.1 serving these releases."""
        archives = [self.archive(v) for v in versions]
        routes = upstream.godl_routes({a.name: a for a in archives})
        return self.stack.enter_context(upstream.serve(routes))

    @cached_property
    def signing(self) -> bundles.Signing:
        return bundles.make_signing(self.work / "keys")

    @cached_property
    def pyz(self) -> Path:
        """dist/rescue.pyz by the project's own builder, trusting the benchmark's key."""
        return self._made("rescue.pyz", lambda: zipapp.build_zipapp(
            self.work / "dist" / "rescue.pyz", trust_file=self.signing.signers,
            wheel_cache=gobin.cache_root() / "pyz-wheels").output)

    def spec(self, name: str, versions: List[str], extra: str = "", url: str = "",
             level: int = LEVEL) -> Path:
        listed = "[" + ", ".join(f'"{v}"' for v in versions) + "]"
        return bundles.write_spec(self.work / f"{name}.toml", self.signing.key,
                                  url or self.godl_url(versions), name=name, level=level,
                                  versions=listed, extra=extra)

    def _bundle(self, spec: Path) -> Path:
        return self._made(spec.stem, lambda: bundles.build_bundle(
            spec, self.work / "bundles", self.download_cache).path)

    @property
    def download_cache(self) -> Path:
        """The bundler's download cache, warm once a bundle of a release was built."""
        return self.work / "download-cache"

    @cached_property
    def bundle_spec(self) -> Path:
        return self.spec(f"go{GO}", [GO])

    @cached_property
    def bundle(self) -> Path:
        """Go 1.21.13 linux-amd64 at level 12."""
        return self._bundle(self.bundle_spec)

    @cached_property
    def bundle_default_level(self) -> Path:
        """The same at the spec's default level: the size users carry."""
        return self._bundle(self.spec(f"go{GO}-level{DEFAULT_LEVEL}", [GO], level=DEFAULT_LEVEL))

    @cached_property
    def bundle_both(self) -> Path:
        return self._bundle(self.spec(f"go{OLDER}-and-{NEWER}", [OLDER, NEWER]))

    @cached_property
    def bundle_newer(self) -> Path:
        return self._bundle(self.spec(f"go{NEWER}", [NEWER]))

    @cached_property
    def tar(self) -> Path:
        """The tree of the go.dev archive as one plain tar."""
        out = self.work / "tree.tar"
        with open(out, "wb") as f:
            subprocess.run(["gzip", "-dc", str(self.archive())], stdout=f, check=True)
        return out

    @cached_property
    def tar_zst(self) -> Path:
        """... and zstd of it, as the bundle writer compresses (level, window), no checks."""
        out = self.work / "tree.tar.zst"
        self._made(out.name, lambda: subprocess.run([*ZSTD_ARGS, str(self.tar), "-o", str(out)],
                                                    check=True))
        return out

    @cached_property
    def modules(self) -> List[FixtureModule]:
        return generate_modules(self.n_modules)

    @cached_property
    def proxy_dir(self) -> Path:
        """The modules as a GOPROXY directory (for file://)."""
        return write_modules(self.work / "proxy", self.modules)

    @cached_property
    def modules_bundle(self) -> Path:
        """The same modules served over the GOPROXY protocol on 127.0.0.1, bundled alone."""
        server = self.stack.enter_context(ProxyServer(self.proxy_dir))
        extra = modules_table(server.url, require=[m.key for m in self.modules],
                              transitive=False)
        return self._bundle(self.spec(f"modules{self.n_modules}", [], extra,
                                      url="http://127.0.0.1:9"))

    @cached_property
    def installed(self) -> Path:
        """A prefix with the Go 1.21.13 bundle installed by the pyz (for verify)."""
        prefix = self.work / "installed"
        self._made("installed prefix", lambda: subprocess.run(
            [STOCK_PYTHON, "-I", str(self.pyz), "install", str(self.bundle), "--prefix",
             str(prefix)], env=user_env(self.work / "home"), check=True,
            stdout=subprocess.DEVNULL))
        return prefix

    @cached_property
    def installed_sums(self) -> Path:
        """SHA256SUMS of every regular file of the installed GOROOT."""
        out = self.work / "SHA256SUMS"
        sums_file(self.installed / "versions" / f"go{GO}.linux-amd64", out)
        return out
