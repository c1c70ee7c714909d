"""The emergency checklist: prove with the installed `go` itself that it works offline."""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

from installer.prefix import Layout
from installer.wiring import go_settings

TIMEOUT = 300


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    expected: str
    got: str

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def check_env(layout: Layout) -> Dict[str, str]:
    """The caller's environment without Go settings: the checklist judges the install alone."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("GO") and k not in ("GOCACHE", "GOPATH", "GOMODCACHE"))}
    env["GOENV"] = "off"  # a user's `go env -w` file is doctor's business, not the install's
    if "GOCACHE" not in env and not env.get("HOME") and not env.get("XDG_CACHE_HOME"):
        env["GOCACHE"] = str(layout.state / "gocache")
    return env


def _go(go: Path, args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(go), *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=str(go.parent))


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return " | ".join(lines[-3:]) if lines else ""


def run(goroot: Path, version: str, goos: str, goarch: str, layout: Layout,
        env: Optional[Dict[str, str]] = None) -> List[Check]:
    go = goroot / "bin" / ("go.exe" if goos == "windows" else "go")
    env = env if env is not None else check_env(layout)
    checks: List[Check] = []
    want = f"go version {version} {goos}/{goarch}"
    try:
        out = _go(go, ["version"], env)
    except OSError as exc:
        return [Check("go version", False, want, f"cannot run {go}: {exc.strerror}")]
    got = out.stdout.strip() or _tail(out.stderr)
    checks.append(Check("go version", out.returncode == 0 and got == want, want, got))
    out = _go(go, ["env", "GOROOT"], env)
    got = out.stdout.strip() or _tail(out.stderr)
    want_root = os.path.realpath(goroot)
    checks.append(Check("go env GOROOT", out.returncode == 0 and got == want_root, want_root,
                        got))
    want_proxy = go_settings(layout)["GOPROXY"]
    out = _go(go, ["env", "GOPROXY"], env)
    got = out.stdout.strip() or _tail(out.stderr)
    checks.append(Check("go env GOPROXY", out.returncode == 0 and got == want_proxy,
                        want_proxy, got))
    out = _go(go, ["list", "std"], env)
    count = len(out.stdout.split())
    ok = out.returncode == 0 and count > 100
    checks.append(Check("go list std", ok, "the standard library lists",
                        f"{count} packages" if ok else _tail(out.stderr) or f"{count} packages"))
    return checks
