"""Windows on the connected side: bundles from go.dev's windows .zip, a pyz that starts there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import bundles, gobin, upstream
from tests.support.clirun import run

REPO = Path(__file__).resolve().parent.parent


def test_windows_bundle_from_godl_zip_carries_go_exe(windows_bundle: Path,
                                                     signing: bundles.Signing,
                                                     capsys) -> None:
    code, out, _ = run(["inspect", windows_bundle, "--trust", signing.signers, "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["targets"] == ["windows-amd64"]
    tc, newer = doc["toolchains"]
    assert newer["id"] == "go1.22.10.windows-amd64"
    assert (tc["id"], tc["url"].rsplit("/", 1)[1]) == ("go1.21.13.windows-amd64",
                                                      "go1.21.13.windows-amd64.zip")
    assert tc["sha256"] == upstream.sha256_file(gobin.godl_windows_zip())
    assert tc["module"] == "golang.org/toolchain@v0.0.1-go1.21.13.windows-amd64"
    listed = subprocess.run(["tar", "--zstd", "-xOf", str(windows_bundle), "manifest.json"],
                            capture_output=True, check=True).stdout
    paths = {m["path"] for m in json.loads(listed)["members"]}
    assert "toolchains/go1.21.13.windows-amd64/go/bin/go.exe" in paths


def test_pyz_carries_windows_native_parts_for_every_supported_python(pyz: Path) -> None:
    with zipfile.ZipFile(pyz) as zf:
        index = json.loads(zf.read("_native/index.json"))["targets"]
        names = set(zf.namelist())
    for minor in range(9, 15):
        parts = index[f"cp3{minor}-win_amd64"]["parts"]
        assert any(p.startswith(f"zstandard-0.25.0-cp3{minor}-cp3{minor}-win_amd64")
                   for p in parts), parts
        assert any(p.startswith("cryptography-") and p.endswith("win_amd64") for p in parts)
        assert any(p.startswith(f"cffi-2.0.0-cp3{minor}-") for p in parts)
    # click writes to a Windows console through colorama
    assert "colorama/__init__.py" in names
    assert any(n.endswith("_cffi_backend.cp313-win_amd64.pyd") for n in names)


@pytest.mark.parametrize("ci", ["true", ""])
def test_windows_tests_fail_in_ci_when_wine_is_missing(ci: str, tmp_path: Path) -> None:
    env = {**os.environ, "CI": ci, "RESCUE_TEST_CACHE": str(tmp_path)}  # a cache with no Wine
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-q", "-x",
                           "-p", "no:cacheprovider", "tests/test_windows_wine.py"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    if ci:
        assert proc.returncode == 1, proc.stdout[-2000:]
        assert "no Wine set-up (run scripts/get-wine): CI must run the Windows tests" in proc.stdout
    else:
        assert proc.returncode == 0 and "6 skipped" in proc.stdout, proc.stdout[-2000:]


def test_pyz_stays_under_25_mb_with_the_windows_wheels(pyz: Path) -> None:
    # issue 18's bound; the Windows wheels add 6.2 MB (3.9 MB of it cryptography)
    assert pyz.stat().st_size < 25_000_000, pyz.stat().st_size
