"""Guarded switches: after `current` changes, build and test the operator's projects with it;
any failure makes the previous toolchain current again by itself.

A failure is an exit code other than 0, a timeout, or an output line matching a failure
pattern. Each command runs in a session of its own, which is killed whole when it exits or
times out; its output streams through a child matcher (installer/guard_match) into one bounded
log under `P/state/guard-logs/` (the newest few are kept).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from installer import crashpoints, hostos
from installer.prefix import Layout
from installer.statefile import no_link
from installer.wiring import go_settings
from manifests.errors import NotReadyError
from manifests.files import NEW_FILE
from manifests.limits import DEFAULT_LIMITS as LIMITS
from manifests.pycompat import CAPTURE_TEXT

RUN_VAR = "RESCUE_GUARD_RUN"  # in every guard command's environment: this guard run's id
MATCHER_GRACE = 5.0  # seconds past the timeout for the matcher to start and report

# Lines that mean a broken toolchain or environment even when the exit code says 0.
BUILTIN_PATTERNS = (
    r"internal compiler error",
    r"signal: killed",
    r"checksum mismatch",
    r"SECURITY ERROR",
    r"cannot find GOROOT",
    r"go: downloading go1\.",  # a toolchain download: this host must not reach for one
    r"dial tcp|no such host",  # the network, on a host that has none
)


@dataclass
class Guard:
    projects: List[Path] = field(default_factory=list)
    commands: List[str] = field(default_factory=list)
    timeout: float = 600.0
    patterns: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.projects)


@dataclass
class Failure:
    stage: str  # "go build ./... in DIR", "guard command `go test ./...` in DIR"
    exit_code: Optional[int]  # None: timed out
    line: str  # the first line that matched a failure pattern, else the last output line
    log: str

    def to_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


@dataclass
class Report:
    failure: Optional[Failure] = None
    module_changes: Dict[str, List[str]] = field(default_factory=dict)  # project -> lines
    log: str = ""
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, object]:
        return {"failure": self.failure.to_dict() if self.failure else None,
                "module_changes": self.module_changes, "log": self.log,
                "seconds": round(self.seconds, 2)}


def user_env(layout: Layout) -> Dict[str, str]:
    """What the operator's shell has after `. P/env.sh`: rescue's go first, offline settings."""
    env = dict(os.environ)
    env.pop("GOROOT", None)
    env["PATH"] = f"{layout.current / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(go_settings(layout))
    return env


def module_list(project: Path, env: Dict[str, str], timeout: float) -> Optional[List[str]]:
    try:
        done = subprocess.run(["go", "list", "-m", "all"], cwd=project, env=env, timeout=timeout,
                              **CAPTURE_TEXT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split("\n") if done.returncode == 0 else None


def _compare(before: Optional[List[str]], after: Optional[List[str]]) -> List[str]:
    if before is None or after is None:
        return []
    old = dict(ln.split(" ", 1) if " " in ln else (ln, "") for ln in before if ln)
    new = dict(ln.split(" ", 1) if " " in ln else (ln, "") for ln in after if ln)
    out = [f"added {m} {new[m]}" for m in sorted(new.keys() - old.keys())]
    out += [f"removed {m} {old[m]}" for m in sorted(old.keys() - new.keys())]
    out += [f"changed {m} {old[m]} -> {new[m]}" for m in sorted(old.keys() & new.keys())
            if old[m] != new[m]]
    return out


def _matcher_argv(params: Dict[str, object]) -> List[str]:
    """`python3 -I -S -c` running installer/guard_match from where this module was loaded
    (the pyz, or the source tree): only the standard library, started in milliseconds."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from installer.guard_match import main; main(sys.argv[2])")
    return [sys.executable or "python3", "-I", "-S", "-c", code, root, json.dumps(params)]


