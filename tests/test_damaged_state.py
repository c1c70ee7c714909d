"""A prefix's own files are input, not truth: a planted journal, a `current` that points away,
a cut or binary history, and state files that are damaged or absurd. Each is refused or set
aside with a message naming the file and the way out (exit 2), never acted on, never exit 1."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, List

import pytest

from tests.support import bundles, craft, prefixes
from tests.support.clirun import run
from tests.support.users import STOCK_PYTHON, USERS, make_user, remove_user_dirs

IDS = ["go1.21.12.linux-amd64", "go1.21.13.linux-amd64", "go1.22.0.linux-amd64"]



@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> Path:
    """Fake go1.21.12, go1.21.13 and go1.22.0 installed in that order (go1.22.0 current)."""
    return prefixes.install_fakes(tmp_path, signing, [tc.split(".linux")[0] for tc in IDS])


def _current(p: Path) -> str:
    return os.readlink(p / "current")


# --- 3: a planted journal --------------------------------------------------------------

def _journal(p: Path, **fields: Any) -> Path:
    doc = {"op": "install", "entry": None, "current": None, "history": None, "manifest": "",
           "signature": ""}
    doc.update(fields)
    path = p / "state" / "journal.json"
    path.write_text(json.dumps(doc))
    return path


def test_planted_journal_with_a_traversing_manifest_sha256_writes_nothing_outside(
        prefix: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = (prefix / "state" / "installed.json").read_text()
    _journal(prefix, entry={"name": "evil", "channel": "stable", "sequence": 10**9,
                            "manifest_sha256": "../../../evil", "toolchains": []},
             manifest="{}")
    code, out, err = run(["pin", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0, err
    assert not list(tmp_path.glob("evil*")) and not list(tmp_path.parent.glob("evil*"))
    assert (prefix / "state" / "installed.json").read_text() == before  # no raised sequence
    assert not (prefix / "state" / "journal.json").exists()
    assert (prefix / "state" / "journal.json.rejected").is_file()
    assert ("note      reading journal " + str(prefix / "state" / "journal.json")
            + ": bundle 'evil' has a manifest_sha256 that is not sha256 hex; it was NOT "
            "applied and is kept as") in out


def test_planted_journal_cannot_raise_a_channel_sequence_with_a_made_up_entry(
        prefix: Path, capsys: pytest.CaptureFixture) -> None:
    fake = "a" * 64
    _journal(prefix, entry={"name": "hostile", "channel": "stable", "sequence": 10**9,
                            "manifest_sha256": fake, "toolchains": []}, manifest="{}")
    code, out, _ = run(["pin", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0
    assert "its manifest does not hash to the entry's manifest_sha256; it was NOT applied" in out
    state = json.loads((prefix / "state" / "installed.json").read_text())
    assert state["channels"] == {"stable": 3}
    assert not (prefix / "state" / "bundles" / f"{fake}.json").exists()


@pytest.mark.parametrize("current", ["/tmp", "../../x", "versions/../../x", "versions/go1.9"])
def test_planted_journal_never_points_current_outside_the_prefix(
        prefix: Path, current: str, capsys: pytest.CaptureFixture) -> None:
    _journal(prefix, op="use", current=current)
    code, out, _ = run(["pin", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0
    assert _current(prefix) == "versions/go1.22.0.linux-amd64"
    assert f"its current {current!r} is not" in out and "NOT applied" in out


def test_journal_rescue_wrote_is_still_finished(prefix: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    from installer import history

    rec = history.new_record("use", "versions/go1.22.0.linux-amd64",
                             "versions/go1.21.13.linux-amd64", "use 1.21.13")
    _journal(prefix, op="use", current="versions/go1.21.13.linux-amd64", history=rec)
    code, out, _ = run(["pin", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0
    assert "finished an interrupted use (current -> versions/go1.21.13.linux-amd64)" in out
    assert _current(prefix) == "versions/go1.21.13.linux-amd64"


@pytest.mark.parametrize("content", ["", "{", "[1]", "\udcff"])
def test_damaged_journal_is_set_aside_not_applied(prefix: Path, content: str,
                                                  capsys: pytest.CaptureFixture) -> None:
    (prefix / "state" / "journal.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    code, out, err = run(["unpin", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0, err
    assert "NOT applied and is kept as" in out
    assert _current(prefix) == "versions/go1.22.0.linux-amd64"


# --- 4: a `current` that points away ---------------------------------------------------

def _plant_current(p: Path, how: str, outside: Path) -> None:
    (p / "current").unlink()
    if how == "outside":
        os.symlink(str(outside), p / "current")
    elif how == "dangling":
        os.symlink("versions/go1.30.0.linux-amd64", p / "current")
    elif how == "loop":
        os.symlink("current", p / "current")
    else:  # a relative way out
        os.symlink("../outside", p / "current")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A GOROOT-looking tree outside the prefix, with a `go` that leaves a mark when run."""
    root = tmp_path / "outside"
    (root / "bin").mkdir(parents=True)
    go = root / "bin" / "go"
    go.write_text(f"#!/bin/sh\ntouch {tmp_path}/OUTSIDE-GO-RAN\necho go version go1.99\n")
    go.chmod(0o755)
    return root


