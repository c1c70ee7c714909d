"""`rescue doctor` on the user's GOENV file: found where go finds it, read by doctor itself
(bounded, never waiting on a FIFO), and each line that overrides the offline wiring named with
its file, line and fix, whatever state the go on PATH is in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest

from installer import doctor, goenv_file
from manifests.limits import DEFAULT_LIMITS
from tests.support import bundles, gobin, prefixes
from tests.support.deadline import deadline
from tests.support.users import STOCK_PYTHON, User
from tests.test_doctor import SYSTEM_PATH, fake_goroot, of, run_doctor
from tests.test_user_go_settings import hello, install

CORP = "https://proxy.corp.invalid,direct"
# Everything in the test runner's environment that would change what go reads.
GO_VARS = ("GOENV", "XDG_CONFIG_HOME", "GOROOT", "GOPATH", "GOPROXY", "GOSUMDB", "GOFLAGS",
           "GOTOOLCHAIN", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOWORK")
# An old go whose `go version` answers but whose `go env` fails.
OLD_GO = ('#!/bin/sh\ncase "$1" in version) echo "go version go1.20.14 linux/amd64" ;;\n'
          '*) echo "go: cannot find GOROOT directory: /usr/local/go-1.20" >&2; exit 2 ;; esac\n')


def real_go_current(P: Path) -> None:
    """Put the real go 1.21.13 binary into the fake current GOROOT (which has pkg/tool, so go
    takes it as its GOROOT and reads its wired go.env): `go env` as the real go answers it."""
    bindir = Path(os.path.realpath(P / "current")) / "bin"
    bindir.chmod(0o755)
    (bindir / "go").chmod(0o755)
    shutil.copy2(gobin.goroot() / "bin" / "go", bindir / "go")


@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing) -> Path:
    P = prefixes.install_fakes(tmp_path, signing, ["go1.21.13"], sdk=True)
    real_go_current(P)
    return P


@pytest.fixture
def shell(tmp_path: Path, prefix: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The issue's shell: an old go first on PATH whose `go env` fails, its GOROOT exported,
    rescue's go not on PATH (env.sh never sourced), an empty HOME and /etc."""
    home, etc = tmp_path / "home", tmp_path / "etc"
    home.mkdir()
    etc.mkdir()
    for key in GO_VARS:
        monkeypatch.delenv(key, raising=False)
    old = fake_goroot(tmp_path / "old-go", "go1.20.14")
    (old / "bin" / "go").write_text(OLD_GO)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{old}/bin:{SYSTEM_PATH}")
    monkeypatch.setenv("GOROOT", str(old))
    monkeypatch.setenv(doctor.ETC_ENV, str(etc))
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def goproxy_finding(P: Path, goenv: Path, line: int) -> Dict[str, str]:
    return {"check": "setting GOPROXY", "severity": "error",
            "message": f"GOPROXY={CORP}: go would fetch modules over the network "
                       "(https://proxy.corp.invalid, direct) instead of from the bundles' proxy",
            "evidence": f"set in your GOENV file {goenv} line {line} (GOPROXY={CORP})",
            "fix": f"go env -u GOPROXY or . {P}/env.sh  (exports GOPROXY=file://{P}/goproxy)"}


# --- the issue's shell, in-process ----------------------------------------------------------


