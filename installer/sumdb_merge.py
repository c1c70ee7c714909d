"""Check a staged bundle's checksum database data against its signed manifest, and merge it
into P/goproxy/sumdb/<name>/ so that every lookup answers at the newest tree head present."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from installer import statefile, sumdb_prefix
from installer.goproxy_merge import PROXY_FILE_MODE, MergeJournal, _make_dirs
from installer.prefix import Layout
from manifests.errors import NotReadyError, TrustError
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS
from manifests.model import Manifest
from manifests.modpath import ModulePathError, unescape_path, unescape_version
from manifests.sumdb_bundle import Sumdb, verify_carried
from manifests.sumdb_lookup import (
    Lookup,
    check_tree_prefix,
    compose,
    newest_head,
    parse_lookup,
    untrusted,
)
from manifests.sumdb_note import parse_verifier
from manifests.tlog import TlogError, Tree, record_hash, stored_hash_index
from manifests.tlog_tiles import read_hashes


class _Missing(LookupError):
    """A tile no bundle carried: the proof cannot be made here (go would fail the same way)."""


def _read(path: Path) -> Optional[bytes]:
    """A small carried file, never through a link; None when absent."""
    try:
        fd = os.open(path, statefile.READ)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(DEFAULT_LIMITS.sumdb_lookup_bytes + 1)


def verify_staged(m: Manifest, staged: Path) -> None:
    """Before anything is written: every lookup the signed manifest needs is in the bundle,
    signed by the manifest's database key, proven in the carried head by the carried tiles,
    and says the module hashes the manifest signs (TrustError, exit 3, otherwise)."""
    db = m.sumdb
    assert db is not None
    verify_carried(db, m.sumdb_records(),
                   lambda rel: _read(staged / rel))


def check_prefix(layout: Layout, db: Sumdb) -> None:
    """A prefix verifies against one database: a bundle of another is refused up front."""
    have = sumdb_prefix.read(layout)
    if have is None or (have.name, have.key) == (db.name, db.key):
        return
    if have.name == db.name:
        raise TrustError(f"installing checksum database {db.name}: the bundle names key "
                         f"{db.key}, the prefix trusts {have.key}; two keys for one database "
                         "mean one of them is not genuine: find out which before installing",
                         tampering=True)
    raise NotReadyError(f"installing checksum database {db.name}: this prefix verifies modules "
                        f"with {have.name} (GOSUMDB takes one database); install this bundle "
                        "into another prefix, or rebuild it with modules.sumdb = "
                        f"\"{have.key}\"")


@dataclass
class _Plan:
    writes: Dict[Path, bytes] = field(default_factory=dict)
    stale: List[str] = field(default_factory=list)  # module@version not provable at newest


def merge(staged: Path, layout: Layout, db: Sumdb, journal: MergeJournal) -> List[str]:
    """Merge verified data into P/goproxy/sumdb/<name>/; return notes for the user.

    Tiles are named by position and width: a full tile never changes, so an installed one that
    differs is two signed histories (refused, nothing changed). The go command proves every
    lookup in the newest tree it has seen (and saves that head in GOPATH/pkg/sumdb), so each
    lookup, installed or new, is re-composed with the newest head present when the carried
    tiles prove it there; one they cannot prove keeps its own head and is named in a note.
    """
    dest = layout.goproxy / "sumdb" / db.name
    verifier = parse_verifier(db.key)
    lookups = _installed_lookups(dest, verifier)
    for rel, found in _staged_lookups(staged, verifier).items():
        had = lookups.get(rel)
        if had is not None and had.text != found.text:
            raise untrusted(f"{found.module}@{found.version}",
                            f"the bundle's record from {db.name} differs from the one an "
                            "earlier bundle installed: two signed histories")
        if had is None or had.tree.n < found.tree.n:
            lookups[rel] = found
    tiles = _union_tiles(staged, dest, db)
    plan = _Plan()
    for rel in tiles.new:
        plan.writes[dest / rel] = tiles.staged(rel)
    if not (dest / "supported").exists():
        plan.writes[dest / "supported"] = b""
    if not lookups:
        _apply(plan, layout, db, journal)
        return []
    newest = newest_head(db.name, lookups.values())
    heads = {found.tree for found in lookups.values()}
    for older in sorted(heads - {newest.tree}, key=lambda t: t.n):
        _check_prefix_of(db, older, newest.tree, tiles)
    provable = set(_provable(newest.tree, lookups, tiles))
    for rel, found in sorted(lookups.items()):
        if rel in provable:
            data = compose(found.record_id, found.text, newest.note)
        else:
            data = compose(found.record_id, found.text, found.note)  # as it was carried
            plan.stale.append(f"{found.module}@{found.version} (tree#{found.tree.n})")
        if _read(dest / rel) != data:
            plan.writes[dest / rel] = data
    _apply(plan, layout, db, journal)
    if not plan.stale:
        return []
    return [f"checksum database {db.name}: {len(plan.stale)} lookup(s) cannot be proven in the "
            f"newest tree#{newest.tree.n} this prefix carries (its tiles are not in any "
            f"installed bundle): {', '.join(plan.stale[:5])}"
            f"{' ...' if len(plan.stale) > 5 else ''}; go refuses them once it has seen "
            f"tree#{newest.tree.n}. Build a new bundle of those modules and install it."]


def _module_of(rel: str) -> Optional[Tuple[str, str]]:
    esc_m, _, esc_v = rel[len("lookup/"):].rpartition("@")
    try:
        return unescape_path(esc_m), unescape_version(esc_v)
    except ModulePathError:
        return None


def _lookups_in(root: Path, verifier) -> Dict[str, Lookup]:  # type: ignore[no-untyped-def]
    out: Dict[str, Lookup] = {}
    base = root / "lookup"
    for dirpath, _, filenames in os.walk(base):
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            mv = _module_of(rel)
            data = _read(root / rel)
            if mv is not None and data is not None:
                out[rel] = parse_lookup(mv[0], mv[1], data, verifier)
    return out


def _staged_lookups(staged: Path, verifier) -> Dict[str, Lookup]:  # type: ignore[no-untyped-def]
    return _lookups_in(staged, verifier)


def _installed_lookups(dest: Path, verifier) -> Dict[str, Lookup]:  # type: ignore[no-untyped-def]
    try:
        return _lookups_in(dest, verifier)
    except TrustError as exc:
        raise NotReadyError(f"merging checksum database data into {dest}: an installed lookup "
                            f"is damaged ({exc.message}); run `rescue repair`, or remove "
                            f"{dest} and install the bundles again") from None


class _Tiles:
    """Every tile the staged bundle and the prefix carry, read once each."""

    def __init__(self, staged: Path, dest: Path) -> None:
        self.staged_dir, self.dest = staged, dest
        self.cache: Dict[str, bytes] = {}
        self.new: List[str] = []

    def staged(self, rel: str) -> bytes:
        return _read(self.staged_dir / rel) or b""

    def __call__(self, rel: str) -> bytes:
        if rel not in self.cache:
            data = _read(self.staged_dir / rel)
            if data is None:
                data = _read(self.dest / rel)
            if data is None:
                raise _Missing(f"no installed bundle carries {rel}")
            self.cache[rel] = data
        return self.cache[rel]


def _union_tiles(staged: Path, dest: Path, db: Sumdb) -> _Tiles:
    tiles = _Tiles(staged, dest)
    for dirpath, _, filenames in os.walk(staged / "tile"):
        for name in filenames:
            rel = Path(dirpath, name).relative_to(staged).as_posix()
            have = _read(dest / rel)
            if have is None:
                tiles.new.append(rel)
            elif have != tiles.staged(rel):
                raise TrustError(
                    f"merging checksum database {db.name}: {rel} differs from the tile an "
                    "earlier bundle installed; a tile never changes once written, so the two "
                    "bundles carry two signed histories of one database (server misbehavior, "
                    "or a forged key); nothing was changed", tampering=True)
    return tiles


def _check_prefix_of(db: Sumdb, older: Tree, newer: Tree, tiles: _Tiles) -> None:
    """Go's checkTrees, where the carried tiles allow it."""
    with contextlib.suppress(_Missing):  # not provable from what is carried: go checks it
        check_tree_prefix(db.name, older, newer, tiles)  # when it meets both


