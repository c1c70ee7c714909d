"""Guarded switches: after `current` changes, build and test the operator's projects with it;
any failure makes the previous toolchain current again by itself.

A failure is an exit code other than 0, a timeout, or an output line matching a failure
pattern. Every command's output goes to one log under `P/state/guard-logs/`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from installer.prefix import Layout
from installer.wiring import go_settings

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

    def compiled(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{p})" for p in (*BUILTIN_PATTERNS, *self.patterns)))


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
                              capture_output=True, text=True)
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


def _run(argv: List[str], cwd: Path, env: Dict[str, str], timeout: float, log,
         pattern: re.Pattern[str], stage: str, log_path: Path) -> Optional[Failure]:
    log.write(f"$ cd {cwd} && {' '.join(argv)}\n")
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, timeout=timeout, capture_output=True,
                              text=True, errors="replace")
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(
            exc.stdout, bytes) else (exc.stdout or "")
        log.write(out + f"\n[timed out after {timeout:g}s]\n")
        return Failure(stage, None, f"timed out after {timeout:g}s", str(log_path))
    except OSError as exc:
        log.write(f"[cannot run: {exc.strerror}]\n")
        return Failure(stage, None, f"cannot run {argv[0]}: {exc.strerror}", str(log_path))
    output = done.stdout + done.stderr
    log.write(output + f"[exit {done.returncode}]\n")
    lines = [ln for ln in output.splitlines() if ln.strip()]
    hit = next((ln for ln in lines if pattern.search(ln)), None)
    if done.returncode != 0 or hit is not None:
        first = hit or next((ln for ln in lines if "FAIL" in ln or "error" in ln.lower()),
                            lines[-1] if lines else "")
        return Failure(stage, done.returncode, first.strip()[:300], str(log_path))
    return None


def run(guard: Guard, layout: Layout, before: Dict[Path, Optional[List[str]]],
        op: str) -> Report:
    """Build, verify, list and test every guarded project with the now-current toolchain."""
    started = time.monotonic()
    logs = layout.state / "guard-logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_path = logs / f"{stamp}-{op}-{os.getpid()}.log"
    report = Report(log=str(log_path))
    env, pattern = user_env(layout), guard.compiled()
    with open(log_path, "w", encoding="utf-8") as log, \
            tempfile.TemporaryDirectory(prefix="rescue-guard-") as out_dir:
        for project in guard.projects:
            steps: List[Tuple[str, List[str]]] = [
                (f"go build ./... in {project}", ["go", "build", "-o", out_dir + os.sep, "./..."]),
                (f"go mod verify in {project}", ["go", "mod", "verify"]),
                (f"go list -m all in {project}", ["go", "list", "-m", "all"]),
            ] + [(f"guard command `{c}` in {project}", ["sh", "-c", c]) for c in guard.commands]
            for stage, argv in steps:
                failure = _run(argv, project, env, guard.timeout, log, pattern, stage, log_path)
                if failure is not None:
                    report.failure = failure
                    report.seconds = time.monotonic() - started
                    return report
            changes = _compare(before.get(project), module_list(project, env, guard.timeout))
            if changes:
                report.module_changes[str(project)] = changes
    report.seconds = time.monotonic() - started
    return report


def baseline(guard: Guard, layout: Layout) -> Dict[Path, Optional[List[str]]]:
    """`go list -m all` of each project with the toolchain current before the switch."""
    if not layout.current.exists():
        return {}
    env = user_env(layout)
    return {p: module_list(p, env, guard.timeout) for p in guard.projects}
