"""Showing untrusted text in a message: quoted, escaped and short, so it cannot forge output."""

from __future__ import annotations

from manifests.limits import DEFAULT_LIMITS

SHOWN_CHARS = 120


def shown(text: object, limit: int = SHOWN_CHARS) -> str:
    """`repr`-style quoting: newlines, escape sequences and lone surrogates come out as `\\n`,
    `\\x1b`, `\\udcff`; anything longer than `limit` characters is cut with a marker."""
    s = str(text)
    cut = len(s) > limit
    quoted = repr(s[:limit])
    return quoted + (f"... ({len(s)} characters)" if cut else "")


def plain(text: object, limit: int = 4 * SHOWN_CHARS) -> str:
    """Untrusted text in a line meant for people: as it is when it is printable and short,
    else as `shown` quotes it (so an escape sequence in a file can never reach a terminal)."""
    s = str(text)
    return s if s.isprintable() and len(s) <= limit else shown(s, limit)


def first_line(text: object, limit: int = DEFAULT_LIMITS.quoted_output_chars) -> str:
    """The first non-empty line of a tool's output or an error, cut at `limit` characters: a
    copy of ten thousand files that fails must not make a message of ten thousand lines."""
    line = next((x.strip() for x in str(text).splitlines() if x.strip()), "")
    return line[:limit] + f"... ({len(line)} characters)" if len(line) > limit else line


_KINDS = {int: "an integer", str: "a string", bool: "true or false", float: "a number",
          list: "a list", dict: "a table"}


def a_kind(kind: type) -> str:
    """A Python type as a message says what a value must be: int -> "an integer"."""
    return _KINDS.get(kind, f"of type {kind.__name__}")
