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


def plain(text: object, limit: int = 4 * SHOWN_CHARS) -> str:
    """Untrusted text in a line meant for people: as it is when it is printable and short,
    else as `shown` quotes it (so an escape sequence in a file can never reach a terminal)."""
    s = str(text)
    return s if s.isprintable() and len(s) <= limit else shown(s, limit)
