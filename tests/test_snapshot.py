"""Snapshots: what an auditor asks after a release (which exact toolchain built it, under which
CI job), what changed after an upgrade, and whether anyone touched the GOROOT since."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from installer import cli, snapshot, snapshot_store
from installer.prefix import Layout
from manifests.dirhash import hash_gomod
from tests.support import bundles, craft
from tests.support.users import STOCK_PYTHON, User

SECRET = "s3cr3t-value-never-to-be-written"
GHA = {"GITHUB_ACTIONS": "true", "GITHUB_JOB": "release", "GITHUB_RUN_ID": "4242",
       "GITHUB_SHA": "0123abcd" * 5, "GITHUB_REF": "refs/tags/v1.2.0",
       "GITHUB_REPOSITORY": "acme/service", "GITHUB_TOKEN": SECRET, "ACME_API_KEY": SECRET,
       "DEPLOY_PASSWORD": SECRET, "CI": "true"}
GITLAB = {"GITLAB_CI": "true", "CI_JOB_NAME": "build", "CI_JOB_ID": "777", "CI_PIPELINE_ID": "31",
          "CI_COMMIT_SHA": "feedbeef" * 5, "CI_COMMIT_REF_NAME": "main",
          "CI_JOB_TOKEN": SECRET, "CI_REGISTRY_PASSWORD": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET,
          "CI": "true"}
# `go env -json` with no names: the whole environment, as the real go prints it (the crafted
# go answers only named keys); it shows what go saw of GOTOOLCHAIN and GOFLAGS.
ENV_JSON = """if [ "$1 $2" = "env -json" ] && [ $# -eq 2 ]; then
  printf '{"GOROOT": "%s", "GOVERSION": "%s", "GOPATH": "%s", "GOMODCACHE": "%s",
 "GOPROXY": "%s", "GOTOOLCHAIN": "%s", "GOFLAGS": "%s"}\\n' "$here" "$(cat "$here/VERSION")" \\
    "$HOME/go" "$HOME/go/pkg/mod" "$(setting GOPROXY)" "${GOTOOLCHAIN:-}" "${GOFLAGS:-}"
  exit 0
fi
"""


def fake_toolchain(c: craft.Craft, version: str) -> None:
    """craft's fake toolchain, with a `go env -json` that prints a whole environment."""
    root = c.toolchain(version=version)
    go = c.contents[f"{root}/bin/go"].decode().replace('case "$1 $2" in', ENV_JSON
                                                       + 'case "$1 $2" in', 1).encode()
    c.members = [m for m in c.members if m["path"] != f"{root}/bin/go"]
    c.file(f"{root}/bin/go", go, 0o755)


def with_module(c: craft.Craft, path: str, version: str) -> Dict[str, Any]:
    mod = f"module {path}\n".encode()
    at = f"goproxy/{path}/@v"
    parts = at.split("/")
    for i in range(1, len(parts) + 1):
        c.dir("/".join(parts[:i]))
    c.file(f"{at}/{version}.mod", mod).file(f"{at}/{version}.info",
                                             f'{{"Version":"{version}"}}\n'.encode())
    c.file(f"{at}/list", f"{version}\n".encode())
    return {"path": path, "version": version, "zip_hash": "", "mod_hash": hash_gomod(mod)}


def write_bundle(c: craft.Craft, dest: Path, key: Path, modules: List[Dict[str, Any]]) -> Path:
    return c.write(dest, key, doc={**c.doc(), "modules": modules})


def rescue(*args: Any) -> int:
    return cli.main([str(a) for a in args])


def run_json(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, Dict[str, Any]]:
    capsys.readouterr()
    code = rescue(*args, "--json")
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[Path]:
    p = tmp_path / "P"
    yield p
    os.system(f"chmod -R u+w {tmp_path} 2>/dev/null")  # read-only GOROOTs: let pytest clean up


def install(bundle: Path, prefix: Path, signing: bundles.Signing) -> None:
    assert rescue("install", bundle, "--prefix", prefix, "--trust", signing.signers) == 0


@pytest.fixture
def old_and_new(tmp_path: Path, signing: bundles.Signing) -> Tuple[Path, Path]:
    """go1.21.12 (#1, no modules) then go1.21.13 (#2, carrying example.com/m@v1.0.0)."""
    old = craft.Craft(name="dc", sequence=1)
    fake_toolchain(old, "go1.21.12")
    new = craft.Craft(name="dc", sequence=2)
    fake_toolchain(new, "go1.21.13")
    mod = with_module(new, "example.com/m", "v1.0.0")
    return (write_bundle(old, tmp_path / "old.tar.zst", signing.key, []),
            write_bundle(new, tmp_path / "new.tar.zst", signing.key, [mod]))


