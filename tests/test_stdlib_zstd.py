"""CPython 3.14 without the zstandard wheel: the pyz decodes bundles with `compression.zstd`,
and a damaged bundle is still told as damaged (exit 3), never an internal error (exit 1)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from tests.support import bundles, craft, gobin

PY314 = gobin.cache_root() / "cpython-3.14/usr/bin/python3"  # scripts/get-python


def _run(pyz: Path, env: Dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PY314), "-I", str(pyz), *argv], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture
def hidden(tmp_path: Path, pyz: Path) -> Dict[str, str]:
    """The pyz's native parts unpacked once into RESCUE_NATIVE_DIR, then zstandard removed
    from them: the bootstrap loads that directory as it is."""
    if not PY314.exists():
        if os.environ.get("CI"):
            pytest.fail(f"no CPython 3.14 at {PY314}: scripts/setup fetches it")
        pytest.skip("no CPython 3.14 here (scripts/setup fetches it)")
    native = tmp_path / "native"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RESCUE_NATIVE_DIR": str(native)}
    assert _run(pyz, env, "selftest").returncode == 0
    [unpacked] = native.iterdir()
    shutil.rmtree(unpacked / "zstandard")
    done = subprocess.run([str(PY314), "-I", "-c", "import zstandard"], capture_output=True,
                          env={**env, "PYTHONPATH": str(unpacked)})
    assert done.returncode != 0
    return env


def test_damaged_bundle_on_stdlib_zstd_is_damage_not_an_internal_error(
        tmp_path: Path, pyz: Path, signing: bundles.Signing, hidden: Dict[str, str]) -> None:
    c = craft.Craft()
    c.toolchain()
    good = c.write(tmp_path / "good.tar.zst", signing.key)
    done = _run(pyz, hidden, "inspect", str(good))
    assert done.returncode == 0, done.stderr  # decoded by compression.zstd
    assert "toolchain  go1.21.13.linux-amd64" in done.stdout
    data = bytearray(good.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64  # inside the compressed stream
    bad = tmp_path / "bad.tar.zst"
    bad.write_bytes(bytes(data))
    done = _run(pyz, hidden, "inspect", str(bad))
    assert done.returncode == 3, done.stderr
    assert "internal error" not in done.stderr
    assert done.stderr.startswith(f"rescue: reading bundle {bad}: ")
    assert "Data corruption detected" in done.stderr  # compression.zstd's own words
    assert done.stderr.endswith("copy it again from the build host and compare its sha256\n")
