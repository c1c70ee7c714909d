"""What differs between a POSIX host and Windows, in one place: links, locks, walks, owners."""

from __future__ import annotations

import contextlib
import ntpath
import os
import stat
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

WINDOWS = sys.platform == "win32"
_REPARSE_POINT = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT
_ENOENT = (FileNotFoundError, NotADirectoryError)


def is_reparse_point(st: os.stat_result) -> bool:
    """A junction, a symlink or any other reparse point: Windows reports a junction as a plain
    directory to lstat, and rescue walks through none of them."""
    return bool(getattr(st, "st_file_attributes", 0) & _REPARSE_POINT)


def is_link(path: os.PathLike[str] | str) -> bool:
    """A symbolic link, a dangling one too, or (Windows) a junction or other reparse point."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISLNK(st.st_mode) or is_reparse_point(st)


def is_real_dir(path: os.PathLike[str] | str) -> bool:
    """A directory itself: not a link to one, not a junction."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not is_reparse_point(st)


def _strip_verbatim(target: str) -> str:
    # readlink of a junction gives the NT form `\\?\C:\...` (or `\??\C:\...`).
    for head in ("\\\\?\\", "\\??\\"):
        if target.startswith(head):
            return target[len(head):]
    return target


def read_link(path: os.PathLike[str] | str) -> str:
    """Where a link (or junction) points, as the file system holds it (on Windows without the
    `\\\\?\\` prefix readlink adds)."""
    target = os.readlink(path)
    return _strip_verbatim(target) if WINDOWS else target


def relative_target(parent: str, target: str) -> str:
    """A junction's absolute target (`C:\\P\\versions\\go1.21.13.windows-amd64`, as readlink
    gives it on Windows) said as the relative `versions/<id>` a symlink holds, when it lies
    under `parent`, the link's own directory; else the target unchanged. Pure: Windows paths
    compare case-insensitively whatever host runs this."""
    target = _strip_verbatim(target)
    if not ntpath.isabs(target):
        return target
    base = ntpath.normcase(ntpath.normpath(parent)).rstrip("\\") + "\\"
    full = ntpath.normpath(target)
    if ntpath.normcase(full).startswith(base):
        return full[len(base):].replace("\\", "/")
    return target


# Where a file system can hold neither a junction nor a symlink (FAT32/exFAT media, Wine 8),
# `current` is a small file naming `versions/<id>`, replaced atomically; env.ps1 and env.cmd
# read it when sourced.
POINTER_LIMIT = 512
_NO_JUNCTIONS = (1, 50, 4390, 4393)  # invalid function, not supported, not a reparse point


