"""Errors of this machine (disk full, quota, permissions) told apart from errors of a bundle."""

from __future__ import annotations

import errno
import os
from typing import Optional, Union

from manifests.errors import NotReadyError
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
                  path: Optional[Union[str, os.PathLike]] = None) -> NotReadyError:
    """`operation` failed because of this machine: say what happened and what to do."""
    where = path if path is not None else exc.filename
    hint = _HINTS.get(exc.errno or 0, "check the disk and the permissions, then try again")
    # strerror is None for errors that gather others (shutil.Error lists every file it met).
    what = exc.strerror or first_line(exc)
    return NotReadyError(f"{operation}: {what} ({where}): {hint}. Nothing was installed; the "
                         "previous state stays active.")
