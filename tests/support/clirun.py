"""Run a command line in-process as a user types it: its exit code, stdout and stderr."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import pytest


def run(argv: List[Any], capsys: pytest.CaptureFixture,
        main: Optional[Callable[[List[str]], int]] = None) -> Tuple[int, str, str]:
    """`main(argv)` (the offline installer's by default) with what it printed; a command that
    exits with its own status (doctor) is read like one that returns it."""
    if main is None:
        from installer import cli

        main = cli.main
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