def test_goenv_goproxy_is_named_with_file_and_line_when_the_go_on_path_cannot_answer(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    goenv = write(shell / ".config" / "go" / "env", f"GOPROXY={CORP}\n")
    code, doc, text = run_doctor(prefix, capsys)
    assert code == 4
    [env] = of(doc, "go env", "error")
    assert env["message"].startswith("`go env` failed: go: cannot find GOROOT directory")
    [by] = of(doc, "settings")
    assert by == {"check": "settings", "severity": "info", "fix": "",
                  "message": "the go on PATH cannot answer `go env`: the settings below are "
                             f"judged with rescue's {prefix}/current/bin/go, run with your "
                             f"environment without your GOROOT={tmp_path}/old-go, which names "
                             "another tree, as it runs once PATH puts it first",
                  "evidence": f"{prefix}/current/bin/go"}
    assert of(doc, "setting GOPROXY") == [goproxy_finding(prefix, goenv, 1)]
    # Nothing else in the wiring is overridden: rescue's go reads its own go.env for the rest.
    assert [f["check"] for f in doc["findings"] if f["check"].startswith("setting ")] == [
        "setting GOPROXY"]
    assert f"       at:  set in your GOENV file {goenv} line 1 (GOPROXY={CORP})\n" in text
    assert not of(doc, "goenv-file"), "the file itself is sound"


def test_settings_are_read_by_doctor_when_no_go_answers(
        prefix: Path, shell: Path, capsys: pytest.CaptureFixture[str]) -> None:
    goenv = write(shell / ".config" / "go" / "env", f"GOFLAGS=-modcacherw\nGOPROXY={CORP}\n")
    mine = Path(os.path.realpath(prefix / "current")) / "bin" / "go"
    mine.write_text(OLD_GO)  # rescue's own go is broken too
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [by] = of(doc, "settings")
    assert by["message"] == (
        f"no go answers `go env` (neither the go on PATH nor rescue's {prefix}/current/bin/go): "
        "doctor judged the settings below from your environment, your GOENV file and the "
        "GOROOT's go.env")
    assert of(doc, "setting GOPROXY") == [goproxy_finding(prefix, goenv, 2)]
    [flags] = of(doc, "setting GOFLAGS", "warning")
    assert flags["message"] == ("GOFLAGS=-modcacherw: go applies these flags to every command; "
                                "none of them reaches the network")
    assert flags["evidence"] == f"set in your GOENV file {goenv} line 1 (GOFLAGS=-modcacherw)"


# --- where go finds the file ----------------------------------------------------------------


def test_goenv_file_is_found_where_the_real_go_finds_it(tmp_path: Path, go_bin: Path) -> None:
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    cases: List[Dict[str, str]] = [
        {"HOME": str(home)}, {"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)},
        {"HOME": str(home), "GOENV": str(tmp_path / "other")},
        {"HOME": str(home), "GOENV": "off"}, {"XDG_CONFIG_HOME": str(xdg)}]
    for env in cases:
        said = subprocess.run([str(go_bin), "env", "GOENV"], env={"PATH": SYSTEM_PATH, **env},
                              capture_output=True, text=True, timeout=60)
        assert said.returncode == 0, said.stderr
        assert goenv_file.locate(env, "linux")[0] == said.stdout.strip(), env
    assert goenv_file.locate({"HOME": str(home)}, "linux") == (
        f"{home}/.config/go/env", "$HOME/.config/go/env")
    assert goenv_file.locate({"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}, "linux") == (
        f"{xdg}/go/env", "$XDG_CONFIG_HOME/go/env")
    assert goenv_file.locate({"GOENV": "off", "HOME": str(home)}) == ("", "GOENV=off")
    assert goenv_file.locate({}, "linux") == ("", "$HOME/.config is not set")
    # Go 1.22 on reads no file for a relative XDG_CONFIG_HOME (os.UserConfigDir).
    assert goenv_file.locate({"HOME": str(home), "XDG_CONFIG_HOME": "rel"}, "linux") == (
        "", "XDG_CONFIG_HOME=rel is relative")
    assert goenv_file.locate({"HOME": "/h"}, "darwin")[0] == "/h/Library/Application Support/go/env"


def test_goenv_elsewhere_xdg_config_home_and_off_as_doctor_reads_them(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    in_home = write(shell / ".config" / "go" / "env", "GOFLAGS=-modcacherw\n")
    other = write(tmp_path / "elsewhere" / "goenv", f"GOFLAGS=-mod=mod\nGOPROXY={CORP}\n")
    monkeypatch.setenv("GOENV", str(other))
    code, doc, _ = run_doctor(prefix, capsys)
    assert of(doc, "setting GOPROXY") == [goproxy_finding(prefix, other, 2)]
    [flags] = of(doc, "setting GOFLAGS", "error")
    assert flags["evidence"] == f"set in your GOENV file {other} line 1 (GOFLAGS=-mod=mod)"
    assert str(in_home) not in json.dumps(doc)

    monkeypatch.delenv("GOENV")
    xdg = write(tmp_path / "xdg" / "go" / "env", f"GOPROXY={CORP}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, doc, _ = run_doctor(prefix, capsys)
    assert of(doc, "setting GOPROXY") == [goproxy_finding(prefix, xdg, 1)]
    assert not of(doc, "setting GOFLAGS"), "~/.config/go/env is not read then"

    monkeypatch.setenv("GOENV", "off")
    code, doc, _ = run_doctor(prefix, capsys)
    assert not [f for f in doc["findings"] if f["check"].startswith("setting ")]
    assert not of(doc, "goenv-file")
    assert code == 4, "the old go winning on PATH still breaks builds"


# --- a GOENV file go cannot use, in a clean shell: rescue's go first on PATH -----------------


@pytest.fixture
def clean(prefix: Path, shell: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{prefix}/current/bin:{SYSTEM_PATH}")
    monkeypatch.delenv("GOROOT")
    return shell / ".config" / "go" / "env"


def test_goenv_fifo_is_named_and_never_waited_on(
        prefix: Path, clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    clean.parent.mkdir(parents=True)
    os.mkfifo(clean)
    started = time.monotonic()
    with deadline(60):
        code, doc, _ = run_doctor(prefix, capsys)
    assert time.monotonic() - started < 30
    assert code == 4
    assert of(doc, "goenv-file") == [{
        "check": "goenv-file", "severity": "error",
        "message": f"your GOENV file {clean}: it is a FIFO (named pipe), not a regular file; go "
                   "reads it whole before every command, so every go command waits on it "
                   "without end (doctor ran go with GOENV=off)",
        "evidence": f"{clean} (found as go finds it: $HOME/.config/go/env)",
        "fix": f"rm {clean}, then set again only what you need with go env -w"}]
    assert not [f for f in doc["findings"] if f["check"].startswith("setting ")]

    fifo = tmp_path / "goenv.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("GOENV", str(fifo))
    with deadline(60):
        code, doc, _ = run_doctor(prefix, capsys)
    [f] = of(doc, "goenv-file")
    assert f["evidence"] == f"{fifo} (found as go finds it: GOENV={fifo})"
    assert f["fix"] == "unset GOENV (and remove the export from your shell profile)"
    monkeypatch.setenv("GOENV", "/dev/zero")  # go would read it without end
    with deadline(60):
        code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    assert of(doc, "goenv-file")[0]["message"] == (
        "your GOENV file /dev/zero: it is a character device, not a regular file; go reads it "
        "whole before every command, so every go command waits on it without end (doctor ran "
        "go with GOENV=off)")
    monkeypatch.setenv("GOENV", os.devnull)  # how people turn it off: nothing to say
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 0 and not of(doc, "goenv-file")


def test_goenv_file_too_large_or_damaged_is_named_and_what_go_reads_still_judged(
        prefix: Path, clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    limit = DEFAULT_LIMITS.goenv_file_bytes
    write(clean, f"GOPROXY={CORP}\n" + "#" * limit + "\n")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    assert of(doc, "goenv-file") == [{
        "check": "goenv-file", "severity": "error",
        "message": f"your GOENV file {clean}: it holds {limit + len(CORP) + 10} bytes, more "
                   f"than the {limit} doctor reads (`go env -w` writes a few lines); doctor "
                   "cannot say which settings in it override the offline wiring, and go "
                   "applies every one of them",
        "evidence": f"{clean} (found as go finds it: $HOME/.config/go/env)",
        "fix": f"mv {clean} {clean}.unread, then set again only what you need with go env -w"}]
    # go itself read it: the setting is judged, though doctor cannot say where it is set.
    [proxy] = of(doc, "setting GOPROXY", "error")
    assert proxy["evidence"] == ("not set in your environment or GOENV file; the GOROOT's "
                                 "go.env was changed?")

    clean.write_bytes(f"GOPROXY={CORP}\n".encode() + b"\0" * 40)  # cut short by a crash
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [damaged] = of(doc, "goenv-file", "error")
    assert damaged["message"] == (
        f"your GOENV file {clean} is damaged: line 2 holds a NUL byte, which `go env -w` never "
        "writes (cut short by a crash, or written by another program); go still applies each "
        "KEY=VALUE line in it")
    assert damaged["fix"] == (f"mv {clean} {clean}.damaged, then set again only what you need "
                              "with go env -w")
    assert of(doc, "setting GOPROXY") == [goproxy_finding(prefix, clean, 1)]
    clean.write_bytes(b"GOFLAGS=-modcacherw\n\xff\xfe\n")
    code, doc, _ = run_doctor(prefix, capsys)
    assert of(doc, "goenv-file")[0]["message"].startswith(
        f"your GOENV file {clean} is damaged: line 2 is not UTF-8 text, which")


def test_goenv_path_go_cannot_read_sets_nothing(
        prefix: Path, clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean.mkdir(parents=True)
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 0
    assert of(doc, "goenv-file") == [{
        "check": "goenv-file", "severity": "info", "fix": "",
        "message": f"your GOENV file {clean}: it is a directory; go cannot read it either and "
                   "carries on without it, so it sets nothing",
        "evidence": f"{clean} (found as go finds it: $HOME/.config/go/env)"}]
    clean.rmdir()
    clean.symlink_to(clean.name)  # a link to itself: no one can open it
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 0
    assert of(doc, "goenv-file")[0]["message"] == (
        f"your GOENV file {clean}: it cannot be opened (Too many levels of symbolic links); go "
        "cannot read it either and carries on without it, so it sets nothing")


def test_goenv_line_hidden_by_an_export_is_named_for_every_go_started_without_it(
        prefix: Path, clean: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean, f"GOTOOLCHAIN=local\nGOPROXY={CORP}\n")
    # What `. P/env.sh` exports: this shell is fine, a cron job or an IDE is not.
    monkeypatch.setenv("GOPROXY", f"file://{prefix}/goproxy")
    monkeypatch.setenv("GOTOOLCHAIN", "auto")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 1
    assert not [f for f in doc["findings"] if f["check"].startswith("setting ")]
    got = {f["evidence"]: f for f in of(doc, "goenv-file")}
    assert got[f"{clean}:2: GOPROXY={CORP}"] == {
        "check": "goenv-file", "severity": "warning",
        "message": f"your GOENV file {clean} line 2 sets GOPROXY={CORP}, which this shell hides "
                   f"with the exported GOPROXY=file://{prefix}/goproxy; a go started without "
                   "that export (a shell that does not source env.sh, cron, an IDE) reads it: go "
                   "would fetch modules over the network (https://proxy.corp.invalid, direct) "
                   "instead of from the bundles' proxy",
        "evidence": f"{clean}:2: GOPROXY={CORP}", "fix": "go env -u GOPROXY"}
    assert got[f"{clean}:1: GOTOOLCHAIN=local"]["message"].endswith(
        "reads it: go never switches per go.mod: a project that needs a newer go fails even "
        "when this prefix carries it")


# --- the issue's shell with the real toolchain, through `python3 -I rescue.pyz doctor`, as root
# and as uid 65534 ------------------------------------------------------------------------------


def test_doctor_names_the_goenv_goproxy_behind_a_broken_go_as_every_user(
        user: User, pyz: Path, toolchain_bundle: Path) -> None:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    P = user.home / "P"
    installed = install(user, rescue, user.give(toolchain_bundle), P)
    assert installed.returncode == 0, installed.stderr
    old = fake_goroot(user.work / "old-go", "go1.20.14")
    (old / "bin" / "go").write_text(OLD_GO)
    goenv = write(user.home / ".config" / "go" / "env", f"GOPROXY={CORP}\n")
    bashrc = write(user.home / ".bashrc", f"export GOROOT={old}\nexport PATH={old}/bin:$PATH\n")
    etc = user.work / "etc"
    etc.mkdir()
    for p in (user.home / ".config", goenv.parent, goenv, bashrc, etc):
        os.chown(p, user.uid, user.uid)
    env = user.env(PATH=f"{old}/bin:{SYSTEM_PATH}", GOROOT=str(old),
                   **{doctor.ETC_ENV: str(etc)})

    # What the issue says happens once PATH is fixed and env.sh is not sourced.
    asked = user.run([str(P / "current" / "bin" / "go"), "list", "-m", "rsc.io/quote@v1.5.2"],
                     offline=True, cwd=hello(user), env=user.env())
    assert asked.returncode != 0
    assert "proxy.corp.invalid" in asked.stderr, asked.stderr

    done = user.run([*rescue, "doctor", "--prefix", str(P), "--json"], offline=True, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    print(done.stdout)
    doc = json.loads(done.stdout)
    assert done.returncode == 4 == doc["exit_code"]
    assert of(doc, "setting GOPROXY") == [goproxy_finding(P, goenv, 1)]
    [by] = of(doc, "settings")
    assert by["message"].startswith(f"the go on PATH cannot answer `go env`: the settings below "
                                    f"are judged with rescue's {P}/current/bin/go")
    assert of(doc, "path-go", "error")[0]["evidence"] == f"PATH entry 1: {old}/bin"
    assert {f["evidence"].split(": ", 1)[0] for f in doc["findings"]
            if f["check"].startswith("startup-")} == {f"{bashrc}:1", f"{bashrc}:2"}

    # For people: the same finding, with the file, the line and the fix.
    text = user.run([*rescue, "doctor", "--prefix", str(P)], offline=True, env=env)
    assert text.returncode == 4
    assert (f"ERROR setting GOPROXY: GOPROXY={CORP}: go would fetch modules over the network "
            "(https://proxy.corp.invalid, direct) instead of from the bundles' proxy\n"
            f"       at:  set in your GOENV file {goenv} line 1 (GOPROXY={CORP})\n"
            f"       fix: go env -u GOPROXY or . {P}/env.sh  (exports GOPROXY=file://{P}/goproxy)"
            "\n") in text.stdout
