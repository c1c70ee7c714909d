"""The checksum database data a bundle carries: fetched and proven, checked against the
module hashes the bundle carries, laid out as `goproxy/sumdb/<name>/` members."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Callable, Iterable, Optional, Tuple

import httpx

from bundler.part import Part
from bundler.spec import ModuleSpec
from bundler.sumdb_fetch import database_url, fetch_sumdb, key
from manifests.model import Member
from manifests.sumdb_bundle import SUMDB_DIR, Sumdb, check_lines, verify_carried

FILE_MODE = 0o644
DIR_MODE = 0o755
# (module path, version, zip h1 or "", go.mod h1): every record the database must vouch for.
Record = Tuple[str, str, str, str]


def plan_sumdb(client: httpx.Client, ms: ModuleSpec, records: Iterable[Record],
               origin: Callable[[str, str], str] = lambda m, v: "go.sum"
               ) -> Tuple[Optional[Sumdb], Optional[Part]]:
    """The database record for the manifest and its members; (None, None) when the spec says
    "off" or no record is the database's to vouch for. `records` are the bundle's modules
    and its toolchain modules (golang.org/toolchain); `origin(m, v)` names where a record's
    hashes come from, for the mismatch message."""
    if ms.sumdb == "off":
        return None, None
    records = list(records)
    probe = Sumdb("", "", 0, "", ms.goprivate)  # goprivate modules: the database cannot know
    covered = [r for r in records if probe.covers(r[0])]
    nosumdb = ms.goprivate if len(covered) < len(records) else ""
    if not covered:
        return None, None
    name = key(ms.sumdb).name
    base = ms.sumdb_url or database_url(client, ms.goproxy, name)
    data = fetch_sumdb(client, base, ms.sumdb, [(m, v) for m, v, _, _ in covered])
    for m, v, zip_hash, mod_hash in covered:
        check_lines(name, m, v, data.lines(m, v), zip_hash, mod_hash, carried_as=origin(m, v))
    db = Sumdb(name, ms.sumdb.strip(), data.tree.n, base64.b64encode(data.tree.hash).decode(),
               nosumdb)
    verify_carried(db, covered, data.files.get)  # what every installer will check, checked
    return db, _part(f"{SUMDB_DIR}/{name}", data.files)


def _part(base: str, files: dict) -> Part:
    paths = {f"{base}/{rel}": body for rel, body in files.items()}
    dirs = {SUMDB_DIR}
    for path in paths:
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(3, len(parts)))
    members = [Member(d, "dir", DIR_MODE) for d in sorted(dirs)]
    members += [Member(p, "file", FILE_MODE, len(b), hashlib.sha256(b).hexdigest())
                for p, b in sorted(paths.items())]
    return Part(members, lambda m: io.BytesIO(paths[m.path]))
