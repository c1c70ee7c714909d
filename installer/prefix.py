"""The installation prefix: its layout, default location, lock and pre-flight checks."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

from installer import hostos
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
        self.bundles = self.state / "bundles"
        self.journal = self.state / "journal.json"

    def version_dir(self, toolchain_id: str) -> Path:
        return inside(self, self.versions / toolchain_id)

    def own_paths(self) -> List[Tuple[Path, str]]:
        """The directories rescue writes into (each parent before its children), and the one file
        it appends to in place: a link in the place of one would carry toolchains, pins, the
        journal or the history outside P. (Other files are replaced by a rename, which replaces
        a link rather than following it.)"""
        return [(self.versions, "the toolchains directory"),
                (self.goproxy, "the module proxy directory"),
                (self.root / "bin", "the go<V> commands directory"),
                (self.state, "the state directory"),
                (self.bundles, "the signed manifests directory"),
                (self.state / "trust", "the adopted trust store directory"),
                (self.state / "snapshots", "the snapshot store"),
                (self.state / "snapshots-pulled", "the pulled snapshots"),
                (self.state / "guard-logs", "the guard logs directory"),
                (self.state / "history.jsonl", "the history")]


def refuse_links(layout: Layout) -> None:
    """Refuse (exit 2, naming the link and the fix) a prefix whose own directories (or history)
    are links; P itself may be one (a prefix kept on another disk)."""
    from installer.statefile import no_link

    for path, what in layout.own_paths():
        no_link(path, what)


def default_prefix() -> Path:
    """The system prefix when this user may write there, else a per-user data dir."""
    env = os.environ.get("RESCUE_PREFIX")
    if env:
        return Path(env)
    probe = SYSTEM_PREFIX if SYSTEM_PREFIX.exists() else SYSTEM_PREFIX.parent
    if sys.platform != "win32" and os.access(probe, os.W_OK):  # Windows: per user only
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


def check_free_space(root: Path, needed: int, margin: int, can_prune: bool = False) -> None:
    """Refuse before anything is written when the install cannot fit. With `can_prune`
    (--auto-prune may free space under the lock) only a disk too small for any pruning counts.
    The retention watermarks are checked under the lock (versions.make_room)."""
    anchor = existing_ancestor(root)
    usage = shutil.disk_usage(anchor)
    room = usage.total if can_prune else usage.free
    if room < needed + margin:
        raise NotReadyError(
            f"installing into {root}: not enough free disk space on {anchor}\n"
            f"\tneeded: {(needed + margin) / 1e6:.0f} MB (content {needed / 1e6:.0f} MB + "
            f"margin)\n\t{'disk' if can_prune else 'free'}:   {room / 1e6:.0f} MB\n"
            "Free some space or pass --prefix on a larger filesystem.")


@dataclass
class Lock:
    """The prefix lock this process holds, and what it created to take it."""

    created: List[Path] = field(default_factory=list)  # directories, parents first
    notes: List[str] = field(default_factory=list)  # what was cleaned up on the way in


def _make_dirs(root: Path) -> List[Path]:
    """mkdir -p that reports which directories this call created (and no other process did)."""
    missing = []
    path = root
    while not path.exists():
        missing.append(path)
        path = path.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
            created.append(d)
        except FileExistsError:
            pass  # another process made it first: it is not ours to remove
    return created


def _flock(fd: int, layout: Layout, timeout: float, on_wait: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    told = False
    while not hostos.try_lock(fd):
        if time.monotonic() >= deadline:
            raise NotReadyError(
                f"locking {layout.root}: another rescue command still holds the prefix lock "
                f"after {timeout:g}s; wait for it to finish (see `ps -ef | grep rescue`), or "
                "pass a longer --lock-timeout")
        if not told:
            on_wait(f"waiting for another rescue command to release the lock on {layout.root}")
            told = True
        time.sleep(0.05)


@contextmanager
def locked(layout: Layout, timeout: float = 300.0,
           on_wait: Callable[[str], None] = lambda msg: None) -> Iterator[Lock]:
    """Hold the one exclusive lock of a prefix: a flock on the prefix directory itself, so that
    taking it writes nothing. The prefix is created first, and what this process created is
    removed again (only if empty) while the lock is still held; a process that held the lock
    before may have removed the directory we opened, so we check it is still the prefix."""
    while True:
        created = _make_dirs(layout.root)
        fd, held = hostos.open_lock(layout.root)
        try:
            _flock(fd, layout, timeout, on_wait)
            same = os.path.samestat(os.fstat(fd), os.stat(held))
        except FileNotFoundError:
            same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    lock = Lock(created)
    try:
        refuse_links(layout)
        lock.notes += remove_stale(layout)
        yield lock
    finally:
        for d in reversed(lock.created):  # empty: the command changed nothing there
            try:
                d.rmdir()
            except OSError:
                break
        os.close(fd)


def remove_stale(layout: Layout) -> List[str]:
    """Staging dirs and temp links of killed commands: with the lock held, nothing else is
    writing, so every one of them is stale."""
    notes = []
    for entry in sorted(os.listdir(layout.root)):
        path = layout.root / entry
        if entry.startswith(".staging-"):
            if is_link(path):  # not made by an install: its target is left alone
                notes.append(f"removed {entry}, a symbolic link to {hostos.read_link(path)!r} "
                             "(its target was not touched)")
                hostos.remove_link(path)
                continue
            size = tree_bytes(path)
            remove_tree(path)
            notes.append(f"removed {entry} ({size / 1e6:.0f} MB), left by an interrupted "
                         "install")
        elif entry.startswith(".current.") and entry.endswith(".tmp"):
            hostos.remove_link(path)
    return notes


def inside(layout: Layout, path: Path) -> Path:
    """`path`, after checking it lies under the prefix (a last guard behind the manifest's
    own checks: every path the installer writes is built from validated ids)."""
    root = os.path.normpath(layout.root)
    full = os.path.normpath(path)
    if os.path.commonpath([root, full]) != root or full == root:
        raise AssertionError(f"refusing to write {full}: outside the prefix {root}")
    return path


def read_only_mode(mode: int) -> int:
    """A GOROOT file's installed mode: 0555 when the manifest says executable, else 0444."""
    return 0o555 if mode & 0o111 else 0o444


