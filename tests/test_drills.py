"""Fault drills, end to end with the real Go: each injects its failure into a throw-away copy,
must be detected (verify, doctor, checklist, a build), recovered from (repair, rollback, a
fresh copy) and proved with a real `go build`; the live prefix never changes."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

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


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KB file system: too small for a copy of the prefix, as a nearly full /tmp is."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "none", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("how", ["--work", "TMPDIR"])
def test_drill_in_a_work_dir_too_small_for_the_copy_says_pass_work_in_one_short_line(
        how: str, tmp_path: Path, small_tmpfs: Path, signing: Any,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support import craft, damaged

    c = craft.Craft(name="dc")
    root = c.toolchain()
    c.dir(f"{root}/src")
    for i in range(600):  # 600 files fail to copy: once, each became a line of the message
        c.file(f"{root}/src/f{i:04d}.go", b"package f\n" * 300)
    bundle = c.write(tmp_path / "dc.tar.zst", signing.key)
    prefix = tmp_path / "P"
    assert damaged.rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                          signing.signers)[0] == 0
    args = ["drill", "all", "--bundle", bundle, "--prefix", prefix, "--trust", signing.signers,
            "--json"]
    if how == "--work":
        args += ["--work", small_tmpfs]
    else:
        monkeypatch.setattr(tempfile, "tempdir", str(small_tmpfs))  # what $TMPDIR sets
    code, doc, err = damaged.rescue(capsys, *args)
    message = doc["error"]["message"]
    assert code == 2, err
    assert "\n" not in message and len(message.encode()) < 500, message
    assert message.startswith(f"drilling {prefix}: the work dir {small_tmpfs} cannot take a "
                              "copy of the prefix (No space left on device; the prefix holds "
                              "2 MB, 0 MB free there): pass --work DIR on a file system with "
                              "room for it"), message
    assert err.strip().splitlines()[-1] == f"rescue: {message}"
    assert len(err.encode()) < 600 and not list(small_tmpfs.iterdir())  # the copy is gone


def test_a_drill_step_keeps_one_short_line_of_a_huge_output() -> None:
    d = Drill("goroot-corruption")
    step = d.step("check", "go build", False, 1.0, "\n" + "x" * 100_000 + "\nsecond line\n")
    assert step.detail == "x" * 1000 + "... (100000 characters)"


def test_drill_that_cannot_make_its_work_dir_says_pass_work(
        tmp_path: Path, signing: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support import damaged

    full = tmp_path / "full"
    full.mkdir()
    # One inode, the mount's root: not even an empty directory fits.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=1", "none", str(full)],
                   check=True)
    try:
        bundle = damaged.toolchain_bundle(tmp_path / "dc.tar.zst", signing.key)
        prefix = tmp_path / "P"
        assert damaged.rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                              signing.signers)[0] == 0
        code, doc, _ = damaged.rescue(capsys, "drill", "all", "--prefix", prefix, "--trust",
                                      signing.signers, "--work", full, "--json")
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert code == 2
    assert doc["error"]["message"] == (
        f"drilling {prefix}: cannot make a work dir in {full} (No space left on device): pass "
        "--work DIR on a file system you can write to, with room for a copy of the prefix")
