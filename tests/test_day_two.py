"""Day two: toolchains side by side, switching, rolling back in minutes, removing, pinning,
pruning, and the history of every switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from tests.support import bundles, craft, prefixes
from tests.support.clirun import run
from tests.support.killed import history
from tests.support.users import STOCK_PYTHON, User


@pytest.fixture
def three(tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> Path:
    """A prefix with fake go1.21.12, go1.21.13 and go1.22.0 installed in that order."""
    return prefixes.install_fakes(tmp_path, signing, ["go1.21.12", "go1.21.13", "go1.22.0"])


def ids(prefix: Path, capsys: pytest.CaptureFixture) -> List[Tuple[str, bool, bool]]:
    code, out, _ = run(["list", "--prefix", prefix, "--json"], capsys)
    assert code == 0
    return [(t["id"], t["current"], t["pinned"]) for t in json.loads(out)["toolchains"]]


def test_versions_side_by_side_switch_roll_back_and_log_every_switch(
        three: Path, capsys: pytest.CaptureFixture) -> None:
    assert ids(three, capsys) == [("go1.21.12.linux-amd64", False, False),
                                  ("go1.21.13.linux-amd64", False, False),
                                  ("go1.22.0.linux-amd64", True, False)]
    code, out, _ = run(["use", "1.21.12", "--prefix", three], capsys)
    assert code == 0
    assert "current   go1.21.12.linux-amd64 (was go1.22.0.linux-amd64); use took" in out
    # rollback goes back to what was current before, with no bundle.
    code, out, _ = run(["rollback", "--prefix", three, "--json"], capsys)
    doc = json.loads(out)
    assert (code, doc["previous"], doc["current"]) == (0, "go1.21.12.linux-amd64",
                                                       "go1.22.0.linux-amd64")
    assert os.readlink(three / "current") == "versions/go1.22.0.linux-amd64"
    code, out, _ = run(["rollback", "--to", "go1.21.13", "--prefix", three], capsys)
    assert code == 0 and "current   go1.21.13.linux-amd64" in out
    code, out, _ = run(["history", "--prefix", three, "--json"], capsys)
    hist = json.loads(out)["history"]
    assert [(h["op"], h["from"], h["to"]) for h in hist] == [
        ("install", None, "go1.21.12.linux-amd64"),
        ("install", "go1.21.12.linux-amd64", "go1.21.13.linux-amd64"),
        ("install", "go1.21.13.linux-amd64", "go1.22.0.linux-amd64"),
        ("use", "go1.22.0.linux-amd64", "go1.21.12.linux-amd64"),
        ("rollback", "go1.21.12.linux-amd64", "go1.22.0.linux-amd64"),
        ("rollback", "go1.22.0.linux-amd64", "go1.21.13.linux-amd64")]
    assert all(h["user"] and h["time"] and h["command"] for h in hist)


def test_history_records_the_ci_job_and_never_a_secret(
        three: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    assert run(["use", "1.21.13", "--prefix", three], capsys)[0] == 0
    text = (three / "state" / "history.jsonl").read_text()
    last = json.loads(text.splitlines()[-1])
    assert last["ci"] == {"system": "github", "GITHUB_RUN_ID": "4242", "GITHUB_SHA": "abc123"}
    assert "ghp_secret" not in text


def test_remove_frees_a_read_only_tree_but_never_the_current_or_a_pinned_one(
        three: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["remove", "go1.22.0.linux-amd64", "--prefix", three], capsys)
    assert code == 2
    assert ("removing go1.22.0.linux-amd64: it is the current toolchain; make another one "
            "current first (`use VERSION` or `rollback`), then remove it") in err
    assert run(["pin", "1.21.12", "--prefix", three], capsys)[0] == 0
    code, _, err = run(["remove", "1.21.12", "--prefix", three], capsys)
    assert code == 2 and "it is pinned; `unpin go1.21.12.linux-amd64` first" in err
    code, out, _ = run(["remove", "1.21.13", "--prefix", three, "--json"], capsys)
    assert (code, json.loads(out)["removed"]) == (0, ["go1.21.13.linux-amd64"])
    assert not (three / "versions" / "go1.21.13.linux-amd64").exists()
    code, _, err = run(["use", "1.21.13", "--prefix", three], capsys)
    assert code == 2
    assert ("choosing 1.21.13: not installed in " in err
            and "installed: go1.21.12.linux-amd64, go1.22.0.linux-amd64" in err)


def test_prune_keeps_current_previous_and_pinned_and_goes_oldest_first(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    prefix = tmp_path / "P"
    versions = ["go1.20.14", "go1.21rc2", "go1.21.0", "go1.21.12", "go1.21.13", "go1.22.0"]
    for seq, version in enumerate(versions, start=1):
        c = craft.Craft(sequence=seq)
        c.toolchain(version=version)
        assert run(["install", c.write(tmp_path / f"{seq}.tar.zst", signing.key), "--prefix",
                    prefix, "--trust", signing.signers], capsys)[0] == 0
    assert run(["pin", "1.20.14", "--prefix", prefix], capsys)[0] == 0
    code, out, _ = run(["prune", "--keep", "1", "--dry-run", "--prefix", prefix, "--json"],
                       capsys)
    doc = json.loads(out)
    # Current go1.22.0, previous go1.21.13 and pinned go1.20.14 are safe; of the rest the
    # newest one stays, and go1.21rc2 is older than go1.21.0 in Go's order.
    assert doc["would_remove"] == ["go1.21rc2.linux-amd64", "go1.21.0.linux-amd64"]
    assert len(ids(prefix, capsys)) == 6, "a dry run removes nothing"
    code, out, _ = run(["prune", "--keep", "1", "--prefix", prefix], capsys)
    assert code == 0 and "removed  go1.21rc2.linux-amd64" in out
    assert [i for i, _, _ in ids(prefix, capsys)] == [
        "go1.20.14.linux-amd64", "go1.21.12.linux-amd64", "go1.21.13.linux-amd64",
        "go1.22.0.linux-amd64"]


def test_rollback_with_no_earlier_toolchain_says_what_to_do(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    prefix = tmp_path / "P"
    assert run(["install", c.write(tmp_path / "b.tar.zst", signing.key), "--prefix", prefix,
                "--trust", signing.signers], capsys)[0] == 0
    code, _, err = run(["rollback", "--prefix", prefix], capsys)
    assert code == 2
    assert (f"rolling back in {prefix}: the history names no earlier toolchain that is still "
            "installed; name one with --to VERSION (see `list`)") in err
    code, _, err = run(["list", "--prefix", tmp_path / "empty"], capsys)
    assert code == 2
    assert f"reading prefix {tmp_path / 'empty'}: no toolchain is installed there" in err


def test_use_refuses_a_toolchain_whose_checklist_fails_and_keeps_current(
        three: Path, capsys: pytest.CaptureFixture) -> None:
    go = three / "versions" / "go1.21.12.linux-amd64" / "bin" / "go"
    go.chmod(0o755)
    go.parent.chmod(0o755)
    go.write_text("#!/bin/sh\necho broken >&2\nexit 1\n")  # a corrupted toolchain
    code, out, err = run(["use", "1.21.12", "--prefix", three], capsys)
    assert code == 4
    assert ("switching to go1.21.12.linux-amd64: the emergency checklist failed (go version, "
            in err)
    assert "go1.22.0.linux-amd64 stays current" in err
    assert os.readlink(three / "current") == "versions/go1.22.0.linux-amd64"


# --- two real toolchains, as every user -------------------------------------------------

def test_real_upgrade_then_rollback_in_seconds_for_every_user(
        user: User, pyz: Path, toolchain_bundle: Path, newer_toolchain_bundle: Path) -> None:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    old, new = user.give(toolchain_bundle), user.give(newer_toolchain_bundle)
    prefix = user.home / "go-emergency"
    p = ["--prefix", str(prefix)]

    def rescue_json(*args: str) -> Any:
        done = user.run([*rescue, *args, *p, "--json"], offline=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def go_version() -> str:
        done = user.run([str(prefix / "current" / "bin" / "go"), "version"], offline=True)
        return done.stdout.split()[2]

    rescue_json("install", str(old))
    rescue_json("install", str(new))
    assert go_version() == "go1.22.10"
    listed = rescue_json("list")["toolchains"]
    assert [(t["id"], t["current"]) for t in listed] == [
        ("go1.21.13.linux-amd64", False), ("go1.22.10.linux-amd64", True)]
    assert all(t["bytes"] > 100e6 for t in listed)
    back = rescue_json("rollback")
    assert go_version() == "go1.21.13" and back["seconds"] < 60
    rescue_json("use", "1.22.10")
    assert go_version() == "go1.22.10"
    rescue_json("pin", "1.21.13")
    assert rescue_json("prune", "--keep", "0")["removed"] == []
    rescue_json("unpin", "1.21.13")
    removed = rescue_json("remove", "1.21.13")
    assert removed["removed"] == ["go1.21.13.linux-amd64"] and removed["freed_bytes"] > 100e6
    assert not (prefix / "versions" / "go1.21.13.linux-amd64").exists()
    assert go_version() == "go1.22.10"
    history = rescue_json("history")["history"]
    assert [h["op"] for h in history] == ["install", "install", "rollback", "use"]


# --- guarded upgrades -------------------------------------------------------------------

def _project(root: Path, user: User) -> Path:
    """A real project whose test passes with go1.21.13 and fails with any other go."""
    proj = root / "app"
    proj.mkdir()
    (proj / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    (proj / "main.go").write_text('package main\n\nfunc main() { println("app") }\n')
    (proj / "version_test.go").write_text(
        'package main\n\nimport (\n\t"runtime"\n\t"testing"\n)\n\n'
        'func TestBuiltWithTheCertifiedGo(t *testing.T) {\n'
        '\tif runtime.Version() != "go1.21.13" {\n'
        '\t\tt.Fatalf("built with %s, certified only with go1.21.13", runtime.Version())\n'
        '\t}\n}\n')
    from tests.support.users import chown_tree

    chown_tree(proj, user.uid)
    return proj


def test_guarded_upgrade_that_breaks_a_project_rolls_back_by_itself(
        user: User, pyz: Path, toolchain_bundle: Path, newer_toolchain_bundle: Path) -> None:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    prefix = user.home / "P"
    p = ["--prefix", str(prefix)]
    proj = _project(user.work, user)
    env = user.env(GOCACHE=str(user.home / "gocache"), GOPATH=str(user.home / "gopath"))
    first = user.run([*rescue, "install", str(user.give(toolchain_bundle)), *p,
                      "--guard-project", str(proj), "--guard-cmd", "go test ./..."],
                     offline=True, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "guard     passed in" in first.stdout
    upgrade = user.run([*rescue, "install", str(user.give(newer_toolchain_bundle)), *p,
                        "--guard-project", str(proj), "--guard-cmd", "go test ./...", "--json"],
                       offline=True, env=env)
    assert upgrade.returncode == 4, upgrade.stderr
    err = upgrade.stderr
    assert (f"guarded install of go1.22.10.linux-amd64: guard command `go test ./...` in {proj} "
            "failed (exit 1): ") in err
    assert "failed (exit 1): --- FAIL: TestBuiltWithTheCertifiedGo" in err
    assert "go1.21.13.linux-amd64 is current again (checklist ok" in err
    doc = json.loads(upgrade.stdout)
    log = Path(doc["guard"]["failure"]["log"])
    assert log.is_file()
    assert "built with go1.22.10, certified only with go1.21.13" in log.read_text()
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"
    version = user.run([str(prefix / "current" / "bin" / "go"), "version"], offline=True)
    assert version.stdout.split()[2] == "go1.21.13"
    ops = [h["op"] for h in history(prefix)]
    assert ops == ["install", "install", "guard-rollback"]
    # `use` takes the same guard, and a pattern of the operator's own.
    again = user.run([*rescue, "use", "1.22.10", *p, "--guard-project", str(proj),
                      "--fail-pattern", "^app$", "--guard-cmd", "go run ."], offline=True,
                     env=env)
    assert again.returncode == 4
    assert "guard command `go run .` in" in again.stderr and "failed (exit 0): app" in again.stderr


def test_two_switches_at_once_take_turns_and_both_are_logged(
        three: Path, capsys: pytest.CaptureFixture) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmds = [["use", "1.21.12"], ["rollback", "--to", "1.21.13"]]
    procs = [subprocess.Popen([sys.executable, "-m", "installer.cli",
                               *c, "--prefix", str(three)], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    hist = history(three)
    assert sorted(h["op"] for h in hist[-2:]) == ["rollback", "use"]
    # The second one switched from where the first one left `current`: no lost update.
    assert hist[-1]["from"] == hist[-2]["to"]
    assert os.readlink(three / "current") == f"versions/{hist[-1]['to']}"


# --- retention and the disk watermark ---------------------------------------------------

def _bulky(tmp: Path, signing: bundles.Signing, seq: int, version: str) -> Path:
    c = craft.Craft(sequence=seq)
    root = c.toolchain(version=version)
    c.file(f"{root}/bulk", os.urandom(3 << 20))  # 3 MB that does not compress
    return c.write(tmp / f"bulk{seq}.tar.zst", signing.key)


def test_policy_file_sets_keep_pins_and_refuses_what_it_does_not_know(
        three: Path, capsys: pytest.CaptureFixture) -> None:
    policy = three / "state" / "policy.toml"
    policy.write_text('keep = 0\npinned = ["go1.21.12.linux-amd64"]  # the audited one\n')
    code, out, _ = run(["prune", "--dry-run", "--prefix", three, "--json"], capsys)
    assert (code, json.loads(out)["would_remove"]) == (0, [])  # 1.21.13 is previous
    code, out, _ = run(["list", "--prefix", three, "--json"], capsys)
    assert [t["pinned"] for t in json.loads(out)["toolchains"]] == [True, False, False]
    policy.write_text("keep = three\n")
    code, _, err = run(["prune", "--prefix", three], capsys)
    assert code == 2 and f"reading policy {policy}:1:" in err and "write `key = 3`" in err
    policy.write_text("kep = 3\n")
    code, _, err = run(["prune", "--prefix", three], capsys)
    assert code == 2 and f"reading policy {policy}: unknown key 'kep'" in err
    policy.unlink()
    code, _, err = run(["prune", "--prefix", three], capsys)
    assert code == 2 and "say how many to keep (--keep N), or set keep / keep_days" in err


def test_stop_watermark_refuses_then_auto_prune_makes_room_on_a_small_disk(
        tmp_path: Path, signing: bundles.Signing) -> None:
    root = Path(__file__).resolve().parents[1]
    disk = tmp_path / "disk"
    disk.mkdir()
    bundles_ = [_bulky(tmp_path, signing, i, v) for i, v in
                enumerate(["go1.21.10", "go1.21.11", "go1.21.12", "go1.21.13"], start=1)]
    install = (f'"{sys.executable}" -m installer.cli install --prefix "{disk}/P" --trust '
               f'"{signing.signers}"')
    # 80 MB: three 3 MB toolchains and the 64 MB free-space margin fit, a fourth passes 95%.
    script = "\n".join([
        f'mount -t tmpfs -o size=80m tmpfs "{disk}"',
        *[f'{install} "{b}" >/dev/null || exit 9' for b in bundles_[:3]],
        f'{install} "{bundles_[3]}"; echo "refused=$?"',
        f'{install} "{bundles_[3]}" --auto-prune; echo "pruned=$?"',
        f'ls "{disk}/P/versions"',
    ])
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=300)
    out, err = done.stdout, done.stderr
    assert "refused=2" in out, out + err
    assert f"installing into {disk}/P: the disk would pass its stop mark of 95% (" in err
    assert "MB needed, " in err and "MB short). Remove or unpin toolchains" in err
    assert err.rstrip().endswith("or pass --auto-prune")
    assert "pruned=0" in out, out + err
    assert "note      --auto-prune removed go1.21.10.linux-amd64" in out
    assert "% used after this install (warn mark 85%); consider `prune`" in out
    listed = out.split("pruned=0")[1].split()
    assert "go1.21.10.linux-amd64" not in listed and "go1.21.13.linux-amd64" in listed
    assert "go1.21.12.linux-amd64" in listed  # the previous one is never pruned


def test_switch_and_guard_mistakes_are_told_before_anything_changes(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    c.toolchain(goarch="arm64")  # carried for another machine, installed beside
    prefix = tmp_path / "P"
    assert run(["install", c.write(tmp_path / "b.tar.zst", signing.key), "--prefix", prefix,
                "--trust", signing.signers], capsys)[0] == 0
    code, _, err = run(["use", "go1.21.13.linux-arm64", "--prefix", prefix], capsys)
    assert code == 2
    assert ("switching to go1.21.13.linux-arm64: it is built for linux-arm64, this machine is "
            "linux-amd64") in err
    code, _, err = run(["use", "1.21.13", "--prefix", prefix, "--guard-cmd", "go test ./..."],
                       capsys)
    assert code == 2
    assert "--guard-cmd needs --guard-project DIR (the directory to run it in)" in err
    code, _, err = run(["use", "1.21.13", "--prefix", prefix, "--guard-project", tmp_path,
                        "--fail-pattern", "(unclosed"], capsys)
    assert code == 2 and "--fail-pattern '(unclosed' is not a regular expression" in err
    (prefix / "state" / "policy.toml").write_text("warn_percent = 99\nstop_percent = 90\n")
    code, _, err = run(["prune", "--prefix", prefix], capsys)
    assert code == 2 and "need 0 < warn_percent <= stop_percent <= 100" in err
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"
