"""Module cache rebuild for 300 fixture modules: rescue's --modcache vs `go mod download`.

Run: .venv/bin/python benchmarks/modcache_bench.py [--modules N] [--repeat R]

Both sides start from an empty GOMODCACHE and end with the same cache/download files and
extracted trees, measured in the same run on the same disk:
  (a) go mod download of all N module versions from a file:// GOPROXY (GOSUMDB=off,
      GOFLAGS=-modcacherw): the baseline an operator would otherwise use.
  (b) installer.modcache.populate from a staged goproxy/ tree of the same N modules (what
      `rescue.pyz install --modcache` does after the bundle's hashes were checked).
It also builds bundles (modules only, and Go 1.21.13 + the test fixture modules) and prints
their build time and size. No asserts on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from installer import prefix  # noqa: E402
from installer.modcache import populate  # noqa: E402
from manifests.dirhash import hash_gomod, hash_zip  # noqa: E402
from manifests.model import Module  # noqa: E402
from manifests.modpath import escape_path, escape_version  # noqa: E402
from tests.support import bundles, gobin, upstream  # noqa: E402
from tests.support.goproxy_server import (  # noqa: E402
    FixtureModule,
    ProxyServer,
    fixture_modules,
    write_modules,
)
from tests.support.modbundles import modules_table  # noqa: E402


def generate(n: int) -> list[FixtureModule]:
    """n small modules: a few source files each, some with upper case paths, some /v2."""
    mods = []
    for i in range(n):
        path = f"bench.example/Group{i % 7}/mod{i:03d}" + ("/v2" if i % 5 == 0 else "")
        version = ("v2." if i % 5 == 0 else "v1.") + f"{i % 13}.{i % 3}"
        files = {f"f{j}.go": f"// {path} file {j}\npackage mod{i:03d}\n\n"
                 f"func F{j}() int {{ return {i * 10 + j} }}\n" + "// padding\n" * (20 * j)
                 for j in range(4)}
        files["LICENSE"] = "MIT License\n" * 20
        files["README.md"] = f"# {path}\n"
        mods.append(FixtureModule(path, version, files))
    return mods


def records(proxy_dir: Path, mods: list[FixtureModule]) -> list[Module]:
    out = []
    for m in mods:
        vdir = proxy_dir / escape_path(m.path) / "@v"
        ev = escape_version(m.version)
        out.append(Module(m.path, m.version, hash_zip(vdir / f"{ev}.zip"),
                          hash_gomod((vdir / f"{ev}.mod").read_bytes())))
    return out


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def time_go_download(go: Path, proxy_dir: Path, mods: list[FixtureModule], work: Path) -> float:
    cache = work / "go-modcache"
    env = gobin.go_env(work / "home", GOPROXY=f"file://{proxy_dir}", GOSUMDB="off",
                       GOMODCACHE=str(cache), GOFLAGS="-modcacherw")
    outside = work / "outside"  # no go.mod: `go mod download m@v ...` needs no project
    outside.mkdir(exist_ok=True)
    started = time.perf_counter()
    subprocess.run([str(go), "mod", "download", *(m.key for m in mods)], cwd=outside, env=env,
                   check=True, capture_output=True)
    took = time.perf_counter() - started
    files = count_files(cache)
    prefix.remove_tree(cache)
    return took, files


def time_rescue(proxy_dir: Path, modules: list[Module], work: Path) -> float:
    cache = work / "rescue-modcache"
    started = time.perf_counter()
    result = populate(proxy_dir, modules, cache)
    took = time.perf_counter() - started
    assert len(result.written) == len(modules)
    files = count_files(cache)
    prefix.remove_tree(cache)
    return took, files


def build_bundle(work: Path, signing: bundles.Signing, name: str, goproxy: str,
                 require: list[str], godl_url: str = "http://127.0.0.1:9",
                 versions: str = "[]") -> tuple[float, int, int]:
    work.mkdir()
    spec = bundles.write_spec(work / "spec.toml", signing.key, godl_url, name=name,
                              versions=versions, level=3,
                              extra=modules_table(goproxy, require=require, transitive=False))
    started = time.perf_counter()
    result = bundles.build_bundle(spec, work / "out", work / "cache")
    return time.perf_counter() - started, result.size, len(result.manifest.modules)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-toolchain", action="store_true",
                    help="skip the Go 1.21.13 + fixture modules bundle")
    args = ap.parse_args()
    go = gobin.go_binary()
    with tempfile.TemporaryDirectory(prefix="rescue-bench-") as tmp:
        work = Path(tmp)
        mods = generate(args.modules)
        proxy_dir = write_modules(work / "proxy", mods)
        modules = records(proxy_dir, mods)
        size = sum(p.stat().st_size for p in proxy_dir.rglob("*.zip"))
        version = subprocess.run([str(go), "version"], capture_output=True, text=True).stdout
        print(f"{len(mods)} fixture modules, {size / 1e6:.2f} MB of zips; {version.strip()}")
        go_times, ours = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine state
            t, go_files = time_go_download(go, proxy_dir, mods, work)
            go_times.append(t)
            t, our_files = time_rescue(proxy_dir, modules, work)
            ours.append(t)
        g, r = statistics.median(go_times), statistics.median(ours)
        print(f"(a) go mod download, file:// GOPROXY: median {g:.3f}s  "
              f"(runs {', '.join(f'{t:.3f}' for t in go_times)}; {go_files} files)")
        print(f"(b) rescue modcache rebuild:         median {r:.3f}s  "
              f"(runs {', '.join(f'{t:.3f}' for t in ours)}; {our_files} files)")
        print(f"ratio rescue/go: {r / g:.2f}  (go/rescue: {g / r:.2f}x)")

        signing = bundles.make_signing(work / "keys")
        with ProxyServer(proxy_dir) as srv:
            t, size, n = build_bundle(work / "b300", signing, "bench300", srv.url,
                                      [m.key for m in mods])
        print(f"bundle, {n} modules only:                build {t:.2f}s, size {size / 1e6:.2f} MB")
        fixtures = fixture_modules()
        fx_dir = write_modules(work / "fixture-proxy", fixtures)
        with ProxyServer(fx_dir) as srv:
            t, size, n = build_bundle(work / "bfix", signing, "fixtures", srv.url,
                                      [m.key for m in fixtures])
            print(f"bundle, fixture set ({n} modules):       build {t:.2f}s, "
                  f"size {size / 1e6:.3f} MB")
            if not args.no_toolchain:
                archive = gobin.godl_archive()
                with upstream.serve(upstream.godl_routes({archive.name: archive})) as url:
                    t, size, n = build_bundle(work / "bfull", signing, "full", srv.url,
                                              [m.key for m in fixtures], godl_url=url,
                                              versions='["1.21.13"]')
                print(f"bundle, Go 1.21.13 + fixture set ({n}): build {t:.2f}s, "
                      f"size {size / 1e6:.1f} MB (zstd level 3; includes the loopback "
                      "toolchain download)")
        shutil.rmtree(work / "keys", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
