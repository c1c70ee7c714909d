"""Checksum database lookups, verified without I/O: a record, its signed tree head, and the
inclusion proof read from tiles that a caller's fetcher supplies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

from manifests.errors import TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import escape_path, escape_version
from manifests.sumdb_note import NoteError, Verifier, open_note
from manifests.tlog import (
    TlogError,
    Tree,
    parse_record,
    parse_tree,
    record_hash,
    stored_hash_index,
    tree_hash,
)
from manifests.tlog_tiles import TileFetcher, read_hashes

_HINT = ("the checksum database's data was altered, is corrupt, or GOSUMDB names the wrong key: "
         "check the key and fetch the data again from the database")


@dataclass(frozen=True)
class Lookup:
    """A lookup answer whose record is proven to be in its signed tree."""

    module: str
    version: str
    record_id: int
    text: str  # the record: the go.sum lines for the module and its go.mod
    tree: Tree
    note: bytes  # the signed tree note the answer carried

    @property
    def lines(self) -> List[str]:
        """The go.sum lines for this module version, as Go's sumdb.Client.Lookup returns them."""
        return gosum_lines(self.text, self.module, self.version)


def gosum_lines(text: str, module: str, version: str) -> List[str]:
    return [line for line in text.split("\n")
            if line.startswith((f"{module} {version} ", f"{module} {version}/go.mod "))]


def lookup_path(module: str, version: str) -> str:
    """Where a lookup lives under a database's base URL (and under goproxy/sumdb/<name>/)."""
    return f"lookup/{escape_path(module)}@{escape_version(version)}"


def untrusted(subject: str, detail: str) -> TrustError:
    return TrustError(f"verifying {subject}: {detail}; {_HINT}", subject=subject, got=detail,
                      hint=_HINT, tampering=True)


def compose(record_id: int, text: str, note: bytes) -> bytes:
    """A lookup answer: `<id>\\n<go.sum lines>\\n` and a signed tree note (any tree holding it)."""
    return f"{record_id}\n{text}\n".encode() + note


def open_tree(note: bytes, verifier: Verifier, limits: Limits = DEFAULT_LIMITS) -> Tree:
    """The tree head of a note signed by `verifier`; NoteError or TlogError otherwise."""
    return parse_tree(open_note(note, verifier, limits))


def parse_lookup(module: str, version: str, data: bytes, verifier: Verifier,
                 limits: Limits = DEFAULT_LIMITS) -> Lookup:
    """A lookup answer with its note's signature checked (its proof is not checked yet)."""
    subject = f"{module}@{version}"
    if len(data) > limits.sumdb_lookup_bytes:
        raise untrusted(subject, f"lookup answer is {len(data)} bytes "
                                 f"(limit {limits.sumdb_lookup_bytes})")
    try:
        record_id, text, note = parse_record(data)
    except TlogError as exc:
        raise untrusted(subject, str(exc)) from None
    try:
        tree = open_tree(note, verifier, limits)
    except (NoteError, TlogError) as exc:
        raise untrusted(subject, f"reading tree note of {verifier.name}: {exc}") from None
    found = Lookup(module, version, record_id, text, tree, note)
    kinds = {" ".join(line.split(" ")[:2]) for line in found.lines}
    if kinds != {f"{module} {version}", f"{module} {version}/go.mod"}:
        raise untrusted(subject, f"lookup record #{record_id} holds no go.sum lines for "
                                 f"{module} {version} and its go.mod")
    if record_id >= tree.n:
        raise untrusted(subject, f"cannot validate record {record_id} in tree of size {tree.n}")
    return found


def prove(tree: Tree, records: Dict[int, Tuple[str, str]], fetch: TileFetcher) -> None:
    """Prove that `tree` holds each record {id: (subject, text)}, reading tiles through
    `fetch`; the first subject whose proof fails is named."""
    ids = sorted(records)
    first = records[ids[0]][0] if ids else ""
    try:
        hashes = read_hashes(tree, [stored_hash_index(0, i) for i in ids], fetch)
    except TlogError as exc:
        raise untrusted(first, f"proving records in tree#{tree.n}: {exc}") from None
    for record_id, got in zip(ids, hashes):
        subject, text = records[record_id]
        if got != record_hash(text.encode()):
            raise untrusted(subject, f"cannot authenticate record #{record_id} in tree#{tree.n}")


def check_lookup(module: str, version: str, data: bytes, verifier: Verifier,
                 fetch: TileFetcher, limits: Limits = DEFAULT_LIMITS) -> Lookup:
    """The lookup answer for module@version, proven to be in the tree its note signs."""
    found = parse_lookup(module, version, data, verifier, limits)
    prove(found.tree, {found.record_id: (f"{module}@{version}", found.text)}, fetch)
    return found


def newest_head(name: str, lookups: Iterable[Lookup]) -> Lookup:
    """The lookup that carries the largest signed tree head. Two heads of one size that differ
    are two histories of one database: server misbehavior."""
    by_size: Dict[int, Lookup] = {}
    for found in lookups:
        seen = by_size.setdefault(found.tree.n, found)
        if seen.tree != found.tree:
            raise untrusted(f"checksum database {name}",
                            f"two signed tree heads of size {found.tree.n} differ (the lookups "
                            f"of {seen.module}@{seen.version} and {found.module}@"
                            f"{found.version}): server misbehavior")
    return by_size[max(by_size)]


def check_tree_prefix(name: str, older: Tree, newer: Tree, tiles: TileFetcher) -> None:
    """Go's checkTrees: the older signed tree must be where the newer one started, as the
    newer tree's tiles tell. What the fetcher raises for a tile it lacks passes through."""
    subject = f"checksum database {name}"
    try:
        got = tree_hash(older.n, lambda xs: read_hashes(newer, xs, tiles))
    except TlogError as exc:
        raise untrusted(subject, f"checking tree#{older.n} against tree#{newer.n}: {exc}") \
            from None
    if got != older.hash:
        raise untrusted(subject, f"tree#{older.n} is not a prefix of tree#{newer.n}: server "
                                 "misbehavior (two signed histories)")
