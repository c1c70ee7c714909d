"""One retry policy for every upstream request: bounded tries with exponential backoff."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


class Transient(Exception):
    """An attempt's failure that the next attempt may not meet (a 5xx answer, a dropped
    connection); `cause` is what the caller words its message from once tries run out."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True)
class RetryPolicy:
    tries: int
    backoff: float = 0.5  # seconds before the second try; doubled before each one after
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError(f"RetryPolicy.tries must be at least 1, not {self.tries}")

    def run(self, attempt: Callable[[], T]) -> T:
        """`attempt()` until it returns or raises anything but Transient; once `tries`
        attempts were transient, the last Transient is raised. Anything else (a refused
        certificate, a 404, a checksum mismatch) ends at once: trying again cannot help."""
        for n in range(self.tries):
            try:
                return attempt()
            except Transient:
                if n == self.tries - 1:
                    raise
            self.sleep(self.backoff * 2 ** n)
        raise AssertionError("unreachable")
