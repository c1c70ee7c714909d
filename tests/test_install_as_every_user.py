"""Installs as operators run them: `python3 -I rescue.pyz` as root AND as an unprivileged user,
offline, side by side with other installs, killed half-way, on a full disk."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from tests.support import bundles, craft, tamper
from tests.support.users import User


def test_real_toolchain_installs_offline_and_builds_for_every_user(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    bundle = user.give(toolchain_bundle)
    prefix = user.home / "go-emergency"
    done = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix), "--json"],
                    offline=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["current"] == "go1.21.13.linux-amd64" and report["ok"]
    goroot = prefix / "versions" / "go1.21.13.linux-amd64"
    assert oct(goroot.stat().st_mode & 0o777) == "0o555", "the GOROOT is read-only"
    hello = user.work / "hello"
    hello.mkdir()
    (hello / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (hello / "main.go").write_text('package main\n\nfunc main() { println("ok") }\n')
    os.chown(hello, user.uid, user.uid)
    for f in hello.iterdir():
        os.chown(f, user.uid, user.uid)
    env = user.env(PATH=f"{prefix / 'current' / 'bin'}:/usr/bin:/bin")
    built = user.run(["go", "build", "-o", str(hello / "hello"), "."], offline=True, env=env,
                     cwd=hello)
    assert built.returncode == 0, built.stderr
    assert (hello / "hello").exists()


def test_refused_install_leaves_an_empty_prefix_exactly_as_it_was(
        user: User, rescue: List[str], toolchain_bundle: Path, tmp_path: Path) -> None:
    def flip(info, data):  # type: ignore[no-untyped-def]
        if info.name.endswith("/bin/gofmt"):
            data = tamper.flip_byte(data)
        return [(info, data)]

    bad = user.give(tamper.rewrite(toolchain_bundle, tmp_path / "flipped.tar.zst", flip))
    prefix = user.work / "empty"
    prefix.mkdir()
    os.chown(prefix, user.uid, user.uid)
    done = user.run([*rescue, "install", str(bad), "--prefix", str(prefix)])
    assert done.returncode == 3, done.stderr
    assert "sha256 mismatch" in done.stderr
    assert list(prefix.iterdir()) == [], "not even a lock file may stay behind"


def _both(cmd_a: List[str], cmd_b: List[str], user: User, delay: float
          ) -> List[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(user.argv(cmd_a), env=user.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)]
    time.sleep(delay)
    procs.append(subprocess.Popen(user.argv(cmd_b), env=user.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("existing", [False, True], ids=["new-prefix", "existing-prefix"])
def test_concurrent_installs_never_delete_each_others_work(
        existing: bool, user: User, rescue: List[str], signing: bundles.Signing) -> None:
    newer = craft.Craft(sequence=2)
    newer.toolchain()
    replay = craft.Craft(sequence=1)
    replay.toolchain(version="go1.21.12")
    good = user.give(newer.write(user.work.parent / "seq2.tar.zst", signing.key))
    old = user.give(replay.write(user.work.parent / "seq1.tar.zst", signing.key))
    rng = random.Random(11)
    for trial in range(8):
        prefix = user.work / f"P{trial}"
        if existing:
            prefix.mkdir()
            os.chown(prefix, user.uid, user.uid)
        cmd = [*rescue, "install", "--prefix", str(prefix)]
        # The same bundle twice, then a good bundle racing a replay of an older sequence.
        pair = [cmd + [str(good)], cmd + [str(good if trial % 2 else old)]]
        rng.shuffle(pair)
        results = _both(pair[0], pair[1], user, rng.choice([0, 0, 0.05, 0.2]))
        for r in results:
            assert "Traceback" not in r.stderr and "SECURITY ERROR" not in r.stderr, r.stderr
            assert r.returncode in (0, 3), r.stderr
            if r.returncode == 3:  # only ever the replay, refused because seq 2 is in
                assert "already installed sequence 2" in r.stderr, r.stderr
        good_runs = [r for r in results if str(good) in r.args]
        assert any(r.returncode == 0 for r in good_runs)
        state = json.loads((prefix / "state" / "installed.json").read_text())
        assert state["channels"]["stable"] == 2
        assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"
        assert (prefix / "versions/go1.21.13.linux-amd64/go.env").read_text().count(
            f"GOPROXY=file://{prefix}/goproxy") == 1
        assert not [p for p in prefix.iterdir() if p.name.startswith(".staging-")]


@pytest.mark.parametrize("point", ["install-journaled", "install-recorded", "install-switched"])
def test_install_killed_around_the_switch_is_finished_by_the_next_command(
        point: str, user: User, rescue: List[str], signing: bundles.Signing) -> None:
    first = craft.Craft(sequence=1)
    first.toolchain(version="go1.21.12")
    second = craft.Craft(sequence=2)
    second.toolchain()
    b1 = user.give(first.write(user.work.parent / "one.tar.zst", signing.key))
    b2 = user.give(second.write(user.work.parent / "two.tar.zst", signing.key))
    prefix = user.work / "P"
    assert user.run([*rescue, "install", str(b1), "--prefix", str(prefix)]).returncode == 0
    killed = user.run([*rescue, "install", str(b2), "--prefix", str(prefix)],
                      env=user.env(RESCUE_CRASH_AT=point))
    assert killed.returncode == -9
    # The next command finishes the interrupted install: the state names the bundle that made
    # `current` what it is, so the replay of #1 is refused.
    again = user.run([*rescue, "install", str(b1), "--prefix", str(prefix)])
    assert again.returncode == 3, again.stderr
    assert "channel 'stable' already installed sequence 2" in again.stderr
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"
    assert not (prefix / "state" / "journal.json").exists()
    note = user.run([*rescue, "install", str(b2), "--prefix", str(prefix)])
    assert note.returncode == 0, note.stderr


def test_install_killed_while_staging_is_cleaned_up_by_the_next_one(
        user: User, rescue: List[str], signing: bundles.Signing) -> None:
    c = craft.Craft()
    root = c.toolchain()
    for i in range(50):
        c.dir(f"{root}/src{i}").file(f"{root}/src{i}/f.go", b"package x\n" * 100)
    bundle = user.give(c.write(user.work.parent / "b.tar.zst", signing.key))
    prefix = user.work / "P"
    killed = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)],
                      env=user.env(RESCUE_CRASH_AT="install-staged"))
    assert killed.returncode == -9
    stale = [p.name for p in prefix.iterdir() if p.name.startswith(".staging-")]
    assert len(stale) == 1
    # Read-only dirs a plain `rm -rf` by their non-root owner cannot delete.
    assert (prefix / stale[0] / root / "src0").stat().st_mode & 0o222 == 0
    done = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)])
    assert done.returncode == 0, done.stderr
    assert f"note      removed {stale[0]} (0 MB), left by an interrupted install" in done.stdout
    assert not [p for p in prefix.iterdir() if p.name.startswith(".staging-")]


def test_full_disk_while_staging_is_this_machines_error_not_tampering(
        user: User, rescue: List[str], signing: bundles.Signing) -> None:
    # Bytes fit (the pre-check passes), inodes run out half-way: ENOSPC from mkdir.
    c = craft.Craft()
    root = c.toolchain()
    for i in range(100):
        c.dir(f"{root}/d{i}")
    bundle = user.give(c.write(user.work.parent / "inodes.tar.zst", signing.key))
    disk = user.work / "disk"
    disk.mkdir()
    install = user.argv([*rescue, "install", str(bundle), "--prefix", str(disk / "P")])
    script = (f'mount -t tmpfs -o size=200m,nr_inodes=60,uid={user.uid} tmpfs "{disk}" && '
              f'exec {" ".join(install)}')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          env=user.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "staging the bundle: No space left on device" in done.stderr
    assert "the filesystem is full (no space or no inodes left" in done.stderr
    assert "Nothing was installed; the previous state stays active." in done.stderr
    assert "SECURITY ERROR" not in done.stderr and "truncated" not in done.stderr


def test_file_name_too_long_for_the_filesystem_is_this_machines_error(
        user: User, rescue: List[str], signing: bundles.Signing) -> None:
    c = craft.Craft()
    root = c.toolchain()
    c.file(f"{root}/{'n' * 300}", b"x")
    bundle = user.give(c.write(user.work.parent / "long.tar.zst", signing.key))
    prefix = user.work / "P"
    done = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)])
    assert done.returncode == 2, done.stderr
    assert "File name too long" in done.stderr
    assert "a file name is too long for this filesystem" in done.stderr
    assert "SECURITY ERROR" not in done.stderr
    assert not prefix.exists()
