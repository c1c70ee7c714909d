"""Showing untrusted text in a message: quoted, escaped and short, so it cannot forge output."""

from __future__ import annotations

SHOWN_CHARS = 120


def shown(text: object, limit: int = SHOWN_CHARS) -> str:
    """`repr`-style quoting: newlines, escape sequences and lone surrogates come out as `\\n`,
    `\\x1b`, `\\udcff`; anything longer than `limit` characters is cut with a marker."""
    s = str(text)
    cut = len(s) > limit
    quoted = repr(s[:limit])
    return quoted + (f"... ({len(s)} characters)" if cut else "")


_KINDS = {int: "an integer", str: "a string", bool: "true or false", float: "a number",
          list: "a list", dict: "a table"}


def a_kind(kind: type) -> str:
    """A Python type as a message says what a value must be: int -> "an integer"."""
    return _KINDS.get(kind, f"of type {kind.__name__}")
