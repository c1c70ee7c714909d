"""`rescue zipapp` as a script sees it: silent into a pipe, loud about a missing trust store."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from bundler.zipapp import TRUSTED_MEMBER
from tests.support import bundles, gobin

REPO = Path(__file__).resolve().parents[1]


def rescue_zipapp(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command with stdout and stderr on pipes (not a terminal)."""
    cmd = [sys.executable, "-m", "bundler.cli", "zipapp", "-o", str(tmp_path / "rescue.pyz"),
           "--cache", str(gobin.cache_root() / "pyz-wheels"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_zipapp_prints_nothing_into_a_pipe(tmp_path: Path, signing: bundles.Signing) -> None:
    proc = rescue_zipapp(tmp_path, "--trust", str(signing.signers))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    with zipfile.ZipFile(tmp_path / "rescue.pyz") as zf:
        assert zf.read(TRUSTED_MEMBER) == signing.signers.read_bytes()


def test_zipapp_verbose_says_each_step(tmp_path: Path, signing: bundles.Signing) -> None:
    proc = rescue_zipapp(tmp_path, "--trust", str(signing.signers), "-v")
    assert proc.returncode == 0, proc.stderr
    steps = proc.stderr.splitlines()
    assert "wheels for cp39-x86_64" in steps and "wheels for cp314-aarch64" in steps
    assert steps[-1] == f"writing {tmp_path / 'rescue.pyz'}"
    assert proc.stdout.startswith(f"wrote {tmp_path / 'rescue.pyz'} (")


def test_zipapp_without_trust_warns_that_every_call_will_need_trust(tmp_path: Path) -> None:
    proc = rescue_zipapp(tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    pyz = tmp_path / "rescue.pyz"
    assert proc.stderr == (
        f"rescue: warning: {pyz} has no trust store built in (no --trust): every `python3 "
        "rescue.pyz install` and `inspect` will need --trust FILE; build with --trust "
        "keys/allowed_signers to embed one\n")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["trust_store"] is None
    with zipfile.ZipFile(pyz) as zf:
        assert TRUSTED_MEMBER not in zf.namelist()
