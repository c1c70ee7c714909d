"""Progress of a long operation, as one line both sides print on a terminal: bytes, files, rate,
ETA. The arithmetic and wording live here (no I/O); each side only decides where it goes, and
says nothing in a pipe or with --json."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional, TextIO


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Meter:
    """Counts bytes and files against an expected total; `line()` says where it stands."""

    def __init__(self, label: str, total: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.clock = label, total, clock
        self.started = clock()
        self.done = 0
        self.files = 0

    def advance(self, nbytes: int, files: int = 0) -> None:
        self.done += nbytes
        self.files += files

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = self.done / elapsed
        parts = [f"{size(self.done)}" + (f" of {size(self.total)}" if self.total else "")]
        if self.total:
            parts[0] += f" ({min(100, 100 * self.done // max(self.total, 1))}%)"
        if self.files:
            parts.append(f"{self.files:,} files")
        parts.append(f"{size(rate)}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {duration((self.total - self.done) / rate)}")
        elif self.done >= (self.total or 0) > 0:
            parts.append(f"in {duration(elapsed)}")
        return f"{self.label}: " + ", ".join(parts)


class Terminal:
    """A Meter drawn on one rewritten line of a terminal, at most ten times a second; nothing
    at all when `stream` is not a terminal (a pipe, a file, --json)."""

    def __init__(self, label: str, total: Optional[int] = None,
                 stream: Optional[TextIO] = None, force: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.on = force or self.stream.isatty()
        self.meter = Meter(label, total)
        self._drawn = 0.0
        self._lock = threading.Lock()  # a pool of workers may report at once

    def start(self, total: int) -> None:
        """The total, once known (an install learns it from the signed manifest)."""
        self.meter.total = total

    def advance(self, nbytes: int, files: int = 1) -> None:
        with self._lock:
            self.meter.advance(nbytes, files)
            now = self.meter.clock()
            if self.on and now - self._drawn >= 0.1:
                self._drawn = now
                self._draw()

    def _draw(self, end: str = "") -> None:
        self.stream.write("\r" + self.meter.line().ljust(78) + end)
        self.stream.flush()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on and self.meter.done:
            self._draw("\n")
