"""A bundle cut into parts for FAT32 media: `cat` of the parts is the bundle; a signed index
names each part's size and sha256 and the whole bundle's. Parsing is strict and I/O-free."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import List, Tuple

from manifests.errors import NotReadyError, TrustError

INDEX_SUFFIX = ".parts.json"
SIGNATURE_SUFFIX = ".parts.sig"
_PART_RE = re.compile(r"\A(?P<base>.+)\.part(?P<n>\d{3})\Z")
_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
MAX_PARTS = 999
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True)
class Part:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Index:
    bundle: str  # the whole bundle's file name
    size: int
    sha256: str
    parts: Tuple[Part, ...]
    format: int = 1
    kind: str = "rescue-volumes"  # never a manifest: its signature cannot pass for one

    def to_json(self) -> bytes:
        doc = asdict(self)
        return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                + "\n").encode()


def part_name(bundle: str, n: int) -> str:
    return f"{bundle}.part{n:03d}"


def bundle_of_part(name: str) -> Tuple[str, int]:
    """`x.tar.zst.part002` -> (`x.tar.zst`, 2); ValueError for any other name."""
    found = _PART_RE.match(name)
    if not found:
        raise ValueError(name)
    return found.group("base"), int(found.group("n"))


def parse_size(text: str) -> int:
    """`3900M`, `4G`, `512K` or a byte count; at least 1 KiB."""
    found = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text.upper())
    size = int(found.group(1)) * _UNITS[found.group(2)] if found else 0
    if size < 1024:
        raise NotReadyError(f"reading --volume-size {text!r}: give a size like 3900M (FAT32 "
                            "takes files below 4G), 700M or 4096K; at least 1K",
                            operation="reading the command line", subject="--volume-size")
    return size


def parse_index(data: bytes) -> Index:
    """The index, only if it is exactly what the splitter writes."""
    try:
        doc = json.loads(data.decode("utf-8"))
        parts = tuple(Part(str(p["name"]), int(p["size"]), str(p["sha256"]))
                      for p in doc["parts"])
        index = Index(str(doc["bundle"]), int(doc["size"]), str(doc["sha256"]), parts,
                      int(doc["format"]), str(doc["kind"]))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise TrustError(f"reading the volume index: not an index rescue writes ({exc})",
                         tampering=True) from None
    problems: List[str] = []
    if index.to_json() != data or index.kind != "rescue-volumes" or index.format != 1:
        problems.append("not in canonical form")
    if not 1 <= len(parts) <= MAX_PARTS:
        problems.append(f"{len(parts)} parts")
    for n, p in enumerate(parts, start=1):
        if p.name != part_name(index.bundle, n) or "/" in p.name or p.size < 1 \
                or not _SHA256_RE.match(p.sha256):
            problems.append(f"part {n} is listed as {p.name!r}")
    if sum(p.size for p in parts) != index.size or not _SHA256_RE.match(index.sha256) \
            or "/" in index.bundle or index.bundle.startswith("."):
        problems.append("sizes or the bundle's name do not add up")
    if problems:
        raise TrustError("reading the volume index: " + "; ".join(problems[:5]),
                         tampering=True)
    return index