@pytest.mark.parametrize("how", ["outside", "dangling", "loop", "relative"])
def test_prune_never_runs_while_current_points_away(prefix: Path, outside: Path, how: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    _plant_current(prefix, how, outside)
    code, _, err = run(["prune", "--keep", "0", "--prefix", prefix], capsys)
    assert code == 2
    assert f"reading {prefix / 'current'}: it " in err
    assert "make an installed toolchain current with `use VERSION` (installed: " \
        "go1.21.12.linux-amd64, go1.21.13.linux-amd64, go1.22.0.linux-amd64)" in err
    assert sorted(os.listdir(prefix / "versions")) == IDS


@pytest.mark.parametrize("argv", [["remove", "1.21.12"], ["rollback"],
                                  ["rollback", "--to", "1.21.12"]])
def test_day_two_commands_refuse_a_current_outside_the_prefix(
        prefix: Path, outside: Path, argv: List[str], capsys: pytest.CaptureFixture) -> None:
    _plant_current(prefix, "outside", outside)
    code, _, err = run([*argv, "--prefix", prefix], capsys)
    assert code == 2, err
    assert f"it points to {str(outside)!r}, not to versions/<an installed toolchain>" in err
    assert sorted(os.listdir(prefix / "versions")) == IDS
    assert not (outside.parent / "OUTSIDE-GO-RAN").exists()


def test_use_repairs_a_current_that_points_away_and_list_says_so(
        prefix: Path, outside: Path, capsys: pytest.CaptureFixture) -> None:
    _plant_current(prefix, "outside", outside)
    code, out, err = run(["list", "--prefix", prefix, "--json"], capsys)
    assert code == 0
    assert "no toolchain is current until `use VERSION` makes one" in err
    assert not any(t["current"] for t in json.loads(out)["toolchains"])
    code, out, err = run(["use", "1.21.13", "--prefix", prefix], capsys)
    assert code == 0, err
    assert "current   go1.21.13.linux-amd64 (was nothing)" in out
    assert _current(prefix) == "versions/go1.21.13.linux-amd64"
    assert not (outside.parent / "OUTSIDE-GO-RAN").exists()


# --- 7: history.jsonl, cut and binary ---------------------------------------------------

def test_switch_after_a_cut_history_line_starts_a_new_line_and_rollback_finds_it(
        prefix: Path, capsys: pytest.CaptureFixture) -> None:
    hist = prefix / "state" / "history.jsonl"
    with hist.open("a") as f:
        f.write('{"id": "cut-by-a-crash", "op": "use", "fr')
    assert run(["use", "1.21.12", "--prefix", prefix], capsys)[0] == 0
    assert json.loads(hist.read_text().splitlines()[-1])["to"] == "go1.21.12.linux-amd64"
    code, out, _ = run(["rollback", "--prefix", prefix, "--json"], capsys)
    assert code == 0
    assert json.loads(out)["current"] == "go1.22.0.linux-amd64"


def test_binary_history_line_is_skipped_and_use_then_rollback_work(
        prefix: Path, capsys: pytest.CaptureFixture) -> None:
    hist = prefix / "state" / "history.jsonl"
    with hist.open("ab") as f:
        f.write(b"\xff\xfe\x00binary\x1b[31m\n")
        f.write(b'{"id": "' + b"0" * 32 + b'", "op": "use", "time": "t", "to": "../../x"}\n')
    code, _, err = run(["use", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0, err
    assert not (prefix / "state" / "journal.json").exists()
    code, out, err = run(["history", "--prefix", prefix, "--json"], capsys)
    assert code == 0, err
    assert [r["to"] for r in json.loads(out)["history"]] == [*IDS, "go1.21.12.linux-amd64"]
    code, out, _ = run(["rollback", "--prefix", prefix, "--json"], capsys)
    assert (code, json.loads(out)["current"]) == (0, "go1.22.0.linux-amd64")


def test_history_is_read_from_its_end_and_bounded(prefix: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from manifests.limits import DEFAULT_LIMITS

    hist = prefix / "state" / "history.jsonl"
    old = hist.read_bytes()
    junk = b'{"id": "x"}\n' * (2 * DEFAULT_LIMITS.history_tail_bytes // 12)
    hist.write_bytes(junk + old)  # 8 MB of old lines before the real ones
    code, out, _ = run(["rollback", "--prefix", prefix, "--json"], capsys)
    assert (code, json.loads(out)["current"]) == (0, "go1.21.13.linux-amd64")


def test_history_shows_file_text_quoted_never_raw(prefix: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from installer import history

    rec = history.new_record("use", None, "versions/go1.21.12.linux-amd64",
                             "why\x1b[2J\nforged line")
    with (prefix / "state" / "history.jsonl").open("a") as f:
        f.write(json.dumps(rec) + "\n")
    code, out, _ = run(["history", "--prefix", prefix], capsys)
    assert code == 0
    assert "\x1b" not in out and "\nforged line" not in out
    assert "why\\x1b[2J\\nforged line" in out


# --- 8: state files damaged or absurd -----------------------------------------------------

DAMAGE = {
    "empty": b"",
    "cut": b'{"bundles": [{"name": "x", "chan',
    "not-json": b"\x00\x01 not json",
    "deep": b"[" * 200_000,
    "wrong-shape": b'{"bundles": {"a": 1}, "channels": []}',
    "wrong-type": b'[1, 2]',
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name,argv", [
    ("installed.json", ["list"]),
    ("pins.json", ["prune", "--keep", "0", "--dry-run"]),
    ("journal.json", ["pin", "1.21.12"]),
])
def test_damaged_state_file_is_exit_2_naming_the_file(
        prefix: Path, name: str, argv: List[str], damage: str,
        capsys: pytest.CaptureFixture) -> None:
    (prefix / "state" / name).write_bytes(DAMAGE[damage])
    code, out, err = run([*argv, "--prefix", prefix], capsys)
    if name == "journal.json":  # a journal rescue did not write is set aside, not applied
        assert code == 0, err
        assert f"reading journal {prefix / 'state' / name}" in out and "NOT applied" in out
        return
    assert code == 2, err
    assert f"{prefix / 'state' / name}: " in err
    assert "internal error" not in err
    assert sorted(os.listdir(prefix / "versions")) == IDS


@pytest.mark.parametrize("name", ["installed.json", "pins.json", "policy.toml"])
def test_state_file_that_is_a_directory_or_fifo_or_link_is_exit_2(
        prefix: Path, name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = prefix / "state" / name
    for kind, plant in (("directory", path.mkdir), ("fifo", lambda: os.mkfifo(path)),
                        ("link", lambda: os.symlink(tmp_path / "elsewhere", path))):
        if path.is_symlink() or path.exists():
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        plant()
        argv = ["list"] if name == "installed.json" else ["prune", "--keep", "0", "--dry-run"]
        code, _, err = run([*argv, "--prefix", prefix], capsys)
        assert code == 2, (kind, err)
        want = ("it is a symbolic link, which rescue never follows" if kind == "link"
                else "it is not a regular file")
        assert f"{path}: {want}" in err, (kind, err)


def test_oversized_state_file_is_refused_not_read(prefix: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from manifests.limits import DEFAULT_LIMITS

    path = prefix / "state" / "installed.json"
    with path.open("ab") as f:
        f.truncate(DEFAULT_LIMITS.state_file_bytes + 1)
    code, _, err = run(["list", "--prefix", prefix], capsys)
    assert code == 2
    assert f"more than the {DEFAULT_LIMITS.state_file_bytes} a real one can" in err


@pytest.mark.parametrize("line,said", [
    ("keep = -1", "keep = -1 is outside 0..10000"),
    ("keep_days = 1e400", "keep_days must be a whole number (inf is not)"),
    ("keep = 1.5", "keep must be a whole number (1.5 is not)"),
    ("pinned = [1, 2]", "pinned must be a list of toolchain ids"),
    ('pinned = ["../../etc"]', "pinned must be a list of toolchain ids"),
    ("warn_percent = NaN", "warn_percent = nan is outside 0..100"),
    ("keep = " + "[" * 200_000, "nested too deeply"),
    ("keep", "not `key = value`"),
])
def test_absurd_policy_is_refused_and_prune_deletes_nothing(
        prefix: Path, line: str, said: str, capsys: pytest.CaptureFixture) -> None:
    (prefix / "state" / "policy.toml").write_text(line + "\n")
    code, _, err = run(["prune", "--prefix", prefix], capsys)
    assert code == 2, err
    assert f"reading policy {prefix / 'state' / 'policy.toml'}" in err
    assert said in err
    assert sorted(os.listdir(prefix / "versions")) == IDS


def test_pins_that_are_not_ids_are_refused(prefix: Path, capsys: pytest.CaptureFixture) -> None:
    (prefix / "state" / "pins.json").write_text('[1, 2]')
    code, _, err = run(["prune", "--keep", "0", "--prefix", prefix], capsys)
    assert code == 2
    assert "1 is not a toolchain id; remove it" in err and "pin again with `pin VERSION`" in err
    assert sorted(os.listdir(prefix / "versions")) == IDS


def test_installed_state_with_a_traversing_sha256_is_refused(
        prefix: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    path = prefix / "state" / "installed.json"
    doc = json.loads(path.read_text())
    doc["bundles"][0]["manifest_sha256"] = "../../../evil"
    path.write_text(json.dumps(doc))
    code, _, err = run(["verify", "--prefix", prefix, "--trust", signing.signers], capsys)
    assert code == 2, err
    assert "has a manifest_sha256 that is not sha256 hex" in err


# --- as every user, with the real pyz ----------------------------------------------------

@pytest.mark.parametrize("who", USERS)
def test_planted_journal_and_current_as_every_user(
        who: str, pyz: Path, signing: bundles.Signing, tmp_path: Path) -> None:
    user = make_user(who)
    try:
        rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
        p = user.work / "P"
        for seq, tc in enumerate(IDS[:2], start=1):
            c = craft.Craft(sequence=seq)
            c.toolchain(version=tc.split(".linux")[0])
            b = user.give(c.write(tmp_path / f"{seq}.tar.zst", signing.key))
            done = user.run([*rescue, "install", str(b), "--prefix", str(p), "--trust",
                             str(user.give(signing.signers))], offline=True)
            assert done.returncode == 0, done.stderr
        evil = user.work / "evil"
        journal = p / "state" / "journal.json"
        journal.write_text(json.dumps({
            "op": "install", "current": "../../evil", "history": None, "signature": "",
            "manifest": "{}", "entry": {"name": "x", "channel": "stable", "sequence": 99,
                                        "manifest_sha256": "../../../../evil",
                                        "toolchains": []}}))
        os.chown(journal, user.uid, user.uid)
        done = user.run([*rescue, "pin", "1.21.12", "--prefix", str(p)], offline=True)
        assert done.returncode == 0, done.stderr
        assert "NOT applied" in done.stdout
        assert not evil.exists() and not list(user.work.glob("evil*"))
        assert os.readlink(p / "current") == "versions/go1.21.13.linux-amd64"
        (p / "current").unlink()
        os.symlink(str(user.work), p / "current")
        done = user.run([*rescue, "prune", "--keep", "0", "--prefix", str(p)], offline=True)
        assert done.returncode == 2
        assert "make an installed toolchain current with `use VERSION`" in done.stderr
        assert sorted(os.listdir(p / "versions")) == IDS[:2]
        done = user.run([*rescue, "use", "1.21.12", "--prefix", str(p)], offline=True)
        assert done.returncode == 0, done.stderr
        assert os.readlink(p / "current") == "versions/go1.21.12.linux-amd64"
    finally:
        remove_user_dirs(user)


def test_journal_of_a_real_install_is_accepted_field_by_field(
        prefix: Path, signing: bundles.Signing, tmp_path: Path) -> None:
    """The check recovery applies accepts what install itself journals."""
    from installer import state
    from installer.prefix import Layout

    manifest = sorted((prefix / "state" / "bundles").glob("*.json"))[0]
    data = manifest.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert manifest.stem == sha
    entry = next(b for b in state.load(Layout(prefix))["bundles"]
                 if b["manifest_sha256"] == sha)
    doc = {"op": "install", "entry": entry, "current": f"versions/{entry['toolchains'][0]}",
           "history": None, "manifest": data.decode(), "signature": ""}
    assert state.journal_problem(Layout(prefix), doc) is None


def test_planted_journal_cannot_choose_gotoolchain_its_manifest_never_chose(
        prefix: Path, capsys: pytest.CaptureFixture) -> None:
    """A real bundle's journaled record, with `gotoolchain = local` added: it would turn off
    every installed GOROOT's switching; the signed manifest says nothing of it."""
    from installer import state
    from installer.prefix import Layout

    manifest = sorted((prefix / "state" / "bundles").glob("*.json"))[0]
    data = manifest.read_bytes()
    entry = next(b for b in state.load(Layout(prefix))["bundles"]
                 if b["manifest_sha256"] == manifest.stem)
    _journal(prefix, entry={**entry, "gotoolchain": "local"}, manifest=data.decode())
    code, out, _ = run(["pin", "1.21.12", "--prefix", prefix], capsys)
    assert code == 0
    assert ("its entry's gotoolchain differs from its manifest's; it was NOT applied" in out)
    env = (prefix / "versions" / "go1.22.0.linux-amd64" / "go.env").read_text()
    assert "GOTOOLCHAIN=auto" in env and "GOTOOLCHAIN=local" not in env


def test_kept_manifest_that_is_a_fifo_is_refused_instead_of_hanging(
        prefix: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    kept = sorted((prefix / "state" / "bundles").glob("*.json"))[0]
    kept.unlink()
    os.mkfifo(kept)
    code, _, err = run(["verify", "--prefix", prefix, "--trust", signing.signers], capsys)
    assert code == 2, err
    assert f"reading kept manifest {kept}: it is not a regular file; install that same " \
        "bundle again" in err


def test_adopted_trust_store_that_is_a_fifo_is_refused_instead_of_hanging(
        prefix: Path, capsys: pytest.CaptureFixture) -> None:
    store = prefix / "state" / "trust" / "allowed_signers"
    store.parent.mkdir()
    os.mkfifo(store)
    code, _, err = run(["verify", "--prefix", prefix], capsys)
    assert code == 2, err
    assert f"reading the adopted trust policy {store}: it is not a regular file; restore it " \
        "or pass --trust FILE" in err
