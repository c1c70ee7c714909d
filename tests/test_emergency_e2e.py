"""The emergencies end to end: a fresh offline machine, a pyz, a bundle, and the real `go`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

import pytest

from bundler.cli import main as rescue
from tests.support import bundles, gobin

PYENV = Path("/root/.pyenv/versions")


def _pythons() -> List[Path]:
    found = [sorted(PYENV.glob(f"3.{minor}.*/bin/python3")) for minor in range(9, 14)]
    pythons = [f[-1] for f in found if f]
    extra = gobin.cache_root() / "cpython-3.14/usr/bin/python3"  # see ZIPAPP-FACTS.md
    if extra.exists():
        pythons.append(extra)
    return pythons or [Path(shutil.which("python3") or "python3")]


OLDEST = _pythons()[0]


def offline(cmd: List[str], env: Optional[dict] = None, cwd: Optional[Path] = None,
            ) -> subprocess.CompletedProcess:
    """Run `cmd` in a network namespace with no network at all (not just GOPROXY=off)."""
    return subprocess.run(["unshare", "-n", *cmd], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def user_env(home: Path, prefix: Path) -> dict:
    """What an operator has after `. P/env.sh`: the emergency go first on PATH, nothing else."""
    return {"PATH": f"{prefix / 'current' / 'bin'}:/usr/bin:/bin", "HOME": str(home)}


def test_round_trip_keys_build_zipapp_install_offline_runs_hello_world(
        tmp_path: Path, godl_url: str) -> None:
    keys = tmp_path / "keys"
    assert rescue(["keys", "generate", "release", "-d", str(keys)]) == 0
    assert rescue(["keys", "trust", str(keys / "release.pub"),
                   "--store", str(keys / "allowed_signers")]) == 0
    spec = bundles.write_spec(tmp_path / "spec.toml", keys / "release", godl_url)
    os.environ["SOURCE_DATE_EPOCH"] = str(int(__import__("time").time()))
    try:
        assert rescue(["build", str(spec), "-o", str(tmp_path / "out"),
                       "--cache", str(tmp_path / "cache")]) == 0
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    bundle = next((tmp_path / "out").glob("*.rescue.tar.zst"))
    pyz = tmp_path / "dist" / "rescue.pyz"
    assert rescue(["zipapp", "--trust", str(keys / "allowed_signers"), "-o", str(pyz),
                   "--cache", str(gobin.cache_root() / "pyz-wheels")]) == 0

    prefix = tmp_path / "go-emergency"
    home = tmp_path / "home"
    home.mkdir()
    out = offline([str(OLDEST), "-I", str(pyz), "install", str(bundle), "--prefix",
                   str(prefix), "--json"], env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["ok"] and report["current"] == "go1.21.13.linux-amd64"
    assert [c["name"] for c in report["checks"]] == [
        "go version", "go env GOROOT", "go env GOPROXY", "go env GOSUMDB", "go env GOTOOLCHAIN",
        "go list std"]
    assert all(c["ok"] for c in report["checks"])
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"

    hello = tmp_path / "hello"
    hello.mkdir()
    (hello / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (hello / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from the rescue") }\n')
    run = offline(["go", "run", "."], env=user_env(home, prefix), cwd=hello)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello from the rescue\n"
    env = offline(["go", "env", "GOPROXY", "GOSUMDB", "GOTOOLCHAIN"], env=user_env(home, prefix))
    assert env.stdout.split() == [f"file://{prefix}/goproxy", "off", "auto"]


@pytest.mark.parametrize("python", _pythons(), ids=lambda p: p.parts[-3])
def test_pyz_verifies_a_bundle_under_every_cpython(python: Path, pyz: Path,
                                                   toolchain_bundle: Path,
                                                   signing: bundles.Signing,
                                                   tmp_path: Path) -> None:
    out = offline([str(python), "-I", str(pyz), "inspect", str(toolchain_bundle), "--json"],
                  env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["signer"]["key_id"] == signing.key_id
    assert [t["id"] for t in report["toolchains"]] == ["go1.21.13.linux-amd64"]


def test_failed_checklist_rolls_back_to_the_previous_state(
        tmp_path: Path, pyz: Path, toolchain_bundle: Path) -> None:
    prefix = tmp_path / "p"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ok = offline([str(OLDEST), "-I", str(pyz), "install", str(toolchain_bundle), "--prefix",
                  str(prefix)], env=env)
    assert ok.returncode == 0, ok.stderr
    # A polluted environment (a relative GOPATH) makes `go list std` fail on this machine.
    bad = offline([str(OLDEST), "-I", str(pyz), "install", str(toolchain_bundle), "--prefix",
                   str(prefix)], env={**env, "GOPATH": "relative"})
    assert bad.returncode == 4
    assert "FAIL go list std" in bad.stdout
    assert "GOPATH entry is relative" in bad.stdout
    assert "installing go1.21.13.linux-amd64: the emergency checklist failed (" in bad.stderr
    assert "go list std); the previous toolchain stays active" in bad.stderr
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"

    fresh = tmp_path / "fresh"
    bad = offline([str(OLDEST), "-I", str(pyz), "install", str(toolchain_bundle), "--prefix",
                   str(fresh)], env={**env, "GOPATH": "relative"})
    assert bad.returncode == 4
    assert not fresh.exists()


def test_install_on_a_terminal_shows_progress_then_the_checklist(tmp_path: Path, pyz: Path,
                                                                 toolchain_bundle: Path) -> None:
    # `script` gives the installer a real pseudo-terminal, as an operator's console would.
    cmd = f"{OLDEST} -I {pyz} install {toolchain_bundle} --prefix {tmp_path / 'p'}"
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                         timeout=600, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                           "TERM": "xterm"})
    assert out.returncode == 0, out.stdout
    screen = out.stdout.replace("\r", "\n")
    assert "verifying and staging" in screen and "100%" in screen
    assert "ok   go list std" in screen
