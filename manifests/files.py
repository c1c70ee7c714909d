"""File helpers both sides share: whole-or-nothing writes and streaming sha256."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Union

CHUNK = 1 << 20


def sha256_file(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: Union[bytes, str], mode: int = 0o644) -> None:
    """Readers see the old file or the new one, never half of one: temp name, fsync, rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)  # left by a killed process that had our pid
    try:
        # Never through a link someone else put at the temp name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
