"""Lay a fetched toolchain archive out as bundle members under `toolchains/<id>/`."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

from bundler import archives, progress
from bundler.part import Part
from manifests.files import sha256_stream
from manifests.model import Member, Toolchain


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


def plan_toolchain(tc: Toolchain, archive: Path, kind: str,
                   first_of: Dict[Tuple[str, int], str]) -> Part:
    """Hash every entry once; identical files become hard links to their first copy."""
    what = f"{tc.version} {tc.os}/{tc.arch} archive"
    prefix = tc.root + "/"
    dirs = {tc.root}
    others: List[Member] = []
    total = archive.stat().st_size
    with progress.task(f"hashing {tc.id}", total) as bar:
        for entry, data in archives.open_archive(archive, kind, what):
            path = prefix + entry.name
            dirs.update(p for p in _parents(path) if p.startswith(tc.root))
            if entry.type == "dir":
                dirs.add(path)
                continue
            if entry.type == "symlink":
                others.append(Member(path, "symlink", 0o777, target=entry.target))
                continue
            assert data is not None
            sha, size = sha256_stream(data)
            key = (sha, entry.mode)
            if key in first_of:
                others.append(Member(path, "hardlink", entry.mode, target=first_of[key]))
            else:
                first_of[key] = path
                others.append(Member(path, "file", entry.mode, size, sha))
            bar.advance(entry.size // 3)  # a rough share of the compressed archive

    def reopen() -> Iterator[Tuple[archives.Entry, Optional[BinaryIO]]]:
        for entry, data in archives.open_archive(archive, kind, what):
            if entry.type != "dir":
                yield entry, data

    members = [Member(d, "dir", 0o755) for d in sorted(dirs)] + others
    return Part(members, reopen, prefix)