def is_pointer(path: Path) -> bool:
    """`current` as a pointer file (Windows only: POSIX always has symlinks)."""
    if not WINDOWS:
        return False
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read_pointer(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read(POINTER_LIMIT + 1)
    if len(data) > POINTER_LIMIT:
        raise ValueError(f"longer than {POINTER_LIMIT} bytes")
    return data.decode("utf-8").strip()


def link_target(link: Path) -> str:
    """Where a `current` link points, said as a POSIX symlink holds it (`versions/<id>`):
    a symlink's text, a junction's target made relative, a pointer file's line."""
    if not WINDOWS:
        return os.readlink(link)
    if is_pointer(link):
        return read_pointer(link)
    return relative_target(os.path.abspath(link.parent), os.readlink(link))


def make_dir_link(target: str, link: Path) -> None:
    """A link at `link` to the directory `target` (relative to the link's directory): a symlink,
    or on Windows a directory junction, which needs no admin rights (a symlink does) but holds
    an absolute path; a pointer file where the file system has no junctions."""
    if not WINDOWS:
        os.symlink(target, link)
        return
    import _winapi  # type: ignore[import-not-found]

    try:
        _winapi.CreateJunction(os.path.abspath(link.parent / target), str(link))
    except OSError as exc:
        if getattr(exc, "winerror", None) not in _NO_JUNCTIONS:
            raise
        with contextlib.suppress(OSError):
            os.rmdir(link)  # Wine 8 leaves an empty directory behind
        with open(link, "xb") as f:
            f.write(target.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())


def is_dir_link(path: Path) -> bool:
    """`current` as rescue makes it: a link, a junction, or (Windows) a pointer file."""
    return is_link(path) or is_pointer(path)


def replace_dir_link(new: Path, link: Path) -> None:
    """Put the link `new` at `link`. POSIX renames over it in one step, and so does Windows
    for a pointer file. Windows cannot rename over a junction (it is a directory): the old one
    is unlinked first, so a kill in between leaves no `current`, which the journal of the
    switch puts back (state.recover)."""
    try:
        os.replace(new, link)
        return
    except OSError:
        if not (WINDOWS and is_link(link)):
            raise
    os.rmdir(link)  # removes the junction itself, never what it points to
    os.rename(new, link)


def remove_link(path: os.PathLike[str] | str) -> None:
    """Unlink a file, a link or a junction (never what it points to). CPython's unlink removes a
    junction on Windows; rmdir does where it does not (a junction is a directory entry)."""
    try:
        os.unlink(path)
    except (IsADirectoryError, PermissionError):
        if not (WINDOWS and is_link(path)):
            raise
        os.rmdir(path)


def walk(top: os.PathLike[str] | str, onerror: Optional[Callable[[OSError], None]] = None
         ) -> Iterator[Tuple[str, List[str], List[str]]]:
    """os.walk, top-down, that never enters a link or a junction (before 3.12 os.walk on
    Windows enters junctions); both are listed with the files."""
    try:
        entries = list(os.scandir(top))
    except OSError as exc:
        if onerror is not None:
            onerror(exc)
        return
    dirs, files = [], []
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            files.append(e.name)  # listed: whoever reads it meets the error itself
            continue
        (dirs if stat.S_ISDIR(st.st_mode) and not is_reparse_point(st) else files).append(e.name)
    yield os.fspath(top), dirs, files
    for d in dirs:
        yield from walk(os.path.join(top, d), onerror)


def mode_differs(kind: str, want: int, got: int) -> bool:
    """Whether a found mode differs from the expected one in a way this OS can show: on
    Windows a mode is only the read-only flag of a file (a directory's is ignored, and the
    exec bits come from the name's extension)."""
    if not WINDOWS:
        return want != got
    return kind == "file" and (want & 0o200) != (got & 0o200)


def disk_bytes(st: os.stat_result) -> int:
    """What a file takes on disk: blocks where the OS says, else its size (Windows)."""
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else st.st_size


def fchmod(fd: int, path: os.PathLike[str] | str | None, mode: int) -> None:
    """Set a file's mode through its descriptor; Windows before 3.13 has no os.fchmod, and its
    chmod only sets the read-only flag, by path."""
    if hasattr(os, "fchmod") and not WINDOWS:
        os.fchmod(fd, mode)
    elif path is not None:
        os.chmod(path, mode)


def pread(fd: int, n: int, offset: int) -> bytes:
    """os.pread; Windows has none: seek, then read (an O_APPEND write still goes to the end)."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, n)


def uid() -> Optional[int]:
    """This process's user id; None on Windows, which has SIDs, not uids."""
    return os.getuid() if hasattr(os, "getuid") else None


LOCK_FILE = ".rescue-lock"


def open_lock(root: Path) -> Tuple[int, Path]:
    """The descriptor the prefix lock is taken on, and its path: the prefix directory itself on
    POSIX (taking the lock writes nothing); on Windows, which opens no directory as a file, an
    empty file in it."""
    if not WINDOWS:
        return os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)), root
    path = root / LOCK_FILE
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600), path


def try_lock(fd: int) -> bool:
    """Try once to take the exclusive lock on `fd`: True when taken. flock on POSIX; on Windows
    msvcrt.locking of the file's first byte (released when the file is closed)."""
    if WINDOWS:
        import msvcrt  # type: ignore[import-not-found]

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    import errno
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