def make_read_only(tree: Path, keep_top: bool = False, files: bool = True) -> None:
    """A GOROOT nobody can edit by accident: files 0444/0555, dirs 0555 (children first).

    `keep_top` leaves `tree` itself writable: moving a directory to a new parent rewrites its
    `..` entry, which needs write permission on it for every user but root. Without `files`,
    only directories change: for a tree whose files were created with their final modes.
    """
    for dirpath, _dirs, filenames in os.walk(tree, topdown=False):
        for name in filenames if files else ():
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                os.chmod(p, read_only_mode(st.st_mode))
        if not (keep_top and dirpath == str(tree)):
            os.chmod(dirpath, 0o555)


def is_link(path: Path) -> bool:
    """`path` is a symbolic link (a dangling one too) or a junction: rescue unlinks one, never
    walks it."""
    return hostos.is_link(path)


def _real_dir(path: Path) -> bool:
    return hostos.is_real_dir(path)


def tree_bytes(tree: Path) -> int:
    """What the files of `tree` hold on disk: 0 for a link, whose target removing it never
    frees, and nothing behind a link inside it (fwalk enters only the directories it lists)."""
    total = 0
    if not _real_dir(tree):
        return total
    if not hasattr(os, "fwalk"):  # Windows: a walk that enters no link and no junction
        for dirpath, _dirs, files in hostos.walk(tree):
            for name in files:
                with contextlib.suppress(OSError):
                    total += hostos.disk_bytes(os.lstat(os.path.join(dirpath, name)))
        return total
    for _dirpath, _dirs, files, dirfd in os.fwalk(tree):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_blocks * 512
    return total


def remove_tree(tree: Path) -> None:
    """Delete a tree that may have been made read-only. A link (or any non-directory) is
    unlinked, never walked: its target may be anyone's directory outside the prefix."""
    if not _real_dir(tree):
        with contextlib.suppress(FileNotFoundError):
            hostos.remove_link(tree)
        return
    if not hasattr(os, "fwalk"):
        # Windows: a read-only file cannot be deleted; its flag goes first. The walk enters no
        # junction, and rmtree (3.8+) removes a junction without entering it.
        for dirpath, _dirs, files in hostos.walk(tree):
            for name in [*files, ""]:
                path = os.path.join(dirpath, name) if name else dirpath
                if not hostos.is_link(path):
                    os.chmod(path, 0o700 if not name else 0o600)
        shutil.rmtree(tree)
        return
    # fwalk checks each directory it opens is the one it listed, so a link planted in the tree
    # (or swapped in while it is walked) is never entered; fchmod changes the directory held
    # open, never what a name points to. rmtree then unlinks links without following them.
    for _dirpath, _dirs, _files, dirfd in os.fwalk(tree):
        os.fchmod(dirfd, 0o700)
    shutil.rmtree(tree)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (renameat2 RENAME_EXCHANGE): no reader ever finds neither.

    False when this kernel, libc or file system cannot; the caller then falls back to two
    renames that its crash recovery can finish.
    """
    if hostos.WINDOWS:
        return False  # no renameat2: two renames
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def sync_filesystem(path: Path) -> None:
    """Flush the file system holding `path` (syncfs), not every file system (sync): on a busy
    host a global sync also waits for everyone else's writes."""
    if hostos.WINDOWS:
        return  # no syncfs and no sync; each file was fsynced where it mattered
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        fd = os.open(path, os.O_RDONLY)
    except (OSError, AttributeError):  # no syncfs here (another libc, another OS)
        if hasattr(os, "sync"):
            os.sync()
        return
    try:
        if syncfs(fd) != 0 and hasattr(os, "sync"):
            os.sync()
    finally:
        os.close(fd)


def flush_in_background(path: Path) -> threading.Thread:
    """`sync_filesystem(path)` on a thread of its own, started: the caller does other work
    (the checklist) while the disk catches up, and joins before what must come after it."""
    worker = threading.Thread(target=sync_filesystem, args=(path,), name="rescue-syncfs",
                              daemon=True)
    worker.start()
    return worker


def replace_tree(new: Path, live: Path, aside: Path) -> None:
    """Put the finished tree `new` at `live`; the old one ends at `aside` for the caller to
    remove. All three share a parent, so no directory is re-parented (no write permission on
    read-only trees is needed). Without an atomic exchange: live -> aside, new -> live, and a
    kill in between leaves `aside` for `restore_aside` to put back."""
    if not os.path.lexists(live):
        os.rename(new, live)
        return
    if exchange(new, live):
        os.rename(new, aside)
        return
    os.rename(live, aside)
    try:
        os.rename(new, live)
    except BaseException:
        os.rename(aside, live)
        raise


def switch_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically: a new link under a temp name, then rename."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if hostos.is_link(tmp) or tmp.exists():
        hostos.remove_link(tmp)
    hostos.make_dir_link(target, tmp)  # a junction on Windows
    hostos.replace_dir_link(tmp, link)


def current_target(layout: Layout) -> Optional[str]:
    try:
        return hostos.link_target(layout.current)
    except (OSError, ValueError):
        return None
