"""What a prefix keeps on disk (state, snapshots), read as input: bounded, never through a link,
and every damage named with its file and the way out (exit 2, never a traceback)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, Callable, Optional

from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS

# Opened for reading only, never through a planted link, and never waiting on a FIFO.
READ = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
         | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
# A file the user keeps and go reads through links (their GOENV file): followed, never waited on.
READ_FOLLOWING = READ & ~getattr(os, "O_NOFOLLOW", 0)


class DamagedState(NotReadyError):
    """A file the prefix keeps is missing its shape: cut, planted, not ours. Exit 2."""


def damaged(path: Path, what: str, problem: str, fix: str) -> DamagedState:
    return DamagedState(f"reading {what} {path}: {problem}; {fix}",
                        operation=f"reading {what}", subject=str(path), hint=fix)


def _open(path: Path, what: str, fix: str) -> Optional[int]:
    """A descriptor of the regular file `path` (None when there is none); a link, a
    directory, a FIFO or a file this user may not read is refused with `fix` as the way out."""
    try:
        fd = os.open(path, READ)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise damaged(path, what, "it is a symbolic link, which rescue never follows",
                          fix) from None
        if exc.errno == errno.EACCES:
            raise damaged(path, what, "this user may not read it",
                          f"run as {owner_of(path)}, or pass a --prefix of your own") from None
        raise damaged(path, what, exc.strerror or str(exc), fix) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise damaged(path, what, "it is not a regular file", fix)
    return fd


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of an open file: one more than `limit` shows it is larger."""
    chunks, left = [], limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read(fd: int, path: Path, what: str, fix: str, limit: int) -> bytes:
    try:
        return read_at_most(fd, limit)
    except OSError as exc:
        raise damaged(path, what, exc.strerror or str(exc), fix) from None


def read_bytes(path: Path, what: str, fix: str,
               limit: int = DEFAULT_LIMITS.state_file_bytes) -> Optional[bytes]:
    """The whole file, or None when there is none; larger than `limit` is damage."""
    fd = _open(path, what, fix)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise damaged(path, what, f"it holds {size} bytes, more than the {limit} a real "
                          "one can", fix)
        data = _read(fd, path, what, fix, limit)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise damaged(path, what, f"it grew past {limit} bytes while read", fix)
    return data


def read_tail(path: Path, what: str, fix: str, limit: int) -> Optional[bytes]:
    """The last `limit` bytes at most, starting at a line (a log that only grows)."""
    fd = _open(path, what, fix)
    if fd is None:
        return None
    try:
        start = max(0, os.fstat(fd).st_size - limit)
        os.lseek(fd, start, os.SEEK_SET)
        data = _read(fd, path, what, fix, limit)[:limit]
    finally:
        os.close(fd)
    return data.split(b"\n", 1)[-1] if start else data


def read_text(path: Path, what: str, fix: str,
              limit: int = DEFAULT_LIMITS.state_file_bytes) -> Optional[str]:
    data = read_bytes(path, what, fix, limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(path, what, f"not UTF-8 text (byte {exc.start})", fix) from None


def parse_json(text: str) -> Any:
    """json.loads that reports every way a document can be wrong as ValueError (a deep `[[[`
    would otherwise end as RecursionError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(path: Path, what: str, fix: str, check: Callable[[Any], Optional[str]],
              limit: int = DEFAULT_LIMITS.state_file_bytes) -> Any:
    """The document, or None when there is no file. `check(doc)` returns what is wrong with
    its shape (None when nothing is)."""
    text = read_text(path, what, fix, limit)
    if text is None:
        return None
    if not text.strip():
        raise damaged(path, what, "it is empty (cut short?)", fix)
    try:
        doc = parse_json(text)
    except ValueError as exc:
        raise damaged(path, what, f"not JSON ({exc})", fix) from None
    problem = check(doc)
    if problem:
        raise damaged(path, what, problem, fix)
    return doc


def no_link(path: Path, what: str) -> None:
    """Refuse a directory of the prefix that is a symbolic link: what rescue writes through it
    would land outside the prefix."""
    if os.path.islink(path):
        raise damaged(path, what, f"it is a symbolic link (to {os.readlink(path)!r}); rescue "
                      "keeps its files only inside the prefix",
                      f"move the link away (`mv {path} {path}.link`) and run the command again")


def owner_of(path: Path) -> str:
    """`its owner NAME (uid N)` of `path` (or of the nearest parent this user can stat)."""
    from installer import machine

    found = machine.owner(path)
    if found is None:
        return "its owner"
    name = machine.user_name(found[1])
    return f"its owner {name}" + ("" if name.startswith("uid ") else f" (uid {found[1]})")
