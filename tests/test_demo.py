"""The README's main job (`rescue demo`) runs as written, against a loopback PyPI mirror."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import gobin, upstream


def test_demo_builds_bundle_and_pyz_then_installs_offline_with_a_passing_checklist_twice(
        tmp_path: Path) -> None:
    wheel = gobin.wheel()
    env = {**os.environ, "RESCUE_CACHE_DIR": str(tmp_path / "cache")}
    # The pyz wheels are shared with the other tests so CI downloads each once.
    (tmp_path / "cache").mkdir()
    shared = gobin.cache_root() / "pyz-wheels"
    shared.mkdir(exist_ok=True)
    (tmp_path / "cache" / "wheels").symlink_to(shared)
    runs = []
    with upstream.serve(upstream.pypi_routes({wheel.name: wheel})) as url:
        # A newcomer runs it again (the README's first command): the second run must not be
        # refused as a replay of the first run's bundle in the same demo prefix.
        for _ in range(2):
            runs.append(subprocess.run(
                [sys.executable, "-m", "bundler.cli", "demo", "--workdir", str(tmp_path / "demo"),
                 "-o", str(tmp_path / "dist" / "rescue.pyz"), "--pypi-index",
                 f"{url}/simple/", "--level", "3"],
                env=env, capture_output=True, text=True, timeout=900,
                cwd=Path(__file__).resolve().parents[1]))
    for number, out in enumerate(runs, 1):
        assert out.returncode == 0, out.stderr + out.stdout
        assert f"1/4 building bundle #{number} from " in out.stderr
        assert "3/4 installing offline" in out.stderr and "(unshare -n)" in out.stderr
        assert "ok   go list std" in out.stdout
    assert os.readlink(tmp_path / "demo" / "prefix" / "current") == \
        "versions/go1.21.13.linux-amd64"
