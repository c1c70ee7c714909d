"""Run the offline installer as an operator would: `python3 -I rescue.pyz`, as root or as an
unprivileged user (uid 65534 through `setpriv`), optionally with no network (`unshare -n`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

NOBODY = 65534
# A stock CPython every user can run (root's pyenv builds live under /root, closed to others).
STOCK_PYTHON = "/usr/bin/python3"
USERS = ("root", "nobody")


@dataclass
class User:
    """One operator: who they are, their HOME, and a place both they and the test can use."""

    name: str
    uid: int
    home: Path
    work: Path  # owned by the user: prefixes and copies of bundles go here

    def argv(self, cmd: Sequence[str], offline: bool = False) -> List[str]:
        argv = list(cmd)
        if self.uid != 0:
            argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                    "--", *argv]
        return ["unshare", "-n", *argv] if offline else argv

    def env(self, **extra: str) -> Dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8", **extra}

    def run(self, cmd: Sequence[str], *, offline: bool = False, env: Optional[Dict] = None,
            cwd: Optional[Path] = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(cmd, offline), env=env or self.env(), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    def give(self, path: Path) -> Path:
        """Hand a file or tree to this user (a copy under their work dir, owned by them)."""
        dest = self.work / path.name
        if path.is_dir():
            shutil.copytree(path, dest, symlinks=True)
        else:
            shutil.copy2(path, dest)
        chown_tree(dest, self.uid)
        return dest


def chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                os.chown(os.path.join(dirpath, n), uid, uid, follow_symlinks=False)


def make_user(name: str) -> User:
    """A fresh HOME and work dir for `name` under a world-traversable temp dir."""
    uid = 0 if name == "root" else NOBODY
    base = Path(tempfile.mkdtemp(prefix=f"rescue-{name}-", dir="/tmp"))
    base.chmod(0o755)  # pytest's own tmp dirs are 0700: closed to the unprivileged user
    home, work = base / "home", base / "work"
    for d in (home, work):
        d.mkdir()
        os.chown(d, uid, uid)
    return User(name, uid, home, work)


def remove_user_dirs(user: User) -> None:
    """Delete what the test left, read-only trees included."""
    subprocess.run(["chmod", "-R", "u+w", str(user.home.parent)], capture_output=True)
    shutil.rmtree(user.home.parent, ignore_errors=True)