def _provable(tree: Tree, lookups: Dict[str, Lookup], tiles: _Tiles) -> List[str]:
    """The lookups whose records the carried tiles prove in `tree` (all at once when they
    can, else one by one); a tile that contradicts the tree is refused."""
    def proven(rels: List[str]) -> bool:
        xs = [stored_hash_index(0, lookups[r].record_id) for r in rels]
        try:
            got = read_hashes(tree, xs, tiles)
        except _Missing:
            return False
        except TlogError as exc:
            found = lookups[rels[0]]
            raise untrusted(f"{found.module}@{found.version}",
                            f"proving records in tree#{tree.n}: {exc}") from None
        for rel, h in zip(rels, got):
            found = lookups[rel]
            if h != record_hash(found.text.encode()):
                raise untrusted(f"{found.module}@{found.version}",
                                f"cannot authenticate record #{found.record_id} in "
                                f"tree#{tree.n}")
        return True

    rels = sorted(lookups)
    if rels and proven(rels):
        return rels
    return [r for r in rels if proven([r])]


def _apply(plan: _Plan, layout: Layout, db: Sumdb, journal: MergeJournal) -> None:
    try:
        for target, data in sorted(plan.writes.items()):
            _make_dirs(target.parent, journal)
            old = _read(target)
            if old is None:
                journal.files.append(target)
            else:
                journal.lists.append((target, old, PROXY_FILE_MODE))
            write_atomic(target, data, PROXY_FILE_MODE, durable=False)
        have = sumdb_prefix.read(layout)
        record = sumdb_prefix.PrefixSumdb(
            db.name, db.key, sumdb_prefix.merged_patterns(have.nosumdb if have else "",
                                                          db.nosumdb))
        if have != record:
            target = sumdb_prefix.path(layout)
            layout.state.mkdir(exist_ok=True)
            old = _read(target)
            journal.lists.append((target, old, 0o644))
            write_atomic(target, json.dumps(record.to_dict(), indent=1) + "\n")
    except BaseException:
        journal.rollback()
        raise
