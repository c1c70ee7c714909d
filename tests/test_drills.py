"""Fault drills, end to end with the real Go: each injects its failure into a throw-away copy,
must be detected (verify, doctor, checklist, a build), recovered from (repair, rollback, a
fresh copy) and proved with a real `go build`; the live prefix never changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from bundler.build import BuildResult
from manifests.drillreport import Drill, table
from tests.support import modbundles, users


def by_name(doc: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {d["name"]: d for d in doc["drills"]}


def test_every_drill_detects_and_recovers_offline_and_leaves_the_live_prefix_alone(
        user: users.User, rescue: List[str], full_bundle: BuildResult) -> None:
    bundle = user.give(full_bundle.path)
    prefix = user.home / "go-emergency"
    done = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)], offline=True)
    assert done.returncode == 0, done.stderr
    before = modbundles.snapshot(prefix)
    run = user.run([*rescue, "drill", "all", "--bundle", str(bundle), "--prefix", str(prefix),
                    "--json"], offline=True)
    assert run.returncode == 0, run.stderr + run.stdout
    drills = by_name(json.loads(run.stdout))
    for name in ("goroot-corruption", "modcache-poisoning", "truncated-bundle"):
        d = drills[name]
        assert d["ok"] and d["detect_seconds"] is not None and d["recover_seconds"] is not None
    g = drills["goroot-corruption"]
    assert g["detected_by"] == "verify" and g["recovered_by"] == f"repair {bundle.name}"
    # Every detector caught it, each in its own words.
    caught = {s["action"]: s["detail"] for s in g["steps"] if s["phase"] == "detect"}
    assert "1 changed, 1 missing, 1 added" in caught["verify"]
    assert "GOROOT/bin/go was overwritten" in caught["doctor"]
    assert caught["checklist"].startswith("go version")
    assert [s["action"] for s in g["steps"] if s["phase"] == "check"] == ["go build", "verify"]
    m = drills["modcache-poisoning"]
    assert m["detected_by"] == "verify --modcache" and m["recovered_by"] == "repair --modcache"
    assert any(s["action"] == "go mod verify" and s["phase"] == "detect" and s["ok"]
               for s in m["steps"])
    t = drills["truncated-bundle"]
    assert t["detected_by"] == "install" and "truncated" in t["steps"][1]["detail"]
    assert drills["proxy-cert"]["skipped"].startswith("runs on the connected side")
    assert modbundles.snapshot(prefix) == before  # the live prefix was never touched
    assert not list(user.work.glob("rescue-drill-*")) and not list(
        Path("/tmp").glob(f"rescue-drill-*/{prefix.name}"))


def test_goroot_drill_without_a_bundle_recovers_by_rollback_or_says_what_to_bring(
        user: users.User, rescue: List[str], toolchain_bundle: Path,
        newer_toolchain_bundle: Path) -> None:
    prefix = user.home / "go-emergency"
    bundle = user.give(toolchain_bundle)
    assert user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)],
                    offline=True).returncode == 0
    alone = user.run([*rescue, "drill", "goroot-corruption", "--prefix", str(prefix)],
                     offline=True)
    assert alone.returncode == 4
    assert ("goroot-corruption: recover failed: repair or rollback: no bundle given and no "
            "other toolchain to roll back to: pass --bundle FILE with rescue-test #1 "
            "(manifest sha256 ") in alone.stdout
    newer = user.give(newer_toolchain_bundle)
    assert user.run([*rescue, "install", str(newer), "--prefix", str(prefix)],
                    offline=True).returncode == 0
    rolled = user.run([*rescue, "drill", "goroot-corruption", "--prefix", str(prefix),
                       "--json"], offline=True)
    assert rolled.returncode == 0, rolled.stdout
    [d] = json.loads(rolled.stdout)["drills"]
    assert d["recovered_by"] == "rollback to go1.21.13.linux-amd64"
    skipped = user.run([*rescue, "drill", "truncated-bundle", "--prefix", str(prefix)],
                       offline=True)
    assert skipped.returncode == 0
    assert "truncated-bundle: skipped: needs the bundle file: pass --bundle FILE" in \
        skipped.stdout
    # --live breaks the live prefix itself, and must leave it verified and current.
    live = user.run([*rescue, "drill", "goroot-corruption", "--live", "--yes", "--bundle",
                     str(newer), "--prefix", str(prefix), "--json"], offline=True)
    assert live.returncode == 0, live.stdout
    assert json.loads(live.stdout)["drills"][0]["recovered_by"] == f"repair {newer.name}"
    after = user.run([*rescue, "verify", "--all", "--prefix", str(prefix)], offline=True)
    assert after.returncode == 0, after.stdout
    assert (prefix / "current").resolve().name == "go1.22.10.linux-amd64"


def test_live_drill_asks_first_and_refuses_without_confirmation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from installer import cli

    (tmp_path / "P").mkdir()
    code = cli.main(["drill", "goroot-corruption", "--live", "--prefix", str(tmp_path / "P"),
                     "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 2 and "it breaks the live prefix; confirm with --yes" in \
        doc["error"]["message"]
    code = cli.main(["drill", "goroot-corruption", "--yes", "--prefix", str(tmp_path / "P")])
    assert code == 2 and "--yes only goes with --live" in capsys.readouterr().err
    code = cli.main(["drill", "all", "--prefix", str(tmp_path / "nowhere")])
    assert code == 2 and "no such prefix" in capsys.readouterr().err


def test_drill_table_shows_times_and_why_a_drill_was_skipped_or_failed() -> None:
    ok = Drill("goroot-corruption", detected_by="verify", detect_seconds=0.71,
               recovered_by="repair b.tar.zst", recover_seconds=2.5, ok=True)
    bad = Drill("truncated-bundle", detected_by="install", detect_seconds=0.2)
    bad.step("recover", "copy again, install", False, 1.0, "disk full\nmore")
    text = table([ok, bad, Drill("proxy-cert", skipped="runs on the connected side")])
    lines = text.splitlines()
    assert lines[0].split() == ["drill", "result", "detected", "by", "detect", "s",
                                "recovered", "by", "recover", "s"]
    assert lines[1].split()[:4] == ["goroot-corruption", "ok", "verify", "0.71"]
    assert "truncated-bundle: recover failed: copy again, install: disk full" in text
    assert "proxy-cert: skipped: runs on the connected side" in text


def test_drill_on_a_damaged_or_unbuildable_prefix_says_so_before_injecting_anything(
        tmp_path: Path, signing: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support import damaged

    bundle = damaged.toolchain_bundle(tmp_path / "dc.tar.zst", signing.key)
    prefix = tmp_path / "P"
    args = ["--bundle", bundle, "--prefix", prefix, "--trust", signing.signers,
            "--work", tmp_path / "work"]
    assert damaged.rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                          signing.signers)[0] == 0
    # The crafted toolchain's `go` answers the checklist but cannot build anything.
    code, out, _ = damaged.rescue(capsys, "drill", "truncated-bundle", *args)
    assert code == 4
    assert ("truncated-bundle: check failed: drill: drill truncated-bundle: the drill's project "
            "does not build before any fault was injected: fake go: build") in out["text"]
    damaged.edit(prefix / "versions" / damaged.TC / "VERSION", "go1.99\n")
    code, out, _ = damaged.rescue(capsys, "drill", "truncated-bundle", *args)
    assert code == 4
    assert ("drill truncated-bundle: the prefix is already damaged before any fault was "
            "injected: verifying ") in out["text"]
    assert "run `verify --all` and `repair` first" in out["text"]
    assert damaged.rescue(capsys, "verify", "--prefix", prefix, "--trust",
                          signing.signers)[0] == 3  # the live prefix, as the test left it
