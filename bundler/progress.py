"""Progress reporting: a bar on a terminal, silence when output goes to a file or a script."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Optional, Protocol

import click


class Progress(Protocol):
    def advance(self, n: int) -> None: ...


class _Quiet:
    def advance(self, n: int) -> None:
        pass


class _Bar:
    def __init__(self, bar: click._termui_impl.ProgressBar[int]) -> None:
        self._bar = bar

    def advance(self, n: int) -> None:
        self._bar.update(n)


def enabled() -> bool:
    return sys.stderr.isatty()


@contextmanager
def task(label: str, total: Optional[int]) -> Iterator[Progress]:
    """A progress bar for `label` over `total` units (bytes); quiet when stderr is no tty."""
    if not enabled():
        yield _Quiet()
        return
    if not total:  # an upstream that gives no size: say what is happening, without a bar
        note(f"{label} ...")
        yield _Quiet()
        return
    with click.progressbar(length=total, label=label, file=sys.stderr,
                           show_pos=False, show_percent=True) as bar:
        yield _Bar(bar)


def note(message: str) -> None:
    """A one-line status message on stderr (kept out of --json output on stdout)."""
    click.echo(message, err=True)
