"""Go toolchain versions and platforms: the one parser and comparator both sides use.

The order is Go's own (cmd/go/internal/gover): 1.21 < 1.21rc1 < 1.21rc2 < 1.21.0 < 1.21.1.
A manifest may only name releases Go publishes: `go1.N`, `go1.N.M`, `go1.NrcK`, `go1.NbetaK`.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

# ASCII digits only (`\d` would admit `²`), no leading zeros, a sane number of them.
_NUM = r"(?:0|[1-9][0-9]{0,5})"
_TOOLCHAIN = re.compile(rf"\Ago1\.({_NUM})(?:\.({_NUM})|(rc|beta)([1-9][0-9]{{0,3}}))?\Z")

# `go tool dist list`, as of Go 1.27: the only values a manifest may use for a target.
GOOS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js",
                  "linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows"})
GOARCH = frozenset({"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le",
                    "mipsle", "ppc64", "ppc64le", "riscv64", "s390x", "wasm"})

VersionKey = Tuple[int, int, int, int, int]


def is_toolchain_version(version: str) -> bool:
    """`go1.21.13`, `go1.22rc1`, `go1.21`; never a path, never a non-ASCII digit."""
    return _TOOLCHAIN.match(version) is not None


def normalize(version: str) -> str:
    """`1.21.13` or `go1.21.13` -> `go1.21.13` (what users type -> the manifest's spelling)."""
    return version if version.startswith("go") else "go" + version


def version_key(version: str) -> VersionKey:
    """A sort key in Go's order; raises ValueError for anything that is not a Go version.

    Fields: minor, has-patch (a bare `1.21` and its prereleases sort before `1.21.0`),
    patch, kind (beta < rc < release), prerelease number.
    """
    found = _TOOLCHAIN.match(normalize(version))
    if found is None:
        raise ValueError(f"{version!r} is not a Go version like go1.21.13")
    minor, patch, kind, pre = found.groups()
    if patch is not None:
        return (int(minor), 1, int(patch), 3, 0)
    if kind is None:
        # Before Go 1.21 a bare `1.N` meant the release `1.N.0`; from 1.21 on it is the language
        # version, which sorts before every prerelease.
        return (int(minor), 1, 0, 3, 0) if int(minor) < 21 else (int(minor), 0, 0, 0, 0)
    return (int(minor), 0, 0, {"beta": 1, "rc": 2}[kind], int(pre))


def compare(a: str, b: str) -> int:
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def check_target(goos: str, goarch: str) -> Optional[str]:
    """Why `goos`/`goarch` is not a platform Go builds for, or None."""
    if goos not in GOOS:
        return f"GOOS {goos!r} is not one Go knows ({', '.join(sorted(GOOS))})"
    if goarch not in GOARCH:
        return f"GOARCH {goarch!r} is not one Go knows ({', '.join(sorted(GOARCH))})"
    return None


def split_toolchain_id(tc_id: object) -> Optional[Tuple[str, str]]:
    """`go1.21.13.linux-amd64` -> (`go1.21.13`, `linux-amd64`); None for anything else (an id
    read from disk becomes a path under P/versions, so nothing else may pass)."""
    if not isinstance(tc_id, str):
        return None
    head, _, plat = tc_id.rpartition(".")
    goos, _, goarch = plat.partition("-")
    if not is_toolchain_version(head) or check_target(goos, goarch) is not None:
        return None
    return head, plat
