"""Real installs done once per user and module, copied fresh for each test that SIGKILLs a
command on them (tests/test_kill_install.py, tests/test_kill_switch.py)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

from tests.support.users import STOCK_PYTHON, User, make_user, remove_user_dirs


@dataclass
class Installed:
    user: User
    rescue: List[str]
    new: Path  # the go1.22.10 bundle, the user's copy
    ready: Path  # the prefix every test starts from

    def prefix(self) -> Path:
        """A fresh copy of the ready prefix for one test (same owner, modes, links), at the
        path it was installed at: its go.env names that path, and a moved prefix fails its
        checklist (its GOPROXY would be the old place's). The pristine one is kept beside it."""
        which = self.ready
        pristine = which.with_name(f"{which.name}.pristine")
        if not pristine.exists():
            subprocess.run(["cp", "-a", str(which), str(pristine)], check=True)
        subprocess.run(["chmod", "-R", "u+w", str(which)], check=True)
        subprocess.run(["rm", "-rf", str(which)], check=True)
        subprocess.run(["cp", "-a", str(pristine), str(which)], check=True)
        return which

    def kill(self, prefix: Path, argv: List[str], point: str) -> None:
        killed = self.user.run([*self.rescue, *argv],
                               env=self.user.env(RESCUE_CRASH_AT=point), offline=True)
        assert killed.returncode == -9, f"{point} never reached: {killed.stderr}"
        # Whatever moment it died at, `current` is a complete toolchain that works.
        done = self.user.run([str(prefix / "current" / "bin" / "go"), "env", "GOROOT"],
                             offline=True)
        assert done.returncode == 0, done.stderr


def installed(param: str, pyz: Path, bundles: List[Path], new: Path) -> Iterator[Installed]:
    """A user (`param`: root or nobody) with a prefix that has `bundles` installed in order."""
    user = make_user(param)
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    prefix = user.work / "ready"
    for b in bundles:
        done = user.run([*rescue, "install", str(user.give(b)), "--prefix", str(prefix)],
                        offline=True)
        assert done.returncode == 0, done.stderr
    yield Installed(user, rescue, user.give(new), prefix)
    remove_user_dirs(user)


def history(prefix: Path) -> List[Dict[str, Any]]:
    text = (prefix / "state" / "history.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]
