"""Windows CPython under Wine for tests: the prefix and interpreter scripts/get-wine caches."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tests.support import gobin


def win_path(path: Path) -> str:
    """A Linux path as Windows programs under Wine see it (drive Z: is /)."""
    return "Z:" + str(path.absolute()).replace("/", "\\")


@dataclass
class Wine:
    """One cached Wine prefix with python.org's embeddable CPython 3.13 for Windows."""

    root: Path
    timings: List[Tuple[str, float]] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.root / "python313" / "python.exe"

    def env(self, **extra: str) -> Dict[str, str]:
        env = {"WINEPREFIX": str(self.root / "prefix"), "WINEDEBUG": "-all",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()),
               "LANG": "C.UTF-8"}
        env.update(extra)
        return env

    def run(self, argv: List[str], what: str, timeout: float = 600,
            **env: str) -> subprocess.CompletedProcess[str]:
        """A Windows program under Wine. Every std handle is a pipe: with a file or /dev/null
        Windows CPython stops in init_sys_streams ("Invalid handle")."""
        started = time.monotonic()
        proc = subprocess.run(["wine", *argv], input="", capture_output=True, text=True,
                              env=self.env(**env), timeout=timeout)
        self.timings.append((what, round(time.monotonic() - started, 1)))
        return proc

    @property
    def python39(self) -> Path:
        return self.root / "python39" / "python.exe"

    def rescue(self, pyz: Path, *args: str, python: Optional[Path] = None,
               **env: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(python or self.python), "-I", win_path(pyz), *args],
                        f"rescue {args[0]}", **env)

    def cmd(self, script: str, what: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`cmd /c` a line of cmd.exe syntax."""
        return self.run(["cmd", "/c", script], what, **env)


def find() -> Optional[Wine]:
    """The Wine set-up scripts/get-wine made, or None when it is not there."""
    root = gobin.cache_root() / "wine"
    if not (root / "ready").exists() or shutil.which("wine") is None:
        return None
    return Wine(root)
