"""Resolve Go toolchains in a go.dev-style download index (`?mode=json&include=all`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional
from urllib.parse import urljoin

from manifests import goversion
from manifests.errors import NotReadyError, TrustError

DEFAULT_INDEX = "https://go.dev/dl/?mode=json&include=all"
DEFAULT_BASE = "https://go.dev/dl/"


@dataclass(frozen=True)
class Upstream:
    """One upstream archive as an index announces it."""

    version: str  # "go1.21.13"
    os: str
    arch: str
    filename: str
    url: str
    sha256: str
    size: int


def go_version(v: str) -> str:
    """`1.21.13` and `go1.21.13` both name go1.21.13."""
    v = v.strip()
    return v if v.startswith("go") else "go" + v


def newest_first(versions: Iterable[Any]) -> List[str]:
    """The Go versions among `versions`, newest first in Go's order; anything else dropped."""
    valid = {go_version(v) for v in versions
             if isinstance(v, str) and goversion.is_toolchain_version(go_version(v))}
    return sorted(valid, key=goversion.version_key, reverse=True)


def did_you_mean(version: str, available: Iterable[Any]) -> Optional[str]:
    """For a version an index lacks (`go1.21`, `go1.21.99`): which releases of its Go line it
    has, newest first, with the release to suggest; None when the line has none there."""
    try:
        minor = goversion.version_key(version)[0]
    except ValueError:
        return None
    same_line = [v for v in newest_first(available) if goversion.version_key(v)[0] == minor]
    if not same_line:
        return None
    releases = [v for v in same_line if goversion.version_key(v)[3] == 3]  # no rc, no beta
    best = (releases or same_line)[0]
    line = f"go1.{minor}"
    note = (f"; a spec names a full release, not the Go line {line}"
            if go_version(version) == line else "")
    return (f"did you mean {best[2:]}?{note}\n"
            f"\tnewest {line} releases there: {', '.join(same_line[:5])}")


def parse_index(data: bytes, index_url: str) -> List[Any]:
    try:
        releases = json.loads(data)
    except ValueError as exc:
        raise NotReadyError(f"reading download index {index_url}: not JSON ({exc}); is this a "
                            "go.dev/dl ?mode=json&include=all URL?") from None
    if not isinstance(releases, list):
        raise NotReadyError(f"reading download index {index_url}: expected a JSON list")
    return releases


def resolve(releases: List[Any], index_url: str, base_url: str, version: str, os_: str,
            arch: str) -> Upstream:
    version = go_version(version)
    release = next((r for r in releases if isinstance(r, dict) and r.get("version") == version),
                   None)
    if release is None:
        listed = [r.get("version") for r in releases if isinstance(r, dict)]
        hint = did_you_mean(version, listed)
        if hint:
            raise NotReadyError(f"resolving {version}: not in the download index {index_url}; "
                                + hint)
        known = newest_first(listed)[:8]
        raise NotReadyError(
            f"resolving {version}: not in the download index {index_url}\n"
            f"\tnewest listed: {', '.join(map(str, known)) or 'none'}\n"
            "Check the version in the spec (is it released?), or pass the full index with "
            "&include=all.")
    for f in release.get("files", []):
        if f.get("os") == os_ and f.get("arch") == arch and f.get("kind") == "archive":
            filename = str(f.get("filename", ""))
            sha = str(f.get("sha256", "")).lower()
            if "/" in filename or not filename.endswith((".tar.gz", ".zip")):
                raise TrustError(f"resolving {version} {os_}/{arch}: index names an odd file "
                                 f"{filename!r}")
            if len(sha) != 64:
                raise TrustError(f"resolving {version} {os_}/{arch}: index has no sha256 for "
                                 f"{filename}")
            return Upstream(version, os_, arch, filename, urljoin(base_url, filename), sha,
                            int(f.get("size") or 0))
    have = sorted({f"{f.get('os')}-{f.get('arch')}" for f in release.get("files", [])
                   if f.get("kind") == "archive"})
    raise NotReadyError(f"resolving {version}: no {os_}-{arch} archive in {index_url}; "
                        f"it has: {', '.join(have) or 'none'}")
