"""A bundle's checksum database data, without I/O: the manifest record, the member shapes
allowed under `goproxy/sumdb/<name>/`, and the proof that every carried lookup is in the carried
tree head and says the hashes the manifest signs."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from manifests.errors import TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import match_prefix_patterns
from manifests.sumdb_lookup import Lookup, lookup_path, parse_lookup, prove, untrusted
from manifests.sumdb_note import NoteError, parse_verifier, valid_name
from manifests.tlog import HASH_SIZE, TlogError, Tree
from manifests.tlog_tiles import HEIGHT, parse_tile_path

SUMDB_DIR = "goproxy/sumdb"
# Directories on the way to a tile: tile, tile/8, tile/8/<L>, tile/8/<L>/x001/..., .../NNN.p
_TILE_DIR = re.compile(r"\Atile(?:/8(?:/[0-9]+(?:(?:/x[0-9]{3})*(?:/[0-9]{3}\.p)?)?)?)?\Z")
# Returns the bytes a carried file holds (a path under goproxy/sumdb/<name>/), None if absent.
Reader = Callable[[str], Optional[bytes]]


@dataclass(frozen=True)
class Sumdb:
    """The checksum database a bundle carries data of, as its manifest records it."""

    name: str
    key: str  # the verifier key, as GOSUMDB takes it
    size: int  # records in the one signed tree head every carried lookup names
    hash: str  # that tree's hash, base64
    nosumdb: str = ""  # GONOSUMDB patterns: the bundle's modules the database cannot know

    @property
    def tree(self) -> Tree:
        return Tree(self.size, base64.b64decode(self.hash))

    def covers(self, module: str) -> bool:
        """Whether the database must vouch for `module` (it is not a private one)."""
        return not (self.nosumdb and match_prefix_patterns(self.nosumdb, module))


def check_record(db: Sumdb) -> List[str]:
    """What is wrong with a manifest's sumdb record, as manifest problems."""
    problems = []
    if (not valid_name(db.name) or len(db.name) > DEFAULT_LIMITS.sumdb_name_chars
            or not db.name.isprintable()):
        problems.append("sumdb: name is not a checksum database name")
    else:
        try:
            if parse_verifier(db.key).name != db.name:
                problems.append(f"sumdb: key {db.key!r} is not {db.name}'s")
        except NoteError as exc:
            problems.append(f"sumdb: key {db.key!r}: {exc}")
    try:
        if len(base64.b64decode(db.hash, validate=True)) != HASH_SIZE or db.size < 1:
            raise ValueError
    except (ValueError, binascii.Error):
        problems.append("sumdb: size and hash must be a tree head (1 or more records, a "
                        "base64 SHA-256)")
    if len(db.nosumdb) > DEFAULT_LIMITS.sumdb_patterns_chars or not db.nosumdb.isprintable():
        problems.append("sumdb: nosumdb must be printable patterns")
    return problems


class Shapes:
    """The member paths a bundle's sumdb data may take: `supported`, a lookup per carried
    module the database covers, and tiles of the carried tree."""

    def __init__(self, db: Optional[Sumdb], modules: Iterable[Tuple[str, str]]) -> None:
        self.db = db
        self.base = f"{SUMDB_DIR}/{db.name}" if db else ""
        self.lookups: Set[str] = set()
        self.dirs: Set[str] = {SUMDB_DIR}
        if db is None:
            return
        parts = self.base.split("/")
        self.dirs.update("/".join(parts[:i]) for i in range(3, len(parts) + 1))
        for m, v in modules:
            if db.covers(m):
                path = lookup_path(m, v)
                self.lookups.add(path)
                bits = path.split("/")
                self.dirs.update(f"{self.base}/" + "/".join(bits[:i])
                                 for i in range(1, len(bits)))

    def problem(self, path: str, kind: str) -> Optional[str]:
        """Why `path` (under goproxy/sumdb) is not a shape this bundle's sumdb data takes."""
        if self.db is None:
            return f"{path}: checksum database data, but the manifest names no database"
        if path in self.dirs:
            return None if kind == "dir" else f"{path}: must be a directory"
        if not path.startswith(self.base + "/"):
            return f"{path}: not under {self.base} (the database the manifest names)"
        rel = path[len(self.base) + 1:]
        if kind == "dir":
            return None if _TILE_DIR.match(rel) else f"{path}: not a checksum database directory"
        if kind not in ("file", "hardlink"):
            return f"{path}: only plain files may go into the checksum database data"
        if rel == "supported" or rel in self.lookups:
            return None
        if rel.startswith("lookup/"):
            return f"{path}: a lookup of no module this bundle carries for {self.db.name}"
        try:
            tile = parse_tile_path(rel)
        except TlogError:
            return f"{path}: not supported, a lookup or a tile"
        if tile.h != HEIGHT or tile.level < 0:
            return f"{path}: only hash tiles of height {HEIGHT} are carried"
        if (tile.n << tile.h) + tile.w > self.db.size >> (tile.h * tile.level):
            return f"{path}: a tile beyond the carried tree of {self.db.size} records"
        return None


def check_lines(db_name: str, module: str, version: str, lines: List[str],
                zip_hash: str, mod_hash: str, carried_as: str = "bundle") -> None:
    """The database's go.sum lines must say the hashes the bundle carries."""
    said = {}
    for line in lines:
        fields = line.split(" ")
        if len(fields) == 3:
            said[fields[1]] = fields[2]
    for suffix, carried in (("", zip_hash), ("/go.mod", mod_hash)):
        got = said.get(version + suffix, "")
        if carried and got != carried:
            what = f"{module}@{version}{suffix}"
            raise TrustError(
                f"verifying {what}: checksum mismatch\n\t{carried_as}: {carried}\n\t{db_name}: "
                f"{got or '(no line)'}\nThe checksum database {db_name} and the {carried_as}'s "
                "h1: hash disagree: the module was altered after it was published, or the database "
                "data is not genuine. Find out which is right before carrying it.",
                subject=what, expected=carried, got=got, tampering=True)


def verify_carried(db: Sumdb, modules: Iterable[Tuple[str, str, str, str]], read: Reader,
                   limits: Limits = DEFAULT_LIMITS) -> Dict[Tuple[str, str], Lookup]:
    """Every covered module's lookup: signed by the database key, naming the carried tree
    head, proven in it by the carried tiles, and saying the hashes in the signed manifest.
    `modules`: (path, version, zip h1, go.mod h1)."""
    try:
        verifier = parse_verifier(db.key)
    except NoteError as exc:
        raise TrustError(f"verifying checksum database {db.name}: key: {exc}",
                         tampering=True) from None
    tree = db.tree
    found: Dict[Tuple[str, str], Lookup] = {}
    records: Dict[int, Tuple[str, str]] = {}
    for m, v, zip_hash, mod_hash in modules:
        if not db.covers(m):
            continue
        subject = f"{m}@{v}"
        data = read(lookup_path(m, v))
        if data is None:
            raise untrusted(subject, f"the bundle carries no lookup of it from {db.name}")
        lookup = parse_lookup(m, v, data, verifier, limits)
        if lookup.tree != tree:
            raise untrusted(subject, f"its lookup names tree#{lookup.tree.n}, not the carried "
                                     f"head tree#{tree.n} the manifest signs")
        check_lines(db.name, m, v, lookup.lines, zip_hash, mod_hash)
        found[(m, v)] = lookup
        records[lookup.record_id] = (subject, lookup.text)

    def tile(path: str) -> bytes:
        data = read(path)
        if data is None:
            raise TlogError(f"the bundle carries no {path}")
        return data

    if records:
        prove(tree, records, tile)
    return found
