"""Time one command as a user types it, with its peak RSS; run sides in alternating rounds."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence


@dataclass
class Sample:
    seconds: float
    rss_kb: int  # GNU time %M: peak RSS of the largest of the command and its children
    own_rss_kb: int  # peak RSS of the command's own process (VmHWM), 0 if it was too quick

    def to_dict(self) -> Dict[str, float]:
        return {"seconds": round(self.seconds, 4), "rss_mb": round(self.rss_kb / 1024, 1),
                "own_rss_mb": round(self.own_rss_kb / 1024, 1)}


@dataclass
class Side:
    """One command of a comparison. `argv(fresh)` gets an empty directory of its own for each
    run (a fresh prefix, a fresh extraction dir), removed after the run, untimed."""

    name: str
    argv: Callable[[Path], List[str]]
    env: Optional[Callable[[Path], Dict[str, str]]] = None
    cwd: Optional[Path] = None
    samples: List[Sample] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    def peak_mb(self, own: bool = False) -> float:
        return max((s.own_rss_kb if own else s.rss_kb) for s in self.samples) / 1024


class CommandFailed(RuntimeError):
    pass


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


TIME = "/usr/bin/time"  # GNU time: its child's rusage, untouched by this process's size


def run_once(argv: Sequence[str], *, env: Optional[Dict[str, str]] = None,
             cwd: Optional[Path] = None, log: Path) -> Sample:
    """Run argv to its end; wall time from spawn to reap, interpreter start-up included.

    Peak RSS is GNU time's `%M` of the command and its descendants: this process's own
    rusage cannot give it, because Linux counts a child's pre-exec memory (a copy of this
    large benchmark process) into the child's ru_maxrss. The command's own VmHWM is a
    high-water mark, so sampling it until the command exits loses at most the last 20 ms.
    """
    rss_file = log.with_suffix(".rss")
    wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *argv] if os.path.exists(TIME) else argv
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        own = [0]
        stop = threading.Event()

        def watch() -> None:
            target = 0
            while not stop.wait(0.02):
                if not target:
                    target = _child_of(proc.pid) if wrapped is not argv else proc.pid
                if target:
                    own[0] = max(own[0], _hwm_kb(target))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = proc.wait()
        took = time.perf_counter() - started
        stop.set()
        watcher.join()
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise CommandFailed(f"running {' '.join(map(str, argv))}: exit {code}\n{tail}")
    try:
        tree = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        tree = own[0]
    return Sample(took, tree, own[0])


def _child_of(pid: int) -> int:
    """The first child of pid (the command GNU time runs), or 0 before it exists."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        return 0
    return int(kids[0]) if kids else 0


def run_side(side: Side, scratch: Path) -> Sample:
    """One run of a side in a fresh directory; dirty pages of earlier runs are written out
    first (untimed) so that no run pays for another's writeback (`install` calls sync).

    Nothing is deleted between runs: ext4 (without a journal, as here) skips inodes freed in
    the last minutes when it creates files, so a run right after another's 10^4 deletions paid
    up to 1 ms per new file, for rescue and its baseline alike, which hid every difference.
    `run.py` removes the scratch directory once every trial is done."""
    fresh = Path(tempfile.mkdtemp(dir=scratch, prefix="run-"))
    os.sync()
    env = side.env(fresh) if side.env else None
    sample = run_once(side.argv(fresh), env=env, cwd=side.cwd, log=scratch / "last.log")
    side.samples.append(sample)
    return sample


def alternate(sides: Sequence[Side], rounds: int, scratch: Path,
              say: Callable[[str], None] = print) -> None:
    """`rounds` rounds over every side, the order rotated each round so that a machine getting
    busier or quieter weighs on every side alike. No warm-up run: the inputs were just written,
    so they are in the page cache for the first run as for the last."""
    scratch.mkdir(parents=True, exist_ok=True)
    for r in range(rounds):
        order = list(sides[r % len(sides):]) + list(sides[:r % len(sides)])
        for side in order:
            s = run_side(side, scratch)
            say(f"  round {r + 1}/{rounds}  {side.name:<38} {s.seconds:7.2f} s  "
                f"{s.rss_kb / 1024:6.0f} MB")
