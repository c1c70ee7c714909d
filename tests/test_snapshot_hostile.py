"""Snapshots under attack and under load: damaged or planted snapshot files, escape sequences in
them, a `current` planted outside the prefix, two commands at once, and `verify` while another
command removes the toolchain it walks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from installer import cli, snapshot_check
from tests.support import bundles, craft
from tests.support.users import STOCK_PYTHON, User
from tests.test_snapshot import fake_toolchain, write_bundle

ROOT = Path(__file__).resolve().parents[1]
ESC = "\x1b[2J\x1b]0;owned\x07"  # clears the screen and retitles the terminal when printed raw


def rescue(*args: Any) -> int:
    return cli.main([str(a) for a in args])


def run(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = rescue(*args)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, Dict[str, Any]]:
    code, out, _ = run(capsys, *args, "--json")
    return code, json.loads(out)


def in_subprocess(*args: Any, timeout: float = 60) -> subprocess.CompletedProcess:
    """The installer in a process of its own: a read that blocks cannot hang the test run."""
    return subprocess.run([sys.executable, "-m", "installer.cli", *map(str, args)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing) -> Iterator[Path]:
    """A prefix with a fake go1.21.12 current (craft: installed in milliseconds)."""
    c = craft.Craft(name="dc", sequence=1)
    fake_toolchain(c, "go1.21.12")
    p = tmp_path / "P"
    assert rescue("install", write_bundle(c, tmp_path / "b.tar.zst", signing.key, []),
                  "--prefix", p, "--trust", signing.signers) == 0
    yield p
    os.system(f"chmod -R u+w {tmp_path} 2>/dev/null")  # read-only GOROOTs: let pytest clean up


@pytest.fixture
def snap(prefix: Path, capsys: pytest.CaptureFixture[str]) -> Dict[str, Any]:
    """One stored snapshot of `prefix`, as written: its path (`file`) and its document."""
    code, out = run_json(capsys, "snapshot", "create", "--tag", "v1.0.0", "--prefix", prefix)
    assert code == 0, out
    return {"id": out["id"], "file": Path(out["file"]),
            "doc": json.loads(Path(out["file"]).read_text())}


def resummed(doc: Dict[str, Any]) -> Dict[str, Any]:
    """A document whose sums agree with its (edited) file list again, as an editor who knows
    the format would leave it."""
    g = doc["goroot"]
    g["root_hash"] = snapshot_check.root_hash(g["files"])
    g["file_count"] = sum(1 for e in g["files"] if e["type"] == "file")
    g["bytes"] = sum(e.get("size", 0) for e in g["files"])
    return doc


def edited(doc: Dict[str, Any], change: Callable[[Dict[str, Any]], None]) -> bytes:
    doc = json.loads(json.dumps(doc))
    change(doc)
    return json.dumps(doc).encode()


def entry(doc: Dict[str, Any], path: str) -> Dict[str, Any]:
    return next(e for e in doc["goroot"]["files"] if e["path"] == path)


def setitem(where: Callable[[Dict[str, Any]], Dict[str, Any]], key: str, value: Any
            ) -> Callable[[Dict[str, Any]], None]:
    return lambda doc: where(doc).__setitem__(key, value)


TOP = lambda doc: doc  # noqa: E731
GOROOT = lambda doc: doc["goroot"]  # noqa: E731
GO_FILE = lambda doc: entry(doc, "bin/go")  # noqa: E731

# (damage, the file's bytes from a good document, what the message must say)
DAMAGE: List[Tuple[str, Callable[[Dict[str, Any]], bytes], str]] = [
    ("empty", lambda d: b"", "it is empty (cut short?)"),
    ("cut", lambda d: json.dumps(d).encode()[:len(json.dumps(d)) // 2], "not JSON ("),
    ("not-json", lambda d: b"snapshot: v1\n", "not JSON (Expecting value: line 1 column 1"),
    ("binary", lambda d: b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text (byte 0)"),
    ("nested-200k", lambda d: b"[" * 200_000, "not JSON (nested too deeply)"),
    ("a-list", lambda d: b"[1, 2]", "it is not a rescue snapshot (a JSON object with format 1)"),
    ("newer-format", lambda d: edited(d, setitem(TOP, "format", 2)),
     "it is format 2, written by a newer rescue (this one reads 1)"),
    ("format-true", lambda d: edited(d, setitem(TOP, "format", True)),
     "its format true is not 1"),
    ("no-goroot", lambda d: edited(d, lambda x: x.pop("goroot")), "its record has no goroot"),
    ("id-number", lambda d: edited(d, setitem(TOP, "id", 7)), "its id 7 is not a snapshot id"),
    ("id-traversal", lambda d: edited(d, setitem(TOP, "id", "../../x")),
     "its id '../../x' is not a snapshot id"),
    ("created-garbage", lambda d: edited(d, setitem(TOP, "created", "yesterday")),
     "its created 'yesterday' is not a UTC time like 2026-11-28T14:23:07Z"),
    ("created-impossible", lambda d: edited(d, setitem(TOP, "created", "2026-13-45T99:00:00Z")),
     "its created '2026-13-45T99:00:00Z' is not a UTC time"),
    ("host-object", lambda d: edited(d, setitem(TOP, "host", {"a": 1})),
     "its host is an object, not text"),
    ("user-list", lambda d: edited(d, setitem(TOP, "user", [])), "its user is a list, not an "
     "object"),
    ("ci-number-value", lambda d: edited(d, setitem(TOP, "ci", {"run": 5})),
     "its ci.'run' is a number, not text"),
    ("env-list-value", lambda d: edited(d, lambda x: x["go"]["env"].__setitem__("GOROOT", [])),
     "its go.env.'GOROOT' is a list, not text"),
    ("files-object", lambda d: edited(d, setitem(GOROOT, "files", {})),
     "its goroot.files is an object, not a list"),
    ("root-hash-short", lambda d: edited(d, setitem(GOROOT, "root_hash", "sha256:abc")),
     "its goroot.root_hash 'sha256:abc' is not sha256: and 64 lower-case hex digits"),
    ("file-count-negative", lambda d: edited(d, setitem(GOROOT, "file_count", -1)),
     "its goroot.file_count -1 is not a number"),
    ("path-dotdot", lambda d: edited(d, setitem(GO_FILE, "path", "../../etc/passwd")),
     "path '../../etc/passwd' is not a clean relative path"),
    ("path-absolute", lambda d: edited(d, setitem(GO_FILE, "path", "/usr/bin/go")),
     "path '/usr/bin/go' is not a clean relative path"),
    ("path-number", lambda d: edited(d, setitem(GO_FILE, "path", 3)),
     "path 3 is not a clean relative path"),
    ("path-twice", lambda d: edited(resummed(d), lambda x: x["goroot"]["files"].append(
        dict(entry(x, "bin/go")))), "its goroot.files lists 'bin/go' twice"),
    ("sha256-upper", lambda d: edited(d, setitem(GO_FILE, "sha256", "AB" * 32)),
     ".sha256 'ABABAB"),
    ("size-text", lambda d: edited(d, setitem(GO_FILE, "size", "12")), ".size '12' is not a "
     "number"),
    ("mode-word", lambda d: edited(d, setitem(GO_FILE, "mode", "rwxr-xr-x")),
     ".mode 'rwxr-xr-x' is not four octal digits"),
    ("entry-type", lambda d: edited(d, setitem(GO_FILE, "type", "device")),
     ".type 'device' is not file, dir, symlink or other"),
    ("entry-extra-field", lambda d: edited(d, setitem(GO_FILE, "target", "/bin/sh")),
     "(file) has the fields mode, path, sha256, size, target, type, not mode, path, sha256, "
     "size, type"),
    ("module-text", lambda d: edited(d, setitem(TOP, "modules", ["example.com/m@v1"])),
     "its modules[0] is text, not an object"),
    ("bundle-sequence-text", lambda d: edited(d, setitem(TOP, "bundle", {
        "name": "dc", "channel": "stable", "sequence": "1", "manifest_sha256": None,
        "signer": None, "installed_at": None})), "its bundle.sequence '1' is not a number"),
]


@pytest.mark.parametrize("damage, make, problem", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_snapshot_show_of_a_damaged_file_names_it_says_what_is_wrong_and_how_to_recover(
        damage: str, make: Callable[[Dict[str, Any]], bytes], problem: str, prefix: Path,
        snap: Dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / f"{damage}.json"
    bad.write_bytes(make(snap["doc"]))
    code, out = run_json(capsys, "snapshot", "show", bad, "--prefix", prefix)
    assert code == 2 and out["error"]["type"] == "not-ready", out
    msg = out["error"]["message"]
    assert msg.startswith(f"reading snapshot {bad}: "), msg
    assert problem in msg, msg
    assert msg.endswith("; pass a snapshot file as `rescue.pyz snapshot create -o FILE` wrote "
                        "it (copy it again if it was cut on the way)"), msg


@pytest.mark.parametrize("kind", ["directory", "too-large", "symlink"])
def test_snapshot_show_of_what_is_not_a_snapshot_file_says_so_without_reading_it(
        kind: str, prefix: Path, snap: Dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.json"
    if kind == "directory":
        path.mkdir()
        problem = "it is not a regular file"
    elif kind == "too-large":
        with open(path, "wb") as f:  # sparse: 257 MiB that take no disk
            f.truncate(257 << 20)
        problem = f"it holds {257 << 20} bytes, more than the {256 << 20} a real one can"
    else:
        path.symlink_to(snap["file"])
        problem = "it is a symbolic link, which rescue never follows"
    code, out = run_json(capsys, "snapshot", "show", path, "--prefix", prefix)
    assert code == 2, out
    assert out["error"]["message"].startswith(f"reading snapshot {path}: {problem}; pass a "
                                              "snapshot file as"), out["error"]["message"]


@pytest.mark.parametrize("field, change", [
    ("root_hash", lambda d: d["goroot"]["files"].pop()),
    ("file_count", lambda d: d["goroot"].__setitem__("file_count", 1)),
    ("bytes", lambda d: d["goroot"].__setitem__("bytes", 1)),
])
def test_snapshot_whose_sums_contradict_its_own_file_list_is_refused_as_edited(
        field: str, change: Callable[[Dict[str, Any]], None], prefix: Path,
        snap: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    doc = snap["doc"]
    change(doc)
    snap["file"].write_text(json.dumps(doc))
    code, out = run_json(capsys, "snapshot", "show", snap["id"], "--prefix", prefix)
    assert code == 3 and out["error"]["type"] == "untrusted", out
    msg = out["error"]["message"]
    assert msg.startswith(f"reading snapshot {snap['file']}: its {field} "), msg
    assert "recorded" in msg and "computed): it was edited after `snapshot create` wrote it, " \
        "so it proves nothing; compare it with the copy written with -o" in msg, msg
    assert out["error"]["expected"] != out["error"]["got"]


def test_snapshot_verify_recomputes_the_root_hash_so_an_edited_record_cannot_hide_tampering(
        prefix: Path, snap: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    goroot = prefix / "versions" / "go1.21.12.linux-amd64"
    version = goroot / "VERSION"
    version.chmod(0o644)
    version.write_text("go1.21.12-backdoored\n")
    version.chmod(0o444)  # as installed: only the content differs
    # The attacker copies the live tree's hash into the record and leaves its file list.
    live = json.loads(json.dumps(snap["doc"]))
    entry(live, "VERSION")["sha256"] = hashlib.sha256(version.read_bytes()).hexdigest()
    entry(live, "VERSION")["size"] = version.stat().st_size
    doc = snap["doc"]
    doc["goroot"]["root_hash"] = snapshot_check.root_hash(live["goroot"]["files"])
    snap["file"].write_text(json.dumps(doc))
    code, out, err = run(capsys, "snapshot", "verify", snap["id"], "--prefix", prefix)
    assert code == 3, out + err
    assert f"reading snapshot {snap['file']}: its root_hash is not the hash of the " in err
    assert "it was edited after `snapshot create` wrote it" in err and "ok:" not in out


def test_snapshot_show_of_a_fifo_says_not_a_regular_file_instead_of_hanging(
        prefix: Path, snap: Dict[str, Any], tmp_path: Path) -> None:
    fifo = tmp_path / "snap.json"
    os.mkfifo(fifo)
    done = in_subprocess("snapshot", "show", fifo, "--prefix", prefix, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"reading snapshot {fifo}: it is not a regular file; pass a snapshot file" \
        in done.stderr


@pytest.mark.parametrize("argv", [["verify", "{fifo}"], ["diff", "{fifo}", "--live"],
                                  ["diff", "{id}", "{fifo}"], ["diff", "{fifo}", "{id}"]],
                         ids=["verify", "diff-live", "diff-b", "diff-a"])
def test_every_snapshot_path_argument_refuses_a_fifo_instead_of_hanging(
        argv: List[str], prefix: Path, snap: Dict[str, Any], tmp_path: Path) -> None:
    fifo = tmp_path / "snap.json"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo, id=snap["id"]) for a in argv]
    done = in_subprocess("snapshot", *args, "--prefix", prefix, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"reading snapshot {fifo}: it is not a regular file" in done.stderr


def test_snapshot_list_names_each_damaged_file_and_still_lists_the_good_ones(
        prefix: Path, snap: Dict[str, Any]) -> None:
    store = snap["file"].parent
    (store / "20260101T000000Z.json").write_text("")
    os.mkfifo(store / "20260102T000000Z.json")  # a planted FIFO must not hang `list`
    (store / "renamed.json").write_text(snap["file"].read_text())
    (store / f"x{ESC}.json").write_text("{}")
    done = in_subprocess("snapshot", "list", "--prefix", prefix, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [s["id"] for s in out["snapshots"]] == [snap["id"]]
    damaged = {Path(d["file"]).name: d for d in out["damaged"]}
    assert set(damaged) == {"20260101T000000Z.json", "20260102T000000Z.json", "renamed.json",
                            f"x{ESC}.json"}
    empty = damaged["20260101T000000Z.json"]
    assert empty["exit_code"] == 2
    fix = (f"move it aside (`mv {store}/20260101T000000Z.json {store}/20260101T000000Z.json"
           ".damaged`) and take a new snapshot with `rescue.pyz snapshot create`, or put back "
           "the copy written with -o")
    assert empty["message"] == (f"reading snapshot {store}/20260101T000000Z.json: it is empty "
                                f"(cut short?); {fix}")
    assert "it is not a regular file" in damaged["20260102T000000Z.json"]["message"]
    assert f"it holds snapshot '{snap['id']}', not the 'renamed' its name says" in \
        damaged["renamed.json"]["message"]
    assert damaged[f"x{ESC}.json"]["message"] == (
        f"reading snapshot {store}/'x\\x1b[2J\\x1b]0;owned\\x07.json': its name is not a "
        "snapshot id; move it out of the store")
    text = in_subprocess("snapshot", "list", "--prefix", prefix)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(snap["id"])
    assert f"damaged reading snapshot {store}/20260101T000000Z.json: it is empty" in text.stdout
    assert "\x1b" not in text.stdout


def test_snapshot_prune_leaves_damaged_files_for_a_person_to_look_at(
        prefix: Path, snap: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    damaged = snap["file"].parent / "19990101T000000Z.json"
    damaged.write_text("{")
    code, out, _ = run(capsys, "snapshot", "prune", "--keep", "0", "--include-tagged",
                       "--prefix", prefix)
    assert code == 0 and damaged.exists() and not snap["file"].exists()
    assert "1 removed, 0 kept; 1 damaged file(s) left alone, see `snapshot list`" in out


def test_snapshot_show_of_a_path_that_does_not_exist_says_no_such_file(
        prefix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(capsys, "snapshot", "show", tmp_path / "gone.json", "--prefix", prefix)
    assert code == 2 and out["error"]["message"] == (
        f"reading snapshot {tmp_path / 'gone.json'}: no such file; pass the path of a file "
        "written by `rescue.pyz snapshot create -o FILE`")


def test_snapshot_store_planted_as_a_link_out_of_the_prefix_is_never_read_or_written(
        prefix: Path, snap: Dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = snap["file"].parent
    elsewhere = tmp_path / "elsewhere"
    store.rename(elsewhere)
    store.symlink_to(elsewhere)
    fix = f"move the link away (`mv {store} {store}.link`) and run the command again"
    for argv in (["create"], ["list"], ["show", snap["id"]]):
        code, out = run_json(capsys, "snapshot", *argv, "--prefix", prefix)
        assert code == 2, (argv, out)
        assert out["error"]["message"] == (
            f"reading the snapshot store {store}: it is a symbolic link (to {str(elsewhere)!r}); "
            f"rescue keeps its files only inside the prefix; {fix}"), out
    assert os.listdir(elsewhere) == [snap["file"].name], "nothing was written through the link"


def test_snapshot_show_diff_list_and_verify_print_escape_sequences_from_a_file_escaped(
        prefix: Path, snap: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    doc = snap["doc"]
    doc.update(host=f"build{ESC}", tag=f"v1{ESC}", user={"name": f"ci{ESC}", "uid": 0},
               ci={"provider": f"gha{ESC}", "run": f"7{ESC}"}, toolchain=f"go{ESC}")
    doc["go"]["version"] = f"go version {ESC}"
    doc["go"]["env"][f"GO{ESC}"] = f"x{ESC}"
    doc["modules"] = [{"module": f"example.com/{ESC}@v1.0.0", "zip_hash": f"h1:{ESC}",
                       "mod_hash": "", "bundle": None}]
    doc["bundle"] = {"name": f"dc{ESC}", "channel": "stable", "sequence": 1,
                     "manifest_sha256": None, "signer": f"k{ESC}", "installed_at": None}
    doc["goroot"]["files"].append({"path": f"bin/{ESC}", "type": "symlink",
                                   "target": f"go{ESC}"})
    snap["file"].write_text(json.dumps(resummed(doc)))
    outputs = []
    for argv in (["show", snap["id"]], ["list"], ["diff", snap["id"], "--live"],
                 ["verify", snap["id"]]):
        code, out, err = run(capsys, "snapshot", *argv, "--prefix", prefix)
        assert code == (3 if argv[0] == "verify" else 0), (argv, out, err)
        outputs.append(out + err)
    shown = "\n".join(outputs)
    assert "\x1b" not in shown and "\x07" not in shown, "an escape sequence reached the terminal"
    for text in ("'build\\x1b[2J\\x1b]0;owned\\x07'", "'v1\\x1b", "'example.com/\\x1b",
                 "signed by 'k\\x1b", "'go version \\x1b", "- 'bin/\\x1b",
                 "env - 'GO\\x1b[2J\\x1b]0;owned\\x07'='x\\x1b", "run='7\\x1b"):
        assert text in shown, (text, shown)
    assert "removed 'bin/\\x1b[2J\\x1b]0;owned\\x07'" in outputs[3]


def test_snapshot_prune_keeps_tagged_snapshots_unless_include_tagged(
        prefix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = {}
    for tag in ("v1.0.0", None, None):
        args = ["--tag", tag] if tag else []
        code, out = run_json(capsys, "snapshot", "create", *args, "--prefix", prefix)
        assert code == 0, out
        ids.setdefault(tag, []).append(out["id"])
    tagged, untagged = ids["v1.0.0"][0], ids[None]
    code, out, _ = run(capsys, "snapshot", "prune", "--keep", "0", "--dry-run",
                       "--prefix", prefix)
    assert code == 0
    assert out.splitlines() == [
        *(f"would remove {i}" for i in reversed(untagged)),
        "2 to remove, 1 kept (1 tagged, kept; --include-tagged prunes them too)"]
    assert len(os.listdir(prefix / "state" / "snapshots")) == 3, "--dry-run removes nothing"
    code, out = run_json(capsys, "snapshot", "prune", "--keep", "0", "--prefix", prefix)
    assert (out["removed"], out["kept"], out["tagged"]) == (untagged[::-1], [tagged], [tagged])
    code, out = run_json(capsys, "snapshot", "prune", "--keep", "0", "--include-tagged",
                         "--dry-run", "--prefix", prefix)
    assert out["removed"] == [tagged] and out["dry_run"] is True
    code, out = run_json(capsys, "snapshot", "prune", "--keep", "0", "--include-tagged",
                         "--prefix", prefix)
    assert out["removed"] == [tagged] and os.listdir(prefix / "state" / "snapshots") == []


@pytest.mark.parametrize("planted", ["outside", "dangling", "loop"])
def test_snapshot_create_with_current_planted_outside_the_prefix_never_runs_that_go(
        planted: str, prefix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "bin").mkdir(parents=True)
    ran = tmp_path / "outside-go-ran"
    go = outside / "bin" / "go"
    go.write_text(f"#!/bin/sh\ntouch {ran}\necho 'go version go1.99 linux/amd64'\n")
    go.chmod(0o755)
    current = prefix / "current"
    current.unlink()
    target = {"outside": str(outside), "dangling": "versions/go1.30.0.linux-amd64",
              "loop": "current"}[planted]
    current.symlink_to(target)
    code, out = run_json(capsys, "snapshot", "create", "--prefix", prefix)
    assert code == 2, out
    msg = out["error"]["message"]
    why = {"outside": f"it points to {str(outside)!r}, not to versions/<an installed toolchain>",
           "dangling": "it points to 'versions/go1.30.0.linux-amd64', which is not installed",
           "loop": "it points to 'current', not to versions/<an installed toolchain>"}[planted]
    assert msg == (f"reading {current}: {why}; make an installed toolchain current with "
                   "`use VERSION` (installed: go1.21.12.linux-amd64)"), msg
    assert not ran.exists(), "the go outside the prefix ran"
    assert not (prefix / "state" / "snapshots").exists()


def test_snapshot_diff_live_of_an_unchanged_real_go_says_no_changes(
        tmp_path: Path, toolchain_bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "P"
    assert rescue("install", toolchain_bundle, "--prefix", p, "--trust", signing.signers) == 0
    code, made = run_json(capsys, "snapshot", "create", "--prefix", p)
    assert code == 0, made
    recorded = made["snapshot"]["go"]["env"]["GOGCCFLAGS"]
    assert "go-build" in recorded, "the real go names a fresh temp build dir here"
    code, out, _ = run(capsys, "snapshot", "diff", made["id"], "--live", "--prefix", p)
    assert code == 0 and out == f"{made['id']} -> live: no changes\n", out
    code, diff = run_json(capsys, "snapshot", "diff", made["id"], "--live", "--prefix", p)
    assert diff["diff"]["same"] and diff["diff"]["env"]["ignored"] == ["GOGCCFLAGS"], diff
    os.system(f"chmod -R u+w {tmp_path} 2>/dev/null")


# --- two processes at once ----------------------------------------------------------------

def open_files(pid: int) -> List[str]:
    out = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for n in names:
        with contextlib.suppress(OSError):  # closed meanwhile
            out.append(os.readlink(f"/proc/{pid}/fd/{n}"))
    return out


def stop_when_it_opens(proc: subprocess.Popen, wanted: Callable[[str], bool],
                       timeout: float = 300) -> Optional[str]:
    """SIGSTOP `proc` the moment it holds a file `wanted` accepts (polled from /proc), so the
    other process runs in the window a real race would hit by chance. None if it never did."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        for path in open_files(proc.pid):
            if wanted(path):
                os.kill(proc.pid, signal.SIGSTOP)
                return path
    return None


