"""Lay fetched toolchain archives out as bundle members under `toolchains/<id>/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

from bundler import archives, progress
from bundler.part import Part
from bundler.spool import Spool
from manifests.model import Member, Toolchain


@dataclass
class Tree:
    """One toolchain, read once: its directories and its other entries, each file's bytes in
    the spool under its sha256."""

    root: str  # toolchains/<id>/go
    dirs: Set[str] = field(default_factory=set)
    entries: List[Tuple[archives.Entry, str]] = field(default_factory=list)  # (entry, sha256)


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


def read_toolchain(tc: Toolchain, archive: Path, kind: str, spool: Spool) -> Tree:
    """Read the archive once: hash every file while spooling its bytes."""
    what = f"{tc.version} {tc.os}/{tc.arch} archive"
    tree = Tree(tc.root, {tc.root})
    with progress.task(f"hashing {tc.id}", archive.stat().st_size) as bar:
        for entry, data in archives.open_archive(archive, kind, what):
            path = f"{tc.root}/{entry.name}"
            tree.dirs.update(p for p in _parents(path) if p.startswith(tc.root))
            if entry.type == "dir":
                tree.dirs.add(path)
                continue
            sha = ""
            if entry.type == "file":
                assert data is not None
                sha, size = spool.add(data)
                entry = archives.Entry(entry.name, "file", entry.mode, size)
            tree.entries.append((entry, sha))
            bar.advance(entry.size // 3)  # a rough share of the compressed archive
    return tree


def toolchains_part(trees: List[Tree], spool: Spool) -> Part:
    """Every toolchain's directories first, then the other entries by their GOROOT path and
    then by toolchain: `bin/go` of two neighbouring releases sit side by side in the zstd
    stream, where the second costs little. Identical (sha256, mode) become hard links to the
    first copy in this order, as the installer writes a link's target before the link."""
    dirs: Set[str] = set().union(*(t.dirs for t in trees))
    members = [Member(d, "dir", 0o755) for d in sorted(dirs)]
    ordered = sorted(((entry.name, i, entry, sha) for i, t in enumerate(trees)
                      for entry, sha in t.entries), key=lambda x: (x[0], x[1]))
    first_of: Dict[Tuple[str, int], str] = {}
    for name, i, entry, sha in ordered:
        path = f"{trees[i].root}/{name}"
        if entry.type == "symlink":
            members.append(Member(path, "symlink", 0o777, target=entry.target))
            continue
        key = (sha, entry.mode)
        if key in first_of:
            members.append(Member(path, "hardlink", entry.mode, target=first_of[key]))
        else:
            first_of[key] = path
            members.append(Member(path, "file", entry.mode, entry.size, sha))
    return Part(members, lambda m: spool.open(m.sha256))
