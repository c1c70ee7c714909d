"""Issue 19 item 4: snapshots shared through a Git repository with the real git (a bare repository
stands for the internal server): two hosts sync, one's push races the other's, each pulls the
other's records and checks its own toolchain against them; hostile repository content refused."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from installer import cli, snapshot_git, snapshot_sync
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from tests.support import bundles, craft
from tests.support.users import STOCK_PYTHON, User
from tests.test_snapshot import fake_toolchain, write_bundle

# Read at import: conftest hides CI from the tests. In CI a missing git is a failure.
IN_CI = os.environ.get("CI", "").lower() == "true"
GIT = shutil.which("git")


@pytest.fixture(autouse=True)
def _needs_git() -> None:
    if GIT is None:
        if IN_CI:
            pytest.fail("git is not installed (scripts/setup installs it): CI must run these")
        pytest.skip("git is not installed (scripts/setup)")


def git(*args: Any, repo: Optional[Path] = None, stdin: Optional[bytes] = None,
        extra: Optional[Dict[str, str]] = None) -> str:
    """The test's own git (the server's operator), never reading this machine's config."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **(extra or {})}
    if repo is not None:
        env["GIT_DIR"] = str(repo)
    done = subprocess.run(["git", *map(str, args)], env=env, input=stdin, capture_output=True,
                          check=True)
    return done.stdout.decode()


def bare(path: Path) -> Path:
    git("init", "-q", "--bare", "--initial-branch=main", path)
    return path


def plant(repo: Path, files: Dict[str, Tuple[str, Any]], base: bool = True) -> None:
    """Commit `files` ({path: (mode, bytes or a file to read)}) onto main, as someone with
    write access to the server could: symbolic links, odd names and huge blobs included."""
    index = {"GIT_INDEX_FILE": str(repo / "planted-index")}
    tip = subprocess.run(["git", f"--git-dir={repo}", "rev-parse", "-q", "--verify", "main"],
                         capture_output=True, text=True).stdout.strip() if base else ""
    git("read-tree", *([tip] if tip else ["--empty"]), repo=repo, extra=index)
    for path, (mode, data) in files.items():
        sha = (git("hash-object", "-w", data, repo=repo) if isinstance(data, Path) else
               git("hash-object", "-w", "--stdin", repo=repo, stdin=data)).strip()
        git("update-index", "--add", "--cacheinfo", f"{mode},{sha},{path}", repo=repo,
            extra=index)
    tree = git("write-tree", repo=repo, extra=index).strip()
    commit = git("commit-tree", tree, *(["-p", tip] if tip else []), "-m", "planted",
                 repo=repo).strip()
    git("update-ref", "refs/heads/main", commit, repo=repo)
    os.unlink(repo / "planted-index")


def tree(repo: Path) -> List[str]:
    return git("ls-tree", "-r", "--name-only", "main", repo=repo).split()


def subjects(repo: Path) -> List[str]:
    return git("log", "--format=%s", "main", repo=repo).splitlines()


def rescue(*args: Any) -> int:
    return cli.main([str(a) for a in args])


def docs(text: str) -> List[Dict[str, Any]]:
    """Every JSON document printed (a command that ran another inside prints two)."""
    out, at = [], 0
    decoder = json.JSONDecoder()
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        doc, at = decoder.raw_decode(text, at)
        out.append(doc)
    return out


def run_json(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, Dict[str, Any]]:
    capsys.readouterr()
    code = rescue(*args, "--json")
    return code, docs(capsys.readouterr().out)[-1]


@pytest.fixture
def hosts(tmp_path: Path, signing: bundles.Signing) -> Iterator[Dict[str, Path]]:
    """Two build hosts' prefixes with the same fake go1.21.12, each installed at the same path
    on its host (as a fleet does; go.env names it): alpha's is then moved aside for beta's."""
    c = craft.Craft(name="dc", sequence=1)
    fake_toolchain(c, "go1.21.12")
    b = write_bundle(c, tmp_path / "b.tar.zst", signing.key, [])
    out = {}
    for name in ("alpha", "beta"):
        assert rescue("install", b, "--prefix", tmp_path / "P", "--trust", signing.signers) == 0
        out[name] = (tmp_path / "P").rename(tmp_path / name)
    out["beta"] = out["beta"].rename(tmp_path / "P")
    yield out
    os.system(f"chmod -R u+w {tmp_path} 2>/dev/null")  # read-only GOROOTs: let pytest clean up


