"""The installation prefix: its layout, default location, lock and pre-flight checks."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from manifests.errors import NotReadyError

SYSTEM_PREFIX = Path("/usr/local/go-emergency")


class Layout:
    """Where everything lives under a prefix P."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        self.current = root / "current"
        self.goproxy = root / "goproxy"
        self.state = root / "state"
        self.lock = self.state / "lock"
        self.bundles = self.state / "bundles"

    def version_dir(self, toolchain_id: str) -> Path:
        return self.versions / toolchain_id


def default_prefix() -> Path:
    """The system prefix when this user may write there, else a per-user data dir."""
    env = os.environ.get("RESCUE_PREFIX")
    if env:
        return Path(env)
    probe = SYSTEM_PREFIX if SYSTEM_PREFIX.exists() else SYSTEM_PREFIX.parent
    if os.access(probe, os.W_OK):
        return SYSTEM_PREFIX
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "go-emergency"


def existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable(root: Path) -> None:
    anchor = existing_ancestor(root)
    if not anchor.is_dir():
        raise NotReadyError(f"installing into {root}: {anchor} is not a directory; pass --prefix "
                            "with a directory you own (no root needed)")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise NotReadyError(
            f"installing into {root}: {anchor} is not writable by this user; pass --prefix "
            "with a directory you own (no root needed), or run as a user who can write there")


def check_free_space(root: Path, needed: int, margin: int) -> None:
    anchor = existing_ancestor(root)
    free = shutil.disk_usage(anchor).free
    if free < needed + margin:
        raise NotReadyError(
            f"installing into {root}: not enough free disk space on {anchor}\n"
            f"\tneeded: {(needed + margin) / 1e6:.0f} MB (content {needed / 1e6:.0f} MB + "
            f"margin)\n\tfree:   {free / 1e6:.0f} MB\nFree some space or pass --prefix on "
            "a larger filesystem.")


@contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One install at a time per prefix; a second one fails at once with a clear message."""
    layout.state.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise NotReadyError(f"installing into {layout.root}: another rescue command "
                                    "holds the prefix lock; wait for it to finish") from None
            raise
        yield
    finally:
        os.close(fd)


def make_read_only(tree: Path) -> None:
    """A GOROOT nobody can edit by accident: files 0444/0555, dirs 0555 (children first)."""
    for dirpath, _dirs, filenames in os.walk(tree, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode
                os.chmod(p, 0o555 if mode & 0o111 else 0o444)
        os.chmod(dirpath, 0o555)


def remove_tree(tree: Path) -> None:
    """Delete a tree that may have been made read-only."""
    if not tree.exists() and not tree.is_symlink():
        return
    for dirpath, dirnames, _ in os.walk(tree):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
    if tree.is_dir() and not tree.is_symlink():
        os.chmod(tree, 0o700)
        shutil.rmtree(tree)
    else:
        tree.unlink()


def switch_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically: a new link under a temp name, then rename."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def current_target(layout: Layout) -> Optional[str]:
    try:
        return os.readlink(layout.current)
    except OSError:
        return None
