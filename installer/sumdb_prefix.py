"""Which checksum database a prefix carries data of (P/state/sumdb.json), and the GOSUMDB and
GONOSUMDB values that make go verify against it from P/goproxy/sumdb/<name>/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from installer import statefile
from installer.prefix import Layout
from manifests.sumdb_note import NoteError, parse_verifier

GO_DEFAULT = "sum.golang.org"  # the one database go knows the key of
_FIX = ("reinstall the newest bundle that carries checksum database data "
        "(rescue install BUNDLE), or remove the file to wire GOSUMDB=off")


@dataclass(frozen=True)
class PrefixSumdb:
    name: str
    key: str
    nosumdb: str = ""  # GONOSUMDB: the private modules' patterns of every bundle

    @property
    def gosumdb(self) -> str:
        """GOSUMDB: the name for sum.golang.org; any other database needs its key."""
        return self.name if self.name == GO_DEFAULT else self.key

    def to_dict(self) -> Dict[str, str]:
        return {"name": self.name, "key": self.key, "nosumdb": self.nosumdb}


def path(layout: Layout):  # type: ignore[no-untyped-def]
    return layout.state / "sumdb.json"


def _shape(doc: Any) -> Optional[str]:
    if not isinstance(doc, dict) or set(doc) != {"name", "key", "nosumdb"} or not all(
            isinstance(v, str) for v in doc.values()):
        return "not a checksum database record ({name, key, nosumdb})"
    try:
        if parse_verifier(doc["key"]).name != doc["name"]:
            return f"key {doc['key']!r} is not {doc['name']}'s"
    except NoteError as exc:
        return f"key {doc['key']!r}: {exc}"
    if not doc["nosumdb"].isprintable():
        return "nosumdb is not printable"
    return None


def read(layout: Layout) -> Optional[PrefixSumdb]:
    """The prefix's database, or None when no installed bundle carried checksum data."""
    doc = statefile.read_json(path(layout), "checksum database record", _FIX, _shape)
    return None if doc is None else PrefixSumdb(doc["name"], doc["key"], doc["nosumdb"])


def merged_patterns(old: str, new: str) -> str:
    seen = [p.strip() for p in (old + "," + new).split(",") if p.strip()]
    return ",".join(dict.fromkeys(seen))
