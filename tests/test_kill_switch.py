"""SIGKILL a rollback, use or remove at any moment, as root and as uid 65534: `current` is always
a complete toolchain that works, and the next command that takes the lock finishes the work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.killed import Installed, history, installed
from tests.support.users import USERS

SWITCH_POINTS = ["rollback-journaled", "rollback-switched", "rollback-logged",
                 "use-journaled", "use-switched", "use-logged", "remove-renamed"]


@pytest.fixture(scope="module", params=USERS)
def ready(request: pytest.FixtureRequest, pyz: Path, toolchain_bundle: Path,
          newer_toolchain_bundle: Path) -> Iterator[Installed]:
    """go1.21.13, then go1.22.10 installed once per user; each test kills a switch on a copy."""
    yield from installed(request.param, pyz, [toolchain_bundle, newer_toolchain_bundle],
                         newer_toolchain_bundle)


@pytest.mark.parametrize("point", SWITCH_POINTS)
def test_rollback_use_remove_killed_at_any_moment_leave_a_working_current(
        point: str, ready: Installed) -> None:
    prefix = ready.prefix()
    p = ["--prefix", str(prefix)]
    argv = {"rollback": ["rollback", *p], "use": ["use", "1.21.13", *p],
            "remove": ["remove", "1.21.13", *p]}[point.split("-")[0]]
    ready.kill(prefix, argv, point)
    nxt = ready.user.run([*ready.rescue, "pin", "1.22.10", *p])  # any locked command
    assert nxt.returncode == 0, nxt.stderr
    if point.startswith("remove"):
        assert "finished removing go1.21.13.linux-amd64" in nxt.stdout
        assert sorted(os.listdir(prefix / "versions")) == ["go1.22.10.linux-amd64"]
        return
    # Killed after its checklist passed: the switch is finished, and logged once.
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"
    if not point.endswith("logged"):
        assert "finished an interrupted" in nxt.stdout
    assert [h["to"] for h in history(prefix)][-1] == "go1.21.13.linux-amd64"
    assert len(history(prefix)) == 3
