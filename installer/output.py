"""What every installer command prints: one JSON schema, and the checklist as a table."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import click

from manifests.progress import Terminal


def emit_json(doc: Dict[str, Any], one_line: bool = False) -> None:
    """One JSON document on stdout, in the schema every command shares (README "JSON");
    `one_line` for a command that keeps running after it (a script reads one line)."""
    doc = {"ok": True, "exit_code": 0, "error": None, **doc}
    click.echo(json.dumps(doc, indent=None if one_line else 2, sort_keys=True))


def progress(label: str, as_json: bool) -> Terminal:
    """Bytes, files, rate and ETA on a terminal's stderr; nothing in a pipe or with --json."""
    bar = Terminal(label)
    bar.on = bar.on and not as_json
    return bar


def print_checks(checks: List[Any]) -> None:
    width = max((len(c.name) for c in checks), default=10)
    for c in checks:
        mark = "FAIL" if not c.ok else "WARN" if getattr(c, "warn", False) else "ok  "
        click.echo(f"  {mark} {c.name:<{width}}  {c.got}")
        if not c.ok or getattr(c, "warn", False):
            click.echo(f"       {'':<{width}}  expected: {c.expected}")
        for line in getattr(c, "detail", ()):  # why, where it is set, the fix
            click.echo(f"       {'':<{width}}  {line}")
