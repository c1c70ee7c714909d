"""The prefix's GOTOOLCHAIN: "auto" unless an installed bundle's spec chose another
(toolchains.gotoolchain, kept in its installed.json record); the newest bundle that says one
wins. Derived from the recorded state, so a killed install leaves no choice behind."""

from __future__ import annotations

import contextlib
from typing import Iterator, List

from installer import state
from installer.prefix import Layout

DEFAULT = "auto"
# An install between staging and its record: the staged go.env files and the checklist already
# follow the bundle's choice, which installed.json records only when the install commits. (A
# stack, not a contextvar: those start at 3.7, and one install runs per process.)
_pending: List[str] = []


def read(layout: Layout) -> str:
    if _pending and _pending[-1]:
        return _pending[-1]
    for entry in reversed(state.load(layout)["bundles"]):  # the newest record last
        if entry.get("gotoolchain"):
            return str(entry["gotoolchain"])
    return DEFAULT


@contextlib.contextmanager
def pending(choice: str) -> Iterator[None]:
    """While an install of a bundle that chose `choice` ("" for none) runs."""
    _pending.append(choice)
    try:
        yield
    finally:
        _pending.pop()
