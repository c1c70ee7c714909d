"""Lay fetched modules out as bundle members: a `goproxy/` tree that is itself a GOPROXY."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

from bundler.modules import FetchedModule
from bundler.part import Part
from manifests.errors import TrustError
from manifests.files import sha256_stream
from manifests.model import Member, Module
from manifests.modpath import escape_path, escape_version, semver_key, sort_versions

PREFIX = "goproxy/"
FILE_MODE = 0o644
DIR_MODE = 0o755


@dataclass(frozen=True)
class _File:
    name: str  # relative to PREFIX
    data: Optional[bytes]  # in memory (list, .info, .mod) ...
    path: Optional[Path]  # ... or a file in the module cache (.zip), streamed byte-for-byte
    size: int
    sha256: str

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # type: ignore[arg-type]


def _hashed_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        return sha256_stream(f)


def _from_bytes(name: str, data: bytes) -> _File:
    return _File(name, data, None, len(data), hashlib.sha256(data).hexdigest())


def plan_modules(fetched: list[FetchedModule]) -> tuple[Part, tuple[Module, ...]]:
    """The `goproxy/` members for `fetched` and their manifest records, in a fixed order.

    Each module path gets `@v/list` (every version carried with its .mod, semver order) and,
    per version, the `.info`, `.mod` and `.zip` that were fetched. A module version listed
    twice (two projects sharing it) is carried once; two different copies of one is a
    programmer error upstream of here, refused rather than guessed at.
    """
    unique: dict[tuple[str, str], FetchedModule] = {}
    for fm in fetched:
        other = unique.setdefault((fm.path, fm.version), fm)
        if other != fm:
            raise TrustError(f"packing {fm.path}@{fm.version}: two different copies were "
                             "fetched; build again")
    ordered = sorted(unique.values(), key=lambda fm: (fm.path, semver_key(fm.version)))
    files: list[_File] = []
    records: list[Module] = []
    by_path: dict[str, list[FetchedModule]] = {}
    for fm in ordered:
        by_path.setdefault(fm.path, []).append(fm)
    for path, versions in by_path.items():
        vdir = f"{escape_path(path)}/@v"
        # As Go's cache lists versions: those with a .mod. A version carried only by its
        # .info (the pruned edge of a graph) cannot be loaded, so a query must not pick it.
        listed = sort_versions(fm.version for fm in versions if fm.mod is not None)
        if listed:
            files.append(_from_bytes(f"{vdir}/list", "".join(v + "\n" for v in listed).encode()))
        for fm in versions:
            base = f"{vdir}/{escape_version(fm.version)}"
            if fm.info is not None:
                files.append(_from_bytes(base + ".info", fm.info))
            if fm.mod is not None:
                files.append(_from_bytes(base + ".mod", fm.mod))
            if fm.zip_path is not None:
                sha, size = _hashed_file(fm.zip_path)
                files.append(_File(base + ".zip", None, fm.zip_path, size, sha))
            records.append(Module(fm.path, fm.version, fm.zip_hash or "", fm.mod_hash or ""))
    dirs: set[str] = set()
    for f in files:
        parts = f.name.split("/")[:-1]
        dirs.update(PREFIX + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
    members = [Member(d, "dir", DIR_MODE) for d in sorted(dirs)]
    members += [Member(PREFIX + f.name, "file", FILE_MODE, f.size, f.sha256) for f in files]

    by_member = {PREFIX + f.name: f for f in files}
    return Part(members, lambda m: by_member[m.path].open()), tuple(records)
