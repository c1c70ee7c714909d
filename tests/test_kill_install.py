"""SIGKILL an install at any moment, as root and as uid 65534: `current` is always a complete
toolchain that works, and the next install finishes or redoes the work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.killed import Installed, history, installed
from tests.support.users import USERS

# Staging is one loop: its first member and one deep in the tree stand for every other.
INSTALL_POINTS = ["stage-member-1", "stage-member-5000", "install-staged",
                  "install-merged", "install-renamed", "install-checked", "install-journaled",
                  "install-recorded", "install-switched-unlogged", "install-switched"]


@pytest.fixture(scope="module", params=USERS)
def ready(request: pytest.FixtureRequest, pyz: Path, toolchain_bundle: Path,
          newer_toolchain_bundle: Path) -> Iterator[Installed]:
    """go1.21.13 installed once per user; each test kills the go1.22.10 install on a copy."""
    yield from installed(request.param, pyz, [toolchain_bundle], newer_toolchain_bundle)


@pytest.mark.parametrize("point", INSTALL_POINTS)
def test_install_killed_at_any_moment_leaves_a_working_current_and_is_finished_next(
        point: str, ready: Installed) -> None:
    if ready.user.uid and INSTALL_POINTS.index(point) % 2:
        pytest.skip("the unprivileged user runs every other point (time)")
    prefix = ready.prefix()
    argv = ["install", str(ready.new), "--prefix", str(prefix)]
    ready.kill(prefix, argv, point)
    again = ready.user.run([*ready.rescue, *argv], offline=True)
    assert again.returncode == 0, again.stderr
    assert os.readlink(prefix / "current") == "versions/go1.22.10.linux-amd64"
    if point.startswith("stage") or point == "install-staged":
        assert "left by an interrupted install" in again.stdout
    if point in INSTALL_POINTS[-4:]:
        assert "note      finished an interrupted install of rescue-test #2" in again.stdout
    assert not [n for n in os.listdir(prefix) if n.startswith(".staging-")]
    assert [h["to"] for h in history(prefix)] == ["go1.21.13.linux-amd64",
                                                  "go1.22.10.linux-amd64"]
