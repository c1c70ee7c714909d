"""The emergency checklist: prove with the installed `go` itself that it works offline."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from installer import go_commands, goenv_file, sumdb_check, usersettings
from installer.prefix import Layout
from installer.wiring import go_settings, source_line
from manifests.pycompat import CAPTURE_TEXT

TIMEOUT = 300


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    expected: str
    got: str
    warn: bool = False  # ok, but the user's own settings differ from the wiring
    detail: Tuple[str, ...] = ()  # why, which file or variable, the command that fixes it

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["detail"] = list(self.detail)
        return d


def check_env(layout: Layout) -> Dict[str, str]:
    """The caller's environment as it is: the checklist runs `go` as the user will, with their
    exported Go variables and their GOENV file."""
    env = dict(os.environ)
    if "GOCACHE" not in env and not env.get("HOME") and not env.get("XDG_CACHE_HOME"):
        env["GOCACHE"] = str(layout.state / "gocache")  # go refuses to build without one
    return env


def _go(go: Path, args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(go), *args], env=env, **CAPTURE_TEXT,
                          timeout=TIMEOUT, cwd=str(go.parent))


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return " | ".join(lines[-3:]) if lines else ""


def _settings(go: Path, user_env: Dict[str, str], env: Dict[str, str]
              ) -> Tuple[Dict[str, str], str]:
    """The effective values of the settings the wiring cares about, or an error."""
    outs = _run_all(go, _settings_commands(user_env, env))
    return _settings_from(outs["toolchain"], outs["settings"])


def _settings_commands(user_env: Dict[str, str], env: Dict[str, str]
                       ) -> Dict[str, Tuple[List[str], Dict[str, str]]]:
    # Exactly `go env GOTOOLCHAIN` is the one go command that never switches toolchains
    # (cmd/go/internal/toolchain Select), so it reports the user's value without acting on it.
    return {"toolchain": (["env", "GOTOOLCHAIN"], user_env),
            "settings": (["env", "-json", *usersettings.QUERY], env)}


def _settings_from(toolchain_out: subprocess.CompletedProcess[str],
                   json_out: subprocess.CompletedProcess[str]) -> Tuple[Dict[str, str], str]:
    if toolchain_out.returncode != 0:
        return {}, _tail(toolchain_out.stderr)
    if json_out.returncode != 0:
        return {}, _tail(json_out.stderr)
    try:
        values = {k: str(v) for k, v in json.loads(json_out.stdout).items()}
    except (ValueError, AttributeError):
        return {}, f"unreadable `go env -json` output: {json_out.stdout[:200]!r}"
    values["GOTOOLCHAIN"] = toolchain_out.stdout.strip()
    return values, ""


def _run_all(go: Path, commands: Dict[str, Tuple[List[str], Dict[str, str]]]
             ) -> Dict[str, subprocess.CompletedProcess[str]]:
    """Every command at once: each is a fresh `go` that mostly waits on its own start-up and
    reads, so together they take about as long as the slowest (`go list std`) alone."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        futures = {name: pool.submit(_go, go, args, env)
                   for name, (args, env) in commands.items()}
    return {name: f.result() for name, f in futures.items()}


def run(goroot: Path, version: str, goos: str, goarch: str, layout: Layout,
        env: Optional[Dict[str, str]] = None) -> List[Check]:
    go = goroot / "bin" / ("go.exe" if goos == "windows" else "go")
    user_env = env if env is not None else check_env(layout)
    # The checklist itself never downloads a toolchain: GOTOOLCHAIN is read alone (above) and
    # judged; every other go command here runs this go.
    env = {**user_env, "GOTOOLCHAIN": "local"}
    hangs = _goenv_hangs(user_env)
    if hangs is not None:
        return [hangs]
    checks: List[Check] = []
    want = f"go version {version} {goos}/{goarch}"
    try:
        out = _go(go, ["version"], env)
    except OSError as exc:
        return [Check("go version", False, want, f"cannot run {go}: {exc.strerror}")]
    got = out.stdout.strip() or _tail(out.stderr)
    checks.append(Check("go version", out.returncode == 0 and got == want, want, got))
    outs = _run_all(go, {
        "goroot": (["env", "GOROOT"], env), "std": (["list", "std"], env),
        **_settings_commands(user_env, env)})
    wired = go_settings(layout)
    checks += _judged(outs, goroot, version, layout, user_env, wired)
    out = outs["std"]
    count = len(out.stdout.split())
    ok = out.returncode == 0 and count > 100
    checks.append(Check("go list std", ok, "the standard library lists",
                        f"{count} packages" if ok else _tail(out.stderr) or f"{count} packages"))
    row = sumdb_check.run(go, layout, go_settings(layout), env)
    if row is not None:
        ok, want, got, detail = row
        checks.append(Check(sumdb_check.NAME, ok, want, got, warn=ok and bool(detail),
                            detail=detail))
    return checks


def user_settings(goroot: Path, version: str, layout: Layout,
                  env: Optional[Dict[str, str]] = None) -> List[Check]:
    """Only the checks of the user's Go settings (GOROOT, the wired and unwired variables):
    three quick `go env`, for a command that must know before it starts long work."""
    go = goroot / "bin" / "go"
    user_env = env if env is not None else check_env(layout)
    env = {**user_env, "GOTOOLCHAIN": "local"}
    hangs = _goenv_hangs(user_env)
    if hangs is not None:
        return [hangs]
    try:
        outs = _run_all(go, {"goroot": (["env", "GOROOT"], env),
                             **_settings_commands(user_env, env)})
    except OSError:
        return []  # no go to ask: the full checklist says so, with the reason
    return _judged(outs, goroot, version, layout, user_env, go_settings(layout))


def _goenv_hangs(user_env: Dict[str, str]) -> Optional[Check]:
    """A failed check, at once, when the user's GOENV file is one go would wait on (a FIFO, a
    device): every go command would hang until the checklist's timeout."""
    g = goenv_file.read(*goenv_file.locate(user_env))
    if g.kind != goenv_file.HANGS:
        return None
    return Check("go env GOENV", False, "a GOENV file go can read", f"{g.path}: {g.problem}",
                 detail=(goenv_file.WAITS, f"found as go finds it: {g.origin}",
                         f"fix: {goenv_file.hang_fix(g)}"))


def _judged(outs: Dict[str, subprocess.CompletedProcess[str]], goroot: Path, version: str,
            layout: Layout, user_env: Dict[str, str], wired: Dict[str, str]) -> List[Check]:
    """`go env GOROOT` and the settings, each judged with where it is set and its fix."""
    source_env = source_line(layout.root)
    out = outs["goroot"]
    got = out.stdout.strip() or _tail(out.stderr)
    want_root = os.path.realpath(goroot)
    ok = out.returncode == 0 and got == want_root
    values, error = _settings_from(outs["toolchain"], outs["settings"])
    why = None if ok else usersettings.goroot_sources(user_env, values.get("GOENV", ""),
                                                      source_env)
    checks = [Check("go env GOROOT", ok, want_root, got, detail=tuple(why or ()))]
    if error:
        return checks + [Check("go env", False, "the Go settings", error)]
    for f in usersettings.judge(values, user_env, wired, version,
                                usersettings.carried_modules(layout.goproxy), source_env,
                                installed=list(go_commands.wanted(layout))):
        checks.append(Check(f"go env {f.key}", f.level != usersettings.FAIL,
                            f.expected or "(not set)", f.got,
                            warn=f.level == usersettings.WARN, detail=f.lines))
    return checks
