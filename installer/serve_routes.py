"""Which file of P/goproxy a GOPROXY or checksum-database URL path names (no I/O)."""

from __future__ import annotations

import urllib.parse
from typing import List, NamedTuple, Optional, Union

from manifests.modpath import (
    ModulePathError,
    is_valid_semver,
    max_version,
    parse_proxy_file,
    unescape_path,
    unescape_version,
)
from manifests.tlog import TlogError
from manifests.tlog_tiles import parse_tile_path

TEXT = "text/plain; charset=utf-8"  # what ref/mod asks of `list`, `.mod` and error bodies
JSON = "application/json"
ZIP = "application/zip"
TILE = "application/octet-stream"
TYPES = {"list": TEXT, ".info": JSON, ".mod": TEXT, ".zip": ZIP}


class File(NamedTuple):
    rel: str  # relative to P/goproxy, '/'-separated, every part checked
    content_type: str


class Latest(NamedTuple):
    """`<m>/@latest`: computed from `list_rel`, answered with the chosen version's .info."""
    module_dir: str  # `<esc m>`, relative to P/goproxy


class Refusal(NamedTuple):
    status: int
    reason: str


Route = Union[File, Latest, Refusal]
NOT_FOUND = Refusal(404, "not found")


def route(target: str, sumdb_name: Optional[str]) -> Route:
    """The answer to a request target: a file to serve, @latest to compute, or a refusal.

    Go asks only for `<esc m>/@v/{list,<esc v>.info,.mod,.zip}`, `<esc m>/@latest` and
    `sumdb/<name>/{supported,lookup/...,tile/...}`; anything else is 404, the status that lets
    go try the next GOPROXY entry (cmd/go web.HTTPError.Is: 404 and 410 are "not exist")."""
    parts = _parts(target)
    if isinstance(parts, Refusal):
        return parts
    if parts[0] == "sumdb":
        return _sumdb("/".join(parts[1:]), sumdb_name)
    rel = "/".join(parts)
    if parts[-1] == "@latest":
        try:
            unescape_path("/".join(parts[:-1]))
        except ModulePathError:
            return NOT_FOUND
        return Latest("/".join(parts[:-1]))
    try:
        _module, _version, name = parse_proxy_file(rel)
    except ModulePathError:
        return NOT_FOUND
    ext = name if name == "list" else "." + name.rsplit(".", 1)[1]
    return File(rel, TYPES[ext])


def _parts(target: str) -> Union[List[str], Refusal]:
    """The decoded path's parts; `..` and encodings that hide one are refused outright."""
    if not target.startswith("/"):
        return Refusal(400, "the request target is not a path")
    raw = target.split("?", 1)[0]
    try:
        path = urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "the path is not UTF-8")
    if "\\" in path or not path.isprintable():
        return Refusal(400, "the path holds a backslash or a control character")
    parts = path[1:].split("/")
    if any(p in (".", "..") for p in parts):
        return Refusal(400, "the path holds a . or .. part")
    if any(p == "" for p in parts):
        return NOT_FOUND  # a directory: never listed
    if any(p.startswith(".") for p in parts):
        return NOT_FOUND  # a dotfile: no module path or version part starts with a dot
    return parts


def _sumdb(rest: str, name: Optional[str]) -> Route:
    """`sumdb/<name>/...` of the one database the prefix carries data of (a name may hold
    slashes); 404 for any other, so go asks the database itself (and fails while offline)."""
    if not name or not rest.startswith(name + "/"):
        return NOT_FOUND
    sub = rest[len(name) + 1:]
    base = f"sumdb/{name}/"
    if sub == "supported":
        return File(base + sub, TEXT)
    if sub.startswith("lookup/"):
        esc_m, at, esc_v = sub[len("lookup/"):].rpartition("@")
        try:
            unescape_path(esc_m)
            unescape_version(esc_v)
        except ModulePathError:
            return NOT_FOUND
        return File(base + sub, TEXT) if at else NOT_FOUND
    if sub.startswith("tile/"):
        try:
            parse_tile_path(sub)
        except TlogError:
            return NOT_FOUND
        return File(base + sub, TILE)
    return NOT_FOUND


def latest_version(listing: str) -> Optional[str]:
    """The version `@latest` names, from a `@v/list`: the highest release, else the highest
    pre-release (pseudo-versions are pre-releases), as the GOPROXY protocol defines it."""
    versions = [f[0] for f in (line.split() for line in listing.splitlines())
                if f and is_valid_semver(f[0])]
    releases = [v for v in versions if "-" not in v.split("+", 1)[0]]
    if releases or versions:
        return max_version(releases or versions)
    return None