def _exited(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait for `proc` to exit, at most until `deadline`, without reaping it: while it is a
    zombie its process group id cannot be handed to another process, so killing the group
    afterwards kills only what it left behind."""
    delay = 0.001
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
        except ChildProcessError:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's process group (its own session): every child it left running,
    `cmd &` included, goes with it, and so does its hold on the output pipe."""
    if proc.returncode is not None:
        return  # reaped: its group id may belong to someone else by now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def _run(argv: List[str], cwd: Path, env: Dict[str, str], timeout: float, log: int,
         guard: Guard, stage: str, log_path: Path) -> Optional[Failure]:
    """One guard command in a session of its own, its output streamed through the matcher
    (never held here); the command, what it started and the matcher all end by the timeout."""
    _write(log, f"$ cd {cwd} && {' '.join(argv)}\n")
    deadline = time.monotonic() + timeout
    params = {"patterns": [*BUILTIN_PATTERNS, *guard.patterns], "seconds": timeout,
              "budget": max(0, LIMITS.guard_log_bytes - os.fstat(log).st_size),
              "tail": LIMITS.guard_log_tail_bytes}
    read_end, write_end = os.pipe()
    done_read, done_write = os.pipe()  # closed when the command's group is gone: drain, report
    params["done_fd"] = done_read
    try:
        matcher = subprocess.Popen(_matcher_argv(params), stdin=read_end, stdout=log,
                                   stderr=subprocess.PIPE, pass_fds=(done_read,))
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=write_end, stderr=write_end, start_new_session=True)
        except OSError as exc:
            os.close(done_write)
            matcher.kill()
            matcher.wait()
            _write(log, f"[cannot run: {exc.strerror}]\n")
            return Failure(stage, None, f"cannot run {argv[0]}: {exc.strerror}", str(log_path))
    finally:
        for fd in (read_end, write_end, done_read):
            os.close(fd)
    crashpoints.reached(f"guard-running-{argv[0]}")
    try:
        finished = _exited(proc, deadline)
        _kill_group(proc)
        # What the group wrote is in the pipe now; a process that left the group (setsid)
        # may hold it open, so the matcher is told to stop at what is there, not at EOF.
        os.close(done_write)
        done_write = -1
        try:
            # The matcher stops itself at the timeout; the grace covers its start and report.
            _, report = matcher.communicate(timeout=max(0.0, deadline - time.monotonic())
                                            + MATCHER_GRACE)
        except subprocess.TimeoutExpired:
            report = b""
    finally:
        if done_write >= 0:
            os.close(done_write)
            _kill_group(proc)
        if matcher.poll() is None:
            matcher.kill()
            matcher.wait()
    return _verdict(proc.returncode if finished else None, _result(report), timeout, log,
                    stage, log_path)


