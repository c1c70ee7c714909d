"""Guarded switches under stress: a guard killed, interrupted or hung, a failure pattern that
backtracks forever, output by the hundred megabytes, children that outlive their command, and
a guard journal left behind damaged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from installer import guard
from manifests.limits import DEFAULT_LIMITS
from tests.support import bundles, craft
from tests.support.clirun import run
from tests.support.users import STOCK_PYTHON, User, chown_tree

OLD, NEW = "go1.21.13.linux-amd64", "go1.22.0.linux-amd64"
ROOT = Path(__file__).resolve().parents[1]
RUN = "0" * 32



def _bundles(where: Path, key: Path) -> List[Path]:
    """go1.21.13, then go1.22.0: fakes whose go passes a guard's build, verify and list."""
    out = []
    for seq, version in enumerate(["go1.21.13", "go1.22.0"], start=1):
        c = craft.Craft(sequence=seq)
        c.toolchain(version=version, builds=True)
        out.append(c.write(where / f"{seq}.tar.zst", key))
    return out


@pytest.fixture
def two(tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> Path:
    """A prefix with go1.21.13 and go1.22.0 (current), and a project dir at tmp_path/app."""
    prefix = tmp_path / "P"
    for b in _bundles(tmp_path, signing.key):
        code, _, err = run(["install", b, "--prefix", prefix, "--trust", signing.signers],
                           capsys)
        assert code == 0, err
    (tmp_path / "app").mkdir()
    return prefix


def _use_old(prefix: Path, *guard: Any) -> List[Any]:
    return ["use", "1.21.13", "--prefix", prefix, "--guard-project", prefix.parent / "app",
            *guard]


def _current(prefix: Path) -> str:
    return os.readlink(prefix / "current").rsplit("/", 1)[-1]


def _gone(pid: int) -> bool:
    """The process is gone (or a zombie waiting for init)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _history(prefix: Path) -> List[Dict[str, Any]]:
    text = (prefix / "state" / "history.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


# --- a guard that hangs, leaves children, or matches forever ------------------------------

def test_guard_that_hangs_is_killed_at_its_timeout_with_all_it_started(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    pids = two.parent / "pids"
    started = time.monotonic()
    code, _, err = run(_use_old(two, "--guard-timeout", "2", "--guard-cmd",
                                f"sleep 1000 & echo $! > {pids}; sleep 1000"), capsys)
    assert code == 4
    assert time.monotonic() - started < 15
    assert (f"guarded use of {OLD}: guard command `sleep 1000 & echo $! > {pids}; sleep 1000`"
            f" in {two.parent / 'app'} failed (timed out): timed out after 2s; {NEW} is current "
            "again (checklist ok") in err
    assert _current(two) == NEW
    assert _gone(int(pids.read_text()))


@pytest.mark.parametrize("child", ["sleep 1000", "setsid sleep 1000"])
def test_background_child_neither_fails_a_passing_guard_nor_outlives_it(
        two: Path, child: str, capsys: pytest.CaptureFixture) -> None:
    pids = two.parent / "pids"
    started = time.monotonic()
    code, out, err = run(_use_old(two, "--guard-timeout", "60", "--guard-cmd",
                                  f"{child} & echo $! > {pids}; echo tests pass"), capsys)
    assert code == 0, err
    assert "guard     passed in" in out
    assert time.monotonic() - started < 15  # not the 60 s timeout waiting on the pipe
    assert _current(two) == OLD
    assert _gone(int(pids.read_text()))
    assert not (two / "state" / "guard-pending.json").exists()


def test_child_that_leaves_the_session_and_keeps_writing_neither_hangs_nor_outlives_it(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    pids = two.parent / "pids"
    started = time.monotonic()
    code, _, err = run(_use_old(two, "--guard-timeout", "60", "--guard-cmd",
                                f"setsid yes & echo $! > {pids}"), capsys)
    assert code == 0, err
    assert time.monotonic() - started < 20
    assert _gone(int(pids.read_text()))  # swept by the guard run's id at its end


@pytest.mark.parametrize("result, says", [
    ({"stuck": ""}, "its output was still coming after the guard timeout (2s), from a process "
                    "it started that left its session"),
    (guard._result(b""), "the output matcher gave no verdict within the guard timeout (2s); "
                         "this is a bug in rescue, the output so far is in the log"),
])
def test_matcher_without_a_verdict_fails_the_guard(
        tmp_path: Path, result: Dict[str, Any], says: str) -> None:
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    try:
        failure = guard._verdict(0, result, 2.0, fd, "stage", tmp_path / "log")
    finally:
        os.close(fd)
    assert failure is not None and (failure.exit_code, failure.line) == (0, says)


def test_catastrophic_fail_pattern_is_stopped_at_the_guard_timeout_and_named(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    started = time.monotonic()
    code, _, err = run(_use_old(two, "--guard-timeout", "2", "--fail-pattern", "(a+)+$",
                                "--guard-cmd", "echo " + "a" * 64 + "!"), capsys)
    assert code == 4
    assert time.monotonic() - started < 20
    assert ("failed (exit 0): --fail-pattern '(a+)+$' was still matching after the guard "
            "timeout (2s); a pattern that backtracks like this can take years: make it simpler;"
            f" {NEW} is current again") in err
    assert _current(two) == NEW


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_guard_timeout_must_be_a_positive_number_of_seconds(
        two: Path, timeout: str, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(_use_old(two, "--guard-timeout", timeout), capsys)
    assert code == 2
    assert ("reading the command line: --guard-timeout must be a number of seconds above 0, "
            f"not {float(timeout):g}") in err
    assert _current(two) == NEW


# --- output: streamed, matched line by line, bounded, rotated -----------------------------

# The peak is this process's own VmHWM, not ru_maxrss: Linux carries the maxrss of the image
# before exec over, and the test runner that spawned the probe may be hundreds of MB by then.
RSS_PROBE = """
import resource, sys
from installer import cli, guard
code = cli.main(sys.argv[1:])
hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print("RSS", hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code,
      file=sys.stderr)
"""


def test_500_mb_of_guard_output_streams_through_in_bounded_memory(two: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, *map(str, _use_old(
            two, "--guard-cmd", "yes | head -c 500000000", "--json"))],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    rss = done.stderr.rsplit("RSS ", 1)[1].split()
    self_kb, children_kb, code = int(rss[0]), int(rss[1]), int(rss[2])
    print(f"500 MB guard output: rescue peak RSS {self_kb / 1024:.0f} MiB, "
          f"children peak {children_kb / 1024:.0f} MiB")
    assert code == 0, done.stderr
    assert self_kb < 120 * 1024  # it was 2 GB when the output was held whole
    assert children_kb < 120 * 1024
    log = Path(json.loads(done.stdout)["guard"]["log"])
    limits = DEFAULT_LIMITS
    assert log.stat().st_size < limits.guard_log_bytes + 4 * limits.guard_log_tail_bytes
    assert "bytes of output not kept: a guard log keeps the first" in log.read_text()


def test_failure_line_after_the_log_is_full_is_still_found(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(_use_old(two, "--guard-cmd", "yes | head -c 40000000; "
                                "echo 'x.go:1: internal compiler error: boom'; yes | head -c 9"),
                       capsys)
    assert code == 4
    assert "failed (exit 0): x.go:1: internal compiler error: boom;" in err
    log = Path(err.split("Full log: ")[1].split()[0])
    text = log.read_text()
    assert "internal compiler error: boom" in text  # the tail of the output is kept
    assert log.stat().st_size < DEFAULT_LIMITS.guard_log_bytes + 2 * 65536


def test_guard_logs_are_rotated_keeping_the_newest(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    logs = two / "state" / "guard-logs"
    logs.mkdir(parents=True, exist_ok=True)
    for i in range(30):
        (logs / f"old-{i:02d}.log").write_text("old\n")
        os.utime(logs / f"old-{i:02d}.log", (1000 + i, 1000 + i))
    code, _, err = run(_use_old(two, "--guard-cmd", "true"), capsys)
    assert code == 0, err
    names = sorted(os.listdir(logs))
    assert len(names) == DEFAULT_LIMITS.guard_logs_kept
    assert "old-10.log" not in names and "old-11.log" in names  # the oldest went


def test_ctrl_c_mid_guard_of_an_install_switches_back_before_exit_130(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    prefix, app = tmp_path / "P", tmp_path / "app"
    app.mkdir()
    old, new = _bundles(tmp_path, signing.key)
    trust = ["--prefix", prefix, "--trust", signing.signers]
    assert run(["install", old, *trust], capsys)[0] == 0
    # The guard command presses Ctrl-C for the operator: SIGINT to rescue, its parent.
    code, out, err = run(["install", new, *trust, "--guard-project", app, "--guard-cmd",
                          "kill -INT $PPID; sleep 1000", "--json"], capsys)
    assert code == 130
    assert (f"guarded install of {NEW}: interrupted while its guard ran; {OLD} is current again"
            " (checklist ok") in err
    assert json.loads(out)["error"]["type"] == "interrupted"
    assert _current(prefix) == OLD
    assert not (prefix / "state" / "guard-pending.json").exists()
    assert not _left_in(app)


def test_ctrl_c_mid_guard_of_a_first_install_says_it_stays_unverified(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    prefix, app = tmp_path / "P", tmp_path / "app"
    app.mkdir()
    code, _, err = run(["install", _bundles(tmp_path, signing.key)[0], "--prefix", prefix,
                        "--trust", signing.signers, "--guard-project", app, "--guard-cmd",
                        "kill -INT $PPID; sleep 1000"], capsys)
    assert code == 130
    assert (f"guarded install of {OLD}: interrupted while its guard ran; {OLD} stays current, "
            "unverified (nothing was current before it)") in err
    assert not (prefix / "state" / "guard-pending.json").exists()


# --- the journal of a guarded switch ------------------------------------------------------

@pytest.mark.parametrize("doc, problem", [
    ({"op": "use", "guarded": OLD, "previous": "../../etc", "started": 0, "run": RUN},
     "its previous toolchain '../../etc' is not an installed toolchain"),
    ({"op": "use", "guarded": "/bin", "previous": NEW, "started": 0, "run": RUN},
     "its guarded toolchain '/bin' is not a toolchain id"),
    ({"op": "rm -rf", "guarded": OLD, "previous": NEW, "started": 0, "run": RUN},
     "its op 'rm -rf' is not one of install, use"),
    ({"op": "use", "guarded": OLD, "previous": NEW, "started": 0, "run": ""},
     "its run id is not one rescue writes"),
    ("[[[", "not JSON"),
])
def test_damaged_guard_journal_is_reported_and_dropped_never_trusted(
        two: Path, doc: Any, problem: str, capsys: pytest.CaptureFixture) -> None:
    pending = two / "state" / "guard-pending.json"
    pending.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    code, out, err = run(["pin", "1.22.0", "--prefix", two], capsys)
    assert code == 0, err
    assert (f"note      reading the guarded-switch journal {pending}: {problem}") in out
    assert "rescue removed it and trusted nothing in it" in out
    assert not pending.exists()
    assert _current(two) == NEW


def test_guard_journal_that_is_a_directory_stops_commands_until_moved(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    pending = two / "state" / "guard-pending.json"
    pending.mkdir()
    code, _, err = run(["pin", "1.22.0", "--prefix", two], capsys)
    assert code == 2
    assert (f"reading the guarded-switch journal {pending}: it is a directory; move it away "
            f"(`mv {pending} {pending}.bad`) and run the command again") in err
    assert _current(two) == NEW


@pytest.mark.parametrize("previous, says", [
    (None, f"a guard of {NEW} was cut short and no toolchain was current before it; {NEW} "
           f"stays current, unverified: check it with `use {NEW} --guard-project DIR`"),
    (NEW, f"a guard of {NEW} was cut short; it was current before and stays current"),
])
def test_guard_cut_short_with_nothing_to_go_back_to_says_so(
        two: Path, previous: Any, says: str, capsys: pytest.CaptureFixture) -> None:
    (two / "state" / "guard-pending.json").write_text(json.dumps(
        {"op": "install", "guarded": NEW, "previous": previous, "started": 0, "run": RUN}))
    code, out, err = run(["pin", "1.22.0", "--prefix", two], capsys)
    assert code == 0, err
    assert f"note      {says}\n" in out
    assert _current(two) == NEW


def test_guard_cut_short_whose_previous_toolchain_now_fails_its_checklist_says_so(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    go = two / "versions" / OLD / "bin" / "go"
    go.parent.chmod(0o755)
    go.unlink()
    go.write_text("#!/bin/sh\nexit 1\n")
    go.chmod(0o755)
    (two / "state" / "guard-pending.json").write_text(json.dumps(
        {"op": "use", "guarded": NEW, "previous": OLD, "started": 0, "run": RUN}))
    code, out, err = run(["pin", "1.22.0", "--prefix", two], capsys)
    assert code == 0, err
    assert (f"note      a guard of {NEW} was cut short; putting {OLD} back failed (switching to"
            f" {OLD}: the emergency checklist failed (") in out
    assert f"{NEW} stays current, unverified: run `doctor`" in out
    assert _current(two) == NEW and not (two / "state" / "guard-pending.json").exists()


def test_guard_journal_planted_as_a_link_is_dropped_not_followed(
        two: Path, capsys: pytest.CaptureFixture) -> None:
    target = two.parent / "elsewhere.json"
    target.write_text(json.dumps({"op": "use", "guarded": NEW, "previous": OLD,
                                  "started": 0, "run": RUN}))
    pending = two / "state" / "guard-pending.json"
    pending.symlink_to(target)
    code, out, err = run(["pin", "1.22.0", "--prefix", two], capsys)
    assert code == 0, err
    assert "it is a symbolic link, which rescue never follows" in out
    assert _current(two) == NEW and target.exists() and not os.path.lexists(pending)


# --- rescue itself killed or interrupted mid-guard (the real pyz, root and uid 65534) ----

def _ready(user: User, pyz: Path, signing: bundles.Signing,
           installs: int = 2) -> Tuple[List[str], Path, Path]:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    prefix, app = user.work / "P", user.work / "app"
    app.mkdir()
    chown_tree(app, user.uid)
    for b in _bundles(user.work, signing.key)[:installs]:
        chown_tree(b, user.uid)
        done = user.run([*rescue, "install", str(b), "--prefix", str(prefix)], offline=True)
        assert done.returncode == 0, done.stderr
    return rescue, prefix, app


def _left_in(app: Path) -> List[int]:
    """Processes still working in the project dir."""
    out = []
    for n in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{n}/cwd") == str(app) and not _gone(int(n)):
                out.append(int(n))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("point", ["use-journaled", "guard-running-go", "guard-running-sh"])
def test_guard_cut_short_by_a_kill_puts_the_previous_toolchain_back_next_command(
        point: str, user: User, pyz: Path, signing: bundles.Signing) -> None:
    rescue, prefix, app = _ready(user, pyz, signing)
    p = ["--prefix", str(prefix)]
    marker = user.work / "started"
    killed = user.run([*rescue, "use", "1.21.13", *p, "--guard-project", str(app),
                       "--guard-cmd", f"sleep 1000 & echo $$ > {marker}; sleep 1000"],
                      env=user.env(RESCUE_CRASH_AT=point), offline=True)
    assert killed.returncode == -9, killed.stderr
    assert (prefix / "state" / "guard-pending.json").exists()
    if point == "guard-running-sh":  # the guard command outlived the rescue that ran it
        deadline = time.monotonic() + 30
        while len(_left_in(app)) < 3:
            assert time.monotonic() < deadline, _left_in(app)
            time.sleep(0.05)
    nxt = user.run([*rescue, "pin", "1.22.0", *p], offline=True)  # any locked command
    assert nxt.returncode == 0, nxt.stderr
    assert (f"note      a guard of {OLD} was cut short; {NEW} is current again (checklist ok"
            in nxt.stdout)
    if point == "guard-running-sh":
        assert "(ended 3 processes its guard left running)" in nxt.stdout
        assert not _left_in(app)
    assert _current(prefix) == NEW
    last = _history(prefix)[-1]
    assert (last["op"], last["from"], last["to"]) == ("guard-rollback", OLD, NEW)
    assert last["why"] == f"the guard of {OLD} after use was cut short (killed or interrupted)"
    assert not (prefix / "state" / "guard-pending.json").exists()
    again = user.run([*rescue, "pin", "1.22.0", *p], offline=True)
    assert "cut short" not in again.stdout  # acted on once


@pytest.mark.parametrize("point", ["install-staged", "guard-running-sh"])
def test_guarded_install_cut_short_by_a_kill_puts_the_previous_toolchain_back_next_command(
        point: str, user: User, pyz: Path, signing: bundles.Signing) -> None:
    rescue, prefix, app = _ready(user, pyz, signing, installs=1)
    p = ["--prefix", str(prefix)]
    killed = user.run([*rescue, "install", str(user.work / "2.tar.zst"), *p, "--guard-project",
                       str(app), "--guard-cmd", "sleep 1000"],
                      env=user.env(RESCUE_CRASH_AT=point), offline=True)
    assert killed.returncode == -9, killed.stderr
    nxt = user.run([*rescue, "pin", "1.21.13", *p], offline=True)
    assert nxt.returncode == 0, nxt.stderr
    if point == "install-staged":  # killed before the switch: nothing to put back
        assert (f"note      a guard of {NEW} was cut short before {NEW} became current; {OLD} "
                "stays current") in nxt.stdout
    else:
        assert (f"note      a guard of {NEW} was cut short; {OLD} is current again (checklist "
                "ok") in nxt.stdout
        assert "(ended 2 processes its guard left running)" in nxt.stdout
        assert _history(prefix)[-1]["why"] == (f"the guard of {NEW} after install was cut "
                                               "short (killed or interrupted)")
    assert _current(prefix) == OLD and not _left_in(app)


def test_ctrl_c_mid_guard_switches_back_before_exit_130(
        user: User, pyz: Path, signing: bundles.Signing) -> None:
    rescue, prefix, app = _ready(user, pyz, signing)
    marker = user.work / "started"
    proc = subprocess.Popen(
        user.argv([*rescue, "use", "1.21.13", "--prefix", str(prefix), "--guard-project",
                   str(app), "--guard-cmd", f"echo $$ > {marker}; sleep 1000"], offline=True),
        env=user.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (f"guarded use of {OLD}: interrupted while its guard ran; {NEW} is current again "
            "(checklist ok") in err
    assert _current(prefix) == NEW
    assert _gone(int(marker.read_text()))
    assert not (prefix / "state" / "guard-pending.json").exists()
    last = _history(prefix)[-1]
    assert (last["op"], last["to"], last["why"]) == (
        "guard-rollback", NEW, f"the guard of {OLD} after use was interrupted (Ctrl-C)")
