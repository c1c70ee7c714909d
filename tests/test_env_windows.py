"""env.cmd and env.ps1 as written for a Windows prefix (cmd.exe runs env.cmd under Wine in
tests/test_windows_wine.py; PowerShell is not there, so env.ps1 is checked as text)."""

from __future__ import annotations

from pathlib import Path

from installer import wiring
from installer.prefix import Layout


def test_env_cmd_doubles_percent_signs_so_cmd_expands_none_of_the_path() -> None:
    text = wiring.shell_snippets(Layout(Path("/srv/100% go")))["env.cmd"]
    assert text.endswith("\r\n") and "\r\n\r\n" not in text
    lines = text.split("\r\n")
    assert 'set "RESCUE_BIN=/srv/100%% go/current\\bin"' in lines
    # %25 of the file:// URL stays %25 once cmd.exe reads the batch file
    assert 'set "GOPROXY=file:///srv/100%%25%%20go/goproxy"' in lines
    assert lines[-2] == 'set "GOROOT="'


def test_env_ps1_reads_a_pointer_file_current() -> None:
    text = wiring.shell_snippets(Layout(Path("/srv/o'neil")))["env.ps1"]
    assert "$rescueCurrent = '/srv/o''neil/current'\n" in text
    assert "if (Test-Path -LiteralPath $rescueCurrent -PathType Leaf) {\n" in text
    assert "Remove-Item Env:GOROOT -ErrorAction SilentlyContinue\n" in text


def test_windows_messages_say_to_dot_source_env_ps1(monkeypatch) -> None:
    from installer import hostos

    monkeypatch.setattr(hostos, "WINDOWS", True)
    assert wiring.source_line(Path("/srv/o'neil")) == ". '/srv/o''neil/env.ps1'"
