"""Day-two commands on a prefix this user may not change, or on a full disk: this machine's
state, told as such (exit 2) with who owns the prefix or what to free; never "this is a bug"."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.support import bundles, craft, tamper
from tests.support.users import STOCK_PYTHON, User, make_user, remove_user_dirs

VERSIONS = ["go1.21.12", "go1.21.13", "go1.22.0", "go1.22.1"]
# Each command changes P: go1.22.1 is current, go1.22.0 previous, go1.21.12 pinned.
CHANGES = [["use", "1.21.13"], ["rollback"], ["remove", "1.21.13"], ["pin", "1.21.13"],
           ["unpin", "1.21.12"], ["prune", "--keep", "0"]]


def install_four(user: User, rescue: List[str], signing: bundles.Signing, p: Path) -> None:
    for seq, version in enumerate(VERSIONS, start=1):
        c = craft.Craft(sequence=seq)
        c.toolchain(version=version)
        b = user.give(c.write(user.work.parent / f"{seq}.tar.zst", signing.key))
        done = user.run([*rescue, "install", str(b), "--prefix", str(p)], offline=True)
        assert done.returncode == 0, done.stderr
    done = user.run([*rescue, "pin", "1.21.12", "--prefix", str(p)], offline=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def roots_prefix(pyz: Path, signing: bundles.Signing) -> Iterator[Tuple[Path, User, List[str]]]:
    """A prefix root installed, and uid 65534 with a pyz of their own."""
    root, nobody = make_user("root"), make_user("nobody")
    p = root.work / "P"
    install_four(root, [STOCK_PYTHON, "-I", str(root.give(pyz))], signing, p)
    yield p, nobody, [STOCK_PYTHON, "-I", str(nobody.give(pyz))]
    remove_user_dirs(root)
    remove_user_dirs(nobody)


def test_another_users_prefix_is_refused_naming_its_owner_and_left_as_it_was(
        roots_prefix: Tuple[Path, User, List[str]]) -> None:
    p, nobody, rescue = roots_prefix
    before = tamper.snapshot(p)
    for argv in CHANGES:
        done = nobody.run([*rescue, *argv, "--prefix", str(p)], offline=True)
        assert done.returncode == 2, (argv, done.stderr)
        assert (f"{p} is owned by root (uid 0), not by this user (nobody); run the command as "
                "root, or pass --prefix with a prefix of your own") in done.stderr, argv
        assert "this is a bug" not in done.stderr
    done = nobody.run([*rescue, "use", "1.21.13", "--prefix", str(p)], offline=True)
    assert done.stderr.startswith(f"rescue: switching to 1.21.13 in {p}: Permission denied (")
    assert tamper.snapshot(p) == before
    # A removal root's kill left: `repair` finishes it first, and may not.
    (p / "versions" / ".trash-go1.21.13.linux-amd64-1" / "bin").mkdir(parents=True)
    done = nobody.run([*rescue, "repair", "--prefix", str(p)], offline=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"rescue: repairing {p}: Operation not permitted (")
    assert f"{p} is owned by root (uid 0), not by this user (nobody)" in done.stderr


def test_state_files_another_user_keeps_unreadable_are_told_with_their_owner(
        roots_prefix: Tuple[Path, User, List[str]]) -> None:
    p, nobody, rescue = roots_prefix
    for name, argv in (("pins.json", ["list"]), ("history.jsonl", ["history"]),
                       ("installed.json", ["list"])):
        (p / "state" / name).chmod(0o600)
        done = nobody.run([*rescue, *argv, "--prefix", str(p)], offline=True)
        assert done.returncode == 2, (argv, done.stderr)
        assert (f"{p / 'state' / name}: this user may not read it; run as its owner root "
                "(uid 0), or pass a --prefix of your own") in done.stderr
        (p / "state" / name).chmod(0o644)


def _on_a_full_disk(user: User, rescue: List[str], disk: Path,
                    commands: List[List[str]]) -> Dict[str, Tuple[int, str]]:
    """Move the prefix `disk`/P onto a small tmpfs mounted on `disk` (the same path: its
    go.env names it), fill it, run each command as `user`: its exit code and stderr, by
    command. The mount lives in a namespace of its own."""
    kept = user.work / "kept"
    lines = [f"cp -a {disk}/P {kept}",
             f"mount -t tmpfs -o size=4m,uid={user.uid},gid={user.uid} tmpfs {disk}",
             f"cp -a {kept} {disk}/P",
             f"dd if=/dev/zero of={disk}/fill bs=64k 2>/dev/null || true",
             "set +e"]
    out = user.work / "out"
    out.mkdir()
    os.chown(out, user.uid, user.uid)
    for i, argv in enumerate(commands):
        cmd = user.argv([*rescue, *argv, "--prefix", f"{disk}/P"], offline=True)
        lines.append(f"{shlex.join(cmd)} >/dev/null 2>{out}/{i}.err; echo $? >{out}/{i}.rc")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                           "\n".join(lines)], env=user.env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return {" ".join(argv): (int((out / f"{i}.rc").read_text()), (out / f"{i}.err").read_text())
            for i, argv in enumerate(commands)}


def test_a_full_disk_is_told_with_what_to_free_for_every_user(
        user: User, rescue: List[str], signing: bundles.Signing) -> None:
    disk = user.work / "disk"
    disk.mkdir()
    os.chown(disk, user.uid, user.uid)
    install_four(user, rescue, signing, disk / "P")
    commands = [["use", "1.21.13"], ["pin", "1.21.13"], ["unpin", "1.21.12"], ["rollback"]]
    results = _on_a_full_disk(user, rescue, disk, commands)
    for argv, (code, err) in results.items():
        assert code == 2, (argv, err)
        assert "No space left on device (" in err, err
        assert (f": the disk holding {disk}/P is full (0.0 MB free); free at least 2 MB there "
                f"(see `df -h {disk}/P` and `df -i {disk}/P`; `prune` removes old toolchains), "
                "then run the command again") in err, err
        assert "this is a bug" not in err
    assert results["pin 1.21.13"][1].startswith(f"rescue: pinning 1.21.13 in {disk}/P: ")