# Runs `argv` with its first rename(2) held for 10 s by strace (only those calls are traced):
# the record is written and not yet in place, the window a second `create` hits by chance.
SLOW_FIRST_RENAME = ["strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null",
                     "-e", "trace=rename,renameat,renameat2",
                     "-e", "inject=rename,renameat,renameat2:delay_enter=10000000:when=1"]


def create_twice_at_once(user: User, argv: List[str], store: Path
                         ) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """Two `snapshot create` in one second: A is caught between claiming a name and putting its
    record there, B runs meanwhile. (A's output, B's output), or None when they straddled a
    second (two ids: nothing to race for)."""
    def popen(cmd: List[str]) -> subprocess.Popen:
        return subprocess.Popen(cmd, env=user.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    time.sleep(1.02 - time.time() % 1)  # both start early in one second: one id for both
    a, b = popen([*SLOW_FIRST_RENAME, *argv]), popen(argv)
    try:
        # B is held while it hashes the GOROOT (its id already made) until A's record is
        # written and waiting; then B stores its own.
        assert stop_when_it_opens(b, lambda f: "/versions/" in f), b.communicate()
        deadline = time.monotonic() + 300
        while not any(n.startswith(".") for n in _names(store)):
            assert a.poll() is None and time.monotonic() < deadline, a.communicate()
            time.sleep(0.005)
    finally:
        os.kill(b.pid, signal.SIGCONT)
    outs = [p.communicate(timeout=300) for p in (a, b)]
    assert (a.returncode, b.returncode) == (0, 0), outs
    docs = [json.loads(out) for out, _ in outs]
    if docs[0]["snapshot"]["created"] != docs[1]["snapshot"]["created"]:
        return None
    return docs[0], docs[1]


def _names(store: Path) -> List[str]:
    try:
        return os.listdir(store)
    except FileNotFoundError:
        return []


def test_snapshot_create_twice_in_one_second_keeps_both_records_for_every_user(
        user: User, pyz: Path, toolchain_bundle: Path) -> None:
    cmd = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    prefix = user.home / "P"
    done = user.run([*cmd, "install", str(user.give(toolchain_bundle)), "--prefix",
                     str(prefix)], offline=True)
    assert done.returncode == 0, done.stderr
    store = prefix / "state" / "snapshots"
    argv = user.argv([*cmd, "snapshot", "create", "--tag", "v1.0.0", "--prefix", str(prefix),
                      "--json"], offline=True)
    for _ in range(3):
        raced = create_twice_at_once(user, argv, store)
        if raced:
            break
        shutil.rmtree(store)
    assert raced, "three tries, and the two never started in one second"
    a, b = raced
    assert a["id"] == b["id"] + "-2", (a["id"], b["id"])
    assert sorted(_names(store)) == sorted([f"{a['id']}.json", f"{b['id']}.json"]), \
        "a record was lost, or a temp file left"
    for doc in (a, b):
        assert json.loads((store / f"{doc['id']}.json").read_text())["id"] == doc["id"]


OLD, NEW = "go1.21.12.linux-amd64", "go1.21.13.linux-amd64"


@pytest.fixture
def two(tmp_path: Path, signing: bundles.Signing) -> Iterator[Path]:
    """A prefix with fake go1.21.12 and go1.21.13 (current), each with 64 MiB to hash: verify
    is still inside go1.21.12 when it is caught there."""
    p = tmp_path / "P"
    for seq, version in enumerate(("go1.21.12", "go1.21.13"), start=1):
        c = craft.Craft(sequence=seq)
        root = c.toolchain(version=version)
        c.file(f"{root}/bulk", bytes(64 << 20))
        assert rescue("install", c.write(tmp_path / f"{seq}.tar.zst", signing.key),
                      "--prefix", p, "--trust", signing.signers) == 0
    yield p
    os.system(f"chmod -R u+w {tmp_path} 2>/dev/null")


def cli_process(*args: Any) -> List[str]:
    return [sys.executable, "-m", "installer.cli", *map(str, args)]


def verify_while_removed(prefix: Path, signers: Path, *verify_args: str
                         ) -> subprocess.CompletedProcess:
    """`verify` held mid-walk of go1.21.12 while `remove 1.21.12` runs to its end, then let go."""
    tree = f"{prefix}/versions/{OLD}/"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    verify = subprocess.Popen(cli_process("verify", *verify_args, "--prefix", prefix,
                                          "--trust", signers),
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert stop_when_it_opens(verify, lambda f: f.startswith(tree)), verify.communicate()
        removed = in_subprocess("remove", "1.21.12", "--prefix", prefix)
        assert removed.returncode == 0, removed.stderr
        assert not os.path.exists(tree)
    finally:
        os.kill(verify.pid, signal.SIGCONT)
    out, err = verify.communicate(timeout=300)
    return subprocess.CompletedProcess(verify.args, verify.returncode, out, err)


def test_verify_all_racing_remove_reports_the_toolchain_removed_not_tampered(
        two: Path, signing: bundles.Signing) -> None:
    done = verify_while_removed(two, signing.signers, "--all", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)["verify"]
    assert report["removed_while_verifying"] == [OLD]
    assert report["toolchains"] == [NEW]
    assert (report["changed"], report["missing"], report["added"], report["unreadable"]) == (
        [], [], [], [])


def test_verify_all_racing_remove_tells_people_it_was_removed_and_the_rest_is_ok(
        two: Path, signing: bundles.Signing) -> None:
    done = verify_while_removed(two, signing.signers, "--all")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (f"note: {OLD} was removed while being verified (by another rescue "
                        "command); not checked"), lines
    assert lines[-1].startswith(f"ok: {NEW} and goproxy match"), lines


def test_verify_of_a_version_removed_meanwhile_says_run_verify_again(
        two: Path, signing: bundles.Signing) -> None:
    done = verify_while_removed(two, signing.signers, "1.21.12", "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    err = json.loads(done.stdout)["error"]
    assert err["message"] == (f"verifying {OLD}: another rescue command (remove, prune, "
                              "repair) removed or replaced it while it was being verified; "
                              "run verify again")
