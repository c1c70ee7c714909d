"""Every `--help` of the bundler's own commands ends with examples kept line by line, and the
examples use only options the command has."""

from __future__ import annotations

import shlex
from typing import List

import click
import pytest

from bundler import cli as bundler_cli

COMMANDS = [["keys"], ["keys", "generate"], ["keys", "trust"], ["keys", "untrust"],
            ["keys", "list"], ["build"], ["zipapp"], ["demo"], ["drill"], ["sign"],
            ["split"]]


def _command(path: List[str]) -> click.Command:
    cmd: click.Command = bundler_cli.cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    return cmd


def _examples(help_text: str) -> List[str]:
    """The example command lines after `Examples:`, continuation lines joined."""
    lines = help_text.split("\n  Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    joined: List[str] = []
    for line in lines:
        if line.startswith("      ") and joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + line.strip()
        else:
            assert line.startswith("    ") and not line.startswith("     "), line
            joined.append(line.strip())
    return joined


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_ends_with_examples_kept_line_by_line(path: List[str],
                                                   capsys: pytest.CaptureFixture) -> None:
    assert bundler_cli.main([*path, "--help"]) == 0
    help_text = capsys.readouterr().out
    examples = _examples(help_text)
    assert len(examples) >= 2, help_text  # rewrapped into one paragraph would be one line
    cmd = _command(path)
    for example in examples:
        words = shlex.split(example)
        words = words[words.index("rescue") + 1:]  # after any VAR=value prefix
        assert words[:len(path)] == path, example
        if isinstance(cmd, click.Group):
            continue
        known = {opt for p in cmd.params for opt in p.opts}
        used = {w.split("=", 1)[0] for w in words[len(path):] if w.startswith("-")}
        assert used <= known, f"{example}: {sorted(used - known)} is not an option of it"
