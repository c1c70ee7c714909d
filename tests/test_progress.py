"""Progress on long operations: bytes, files, rate and ETA on a terminal; not a byte of it in a
pipe or with --json, where scripts read the output."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from manifests.progress import Meter, Terminal
from tests.support import bundles, craft

ROOT = Path(__file__).resolve().parents[1]


def test_meter_says_bytes_files_rate_and_eta() -> None:
    now = [100.0]
    m = Meter("installing", 100_000_000, clock=lambda: now[0])
    now[0] += 5
    m.advance(50_000_000, files=10)
    assert m.line() == ("installing: 50.0 MB of 100.0 MB (50%), 10 files, 10.0 MB/s, "
                        "ETA 5s")
    now[0] += 5
    m.advance(50_000_000, files=1)
    assert m.line() == "installing: 100.0 MB of 100.0 MB (100%), 11 files, 10.0 MB/s, in 10s"


def test_terminal_draws_one_rewritten_line_and_nothing_off_a_terminal() -> None:
    out = io.StringIO()
    with Terminal("verifying", 10, stream=out, force=True) as bar:
        bar.advance(4)
    assert out.getvalue().startswith("\rverifying: 4 B of 10 B (40%), 1 files")
    assert out.getvalue().endswith("\n")
    quiet = io.StringIO()  # not a terminal
    with Terminal("verifying", 10, stream=quiet) as bar:
        bar.advance(4)
    assert quiet.getvalue() == ""


def _run_on_a_terminal(argv: List[str]) -> tuple:
    """Run with stderr on a pseudo-terminal, stdout on a pipe, as a user's shell would."""
    master, slave = pty.openpty()
    done = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=slave, stdin=subprocess.DEVNULL, timeout=120)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return done, seen.decode("utf-8", "replace")


@pytest.fixture
def bundle(tmp_path: Path, signing: bundles.Signing) -> Path:
    c = craft.Craft(name="prog")
    root = c.toolchain()
    c.dir(f"{root}/src").file(f"{root}/src/big.go", b"package big\n" * 40000)
    return c.write(tmp_path / "prog.tar.zst", signing.key)


def test_inspect_and_install_show_progress_on_a_terminal_only(
        bundle: Path, tmp_path: Path, signing: bundles.Signing) -> None:
    trust = ["--trust", str(signing.signers)]
    done, err = _run_on_a_terminal(["installer.cli", "inspect", str(bundle), *trust])
    assert done.returncode == 0
    assert "checking every member: " in err and "files" in err and "/s" in err, err
    done, err = _run_on_a_terminal(["installer.cli", "install", str(bundle), "--prefix",
                                    str(tmp_path / "P"), *trust])
    assert done.returncode == 0 and "verifying and staging: " in err, err
    done, err = _run_on_a_terminal(["installer.cli", "verify", "--prefix",
                                    str(tmp_path / "P"), *trust, "--json"])
    assert done.returncode == 0 and "verifying:" not in err  # --json: silent
    piped = subprocess.run([sys.executable, "-m", "installer.cli", "inspect", str(bundle),
                            *trust], cwd=ROOT, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""  # a pipe: silent
