"""Errors of this machine (disk full, quota, permissions) told apart from errors of a bundle."""

from __future__ import annotations

import errno
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from manifests.text import first_line

_HINTS = {
    errno.ENOSPC: "the filesystem is full (no space or no inodes left, see `df -h` and "
                  "`df -i`); free some, or pass --prefix on a larger filesystem",
    errno.EDQUOT: "your disk quota is used up (see `quota`); free some, or pass --prefix on "
                  "another filesystem",
    errno.ENAMETOOLONG: "a file name is too long for this filesystem; pass --prefix on a "
                        "filesystem that allows 255-byte names (ext4, xfs, tmpfs)",
    errno.EROFS: "the filesystem is mounted read-only; pass --prefix on a writable one",
    errno.EACCES: "permission denied; pass --prefix with a directory you own (no root needed)",
    errno.EPERM: "operation not permitted; pass --prefix with a directory you own",
    errno.EMFILE: "too many open files; raise `ulimit -n` and try again",
    errno.EIO: "an I/O error on the disk; check `dmesg` and the disk's health",
}


def machine_error(operation: str, exc: OSError,
                  path: Optional[Union[str, os.PathLike]] = None,
                  after: str = " Nothing was installed; the previous state stays active."
                  ) -> NotReadyError:
    """`operation` failed because of this machine: say what happened and what to do."""
    where = path if path is not None else exc.filename
    hint = _HINTS.get(exc.errno or 0, "check the disk and the permissions, then try again")
    # strerror is None for errors that gather others (shutil.Error lists every file it met).
    what = exc.strerror or first_line(exc)
    return NotReadyError(f"{operation}: {what} ({where}): {hint}.{after}")


def owner(path: Path) -> Optional[Tuple[Path, int]]:
    """The nearest existing `path` or parent, and its owner."""
    for p in (path, *path.parents):
        try:
            return p, os.lstat(p).st_uid
        except OSError:
            continue
    return None


def user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def prefix_error(operation: str, root: Path, exc: OSError) -> NotReadyError:
    """`operation` on the prefix `root` failed because of this machine: who owns what this
    user may not change, or what to free on a full disk. Anything else as `machine_error`."""
    code = exc.errno or 0
    where = Path(exc.filename) if exc.filename else root
    if code in (errno.EACCES, errno.EPERM) and hasattr(os, "geteuid"):  # Windows: no uids
        me = os.geteuid()
        found = next((o for o in (owner(root), owner(where)) if o and o[1] != me), None)
        if found is not None:
            path, uid = found
            name = user_name(uid)
            return NotReadyError(
                f"{operation}: {exc.strerror} ({where}): {path} is owned by {name} (uid {uid}),"
                f" not by this user ({user_name(me)}); run the command as {name}, or pass "
                "--prefix with a prefix of your own", operation=operation, subject=str(root),
                hint=f"run as {name}, or pass --prefix with a prefix of your own")
    if code in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(root).free
        except OSError:
            free = 0
        need = max(1, math.ceil((DEFAULT_LIMITS.state_room_bytes - free) / 1e6))
        what = ("your disk quota on the disk holding" if code == errno.EDQUOT
                else "the disk holding")
        see = "`quota`" if code == errno.EDQUOT else f"`df -h {root}` and `df -i {root}`"
        return NotReadyError(
            f"{operation}: {exc.strerror} ({where}): {what} {root} is full ({free / 1e6:.1f} MB"
            f" free); free at least {need} MB there (see {see}; `prune` removes old "
            "toolchains), then run the command again", operation=operation, subject=str(root),
            hint=f"free at least {need} MB on the disk holding {root}")
    if code == errno.EROFS:
        return NotReadyError(
            f"{operation}: {exc.strerror} ({where}): the filesystem holding {root} is mounted "
            "read-only; remount it read-write, or pass --prefix on a writable one",
            operation=operation, subject=str(root))
    return machine_error(operation, exc, where, after="")


@contextmanager
def prefix_errors(operation: str, root: Path) -> Iterator[None]:
    """Turn this machine's errors inside a command on a prefix into its exit-2 message."""
    try:
        yield
    except OSError as exc:
        raise prefix_error(operation, root, exc) from None
