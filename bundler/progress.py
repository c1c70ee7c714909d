"""Progress reporting on the build host: downloads, hashing and packing, each a line with
bytes, rate and ETA on a terminal (manifests/progress.py), silence in a pipe or with --json."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Protocol

from manifests.progress import Terminal


class Progress(Protocol):
    def advance(self, n: int) -> None: ...


_silent = False


def silence() -> None:
    """--json: no progress at all, even on a terminal."""
    global _silent
    _silent = True


class _Bytes:
    """Bytes only: a download or a pack step counts no files."""

    def __init__(self, bar: Terminal) -> None:
        self.bar = bar

    def advance(self, n: int) -> None:
        self.bar.advance(n, 0)


@contextmanager
def task(label: str, total: Optional[int]) -> Iterator[Progress]:
    """A progress line for `label` over `total` bytes (None: an upstream that gives no size)."""
    with Terminal(label, total or None) as bar:
        bar.on = bar.on and not _silent
        yield _Bytes(bar)

