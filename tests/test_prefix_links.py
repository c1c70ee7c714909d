"""Links in a prefix: a toolchain, a leftover or a directory of P that is a symbolic link is
unlinked or refused, never walked, chmod'ed or written through; a directory outside the prefix
(a distro's Go linked in by hand) keeps every mode and byte, and no command claims its bytes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from installer import doctor, prefix, versions
from installer.prefix import Layout
from manifests.errors import NotReadyError
from tests.support import bundles, craft, prefixes
from tests.support.clirun import run
from tests.support.users import User, chown_tree

TC = "go1.21.13.linux-amd64"
BIG = 3_000_000  # the outside tree's bytes: a claim of them shows as "3 MB freed"



def fake_goroot(at: Path) -> Path:
    """A Go installed by someone else (a distro's /usr/lib/go-1.21): dirs 0755, files 0644."""
    for d in ("bin", "src/runtime", "pkg/tool/linux_amd64"):
        (at / d).mkdir(parents=True, mode=0o755)
    (at / "bin" / "go").write_bytes(b"#!/bin/sh\necho distro go\n")
    (at / "src" / "runtime" / "big.bin").write_bytes(b"\1" * BIG)
    (at / "VERSION").write_bytes(b"go1.21.13\n")
    for dirpath, dirnames, _ in os.walk(at):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    at.chmod(0o755)
    return at


def tree_state(top: Path) -> Dict[str, Tuple[int, bytes]]:
    """Every path's mode and content: what must stay exactly as it was."""
    out = {".": (stat.S_IMODE(os.lstat(top).st_mode), b"")}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            data = Path(full).read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out[os.path.relpath(full, top)] = (stat.S_IMODE(st.st_mode), data)
    return out


@pytest.fixture
def installed(tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> Path:
    """A prefix with fake go1.21.12, go1.22.0 and go1.22.1 installed (go1.22.1 current)."""
    return prefixes.install_fakes(tmp_path, signing, ["go1.21.12", "go1.22.0", "go1.22.1"])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return fake_goroot(tmp_path / "usr-lib-go")


def planted(top: Path, name: str, target: Path) -> Path:
    """A link planted in a directory rescue made read-only."""
    mode = stat.S_IMODE(os.lstat(top).st_mode)
    top.chmod(0o755)
    (top / name).symlink_to(target)
    top.chmod(mode)
    return top / name


# --- item 1: remove / prune / clean-up never walk a link ---------------------------------

def test_remove_of_a_linked_toolchain_never_touches_the_target(
        installed: Path, outside: Path, capsys: pytest.CaptureFixture) -> None:
    before = tree_state(outside)
    link = installed / "versions" / TC
    link.symlink_to(outside)
    for name in ("1.21.13", TC):
        code, out, err = run(["remove", name, "--prefix", installed], capsys)
        assert code == 2, err
        assert (f"rescue: choosing {name}: {link} is a symbolic link to '{outside}', not a "
                "toolchain rescue installed; rescue never uses or removes anything through a "
                f"link. Remove the link itself (`rm {link}`) or install {TC} from a bundle"
                ) in err
        assert "freed" not in out
    code, out, _ = run(["prune", "--keep", "0", "--prefix", installed], capsys)
    assert code == 0 and TC not in out and "freed 0 MB" in out
    # The last guard, behind `resolve`: removing it by id still never walks it.
    with pytest.raises(NotReadyError, match="is not a directory rescue installed"):
        versions.remove(Layout(installed), TC)
    assert link.is_symlink() and tree_state(outside) == before


def test_install_over_a_linked_toolchain_replaces_the_link_and_never_touches_the_target(
        tmp_path: Path, outside: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture) -> None:
    before = tree_state(outside)
    p = tmp_path / "P"
    (p / "versions").mkdir(parents=True)
    (p / "versions" / TC).symlink_to(outside)
    c = craft.Craft()
    c.toolchain()
    code, out, err = run(["install", c.write(tmp_path / "b.tar.zst", signing.key), "--prefix",
                          p, "--trust", signing.signers], capsys)
    assert code == 0, err
    assert f"first: 'versions/{TC}'): replaced by this bundle's copy" in out
    assert not (p / "versions" / TC).is_symlink() and (p / "versions" / TC / "bin/go").is_file()
    assert os.listdir(p / "versions") == [TC]
    assert tree_state(outside) == before


def test_leftovers_that_are_links_are_unlinked_never_walked_or_chmoded(
        installed: Path, outside: Path, capsys: pytest.CaptureFixture) -> None:
    before = tree_state(outside)
    v = installed / "versions"
    names = [f".trash-{TC}-123", f".repair-new-{TC}-77", f".repair-old-{TC}-123"]
    links = [planted(v, n, outside) for n in names]
    links.append(installed / ".staging-999-abc")
    links[-1].symlink_to(outside)
    code, out, err = run(["pin", "1.21.12", "--prefix", installed], capsys)
    assert code == 0, err
    for link in links[:3]:
        assert (f"note      removed versions/{link.name}, a symbolic link to '{outside}' that "
                "rescue did not make (its target was not touched)") in out
    assert (f"note      removed .staging-999-abc, a symbolic link to '{outside}' (its target "
            "was not touched)") in out
    assert "MB" not in out
    assert not any(os.path.lexists(link) for link in links)
    assert tree_state(outside) == before


def test_links_planted_inside_a_removed_tree_are_never_followed_nor_counted(
        installed: Path, outside: Path, capsys: pytest.CaptureFixture) -> None:
    before = tree_state(outside)
    goroot = installed / "versions" / "go1.21.12.linux-amd64"
    planted(goroot, "sdk", outside)
    planted(goroot / "bin", "lib", outside)
    trash = installed / "versions" / f".trash-{TC}-5"  # a removal a kill interrupted
    (trash / "bin").mkdir(parents=True)
    (trash / "bin" / "sdk").symlink_to(outside)
    os.chmod(trash / "bin", 0o555)
    staging = installed / ".staging-5-x"  # an install a kill interrupted
    (staging / "go").mkdir(parents=True)
    (staging / "go" / "sdk").symlink_to(outside)
    code, out, err = run(["remove", "1.21.12", "--prefix", installed, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["removed"] == ["go1.21.12.linux-amd64"] and doc["freed_bytes"] < BIG
    assert f"finished removing {TC}, interrupted before" in doc["notes"]
    assert "removed .staging-5-x (0 MB), left by an interrupted install" in doc["notes"]
    assert not goroot.exists() and not trash.exists() and not staging.exists()
    assert tree_state(outside) == before


def test_remove_tree_and_tree_bytes_never_cross_a_link(tmp_path: Path, outside: Path) -> None:
    before = tree_state(outside)
    link = tmp_path / "link"
    link.symlink_to(outside)
    assert prefix.tree_bytes(link) == 0
    prefix.remove_tree(link)
    assert not os.path.lexists(link)
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "f").write_bytes(b"x" * 10000)
    (tree / "a" / "b" / "out").symlink_to(outside)
    (tree / "top").symlink_to(outside / "src")
    prefix.make_read_only(tree)
    assert 10000 <= prefix.tree_bytes(tree) < BIG
    prefix.remove_tree(tree)
    assert not tree.exists() and tree_state(outside) == before


# --- item 2: only a directory rescue set aside is put back --------------------------------

def test_a_linked_repair_leftover_is_never_put_back_as_a_toolchain(
        installed: Path, outside: Path, capsys: pytest.CaptureFixture) -> None:
    before = tree_state(outside)
    v = installed / "versions"
    planted(v, f".repair-old-{TC}-123", outside)
    # A real directory of a toolchain no installed bundle carried: not rescue's either.
    os.chmod(v, 0o755)
    (v / ".repair-old-go1.20.1.linux-amd64-9" / "bin").mkdir(parents=True)
    # What a killed repair really leaves: the live tree set aside, nothing in its place.
    os.rename(v / "go1.22.0.linux-amd64", v / ".repair-old-go1.22.0.linux-amd64-8")
    os.chmod(v, 0o555)
    code, out, err = run(["pin", "1.21.12", "--prefix", installed], capsys)
    assert code == 0, err
    assert not os.path.lexists(v / TC)
    assert "note      put go1.22.0.linux-amd64 back: a repair was interrupted while swapping it" \
        in out
    assert (f"note      removed {v}/.repair-old-go1.20.1.linux-amd64-9: not a toolchain rescue "
            "set aside (no installed bundle carried go1.20.1.linux-amd64)") in out
    assert sorted(os.listdir(v)) == ["go1.21.12.linux-amd64", "go1.22.0.linux-amd64",
                                     "go1.22.1.linux-amd64"]
    code, out, _ = run(["list", "--prefix", installed, "--json"], capsys)
    assert TC not in out
    assert tree_state(outside) == before


# --- item 12: a directory of P that is a link is refused, nothing written through it ------

@pytest.mark.parametrize("which", ["state", "versions", "goproxy", "state/bundles"])
def test_a_linked_prefix_directory_is_refused_and_nothing_is_written_through_it(
        which: str, installed: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture) -> None:
    place = installed / which
    elsewhere = tmp_path / "elsewhere"
    if place.exists():
        os.rename(place, elsewhere)
    else:
        elsewhere.mkdir()
    place.symlink_to(elsewhere)
    before = tree_state(elsewhere)
    c = craft.Craft(sequence=9)
    c.toolchain(version="go1.22.2")
    bundle = c.write(tmp_path / "9.tar.zst", signing.key)
    p = ["--prefix", installed]
    trust = ["--trust", signing.signers]
    commands = [["use", "1.21.12", *p], ["rollback", *p], ["remove", "1.21.12", *p],
                ["pin", "1.21.12", *p], ["unpin", "1.21.12", *p], ["prune", "--keep", "0", *p],
                ["list", *p], ["history", *p], ["install", bundle, *p, *trust],
                ["verify", *p, *trust], ["repair", *p, *trust], ["snapshot", "list", *p],
                ["snapshot", "create", *p]]
    for argv in commands:
        code, _, err = run(argv, capsys)
        assert code == 2, (argv, err)
        assert (f": it is a symbolic link (to '{elsewhere}'); rescue keeps its files only "
                f"inside the prefix; move the link away (`mv {place} {place}.link`) and run "
                "the command again") in err, (argv, err)
        assert f" {place}: " in err
    assert tree_state(elsewhere) == before
    found = [f.to_dict() for f in doctor.findings(doctor.gather(Layout(installed)))
             if f.check == "prefix-links"]
    assert found == [{"check": "prefix-links", "severity": "error", "evidence": str(place),
                      "message": f"{place} is a symbolic link to '{elsewhere}': rescue keeps "
                                 "its files only inside the prefix and refuses to work "
                                 "through it", "fix": f"mv {place} {place}.link"}]


def test_a_history_linked_elsewhere_is_refused_before_anything_switches(
        installed: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outside_log = tmp_path / "elsewhere.jsonl"
    outside_log.write_text("")
    history = installed / "state" / "history.jsonl"
    history.unlink()
    history.symlink_to(outside_log)
    code, _, err = run(["use", "1.21.12", "--prefix", installed], capsys)
    assert code == 2, err
    assert (f"rescue: reading the history {history}: it is a symbolic link (to "
            f"'{outside_log}'); rescue keeps its files only inside the prefix; move the link "
            f"away (`mv {history} {history}.link`) and run the command again") in err
    assert outside_log.read_text() == ""
    assert os.readlink(installed / "current") == "versions/go1.22.1.linux-amd64"


# --- as every user, with the real pyz ------------------------------------------------------

def test_remove_prune_repair_as_every_user_leave_a_linked_go_alone(
        user: User, rescue: List[str], signing: bundles.Signing) -> None:
    sdk = fake_goroot(user.work / "sdk" / "go")  # the user's own Go, theirs to lose
    chown_tree(user.work / "sdk", user.uid)
    before = tree_state(sdk)
    p = user.work / "P"
    for seq, version in enumerate(["go1.21.12", "go1.22.0", "go1.22.1"], start=1):
        c = craft.Craft(sequence=seq)
        c.toolchain(version=version)
        b = user.give(c.write(user.work.parent / f"{seq}.tar.zst", signing.key))
        done = user.run([*rescue, "install", str(b), "--prefix", str(p)], offline=True)
        assert done.returncode == 0, done.stderr

    def as_user(*argv: str) -> subprocess.CompletedProcess:
        return user.run([*rescue, *argv, "--prefix", str(p)], offline=True)

    def plant(where: Path) -> None:
        user.run(["chmod", "u+w", str(where.parent)])
        done = user.run(["ln", "-s", str(sdk), str(where)])
        assert done.returncode == 0, done.stderr

    v = p / "versions"
    plant(v / TC)
    plant(v / "go1.21.12.linux-amd64" / "sdk")
    done = as_user("remove", "1.21.13")
    assert done.returncode == 2 and "is a symbolic link to" in done.stderr
    plant(v / f".trash-{TC}-1")
    plant(p / ".staging-1-x")
    done = as_user("prune", "--keep", "0")
    assert done.returncode == 0, done.stderr
    assert "removed  go1.21.12.linux-amd64" in done.stdout and "freed 0 MB" in done.stdout
    plant(v / f".repair-old-{TC}-1")
    done = as_user("repair")
    assert done.returncode == 0, done.stderr
    assert f"removed versions/.repair-old-{TC}-1, a symbolic link" in done.stdout
    assert (v / TC).is_symlink() and sorted(os.listdir(v)) == [
        TC, "go1.22.0.linux-amd64", "go1.22.1.linux-amd64"]
    assert tree_state(sdk) == before