def _result(report: bytes) -> Dict[str, object]:
    try:
        doc = json.loads(report.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        doc = None
    # A matcher killed past its grace, or broken, reports nothing.
    return doc if isinstance(doc, dict) else {"stuck": None, "silent": True}


def _verdict(code: Optional[int], result: Dict[str, object], timeout: float, log: int,
             stage: str, log_path: Path) -> Optional[Failure]:
    stuck = result.get("stuck")
    if stuck:
        _write(log, f"[--fail-pattern {stuck!r} still matching after {timeout:g}s; stopped]\n")
        return Failure(stage, code, f"--fail-pattern {stuck!r} was still matching after the "
                       f"guard timeout ({timeout:g}s); a pattern that backtracks like this can "
                       "take years: make it simpler", str(log_path))
    if code is not None and result.get("silent"):
        _write(log, f"[no verdict from the output matcher after {timeout:g}s]\n")
        return Failure(stage, code, "the output matcher gave no verdict within the guard "
                       f"timeout ({timeout:g}s); this is a bug in rescue, the output so far is "
                       "in the log", str(log_path))
    if code is not None and stuck == "":  # the pipe never ran dry once the command was gone
        _write(log, f"[output still coming after {timeout:g}s; stopped]\n")
        return Failure(stage, code, f"its output was still coming after the guard timeout "
                       f"({timeout:g}s), from a process it started that left its session",
                       str(log_path))
    if code is None:
        _write(log, f"\n[timed out after {timeout:g}s]\n")
        return Failure(stage, None, f"timed out after {timeout:g}s", str(log_path))
    _write(log, f"[exit {code}]\n")
    hit = result.get("hit")
    if code != 0 or hit is not None:
        first = hit or result.get("failish") or result.get("last") or ""
        return Failure(stage, code, str(first)[:300], str(log_path))
    return None


def _write(fd: int, text: str) -> None:
    view = memoryview(text.encode("utf-8", "replace"))
    while view:
        view = view[os.write(fd, view):]


def _open_log(layout: Layout, op: str) -> Tuple[Path, int]:
    """A new log under P/state/guard-logs, after removing the oldest beyond the limit."""
    logs = layout.state / "guard-logs"
    no_link(layout.state, "the state folder")
    no_link(logs, "the guard log folder")
    logs.mkdir(parents=True, exist_ok=True)
    old = []
    for entry in os.scandir(logs):
        if entry.name.endswith(".log"):
            with contextlib.suppress(OSError):
                old.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
    for _, name in sorted(old)[:max(0, len(old) - (LIMITS.guard_logs_kept - 1))]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(logs / name)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = logs / f"{stamp}-{op}-{os.getpid()}.log"
    return path, os.open(path, NEW_FILE | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)


def run(guard: Guard, layout: Layout, before: Dict[Path, Optional[List[str]]],
        op: str, run_id: str = "") -> Report:
    """Build, verify, list and test every guarded project with the now-current toolchain."""
    started = time.monotonic()
    log_path, log = _open_log(layout, op)
    report = Report(log=str(log_path))
    env = user_env(layout)
    env[RUN_VAR] = run_id  # what a later rescue finds them by, should this one be killed
    try:
        with tempfile.TemporaryDirectory(prefix="rescue-guard-") as out_dir:
            for project in guard.projects:
                steps: List[Tuple[str, List[str]]] = [
                    (f"go build ./... in {project}",
                     ["go", "build", "-o", out_dir + os.sep, "./..."]),
                    (f"go mod verify in {project}", ["go", "mod", "verify"]),
                    (f"go list -m all in {project}", ["go", "list", "-m", "all"]),
                ] + [(f"guard command `{c}` in {project}", ["sh", "-c", c])
                     for c in guard.commands]
                for stage, argv in steps:
                    failure = _run(argv, project, env, guard.timeout, log, guard, stage,
                                   log_path)
                    if failure is not None:
                        report.failure = failure
                        report.seconds = time.monotonic() - started
                        return report
                changes = _compare(before.get(project),
                                   module_list(project, env, guard.timeout))
                if changes:
                    report.module_changes[str(project)] = changes
    finally:
        os.close(log)
        kill_leftovers(run_id)  # what left its command's session (setsid) goes too
    report.seconds = time.monotonic() - started
    return report


def kill_leftovers(run_id: str) -> int:
    """SIGKILL what a guard run started and a killed rescue could not end (its sessions
    outlive it): the processes of this user whose environment carries the run's id. Ids are
    random, so nothing else is ever hit. Returns how many."""
    if not run_id:
        return 0
    mark, killed = f"{RUN_VAR}={run_id}".encode(), 0
    for pid in (int(n) for n in os.listdir("/proc") if n.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                found = mark in f.read(LIMITS.guard_environ_bytes).split(b"\0")
            if found and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except OSError:  # gone, or another user's
            continue
    return killed


def baseline(guard: Guard, layout: Layout) -> Dict[Path, Optional[List[str]]]:
    """`go list -m all` of each project with the toolchain current before the switch."""
    if hostos.WINDOWS:  # called before the switch: refused with nothing changed
        raise NotReadyError(
            "guarding the switch: --guard-project and --guard-cmd are not supported on Windows "
            "yet (a guard ends its build's processes by process group); run the command "
            "without them, then build the project yourself")
    if not layout.current.exists():
        return {}
    env = user_env(layout)
    return {p: module_list(p, env, guard.timeout) for p in guard.projects}
