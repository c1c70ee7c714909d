"""File helpers both sides share: whole-or-nothing writes and streaming sha256."""

from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Tuple, Union

CHUNK = 1 << 20
# A file made here is new: never one already there, never through a link planted in its place.
# O_BINARY: Windows opens a descriptor in text mode (\n written as \r\n) without it.
NEW_FILE = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            | getattr(os, "O_BINARY", 0))


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd`: os.write may take less than it is given."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def sha256_stream(f: BinaryIO) -> Tuple[str, int]:
    """The sha256 and size of everything `f` still holds, read in chunks."""
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: f.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Union[str, os.PathLike]) -> str:
    with open(path, "rb") as f:
        return sha256_stream(f)[0]


@contextmanager
def atomic_writer(path: Path, mode: int = 0o644, durable: bool = True) -> Iterator[BinaryIO]:
    """Write `path` whole or not at all: into a temp name beside it (never through a link),
    fsync, then rename over it. On any error the temp file goes and `path` is unchanged.

    `durable=False` skips the fsync, for many files that one file-system sync covers later
    (P/goproxy lists) or that can be rebuilt (the module cache)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)  # left by a killed process that had our pid
    try:
        fd = os.open(tmp, NEW_FILE, 0o600)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def write_atomic(path: Path, data: Union[bytes, str], mode: int = 0o644,
                 durable: bool = True) -> None:
    """Readers see the old file or the new one, never half of one."""
    with atomic_writer(path, mode, durable) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