@pytest.mark.parametrize("ci, slug", [(GHA, "gha-4242"), (GITLAB, "gl-31")],
                         ids=["github-actions", "gitlab-ci"])
def test_snapshot_in_ci_records_the_job_and_never_a_secret(
        ci: Dict[str, str], slug: str, prefix: Path, old_and_new: Tuple[Path, Path],
        signing: bundles.Signing, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    install(old_and_new[0], prefix, signing)
    for name, value in ci.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    code, out = run_json(capsys, "snapshot", "create", "--tag", "v1.2.0", "--prefix", prefix)
    assert code == 0 and out["ok"], out
    assert re.fullmatch(rf"v1\.2\.0-\d{{8}}T\d{{6}}Z-{slug}", out["id"]), out["id"]
    stored = Path(out["file"])
    assert stored == prefix / "state" / "snapshots" / f"{out['id']}.json"
    text = stored.read_text()
    assert SECRET not in text, "a credential reached the snapshot"
    doc = json.loads(text)
    want = {k: v for k, v in ci.items() if SECRET not in v}
    recorded = set(json.dumps(doc["ci"]).split('"'))
    assert {"release", "4242", "refs/tags/v1.2.0"} <= recorded if slug.startswith("gha") else \
        {"build", "31", "main", "777"} <= recorded
    assert doc["ci"]["commit"] in want.values()
    assert (doc["tag"], doc["tag_kind"]) == ("v1.2.0", "semver")
    assert doc["toolchain"] == "go1.21.12.linux-amd64"
    assert doc["go"]["version"] == "go version go1.21.12 linux/amd64"
    # go ran with GOTOOLCHAIN=local and without the caller's GOFLAGS
    assert doc["go"]["env"]["GOTOOLCHAIN"] == "local" and doc["go"]["env"]["GOFLAGS"] == ""
    assert doc["paths"]["GOROOT"] == str((prefix / "versions/go1.21.12.linux-amd64").resolve())
    assert doc["bundle"]["signer"] == signing.key_id
    assert (doc["bundle"]["name"], doc["bundle"]["channel"], doc["bundle"]["sequence"]) == (
        "dc", "stable", 1)
    assert len(doc["bundle"]["manifest_sha256"]) == 64
    go = {f["path"]: f for f in doc["goroot"]["files"]}["bin/go"]
    assert go["mode"] == "0555" and go["sha256"] == snapshot.sha256_file(
        prefix / "current/bin/go")
    assert doc["goroot"]["root_hash"] == snapshot.root_hash(doc["goroot"]["files"])
    assert doc["host"] and doc["user"]["name"] and doc["created"].endswith("Z")


def test_tag_of_free_text_is_kept_and_escaped_in_the_id(
        prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    install(old_and_new[0], prefix, signing)
    copy = tmp_path / "audit" / "snap.json"
    copy.parent.mkdir()
    code, out = run_json(capsys, "snapshot", "create", "--tag", "../before upgrade/7",
                         "-o", copy, "--prefix", prefix)
    assert code == 0, out
    assert re.fullmatch(r"before-upgrade-7-\d{8}T\d{6}Z", out["id"]), out["id"]
    assert out["snapshot"]["tag"] == "../before upgrade/7"
    assert out["snapshot"]["tag_kind"] == "text"
    assert json.loads(copy.read_text())["id"] == out["id"]
    # a second snapshot in the same second gets a free id, never overwrites the first
    code, again = run_json(capsys, "snapshot", "create", "--tag", "../before upgrade/7",
                           "--prefix", prefix)
    assert code == 0 and again["id"] != out["id"]
    assert len(os.listdir(prefix / "state" / "snapshots")) == 2


def test_list_and_show(prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
                       capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    install(old_and_new[0], prefix, signing)
    code, listed = run_json(capsys, "snapshot", "list", "--prefix", prefix)
    assert code == 0 and listed["snapshots"] == []
    _, a = run_json(capsys, "snapshot", "create", "--tag", "one", "--prefix", prefix)
    _, b = run_json(capsys, "snapshot", "create", "--tag", "two", "--prefix", prefix,
                    "-o", tmp_path / "two.json")
    code, listed = run_json(capsys, "snapshot", "list", "--prefix", prefix)
    assert [s["id"] for s in listed["snapshots"]] == [a["id"], b["id"]]
    assert listed["snapshots"][0]["toolchain"] == "go1.21.12.linux-amd64"
    code, shown = run_json(capsys, "snapshot", "show", b["id"], "--prefix", prefix)
    assert code == 0 and shown["snapshot"]["id"] == b["id"]
    assert shown["snapshot"]["goroot"]["root_hash"] == b["root_hash"]
    # a snapshot file carried elsewhere is shown by its path
    code, by_path = run_json(capsys, "snapshot", "show", tmp_path / "two.json", "--prefix", prefix)
    assert code == 0 and by_path["snapshot"] == shown["snapshot"]
    capsys.readouterr()
    assert rescue("snapshot", "show", a["id"], "--prefix", prefix) == 0
    text = capsys.readouterr().out
    assert f"snapshot  {a['id']}" in text and "go version go1.21.12" in text
    assert f"signed by {signing.key_id}" in text


def test_diff_after_an_upgrade_shows_files_env_and_modules(
        prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    install(old_and_new[0], prefix, signing)
    _, before = run_json(capsys, "snapshot", "create", "--tag", "v1.0.0", "--prefix", prefix)
    code, same = run_json(capsys, "snapshot", "diff", before["id"], "--live", "--prefix", prefix)
    assert code == 0 and same["diff"]["same"], same
    install(old_and_new[1], prefix, signing)
    code, out = run_json(capsys, "snapshot", "diff", before["id"], "--live", "--prefix", prefix)
    assert code == 0, out
    d = out["diff"]
    assert not d["same"]
    assert d["toolchain"] == ["go1.21.12.linux-amd64", "go1.21.13.linux-amd64"]
    assert d["go_version"] == ["go version go1.21.12 linux/amd64",
                               "go version go1.21.13 linux/amd64"]
    changed = {c["path"]: c for c in d["files"]["changed"]}
    assert set(changed) == {"VERSION", "bin/go"}, changed  # go.env: the same wiring
    assert set(changed["VERSION"]) == {"path", "sha256"}  # mode and size unchanged
    assert d["files"]["added"] == [] and d["files"]["removed"] == []
    assert d["env"]["changed"]["GOVERSION"] == ["go1.21.12", "go1.21.13"]
    assert d["env"]["changed"]["GOROOT"][1].endswith("versions/go1.21.13.linux-amd64")
    assert d["modules"]["added"] == ["example.com/m@v1.0.0"]
    # two stored snapshots compare the same way, and people read it too
    _, after = run_json(capsys, "snapshot", "create", "--tag", "v1.1.0", "--prefix", prefix)
    code, stored = run_json(capsys, "snapshot", "diff", before["id"], after["id"],
                            "--prefix", prefix)
    assert code == 0 and stored["diff"]["files"] == d["files"]
    assert stored["diff"]["modules"] == d["modules"]
    capsys.readouterr()
    assert rescue("snapshot", "diff", before["id"], after["id"], "--prefix", prefix) == 0
    text = capsys.readouterr().out
    assert "~ VERSION (sha256)" in text and "module + example.com/m@v1.0.0" in text
    assert "env ~ GOVERSION: go1.21.12 -> go1.21.13" in text
    # verify after the upgrade: a changed environment, not a tampered toolchain
    assert rescue("snapshot", "verify", before["id"], "--prefix", prefix) == 3
    err = capsys.readouterr().err
    assert "(the snapshot was of go1.21.12.linux-amd64, `current` is now go1.21.13" in err
    assert "switch back to go1.21.12.linux-amd64" in err and "tampered" not in err


def test_verify_passes_then_names_the_file_someone_changed(
        prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    install(old_and_new[0], prefix, signing)
    _, snap = run_json(capsys, "snapshot", "create", "--prefix", prefix)
    assert re.fullmatch(r"\d{8}T\d{6}Z", snap["id"]), "no tag, no CI: the time alone"
    code, ok = run_json(capsys, "snapshot", "verify", snap["id"], "--prefix", prefix)
    assert code == 0 and ok["verify"]["root_hash"][0] == ok["verify"]["root_hash"][1]
    goroot = prefix / "versions" / "go1.21.12.linux-amd64"
    version = goroot / "VERSION"
    version.chmod(0o644)  # read-only as installed
    version.write_text("go1.21.12-patched\n")
    goroot.chmod(0o755)
    (goroot / "planted").write_text("x")
    capsys.readouterr()
    assert rescue("snapshot", "verify", snap["id"], "--prefix", prefix) == 3
    err = capsys.readouterr().err
    assert f"verifying snapshot {snap['id']}: the GOROOT {goroot}" in err
    assert "changed VERSION" in err and "added planted" in err, err
    code, bad = run_json(capsys, "snapshot", "verify", snap["id"], "--prefix", prefix)
    assert code == 3 and not bad["ok"]
    assert bad["error"]["type"] == "untrusted"
    assert bad["error"]["operation"] == "verifying snapshot"
    assert bad["error"]["expected"] == snap["root_hash"] != bad["error"]["got"]
    changed = {c["path"]: c for c in bad["files"]["changed"]}
    assert set(changed) == {"VERSION"}
    assert changed["VERSION"]["mode"] == ["0444", "0644"]
    assert bad["files"]["added"] == ["planted"]


def test_prune_keeps_the_newest_and_drops_the_old(
        prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    install(old_and_new[0], prefix, signing)
    layout = Layout(prefix)
    now = datetime.now(timezone.utc)
    ids = []
    for days in (40, 20, 10, 1):
        doc = snapshot.take(layout, now=now - timedelta(days=days))  # untagged: prunable
        snapshot_store.save(layout, doc)
        ids.append(doc["id"])
    code, dry = run_json(capsys, "snapshot", "prune", "--keep", "1", "--dry-run",
                         "--prefix", prefix)
    assert code == 0 and dry["removed"] == ids[-2::-1]
    assert len(os.listdir(snapshot_store.store(layout))) == 4
    # --keep and --older-than together: a snapshot goes when neither keeps it
    code, out = run_json(capsys, "snapshot", "prune", "--keep", "1", "--older-than", "15",
                         "--prefix", prefix)
    assert code == 0 and out["removed"] == [ids[1], ids[0]] and out["kept"] == [ids[3], ids[2]]
    code, out = run_json(capsys, "snapshot", "prune", "--older-than", "5", "--prefix", prefix)
    assert out["removed"] == [ids[2]]
    code, out = run_json(capsys, "snapshot", "prune", "--keep", "0", "--prefix", prefix)
    assert out["removed"] == [ids[3]]
    assert snapshot_store.listing(layout) == []


def test_every_error_a_user_can_meet(
        prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def fails(*args: Any) -> str:
        code, doc = run_json(capsys, *args, "--prefix", prefix)
        assert code == 2 and doc["exit_code"] == 2 and doc["error"]["type"] == "not-ready", doc
        return str(doc["error"]["message"])

    msg = fails("snapshot", "create")
    assert msg.startswith(f"taking a snapshot of {prefix}: no current toolchain")
    assert "install one first with `rescue.pyz install BUNDLE" in msg
    assert not prefix.exists(), "a refused snapshot writes nothing"
    install(old_and_new[0], prefix, signing)
    for tag, why in (("", "it is empty"), ("a\nb", "control or bidi"),
                     ("x\u202ey", "control or bidi"), ("v" * 65, "longer than 64"),
                     ("../", "no letter or digit")):
        msg = fails("snapshot", "create", "--tag", tag)
        assert msg.startswith("checking tag ") and why in msg, msg
        assert "pass --tag with a semantic version" in msg
    assert not (prefix / "state" / "snapshots").exists()
    msg = fails("snapshot", "show", "20990101T000000Z")
    assert msg.startswith("reading snapshot '20990101T000000Z': no such snapshot")
    assert "there are none yet; see `rescue.pyz snapshot list`" in msg
    msg = fails("snapshot", "verify", "..")
    assert msg.startswith("reading snapshot '..': not a snapshot id")
    msg = fails("snapshot", "diff", "x\x1b[31m", "--live")
    assert "'x\\x1b[31m'" in msg, "an id from the command line is shown escaped"
    (tmp_path / "junk.json").write_text("{}")
    msg = fails("snapshot", "show", tmp_path / "junk.json")
    assert "not a rescue snapshot" in msg
    _, snap = run_json(capsys, "snapshot", "create", "--prefix", prefix)
    assert "the newest are " + snap["id"] in fails("snapshot", "diff", "nope", "--live")
    assert "give two snapshots" in fails("snapshot", "diff", snap["id"])
    assert "give two snapshots" in fails("snapshot", "diff", snap["id"], snap["id"], "--live")
    assert "pass --keep N, --older-than DAYS" in fails("snapshot", "prune")
    os.unlink(prefix / "current")
    msg = fails("snapshot", "verify", snap["id"])
    assert msg.startswith(f"verifying snapshot against {prefix}: no current toolchain")


def test_a_user_who_cannot_write_the_store_still_gets_the_copy(
        prefix: Path, old_and_new: Tuple[Path, Path], signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    install(old_and_new[0], prefix, signing)
    real_write = snapshot_store.write_atomic

    def store_is_root_s(path: Path, data: Any) -> None:  # a CI user on root's prefix
        if snapshot_store.store(Layout(prefix)) in path.parents:
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, data)

    monkeypatch.setattr(snapshot_store, "write_atomic", store_is_root_s)
    code, out = run_json(capsys, "snapshot", "create", "-o", tmp_path / "mine.json",
                         "--prefix", prefix)
    assert code == 0 and out["file"] is None, out
    assert "only " + str(tmp_path / "mine.json") + " has it" in out["notes"][0]
    code, out = run_json(capsys, "snapshot", "create", "--prefix", prefix)
    assert code == 2 and out["error"]["message"].startswith(
        f"writing snapshot {prefix}/state/snapshots: Permission denied; pass -o FILE")

    def unreadable(goroot: Path) -> None:
        raise PermissionError(13, "Permission denied", str(goroot / "src"))

    monkeypatch.setattr(snapshot, "goroot_files", unreadable)
    code, out = run_json(capsys, "snapshot", "create", "-o", tmp_path / "x.json",
                         "--prefix", prefix)
    assert code == 2 and out["error"]["message"].startswith("reading GOROOT ")
    assert "run as a user who can read the whole toolchain" in out["error"]["message"]


def test_ci_context_reads_only_named_variables() -> None:
    for env, provider in ((GHA, "github-actions"), (GITLAB, "gitlab-ci"),
                          ({"BUILDKITE": "true", "BUILDKITE_BUILD_NUMBER": "9",
                            "BUILDKITE_AGENT_ACCESS_TOKEN": SECRET}, "buildkite"),
                          ({"JENKINS_URL": "http://j/", "BUILD_NUMBER": "12", "JOB_NAME": "rel",
                            "JENKINS_API_KEY": SECRET}, "jenkins"),
                          ({"CI": "1", "CI_TOKEN": SECRET}, "ci"), ({"CI": "false"}, None)):
        ctx = snapshot.ci_context(env)
        assert (ctx or {}).get("provider") == provider
        assert SECRET not in json.dumps(ctx)
    when = datetime(2026, 11, 28, 14, 23, 7, tzinfo=timezone.utc)
    assert snapshot.make_id("v1.2.0", when, snapshot.ci_context(GHA)) == \
        "v1.2.0-20261128T142307Z-gha-4242"
    assert snapshot.make_id("", when, snapshot.ci_context({"CI": "true"})) == \
        "20261128T142307Z-ci"
    assert snapshot.redact("https://bob:hunter2@proxy.corp/,direct") == \
        "https://***@proxy.corp/,direct"


def test_real_go_snapshot_with_the_pyz_for_every_user(
        user: User, pyz: Path, toolchain_bundle: Path) -> None:
    rescue_cmd = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    bundle = user.give(toolchain_bundle)
    prefix = user.home / "go-emergency"
    done = user.run([*rescue_cmd, "install", str(bundle), "--prefix", str(prefix), "--json"],
                    offline=True)
    assert done.returncode == 0, done.stderr
    env = user.env(GITHUB_ACTIONS="true", GITHUB_RUN_ID="99", GITHUB_TOKEN=SECRET)
    made = user.run([*rescue_cmd, "snapshot", "create", "--tag", "v2.0.0", "--prefix",
                     str(prefix), "--json"], offline=True, env=env)
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    assert re.fullmatch(r"v2\.0\.0-\d{8}T\d{6}Z-gha-99", out["id"])
    doc = json.loads(Path(out["file"]).read_text())
    assert SECRET not in Path(out["file"]).read_text()
    assert doc["user"]["uid"] == user.uid
    assert doc["go"]["version"] == "go version go1.21.13 linux/amd64", doc["go"]
    assert doc["go"]["env"]["GOROOT"] == str(prefix / "versions/go1.21.13.linux-amd64")
    assert doc["go"]["env"]["GOPROXY"] == f"file://{prefix}/goproxy"
    assert doc["paths"]["GOMODCACHE"] == str(user.home / "go/pkg/mod")
    assert doc["goroot"]["file_count"] > 5000
    checked = user.run([*rescue_cmd, "snapshot", "verify", out["id"], "--prefix", str(prefix)],
                       offline=True)
    assert checked.returncode == 0, checked.stderr
    assert "matches snapshot" in checked.stdout
