"""Fail instead of hanging: a command that waits on a planted FIFO is the bug these catch."""

from __future__ import annotations

import contextlib
import signal
from typing import Any, Iterator


@contextlib.contextmanager
def deadline(seconds: int, what: str = "doctor") -> Iterator[None]:
    def expired(*_: Any) -> None:
        raise AssertionError(f"{what} did not finish in {seconds}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
