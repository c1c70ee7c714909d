"""Issue 19 item 4: pinned snapshots, and the disk marks of the snapshot store on a real small
tmpfs (a private mount namespace as root; `unshare -Urm` gives uid 65534 one of its own)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from tests.support import bundles, craft
from tests.support.users import STOCK_PYTHON, User
from tests.test_snapshot import fake_toolchain, rescue, run_json, write_bundle


def small_bundle(dest: Path, signing: bundles.Signing) -> Path:
    c = craft.Craft(name="dc", sequence=1)
    fake_toolchain(c, "go1.21.12")
    return write_bundle(c, dest, signing.key, [])


@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing) -> Iterator[Path]:
    p = tmp_path / "P"
    assert rescue("install", small_bundle(tmp_path / "b.tar.zst", signing), "--prefix", p,
                  "--trust", signing.signers) == 0
    yield p
    os.system(f"chmod -R u+w {tmp_path} 2>/dev/null")  # read-only GOROOTs: let pytest clean up


def test_a_pinned_snapshot_outlives_prune_until_unpinned_or_included(
        prefix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [run_json(capsys, "snapshot", "create", "--prefix", prefix)[1]["id"] for _ in range(3)]
    code, out = run_json(capsys, "snapshot", "pin", "nope", "--prefix", prefix)
    assert code == 2 and out["error"]["message"].startswith(
        "reading snapshot 'nope': no such snapshot in "), out
    assert rescue("snapshot", "pin", ids[0], "--prefix", prefix) == 0
    assert capsys.readouterr().out == f"pinned {ids[0]}\n"
    assert rescue("snapshot", "pin", ids[0], "--prefix", prefix) == 0
    assert capsys.readouterr().out == f"{ids[0]} was already pinned\n"
    code, listed = run_json(capsys, "snapshot", "list", "--prefix", prefix)
    assert [s["pinned"] for s in listed["snapshots"]] == [True, False, False]
    assert rescue("snapshot", "prune", "--keep", "0", "--prefix", prefix) == 0
    assert capsys.readouterr().out.endswith(
        "2 removed, 1 kept (1 pinned, kept; --include-pinned prunes them too)\n")
    assert os.listdir(prefix / "state/snapshots") == [f"{ids[0]}.json"]
    assert rescue("snapshot", "unpin", ids[0], "--prefix", prefix) == 0
    assert capsys.readouterr().out == f"unpinned {ids[0]}\n"
    assert rescue("snapshot", "unpin", ids[0], "--prefix", prefix) == 0
    assert capsys.readouterr().out == f"{ids[0]} was not pinned\n"
    assert rescue("snapshot", "pin", ids[0], "--prefix", prefix) == 0
    code, out = run_json(capsys, "snapshot", "prune", "--keep", "0", "--include-pinned",
                         "--prefix", prefix)
    assert code == 0 and out["removed"] == [ids[0]], out


@pytest.mark.parametrize("damage, problem", [
    (b"{", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
           "(char 1))"),
    (b'{"format": 1, "pinned": ["../x"]}', "its pinned is not a list of snapshot ids"),
    (None, "it is a symbolic link, which rescue never follows")])
def test_a_damaged_pin_store_is_exit_2_naming_it_and_the_way_out(
        damage: Any, problem: str, prefix: Path, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    sid = run_json(capsys, "snapshot", "create", "--prefix", prefix)[1]["id"]
    pins = prefix / "state/snapshot-pins.json"
    if damage is None:
        (tmp_path / "elsewhere.json").write_text('{"format": 1, "pinned": []}')
        pins.symlink_to(tmp_path / "elsewhere.json")
    else:
        pins.write_bytes(damage)
    for args in (("list",), ("prune", "--keep", "0"), ("pin", sid), ("unpin", sid)):
        code, out = run_json(capsys, "snapshot", *args, "--prefix", prefix)
        assert code == 2, (args, out)
        assert out["error"]["message"] == (
            f"reading snapshot pins {pins}: {problem}; move it aside (`mv {pins} "
            f"{pins}.damaged`) and pin again with `rescue.pyz snapshot pin ID` (`snapshot "
            "list` shows the ids)"), args
    assert os.listdir(prefix / "state/snapshots") == [f"{sid}.json"]


# Runs inside the mount namespace: a 4 MiB tmpfs over P/state/snapshots, a ballast file on it
# grown to each mark, and `snapshot create` run at each. Prints what every step returned.
DRIVER = r'''
import json, math, os, subprocess, sys
rescue, prefix = json.loads(sys.argv[1])
store = os.path.join(prefix, "state", "snapshots")
os.makedirs(store, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", store], check=True)
ballast = os.path.join(store, "ballast")
steps = {}

def run(*args):
    p = subprocess.run(rescue + list(args) + ["--prefix", prefix, "--json"],
                       capture_output=True, text=True)
    return {"code": p.returncode, "out": json.loads(p.stdout), "err": p.stderr}

def pages():
    st = os.statvfs(store)
    return st.f_blocks - st.f_bfree, st.f_blocks

def fill_to(used_pages):
    have, _ = pages()
    with open(ballast, "ab") as f:
        f.write(b"\0" * max(0, used_pages - have) * 4096)
        f.flush()
        os.fsync(f.fileno())

def records():
    return sorted(n[:-5] for n in os.listdir(store) if n.endswith(".json"))

made = [run("snapshot", "create")["out"]["id"]]
made.append(run("snapshot", "create", "--tag", "v1.0.0")["out"]["id"])
made += [run("snapshot", "create")["out"]["id"] for _ in range(8)]
run("snapshot", "pin", made[0])
per = max(os.lstat(os.path.join(store, i + ".json")).st_blocks * 512 // 4096 for i in made)
_, total = pages()
steps["made"], steps["total"], steps["per"] = made, total, per
fill_to(math.ceil(0.86 * total))
steps["pause"] = run("snapshot", "create")
steps["pause"]["records"] = records()
fill_to(math.ceil(0.95 * total))
steps["clean"] = run("snapshot", "create")
steps["clean"]["records"] = records()
fill_to(min(total - 1, math.ceil(0.95 * total) + 5 * per + 1))
steps["full"] = run("snapshot", "create")
steps["full"]["records"] = records()
steps["nothing_left"] = run("snapshot", "create")
os.unlink(ballast)
steps["room"] = run("snapshot", "create")
steps["room"]["records"] = records()
print(json.dumps(steps))
'''


def test_disk_marks_pause_then_remove_the_oldest_unpinned_three_at_a_time_on_a_tmpfs(
        user: User, pyz: Path, signing: bundles.Signing) -> None:
    rescue_cmd = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    bundle = user.give(small_bundle(user.work.parent / "b.tar.zst", signing))
    prefix = user.work / "P"
    done = user.run([*rescue_cmd, "install", str(bundle), "--prefix", str(prefix)])
    assert done.returncode == 0, done.stderr
    driver = user.work / "driver.py"
    driver.write_text(DRIVER)
    # root: its own mount namespace; uid 65534: its own user namespace too (root only there)
    unshare = ["unshare", "-m"] if user.uid == 0 else ["unshare", "-Urm"]
    done = user.run([*unshare, STOCK_PYTHON, "-I", str(driver),
                     json.dumps([rescue_cmd, str(prefix)])], timeout=300)
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    made: List[str] = steps["made"]
    pinned, tagged, plain = made[0], made[1], made[2:]
    assert 3 * steps["per"] < 0.09 * steps["total"], steps  # three records clear the 95% mark
    store = prefix / "state/snapshots"

    pause = steps["pause"]
    assert pause["code"] == 2 and pause["out"]["marks"]["paused"] is True, pause
    assert pause["out"]["marks"]["removed"] == [] and pause["records"] == sorted(made)
    assert 86 <= pause["out"]["marks"]["used_percent"] < 87
    assert pause["out"]["error"]["message"] == (
        f"taking a snapshot of {prefix}: paused, the disk holding {store} is 86% used, past the "
        f"pause mark of 85%; no snapshot was written. Free space on {store}, or remove old "
        "snapshots (`rescue.pyz snapshot prune --keep N`, `snapshot unpin ID`), then run it "
        "again")
    assert pause["err"].startswith(f"rescue: taking a snapshot of {prefix}: paused, ")

    clean = steps["clean"]  # one record would do: three go, the oldest unpinned untagged
    assert clean["code"] == 2 and clean["out"]["marks"]["removed"] == plain[:3], clean
    assert clean["records"] == sorted([pinned, tagged, *plain[3:]])
    assert 85 <= clean["out"]["marks"]["used_percent"] < 95
    assert f"the clean mark (95%) removed {', '.join(plain[:3])}; no snapshot was written" in \
        clean["out"]["error"]["message"]

    full = steps["full"]  # never enough: every unpinned untagged one goes, three at a time
    assert full["out"]["marks"]["removed"] == plain[3:], full
    assert full["records"] == sorted([pinned, tagged])
    assert full["out"]["marks"]["used_percent"] >= 95
    left = steps["nothing_left"]
    assert left["code"] == 2 and left["out"]["marks"]["removed"] == []
    assert "past the clean mark (95%) nothing was left to remove: every snapshot is tagged or " \
           "pinned; no snapshot was written" in left["out"]["error"]["message"]

    room = steps["room"]
    assert room["code"] == 0 and room["out"]["marks"]["paused"] is False, room
    assert room["records"] == sorted([pinned, tagged, room["out"]["id"]])
