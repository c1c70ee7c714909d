"""A scratch file holding each unique upstream file once: packing never reads an archive twice."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Dict, Optional, Tuple

CHUNK = 1 << 20


class Spool:
    """File contents appended to an unlinked temp file, each distinct sha256 kept once; `open`
    reads one back. The bytes live on disk (the page cache), not in this process's memory."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._file: Optional[BinaryIO] = None  # made by the first add: a build that stops
        self._fd = -1  # before any download leaves no trace
        self._end = 0
        self._where: Dict[str, Tuple[int, int]] = {}

    def add(self, data: BinaryIO) -> Tuple[str, int]:
        """Hash `data` while appending it; (sha256, size). A copy already spooled is kept once:
        the next add writes over its bytes."""
        if self._file is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            # Unlinked from the start: nothing is left behind, however the build ends.
            self._file = tempfile.TemporaryFile(dir=self._directory)
            self._fd = self._file.fileno()
        digest = hashlib.sha256()
        start, size = self._end, 0
        while True:
            chunk = data.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            os.pwrite(self._fd, chunk, start + size)
            size += len(chunk)
        sha = digest.hexdigest()
        if sha not in self._where:
            self._where[sha] = (start, size)
            self._end = start + size
        return sha, size

    def open(self, sha256: str) -> BinaryIO:
        """The spooled bytes whose sha256 is `sha256`."""
        start, size = self._where[sha256]
        return _Slice(self._fd, start, size)  # type: ignore[return-value]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Slice:
    """One spooled file, read with pread: many slices share one descriptor and no offset."""

    def __init__(self, fd: int, start: int, size: int) -> None:
        self._fd = fd
        self._pos = start
        self._left = size

    def read(self, n: Optional[int] = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = os.pread(self._fd, n, self._pos)
        self._pos += len(data)
        self._left -= len(data)
        return data

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
