"""Windows, for real: rescue.pyz on python.org's CPython 3.13 for Windows under Wine installs a
windows-amd64 bundle, proves it with the checklist, builds hello world through env.cmd, switches
versions and verifies the prefix. One install, reused by every step (each Wine process starts
in ~2.5 s; a cold `go build` takes ~20 s). What Wine cannot show is unit-tested in
tests/test_hostos.py and tests/test_doctor_windows.py (README "Windows")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from tests.support import wine as wine_support
from tests.support.wine import Wine, win_path

pytestmark = [pytest.mark.wine, pytest.mark.slow]
# Read at import: conftest clears CI for each test. In CI a missing Wine is a failure.
IN_CI = os.environ.get("CI", "").lower() == "true"
OLD, NEW = "go1.21.13.windows-amd64", "go1.22.10.windows-amd64"


class Installed(NamedTuple):
    wine: Wine
    pyz: Path
    prefix: Path
    install: dict


@pytest.fixture(scope="session")
def wine() -> Wine:
    """Session-scoped and asked first, so a missing Wine is told before the session's pyz and
    bundle are built (pytest sets up wider scopes first)."""
    found = wine_support.find()
    if found is None:
        why = "no Wine set-up (run scripts/get-wine)"
        if IN_CI:
            pytest.fail(f"{why}: CI must run the Windows tests")
        pytest.skip(why)
    return found


@pytest.fixture(scope="module")
def installed(wine: Wine, tmp_path_factory: pytest.TempPathFactory, pyz: Path,
              windows_bundle: Path) -> Iterator[Installed]:
    found = wine
    prefix = tmp_path_factory.mktemp("windows") / "P"
    proc = found.rescue(pyz, "install", win_path(windows_bundle), "--prefix", win_path(prefix),
                        "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield Installed(found, pyz, prefix, json.loads(proc.stdout))
    print("\nWine timings (s):", found.timings)


def test_windows_install_passes_the_checklist(installed: Installed) -> None:
    doc, prefix = installed.install, installed.prefix
    assert doc["ok"] and sorted(doc["installed"]) == [OLD, NEW]
    assert doc["current"] == NEW
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["go version"]["got"] == "go version go1.22.10 windows/amd64"
    assert checks["go env GOROOT"]["got"] == win_path(prefix / "versions" / NEW)
    # file:///Z:/... : the drive letter after a third slash, forward slashes
    assert checks["go env GOPROXY"]["got"] == "file:///Z:" + str(prefix / "goproxy")
    assert all(c["ok"] for c in doc["checks"]), doc["checks"]
    # Wine 8 makes no junctions: `current` is the pointer file (README "Windows")
    assert (prefix / "current").read_text() == f"versions/{NEW}\n"
    assert (prefix / "bin" / "go1.21.13.cmd").read_bytes() == (
        f'@"{win_path(prefix / "versions" / OLD / "bin" / "go.exe")}" %*\r\n'.encode())
    assert (prefix / "env.cmd").exists() and (prefix / "env.ps1").exists()


def test_windows_go_build_hello_world_through_env_cmd(installed: Installed,
                                                      tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (tmp_path / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from", '
        'runtimeGOOS()) }\n')
    (tmp_path / "os.go").write_text(
        'package main\n\nimport "runtime"\n\nfunc runtimeGOOS() string { return runtime.GOOS }\n')
    proc = installed.wine.cmd(
        f'call {win_path(installed.prefix / "env.cmd")} && cd /d {win_path(tmp_path)} && '
        "go version && go env GOPROXY && go build -o hello.exe . && hello.exe", "go build")
    out = proc.stdout.replace("\r\n", "\n")
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    assert "go version go1.22.10 windows/amd64\n" in out
    assert "file:///Z:" + str(installed.prefix / "goproxy") + "\n" in out
    assert out.endswith("hello from windows\n")


def test_windows_use_and_rollback_switch_current(installed: Installed) -> None:
    w, pyz, prefix = installed.wine, installed.pyz, win_path(installed.prefix)
    proc = w.rescue(pyz, "use", "1.21.13", "--prefix", prefix, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["previous"], doc["current"]) == (NEW, OLD)
    assert (installed.prefix / "current").read_text() == f"versions/{OLD}\n"
    proc = w.cmd(f"call {win_path(installed.prefix / 'env.cmd')} && go version", "go version")
    assert "go version go1.21.13 windows/amd64" in proc.stdout, proc.stdout + proc.stderr
    proc = w.rescue(pyz, "rollback", "--prefix", prefix, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["current"] == NEW
    assert (installed.prefix / "current").read_text() == f"versions/{NEW}\n"


def test_windows_verify_passes(installed: Installed) -> None:
    proc = installed.wine.rescue(installed.pyz, "verify", "--prefix", win_path(installed.prefix),
                                 "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(proc.stdout)["ok"]


def test_windows_doctor_after_env_cmd_finds_nothing_that_breaks_builds(
        installed: Installed) -> None:
    w, prefix = installed.wine, installed.prefix
    proc = w.cmd(f"call {win_path(prefix / 'env.cmd')} && {win_path(w.python)} -I "
                 f"{win_path(installed.pyz)} doctor --prefix {win_path(prefix)} --json",
                 "rescue doctor")
    doc = json.loads(proc.stdout)
    current = (prefix / "current").read_text().strip().split("/")[1]
    assert doc["current"] == current
    assert [f for f in doc["findings"] if f["severity"] == "error"] == [], doc["findings"]
    first = next(f for f in doc["findings"] if f["check"] == "path-go")
    assert first["message"] == (f"go on PATH #1: {win_path(prefix / 'versions' / current)}"
                                "\\bin\\go.exe (wins)")
    integrity = next(f for f in doc["findings"] if f["check"] == "integrity")
    assert integrity["message"].startswith(f"versions/{current} matches its signed manifest")


def test_windows_pyz_starts_on_cpython_39_and_inspects_the_bundle(
        wine: Wine, pyz: Path, windows_bundle: Path) -> None:
    proc = wine.rescue(pyz, "selftest", "--json", python=wine.python39)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["ok"], doc["python"], doc["zstandard_backend"]) == (True, "3.9.13", "cext")
    assert "\\rescue\\native\\cp39-win_amd64-" in doc["native_dir"]
    proc = wine.rescue(pyz, "inspect", win_path(windows_bundle), "--json", python=wine.python39)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [t["id"] for t in json.loads(proc.stdout)["toolchains"]] == [OLD, NEW]