def create(capsys: pytest.CaptureFixture[str], prefix: Path, tag: str) -> str:
    code, out = run_json(capsys, "snapshot", "create", "--tag", tag, "--prefix", prefix)
    assert code == 0, out
    return str(out["id"])


def sync(capsys: pytest.CaptureFixture[str], prefix: Path, repo: Any, host: str
         ) -> Tuple[int, Dict[str, Any]]:
    return run_json(capsys, "snapshot", "sync", "--git", repo, "--host", host, "--prefix",
                    prefix)


def pull(capsys: pytest.CaptureFixture[str], prefix: Path, repo: Any, host: str
         ) -> Tuple[int, Dict[str, Any]]:
    return run_json(capsys, "snapshot", "pull", "--git", repo, "--host", host, "--prefix",
                    prefix)


def test_two_hosts_sync_to_one_repository_and_check_their_go_against_each_others_records(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = bare(tmp_path / "server.git")
    a1 = create(capsys, hosts["alpha"], "v1.0.0")
    b1 = create(capsys, hosts["beta"], "release 7")
    code, out = sync(capsys, hosts["alpha"], repo, "alpha")
    assert code == 0 and out["new"] == [a1] and out["commit"], out
    assert rescue("snapshot", "sync", "--git", f"file://{repo}", "--host", "beta",
                  "--prefix", hosts["beta"]) == 0
    said = capsys.readouterr().out
    assert f"pushed    {b1}\n1 new snapshot(s) committed to file://{repo} (main, " \
           "snapshots/beta/) as " in said
    assert tree(repo) == [f"snapshots/alpha/{a1}.json", f"snapshots/beta/{b1}.json"]
    assert (git("show", f"main:snapshots/alpha/{a1}.json", repo=repo)
            == (hosts["alpha"] / f"state/snapshots/{a1}.json").read_text())
    # a second sync with nothing new makes no commit, and says so
    assert rescue("snapshot", "sync", "--git", repo, "--host", "alpha", "--prefix",
                  hosts["alpha"]) == 0
    assert capsys.readouterr().out == (
        f"nothing new: file://{repo} (main, snapshots/alpha/) has all 1 of this host's "
        "snapshot(s); no commit made\n")
    assert len(subjects(repo)) == 2
    a2 = create(capsys, hosts["alpha"], "v1.0.1")
    (hosts["alpha"] / "state/snapshots/cut.json").write_text('{"format": 1')
    assert rescue("snapshot", "sync", "--git", repo, "--host", "alpha", "--prefix",
                  hosts["alpha"]) == 0
    assert capsys.readouterr().out.startswith(
        f"pushed    {a2}\nskipped   {hosts['alpha']}/state/snapshots/cut.json: damaged (see "
        f"`snapshot list`)\n1 new snapshot(s) committed to file://{repo} (main, "
        "snapshots/alpha/) as ")
    (hosts["alpha"] / "state/snapshots/cut.json").unlink()
    assert subjects(repo)[0] == "snapshots from alpha: 1 new"

    # beta pulls alpha's records (never its own back), and checks its go against them
    code, out = pull(capsys, hosts["beta"], repo, "beta")
    assert code == 0 and out["pulled"] == [f"alpha:{a1}", f"alpha:{a2}"], out
    assert (out["own"], out["already"]) == (1, 0)
    assert (hosts["beta"] / f"state/snapshots-pulled/alpha/{a1}.json").read_bytes() == \
        (hosts["alpha"] / f"state/snapshots/{a1}.json").read_bytes()
    assert rescue("snapshot", "pull", "--git", repo, "--host", "beta", "--prefix",
                  hosts["beta"]) == 0
    assert capsys.readouterr().out == (
        f"0 pulled into {hosts['beta']}/state/snapshots-pulled, 2 had already, 1 of this host's "
        "own left to its store\n")
    code, listed = run_json(capsys, "snapshot", "list", "--pulled", "--prefix", hosts["beta"])
    assert [s["ref"] for s in listed["snapshots"]] == [f"alpha:{a1}", f"alpha:{a2}"]
    assert rescue("snapshot", "list", "--pulled", "--prefix", hosts["alpha"]) == 0
    assert capsys.readouterr().out == (
        f"no pulled snapshots in {hosts['alpha']}/state/snapshots-pulled; bring them with "
        "`snapshot pull --git REPO`\n")
    (hosts["beta"] / "state/snapshots-pulled/alpha/x.json").write_text("{")
    assert rescue("snapshot", "list", "--pulled", "--prefix", hosts["beta"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"alpha:{a1} ") and lines[1].startswith(f"alpha:{a2} ")
    assert lines[2].startswith(f"damaged reading snapshot {hosts['beta']}/state/"
                               "snapshots-pulled/alpha/x.json: not JSON")
    assert lines[2].endswith("; remove it and pull again (`rescue.pyz snapshot pull --git "
                             "REPO`); the host alpha still has its own record")
    (hosts["beta"] / "state/snapshots-pulled/alpha/x.json").unlink()
    assert rescue("snapshot", "verify", f"alpha:{a1}", "--prefix", hosts["beta"]) == 0
    assert f"matches snapshot {a1}" in capsys.readouterr().out
    code, out = run_json(capsys, "snapshot", "diff", f"alpha:{a2}", "--live", "--prefix",
                         hosts["beta"])
    assert code == 0 and out["diff"]["files"] == {"added": [], "removed": [], "changed": []}
    # beta's go is changed: alpha's record says so
    go = hosts["beta"] / "current/bin/go"
    os.chmod(go, 0o755)
    go.write_bytes(go.read_bytes() + b"# changed\n")
    code, out = run_json(capsys, "snapshot", "verify", f"alpha:{a1}", "--prefix",
                         hosts["beta"])
    assert code == 3 and f"verifying snapshot {a1}: the GOROOT " in out["error"]["message"]
    assert "changed bin/go" in out["error"]["message"]
    code, out = run_json(capsys, "snapshot", "show", "alpha:nope", "--prefix", hosts["beta"])
    assert code == 2 and out["error"]["message"].startswith(
        "reading snapshot 'alpha:nope': not pulled (no ")
    code, out = run_json(capsys, "snapshot", "show", "al pha:x", "--prefix", hosts["beta"])
    assert code == 2 and out["error"]["message"].startswith(
        "reading snapshot 'al pha:x': not HOST:ID")


def test_a_push_another_host_made_first_is_fetched_and_retried_never_forced(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = bare(tmp_path / "server.git")
    a1 = create(capsys, hosts["alpha"], "a")
    b1 = create(capsys, hosts["beta"], "b")
    real_run = snapshot_git.Git.run
    raced: List[int] = []

    def beta_pushes_first(self: snapshot_git.Git, *args: str, **kw: Any) -> bytes:
        if args[0] == "push" and not raced:  # alpha has fetched and committed: beta wins
            raced.append(-1)
            raced[0] = rescue("snapshot", "sync", "--git", repo, "--host", "beta", "--prefix",
                              hosts["beta"], "--json")
        return real_run(self, *args, **kw)

    monkeypatch.setattr(snapshot_git.Git, "run", beta_pushes_first)
    code, out = sync(capsys, hosts["alpha"], repo, "alpha")
    assert raced == [0]
    assert code == 0 and out["tries"] == 2 and out["new"] == [a1], out
    assert subjects(repo) == ["snapshots from alpha: 1 new", "snapshots from beta: 1 new"]
    assert tree(repo) == [f"snapshots/alpha/{a1}.json", f"snapshots/beta/{b1}.json"]

    def beta_always_first(self: snapshot_git.Git, *args: str, **kw: Any) -> bytes:
        if args[0] == "push" and kw.get("stdin") is None and not raced[1:]:
            raced.append(-1)  # beta's own push below goes through unraced
            create(capsys, hosts["beta"], "b")
            raced[-1] = rescue("snapshot", "sync", "--git", repo, "--host", "beta",
                               "--prefix", hosts["beta"], "--json")
            del raced[1:]
        return real_run(self, *args, **kw)

    monkeypatch.setattr(snapshot_git.Git, "run", beta_always_first)
    create(capsys, hosts["alpha"], "a")
    code, out = sync(capsys, hosts["alpha"], repo, "alpha")
    assert code == 2 and out["error"]["message"] == (
        f"syncing snapshots to file://{repo}: other hosts pushed first 5 times in a row; nothing "
        "of this host's was lost, run `snapshot sync` again"), out
    assert len(subjects(repo)) == 2 + 5 and subjects(repo)[0] == "snapshots from beta: 1 new"


def test_two_hosts_syncing_at_the_same_moment_both_land(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = bare(tmp_path / "server.git")
    ids = {h: [create(capsys, p, f"{h}{i}") for i in range(3)] for h, p in hosts.items()}
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "installer.cli", "snapshot", "sync",
         "--git", str(repo), "--host", h, "--prefix", str(p), "--json"], cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, text=True)
        for h, p in hosts.items()]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(r["ok"] for r in results), results
    assert sorted(tree(repo)) == sorted(f"snapshots/{h}/{i}.json" for h in ids for i in ids[h])


def test_sync_to_a_remote_that_git_could_read_as_an_option_or_a_program_is_refused(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pwned = tmp_path / "pwned"
    for given, problem in (
            ("-uhelp", "it starts with `-`, which git would read as an option"),
            (f"ext::sh -c touch% {pwned}", "`ext::` runs a remote helper program"),
            ("fd::7", "`fd::` runs a remote helper program"),
            ("http://git.corp/s.git", "the scheme http:// is not one of file, ssh, https"),
            ("git://git.corp/s.git", "the scheme git:// is not one of file, ssh, https"),
            ("repo\x1b[31m", "it holds control characters")):
        for command in ("sync", "pull"):
            code, out = run_json(capsys, "snapshot", command, "--git", given, "--host", "alpha",
                                 "--prefix", hosts["alpha"])
            assert code == 2, out
            assert out["error"]["message"].startswith(f"reading --git {given!r}: {problem}")
            assert out["error"]["message"].endswith(
                "; pass a directory, a file://, ssh:// or https:// URL, or host:path")
    assert not pwned.exists()
    code, out = sync(capsys, hosts["alpha"], tmp_path / "nothing-here", "alpha")
    assert code == 2 and out["error"]["message"].startswith(
        f"syncing snapshots to file://{tmp_path}/nothing-here: running git ls-remote: ")
    assert out["error"]["message"].endswith(
        "check --git and that this host may read and push there (ssh keys, https credentials "
        "in an agent)")
    code, out = sync(capsys, hosts["alpha"], tmp_path, "bad/host")
    assert code == 2 and out["error"]["message"].startswith(
        "naming this host 'bad/host': not usable as a directory name")


def test_git_runs_no_hook_and_no_config_of_the_server_the_machine_or_the_user(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = bare(tmp_path / "server.git")
    ran = tmp_path / "hook-ran"
    for hook in ("pre-receive", "update", "post-receive", "post-update", "reference-transaction"):
        (repo / "hooks" / hook).write_text(f"#!/bin/sh\necho {hook} >> {ran}\n")
        (repo / "hooks" / hook).chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    # the user's config would send every file:// URL elsewhere and run a helper for it
    (home / ".gitconfig").write_text(f'[url "ext::sh -c touch% {ran}"]\n\tinsteadOf = file://\n'
                                     f"[core]\n\thooksPath = {repo / 'hooks'}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    a1 = create(capsys, hosts["alpha"], "a")
    code, out = sync(capsys, hosts["alpha"], repo, "alpha")
    assert code == 0 and out["new"] == [a1], out
    assert not ran.exists(), ran.read_text()
    assert tree(repo) == [f"snapshots/alpha/{a1}.json"]
    code, out = pull(capsys, hosts["beta"], repo, "beta")
    assert code == 0 and out["pulled"] == [f"alpha:{a1}"], out
    assert not ran.exists()
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out = sync(capsys, hosts["alpha"], repo, "alpha")
    assert code == 2, out
    assert out["error"]["message"] == (
        "running git: it is not installed (not on PATH); install git (`apt-get install git`, "
        "`dnf install git` or `apk add git`), then run the command again")


def record(hosts: Dict[str, Path], snapshot_id: str) -> bytes:
    return (hosts["alpha"] / f"state/snapshots/{snapshot_id}.json").read_bytes()


def test_pull_keeps_the_good_records_and_names_each_hostile_one(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = bare(tmp_path / "server.git")
    a1 = create(capsys, hosts["alpha"], "a")
    assert sync(capsys, hosts["alpha"], repo, "alpha")[0] == 0
    doc = json.loads(record(hosts, a1))
    doc["goroot"]["files"][0]["mode"] = "0777"
    # The limit made small: a blob past 256 MiB costs git ~15 s to pack and unpack; the check
    # is the same one (its size, from the tree listing, before a byte of it is read).
    monkeypatch.setattr(snapshot_sync, "LIMITS", replace(DEFAULT_LIMITS,
                                                         snapshot_file_bytes=64 << 10))
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate((64 << 10) + 1)
    evil = "ev\x1b[31mil"
    plant(repo, {
        "snapshots/mallory/a-link.json": ("120000", b"/etc/shadow"),
        f"snapshots/mallory/{a1}.json": ("100644", json.dumps(doc).encode()),
        "snapshots/mallory/huge.json": ("100644", huge),
        f"snapshots/{evil}/x.json": ("100644", record(hosts, a1)),
        "snapshots/mallory/deep/er.json": ("100644", b"{}"),
        "snapshots/mallory/not-json.json": ("100644", b"\xff\xfe"),
        "snapshots/.gitkeep": ("100644", b""),
    })
    code, out = pull(capsys, hosts["beta"], repo, "beta")
    assert code == 3, out
    assert out["pulled"] == [f"alpha:{a1}"]
    where = f"file://{repo}"
    fix = "; remove it from the repository (`git rm`), then run the command again"
    by_file = {r["file"][len(where) + 1:]: r for r in out["refused"]}
    assert by_file["'snapshots/mallory/a-link.json'"]["message"] == (
        f"reading snapshot {where}:'snapshots/mallory/a-link.json': it is a symbolic link, "
        f"which rescue never follows{fix}")
    assert by_file["'snapshots/mallory/huge.json'"]["message"] == (
        f"reading snapshot {where}:'snapshots/mallory/huge.json': it holds {(64 << 10) + 1} "
        f"bytes, more than the {64 << 10} a real snapshot can{fix}")
    assert by_file["'snapshots/ev\\x1b[31mil/x.json'"]["message"] == (
        f"reading snapshot {where}:'snapshots/ev\\x1b[31mil/x.json': its directory is not a "
        f"host name (letters, digits and `._-`){fix}")
    assert by_file["'snapshots/mallory/deep/er.json'"]["message"] == (
        f"reading snapshot {where}:'snapshots/mallory/deep/er.json': it is not "
        f"snapshots/HOST/ID.json{fix}")
    tampered = by_file[f"snapshots/mallory/{a1}.json"]
    assert tampered["exit_code"] == 3
    assert tampered["message"].startswith(
        f"reading snapshot {where}:snapshots/mallory/{a1}.json: its root_hash is not the hash "
        f"of the {len(doc['goroot']['files'])} entries it lists")
    assert "it was edited after `snapshot create` wrote it" in tampered["message"]
    assert by_file["snapshots/mallory/not-json.json"]["message"].startswith(
        f"reading snapshot {where}:snapshots/mallory/not-json.json: not UTF-8 text (byte 0); "
        "ask that host to take a new snapshot and sync it, and remove this one (`git rm`)")
    assert {r["exit_code"] for r in out["refused"]} == {2, 3}
    assert len(out["refused"]) == 6
    assert not (hosts["beta"] / "state/snapshots-pulled/mallory").exists()
    assert rescue("snapshot", "pull", "--git", repo, "--host", "beta", "--prefix",
                  hosts["beta"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"rescue: pulling snapshots from {where}: 6 record(s) refused, 0 "
                          "pulled:\n  reading snapshot ")
    assert "\x1b" not in err, "a name from the repository reached the terminal unescaped"
    # sync into the same repository refuses to add to it, naming what is wrong
    code, out = sync(capsys, hosts["alpha"], repo, "alpha")
    assert code == 2 and out["error"]["message"].startswith(
        f"syncing snapshots to {where}: the repository holds 4 entries that are not records:\n"
        "  reading snapshot "), out


def test_pulled_record_changed_in_the_repository_is_refused_never_replaced(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = bare(tmp_path / "server.git")
    a1 = create(capsys, hosts["alpha"], "a")
    assert sync(capsys, hosts["alpha"], repo, "alpha")[0] == 0
    assert pull(capsys, hosts["beta"], repo, "beta")[1]["pulled"] == [f"alpha:{a1}"]
    kept = hosts["beta"] / f"state/snapshots-pulled/alpha/{a1}.json"
    before = kept.read_bytes()
    changed = json.loads(record(hosts, a1))
    changed["go"]["env"]["GOPROXY"] = "https://evil.example"  # not in any sum: looks valid
    plant(repo, {f"snapshots/alpha/{a1}.json": ("100644", json.dumps(changed).encode()),
                 f"snapshots/beta/{a1}.json": ("100644", json.dumps(changed).encode())})
    code, out = pull(capsys, hosts["beta"], repo, "beta")
    assert code == 3 and out["own"] == 1, out
    assert out["refused"][0]["message"] == (
        f"pulling snapshot file://{repo}:snapshots/alpha/{a1}.json: it differs from the copy "
        f"pulled before ({kept}); a record is never rewritten, so the repository's was changed "
        "after it was pushed; ask the host's owner which is right, and compare both with "
        "`snapshot diff`")
    assert kept.read_bytes() == before
    # this host's own record in the repository never replaces the local one
    local = hosts["beta"] / "state/snapshots"
    assert not (local / f"{a1}.json").exists() or (local / f"{a1}.json").read_bytes() != \
        json.dumps(changed).encode()
    # alpha's own sync sees the repository's copy differs, and warns
    assert rescue("snapshot", "sync", "--git", repo, "--host", "alpha", "--prefix",
                  hosts["alpha"]) == 0
    assert f"warning   {a1}: the repository's copy differs from this host's" in \
        capsys.readouterr().out


def test_repository_whose_snapshots_is_a_link_is_refused_by_sync_and_pull(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = bare(tmp_path / "server.git")
    plant(repo, {"snapshots": ("120000", b"/etc")})
    create(capsys, hosts["alpha"], "a")
    for command, host in (("sync", "alpha"), ("pull", "beta")):
        code, out = run_json(capsys, "snapshot", command, "--git", repo, "--host", host,
                             "--prefix", hosts[host])
        assert code == 2, out
        assert f": reading repository file://{repo}: its snapshots is a symbolic link; rescue " \
               "reads records only from a real snapshots/ directory. Replace it there (`git rm " \
               "snapshots`, commit, push), or pass the right --git" in \
               ": " + out["error"]["message"]


def test_sync_and_pull_with_the_pyz_for_every_user(user: User, pyz: Path,
                                                   signing: bundles.Signing) -> None:
    rescue_cmd = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    c = craft.Craft(name="dc", sequence=1)
    fake_toolchain(c, "go1.21.12")
    bundle = user.give(write_bundle(c, user.work.parent / "b.tar.zst", signing.key, []))
    repo = bare(user.work / "server.git")
    subprocess.run(["chown", "-R", f"{user.uid}:{user.uid}", str(repo)], check=True)

    def run(*args: str, host: str) -> Dict[str, Any]:
        done = user.run([*rescue_cmd, *args, "--json"], offline=True,
                        env=user.env(RESCUE_SNAPSHOT_HOST=host))
        out = json.loads(done.stdout)
        assert done.returncode == 0, (done.stderr, out)
        return out  # type: ignore[no-any-return]

    made = {}
    for host in ("alpha", "beta"):  # the same prefix path on each host; alpha's moved aside
        prefix = str(user.work / "P")
        run("install", str(bundle), "--prefix", prefix, host=host)
        made[host] = run("snapshot", "create", "--prefix", prefix, host=host)["id"]
        out = run("snapshot", "sync", "--git", str(repo), "--prefix", prefix, host=host)
        assert out["new"] == [made[host]] and out["host"] == host, out
        (user.work / "P").rename(user.work / host)
    out = run("snapshot", "pull", "--git", f"file://{repo}", "--prefix", str(user.work / "beta"),
              host="beta")
    assert out["pulled"] == [f"alpha:{made['alpha']}"], out
    out = run("snapshot", "verify", f"alpha:{made['alpha']}", "--prefix",
              str(user.work / "beta"), host="beta")
    assert out["verify"]["id"] == made["alpha"]
    pulled = user.work / "beta/state/snapshots-pulled/alpha" / f"{made['alpha']}.json"
    assert pulled.stat().st_uid == user.uid
    assert git("log", "--format=%an", "main", repo=repo).splitlines() == [
        "rescue snapshot sync (beta)", "rescue snapshot sync (alpha)"]
    if user.uid == 0:
        return
    # a pulled area this user may not write (root took it over): the file and the way out
    os.chown(pulled.parent, 0, 0)
    pulled.unlink()
    done = user.run([*rescue_cmd, "snapshot", "pull", "--git", str(repo), "--prefix",
                     str(user.work / "beta"), "--json"], offline=True,
                    env=user.env(RESCUE_SNAPSHOT_HOST="beta"))
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["refused"][0]["message"] == (
        f"pulling snapshot file://{repo}:snapshots/alpha/{made['alpha']}.json: keeping it as "
        f"{pulled}: Permission denied; run as the user who owns {user.work / 'beta'}, or pass a "
        "--prefix of your own")


def test_pull_into_an_area_it_cannot_write_names_the_file_and_the_way_out(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = bare(tmp_path / "server.git")
    a1 = create(capsys, hosts["alpha"], "a")
    assert sync(capsys, hosts["alpha"], repo, "alpha")[0] == 0
    area = hosts["beta"] / "state/snapshots-pulled"
    area.mkdir()
    (area / "alpha").write_text("not a directory")
    code, out = pull(capsys, hosts["beta"], repo, "beta")
    assert code == 2 and out["pulled"] == [], out
    assert out["refused"][0]["message"] == (
        f"reading the pulled snapshots {area}/alpha: it is not a directory; move it aside (`mv "
        f"{area}/alpha {area}/alpha.damaged`) and pull again")
    (area / "alpha").unlink()
    (area / "alpha").symlink_to(tmp_path)
    code, out = pull(capsys, hosts["beta"], repo, "beta")
    assert code == 2 and out["refused"][0]["message"].startswith(
        f"reading the pulled snapshots {area}/alpha: it is a symbolic link (to "), out
    assert not (tmp_path / f"{a1}.json").exists()


def test_a_server_that_never_answers_is_given_up_on_with_the_way_out(
        hosts: Dict[str, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An ssh server that takes the connection and never says a word (a hung sshd, a firewall
    that swallows the session): git waits for ever, so rescue stops it at its time limit."""
    monkeypatch.setattr(snapshot_git, "DEFAULT_LIMITS",
                        replace(DEFAULT_LIMITS, snapshot_git_seconds=2))
    create(capsys, hosts["alpha"], "a")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        code, out = sync(capsys, hosts["alpha"], f"ssh://git@127.0.0.1:{port}/ops/snaps.git",
                         "alpha")
    assert time.monotonic() - started < 30
    assert code == 2, out
    assert out["error"]["message"].endswith(
        "running git ls-remote: it took longer than 2 s; check that the server answers, then "
        "run the command again"), out


def test_git_output_past_its_bound_is_refused_not_read_on() -> None:
    """Every git answer is read bounded: one past its limit (a listing no snapshot repository
    makes) stops git and names the command."""
    with snapshot_git.scratch("alpha") as g:
        assert g.run("version").startswith(b"git version ")
        with pytest.raises(NotReadyError) as e:
            g.run("version", limit=5)
    assert e.value.message == ("running git version: it printed more than 5 bytes, more than "
                               "any snapshot repository needs; check what --git names")


def test_no_writable_temp_dir_for_git_says_to_set_tmpdir(
        hosts: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    create(capsys, hosts["alpha"], "a")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # as TMPDIR=gone reads
    code, out = sync(capsys, hosts["alpha"], bare(tmp_path / "server.git"), "alpha")
    assert code == 2, out
    assert out["error"]["message"] == (
        f"running git: no scratch directory in {tmp_path / 'gone'} (No such file or "
        "directory); set TMPDIR to a directory this user can write")
