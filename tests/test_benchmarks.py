"""The benchmark suite still runs: its quickest group, end to end, with its JSON record."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import run


def test_quick_modcache_benchmark_writes_its_record(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert run.main(["--quick", "--only", "modcache", "--modules", "5", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["commit"] and doc["quick"] and doc["modules"] == 5
    [case] = doc["cases"]
    assert case["target"] == 1.0 and case["ratio"] > 0 and isinstance(case["pass"], bool)
    assert case["rescue_peak_rss_mb"] > 0
    for side in (case["rescue_side"], case["baseline_side"]):
        [sample] = doc["sides"][side]["samples"]
        assert sample["seconds"] > 0
