"""Read a bundle cut into parts (`rescue split`): the signed index first, every part's size
before a byte is used, each part's sha256 as it streams; a missing or damaged part is named."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, List, Optional

from keys import trust
from keys.allowed_signers import AllowedSigner
from manifests.errors import NotReadyError, TrustError
from manifests.volumes import INDEX_SUFFIX, SIGNATURE_SUFFIX, Index, bundle_of_part, parse_index

_INDEX_CAP = 1 << 20


def locate(path: Path) -> Optional[Path]:
    """The index of the volume set `path` belongs to (a part, or the directory holding the
    parts), or None for a plain bundle file."""
    if path.is_dir():
        found = sorted(path.glob("*" + INDEX_SUFFIX))
        if len(found) != 1:
            raise NotReadyError(
                f"opening bundle {path}: a directory must hold exactly one volume index "
                f"(*{INDEX_SUFFIX}), it holds {len(found)}; give the bundle file or its "
                "first part instead", operation="opening bundle", subject=str(path))
        return found[0]
    try:
        base, _ = bundle_of_part(path.name)
    except ValueError:
        return None
    return path.with_name(base + INDEX_SUFFIX)


def _read(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_INDEX_CAP + 1)
    except FileNotFoundError:
        raise NotReadyError(f"opening bundle parts: {what} {path} is missing; copy it from the "
                            "build host with the parts", operation="opening bundle",
                            subject=str(path)) from None
    except OSError as exc:
        raise NotReadyError(f"opening bundle parts: {what} {path}: {exc.strerror}",
                            operation="opening bundle", subject=str(path)) from None
    if len(data) > _INDEX_CAP:
        raise TrustError(f"opening bundle parts: {what} {path} is too large", tampering=True)
    return data


class PartsReader:
    """The parts read as one file, each part hashed as it streams and checked at its end."""

    def __init__(self, directory: Path, index: Index) -> None:
        self.directory, self.index = directory, index
        self.current = 0  # index into parts of the one being read
        self._file: Optional[BinaryIO] = None
        self._digest = hashlib.sha256()
        self._left = 0

    def _label(self, n: int) -> str:
        return (f"part {n + 1} of {len(self.index.parts)} ({self.index.parts[n].name}) of "
                f"bundle {self.index.bundle}")

    def _open(self, n: int) -> None:
        part = self.index.parts[n]
        self._file = open(self.directory / part.name, "rb")
        self._digest = hashlib.sha256()
        self._left = part.size
        self.current = n

    def _finish(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        part = self.index.parts[self.current]
        got = self._digest.hexdigest()
        if got != part.sha256:
            raise TrustError(f"reading {self._label(self.current)}: it is damaged (sha256 {got}, "
                             f"the signed index says {part.sha256}); copy that part again from "
                             "the build host", operation="reading bundle part",
                             subject=part.name, expected=part.sha256, got=got, tampering=True)

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        want = n if n is not None and n >= 0 else 1 << 62
        while len(out) < want and self._file is not None:
            chunk = self._file.read(min(want - len(out), self._left, 1 << 20)) \
                if self._left else b""
            if chunk:
                self._digest.update(chunk)
                self._left -= len(chunk)
                out += chunk
                if self._left:
                    continue
            elif self._left:  # shorter than when its size was checked: changed under us
                raise TrustError(f"reading {self._label(self.current)}: it ended early",
                                 tampering=True)
            self._finish()  # the part is whole: its sha256 now, before the next one is read
            if self.current + 1 < len(self.index.parts):
                self._open(self.current + 1)
        return bytes(out)

    def damaged_part(self) -> Optional[TrustError]:
        """After a read error: hash the rest of the part being read; its error if damaged."""
        if self._file is None:
            return None
        while True:
            chunk = self._file.read(1 << 20)
            if not chunk:
                break
            self._digest.update(chunk)
        try:
            self._finish()
        except TrustError as exc:
            return exc
        return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def open_parts(index_path: Path, signers: List[AllowedSigner], now: datetime,
               trust_source: str) -> PartsReader:
    """The index's signature and every part's presence and size, before any part is read."""
    data = _read(index_path, "the volume index")
    sig_path = index_path.with_name(index_path.name[:-len(INDEX_SUFFIX)] + SIGNATURE_SUFFIX)
    sig = _read(sig_path, "the volume index signature")
    try:
        trust.verify_manifest_signature(sig, data, signers, now, trust_source=trust_source)
    except TrustError as exc:
        raise TrustError(f"checking the volume index {index_path}: {exc.message}",
                         tampering=True) from None
    index = parse_index(data)
    directory = index_path.parent
    problems: List[str] = []
    for n, part in enumerate(index.parts, start=1):
        path = directory / part.name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotReadyError(
                f"opening bundle {index.bundle}: part {n} of {len(index.parts)} ({part.name}) "
                f"is missing from {directory}; copy it from the build host",
                operation="opening bundle", subject=part.name) from None
        if size != part.size:
            problems.append(f"part {n} of {len(index.parts)} ({part.name}) is {size} bytes, "
                            f"the signed index says {part.size}")
    if problems:
        raise TrustError(f"opening bundle {index.bundle}: " + "; ".join(problems) + ": cut "
                         "short or damaged; copy it again from the build host",
                         operation="opening bundle", subject=index.bundle, tampering=True)
    reader = PartsReader(directory, index)
    reader._open(0)
    return reader
