"""Issue 19 item 1: the rescue.fleet Ansible collection rolls a bundle out to a fleet.

The collection is built with the real `ansible-galaxy collection build` and run with the real
`ansible-playbook` (ansible-core, pinned in pyproject's `test` extra), as root and as uid 65534,
on four hosts that are prefixes of their own on this machine (`ansible_connection=local`, the
stock python3 as the hosts' interpreter), inside `unshare -n`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from installer import cli
from tests.support import bundles, craft
from tests.support.users import STOCK_PYTHON, User, chown_tree

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Read at import: an autouse fixture hides CI from the tests themselves.
IN_CI = os.environ.get("CI") == "true"
HOSTS = ["h1", "h2", "h3", "h4"]
OLD, NEW = "go1.21.13.linux-amd64", "go1.22.0.linux-amd64"
MODULE = REPO / "ansible" / "plugins" / "modules" / "toolchain.py"

# The test's playbook: the README's, with the batches, the threshold and a per-host guard
# command (`exit 3` on the hosts the run names) given by the test.
PLAYBOOK = """\
- name: Roll the Go rescue bundle out
  hosts: fleet
  gather_facts: false
  serial: "{{ fleet_serial | default([4]) }}"
  max_fail_percentage: 40
  vars:
    rescue_bundle_sha256: "{{ lookup('file', rescue_bundle ~ '.sha256').split()[0] }}"
    rescue_guard_projects: ["{{ fleet_project }}"]
    rescue_guard_commands: "{{ ['echo guard says no on ' ~ inventory_hostname ~ '; exit 3']
                               if inventory_hostname in fleet_failing | default([])
                               else ['go version'] }}"
  roles:
    - rescue.fleet.rollout
"""
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)",
                   re.M)


def _need(tool: Path) -> None:
    if not tool.exists():
        message = f"{tool.name} is not installed (scripts/setup installs ansible-core)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def collections() -> Iterator[Path]:
    """rescue.fleet built by `ansible-galaxy collection build` and installed with
    `ansible-galaxy collection install`, in a directory every user can read."""
    galaxy = BIN / "ansible-galaxy"
    _need(galaxy)
    _need(BIN / "ansible-playbook")
    base = Path(tempfile.mkdtemp(prefix="rescue-ansible-", dir="/tmp"))
    base.chmod(0o755)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8",
           "PYTHONWARNINGS": "ignore", "ANSIBLE_LOCAL_TEMP": str(base / "tmp")}
    built = subprocess.run([str(galaxy), "collection", "build", str(REPO / "ansible"),
                            "--output-path", str(base / "dist")], env=env, capture_output=True,
                           text=True)
    assert built.returncode == 0, built.stderr
    tarball = base / "dist" / "rescue-fleet-0.1.0.tar.gz"
    assert tarball.is_file(), built.stdout
    done = subprocess.run([str(galaxy), "collection", "install", str(tarball), "-p",
                           str(base / "collections")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    subprocess.run(["chmod", "-R", "a+rX", str(base / "collections")], check=True)
    # The README's playbook, as a user copies it, against the collection as installed.
    (base / "site.yml").write_text(readme_playbook())
    checked = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i",
                              "go_builders,", str(base / "site.yml")], capture_output=True,
                             text=True, env={**env, "ANSIBLE_COLLECTIONS_PATH":
                                             str(base / "collections")})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    yield base / "collections"
    shutil.rmtree(base, ignore_errors=True)


def readme_playbook() -> str:
    text = (REPO / "README.md").read_text().split("## Fleet rollout (Ansible)\n", 1)[1]
    return text.split("```yaml\n", 1)[1].split("```\n", 1)[0]


def test_readme_playbook_sets_only_the_roles_variables() -> None:
    _need(BIN / "ansible-playbook")
    import yaml  # PyYAML: ansible-core's own dependency
    play = yaml.safe_load(readme_playbook())[0]
    defaults = yaml.safe_load((REPO / "ansible/roles/rollout/defaults/main.yml").read_text())
    assert play["roles"] == ["rescue.fleet.rollout"]
    assert set(play["vars"]) <= set(defaults), set(play["vars"]) - set(defaults)
    assert play["serial"] and play["max_fail_percentage"] is not None


def _inspected(bundle: Path, signing: bundles.Signing,
               capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    capsys.readouterr()
    assert cli.main(["inspect", str(bundle), "--trust", str(signing.signers), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


class Fleet:
    """Four hosts' prefixes under one user's work dir, and the playbook run as that user."""

    def __init__(self, user: User, pyz: Path, collections: Path, signing: bundles.Signing):
        self.user, self.collections = user, collections
        w = user.work
        for seq, version in ((1, "go1.21.13"), (2, "go1.22.0")):
            c = craft.Craft(name="fleet", sequence=seq)
            c.toolchain(version=version, builds=True)
            bundle = c.write(w / f"fleet-stable-{seq}.rescue.tar.zst", signing.key)
            sha = hashlib.sha256(bundle.read_bytes()).hexdigest()  # as `rescue build` writes it
            bundle.with_name(bundle.name + ".sha256").write_text(f"{sha}  {bundle.name}\n")
        (w / "app").mkdir()
        (w / "app" / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
        for d in ("tmp", "hosts"):
            (w / d).mkdir()
        (w / "site.yml").write_text(PLAYBOOK)
        (w / "ansible.cfg").write_text("[defaults]\n")  # none of the machine's settings
        (w / "inventory.ini").write_text(
            "[fleet]\n" + "".join(f"{h} rescue_prefix={self.prefix(h)}\n" for h in HOSTS)
            + f"[fleet:vars]\nansible_connection=local\nansible_python_interpreter="
            f"{STOCK_PYTHON}\n"
            # The controller's own tasks, with a python uid 65534 can run (the venv's may
            # live under /root).
            f"[controller]\nlocalhost ansible_connection=local ansible_python_interpreter="
            f"{STOCK_PYTHON}\n")
        shutil.copy2(pyz, w / "rescue.pyz")
        chown_tree(w, user.uid)
        self.v1, self.v2 = (w / f"fleet-stable-{s}.rescue.tar.zst" for s in (1, 2))

    def prefix(self, host: str) -> Path:
        return self.user.work / "hosts" / host / "P"

    def play(self, bundle: Path, *flags: str, **extra: Any) -> Tuple[int, str]:
        w = self.user.work
        extra = {"rescue_pyz": str(w / "rescue.pyz"), "rescue_bundle": str(bundle),
                 "rescue_controller_python": STOCK_PYTHON,
                 "fleet_project": str(w / "app"), **extra}
        env = self.user.env(
            ANSIBLE_COLLECTIONS_PATH=str(self.collections), ANSIBLE_LOCAL_TEMP=str(w / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(w / "tmp"), ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1",
            ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_CONFIG=str(w / "ansible.cfg"),
            PYTHONWARNINGS="ignore", PYTHONDONTWRITEBYTECODE="1")
        done = self.user.run([str(BIN / "ansible-playbook"), "-i", str(w / "inventory.ini"),
                              str(w / "site.yml"), "-e", json.dumps(extra), *flags],
                             offline=True, env=env, cwd=w)
        return done.returncode, done.stdout + done.stderr

    def current(self, host: str) -> Any:
        versions = self.prefix(host) / "versions"
        if not versions.exists():
            return None
        done = self.user.run([STOCK_PYTHON, "-I", str(self.user.work / "rescue.pyz"), "list",
                              "--prefix", str(self.prefix(host)), "--json"], offline=True)
        return next(t["id"] for t in json.loads(done.stdout)["toolchains"] if t["current"])

    def tree(self) -> List[Tuple[str, int, int]]:
        """Every path under the hosts' dirs with its size and mtime: what check mode must keep."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.user.work / "hosts"):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                out.append((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
        return sorted(out)


def facts(output: str) -> Dict[str, Any]:
    """host -> the facts the module exported, from `-v` output of the install task (in every
    batch)."""
    out, header = {}, "TASK [rescue.fleet.rollout : Install the bundle with rescue.pyz]"
    for task in output.split(header)[1:]:
        task = task.split("\nTASK [")[0]
        found = re.finditer(r"^(?:ok|changed): \[(\S+)\] => (\{.*\})$", task, re.M)
        out.update({m[1]: json.loads(m[2])["ansible_facts"] for m in found})
    return out


def recap(output: str) -> Dict[str, Tuple[int, int, int]]:
    """PLAY RECAP: host -> (ok, changed, failed)."""
    return {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in RECAP.finditer(output)}


def test_fleet_rollout_is_idempotent_checks_and_diffs_and_a_failing_guard_rolls_back_its_host(
        user: User, pyz: Path, collections: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture) -> None:
    fleet = Fleet(user, pyz, collections, signing)
    v1, v2 = _inspected(fleet.v1, signing, capsys), _inspected(fleet.v2, signing, capsys)
    bundle_line = "bundle: fleet stable #{} {}"

    # The rollout, then the same again: the second run changes nothing on any host.
    code, out = fleet.play(fleet.v1, "--diff")
    assert code == 0, out
    assert all(recap(out)[h][1] > 0 for h in HOSTS), out
    assert ("-current: none\n-bundle: none\n+current: go1.21.13.linux-amd64\n+"
            + bundle_line.format(1, v1["manifest_sha256"])) in out
    code, out = fleet.play(fleet.v1, "-v")
    assert code == 0, out
    assert {h: recap(out)[h][1] for h in HOSTS} == dict.fromkeys(HOSTS, 0), out
    p = fleet.prefix("h3")
    assert facts(out)["h3"] == {
        "rescue_prefix": str(p), "rescue_current": OLD,
        "rescue_goroot": str(p / "versions" / OLD), "rescue_goproxy": f"file://{p}/goproxy",
        "rescue_bundle_id": {"name": "fleet", "channel": "stable", "sequence": 1,
                             "manifest_sha256": v1["manifest_sha256"]},
        "rescue_signer": v1["signer"]}

    # Check mode with the next bundle: the diff says what would move, the hosts stay as they
    # are. Shown once, as root: it writes nothing, and a run costs ~8 CPU-seconds.
    if user.uid == 0:
        before = fleet.tree()
        code, out = fleet.play(fleet.v2, "--check", "--diff")
        assert code == 0, out
        assert all(recap(out)[h][1] > 0 for h in HOSTS), out
        assert ("-current: go1.21.13.linux-amd64\n-"
                + bundle_line.format(1, v1["manifest_sha256"])
                + "\n+current: go1.22.0.linux-amd64\n+"
                + bundle_line.format(2, v2["manifest_sha256"])) in out
        assert fleet.tree() == before, "check mode changed a host"
        # A bundle that is not the one published: the rollout stops on the controller, before
        # any host gets a byte of it.
        code, out = fleet.play(fleet.v2, rescue_bundle_sha256="0" * 64)
        assert code == 2, out
        sha = hashlib.sha256(fleet.v2.read_bytes()).hexdigest()
        assert (f"checking {fleet.v2}: sha256 mismatch: published {'0' * 64}, this copy "
                f"{sha}; fetch the bundle again") in out
        assert fleet.tree() == before, "a host got a bundle that is not the published one"

    # Batches of 1, 2 and 1, at most 40% of a batch may fail: h1 moves on; h2's guard fails
    # and h2 is rolled back while h3 moves on, but 1 of 2 is over 40%: h4 is never touched.
    code, out = fleet.play(fleet.v2, "-v", fleet_serial=[1, 2, 1], fleet_failing=["h2"])
    assert code == 2, out
    assert {h: fleet.current(h) for h in HOSTS} == {"h1": NEW, "h2": OLD, "h3": NEW, "h4": OLD}
    assert "h4" not in recap(out) and not (fleet.prefix("h4").parent / "P-media" /
                                           fleet.v2.name).exists()
    assert {h: recap(out)[h][2] for h in ("h1", "h2")} == {"h1": 0, "h2": 1}
    fatal = next(line for line in out.splitlines() if line.startswith("fatal: [h2]"))
    assert '"rolled_back": true' in fatal
    assert ("guarded install of go1.22.0.linux-amd64: guard command `echo guard says no on h2; "
            "exit 3` in " in fatal)
    assert "go1.21.13.linux-amd64 is current again" in fatal
    # The failed host's facts say what is current after the rollback.
    after = out.split("TASK [rescue.fleet.rollout : Record what is current after the failure]")[1]
    recorded = json.loads(re.search(r"^ok: \[h2\] => (\{.*\})$", after, re.M)[1])
    assert recorded["ansible_facts"]["rescue_current"] == OLD
    assert recorded["ansible_facts"]["rescue_rolled_back"] is True
    assert facts(out)["h1"]["rescue_current"] == NEW


# --- the module alone, as Ansible runs it (its arguments in a JSON file), in milliseconds ----

def _module(args: Dict[str, Any], tmp_path: Path, check: bool = False) -> Dict[str, Any]:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    done = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def module_args(tmp_path: Path, signing: bundles.Signing,
                capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    _need(BIN / "ansible-playbook")  # the module imports ansible.module_utils
    c = craft.Craft(name="fleet")
    c.toolchain()
    bundle = c.write(tmp_path / "fleet-stable-1.rescue.tar.zst", signing.key)
    pyz = tmp_path / "rescue.pyz"
    pyz.write_text("print('this is not rescue')\n")
    return {"pyz": str(pyz), "bundle": str(bundle), "prefix": str(tmp_path / "P"),
            "bundle_info": _inspected(bundle, signing, capsys), "python": STOCK_PYTHON}


def test_module_refuses_a_copy_whose_sha256_is_not_the_controllers(
        module_args: Dict[str, Any], tmp_path: Path) -> None:
    bundle = module_args["bundle"]
    doc = _module({**module_args, "bundle_sha256": "ab" * 32}, tmp_path)
    got = hashlib.sha256(Path(bundle).read_bytes()).hexdigest()
    assert doc["failed"] and doc["msg"] == (
        f"checking {bundle}: sha256 mismatch: the controller's copy is {'ab' * 32}, this one "
        f"is {got}; copy it again")


def test_module_never_reads_a_bundle_through_a_link(
        module_args: Dict[str, Any], tmp_path: Path) -> None:
    link = tmp_path / "link.tar.zst"
    link.symlink_to(module_args["bundle"])
    doc = _module({**module_args, "bundle": str(link)}, tmp_path)
    assert doc["failed"] and doc["msg"] == (
        f"checking {link}: Too many levels of symbolic links; copy it again (a regular file, "
        "not a link)")


def test_module_says_what_is_missing_and_what_it_cannot_know_in_check_mode(
        module_args: Dict[str, Any], tmp_path: Path) -> None:
    gone = str(tmp_path / "gone.pyz")
    doc = _module({**module_args, "pyz": gone}, tmp_path)
    assert doc["failed"]
    assert doc["msg"] == f"installing from {gone}: not on this host; copy it first"
    (tmp_path / "P" / "versions").mkdir(parents=True)
    doc = _module({**module_args, "pyz": gone}, tmp_path, check=True)
    assert doc["changed"] and not doc.get("failed")
    assert doc["msg"] == (f"check mode: {gone} is not on this host yet, so what {tmp_path / 'P'} "
                          "holds cannot be asked; the real run copies it and decides")


def test_module_refuses_a_pyz_that_does_not_answer_in_json(
        module_args: Dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "P" / "versions").mkdir(parents=True)
    doc = _module(module_args, tmp_path)
    assert doc["failed"] and doc["msg"].startswith(
        f"running rescue.pyz list: its output is not one JSON document (exit 0); is "
        f"{module_args['pyz']} a rescue.pyz this {STOCK_PYTHON} can run? stderr: ")


def test_module_refuses_bundle_info_that_is_not_an_inspection_and_a_bundle_for_another_host(
        module_args: Dict[str, Any], tmp_path: Path) -> None:
    info = module_args["bundle_info"]
    doc = _module({**module_args, "bundle_info": {**info, "manifest_sha256": "../x"}}, tmp_path)
    assert doc["msg"] == ("reading bundle_info: manifest_sha256 is not sha256 hex; pass the "
                          "controller's `rescue.pyz inspect BUNDLE --json` document")
    doc = _module({**module_args, "bundle_info": {**info, "current_by_target": {
        "linux-amd64": "go9.9.9.linux-amd64"}}}, tmp_path)
    assert doc["msg"] == ("reading bundle_info: current_by_target is not {target: id of one of "
                          "its toolchains}; pass the controller's `rescue.pyz inspect BUNDLE "
                          "--json` document")
    arm = [{**info["toolchains"][0], "arch": "arm64", "id": "go1.21.13.linux-arm64"}]
    doc = _module({**module_args, "bundle_info": {
        **info, "toolchains": arm, "current_by_target": {"linux-arm64": arm[0]["id"]}}},
        tmp_path)
    assert doc["msg"] == ("choosing a toolchain of fleet #1 for linux-amd64: the bundle has "
                          "go1.21.13.linux-arm64")
    doc = _module({**module_args, "use": "1.22.0"}, tmp_path)
    assert doc["msg"] == ("choosing a toolchain of fleet #1 for linux-amd64: the bundle has "
                          "go1.21.13.linux-amd64; no 1.22.0 among them")
    doc = _module({**module_args, "prefix": "relative/P"}, tmp_path)
    assert doc["msg"] == "installing into relative/P: the prefix must be an absolute path"


def test_list_json_names_every_recorded_bundle_and_the_current_wiring(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft(name="fleet")
    c.toolchain()
    bundle = c.write(tmp_path / "b.tar.zst", signing.key)
    prefix = tmp_path / "P"
    assert cli.main(["install", str(bundle), "--prefix", str(prefix), "--trust",
                     str(signing.signers)]) == 0
    sha = _inspected(bundle, signing, capsys)["manifest_sha256"]
    capsys.readouterr()
    assert cli.main(["list", "--prefix", str(prefix), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(b["name"], b["channel"], b["sequence"], b["manifest_sha256"], b["toolchains"])
            for b in doc["bundles"]] == [("fleet", "stable", 1, sha, [OLD])]
    assert doc["goroot"] == str(prefix / "versions" / OLD)
    assert doc["goproxy"] == f"file://{prefix}/goproxy"


def test_module_is_stdlib_only_and_parses_as_python_3_6() -> None:
    """It runs on the managed host's Python, 3.6+ in the field, with nothing installed."""
    import ast

    tree = ast.parse(MODULE.read_text(), feature_version=(3, 6))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - {"ansible"} <= set(sys.stdlib_module_names)


def test_module_switches_with_use_when_the_bundle_is_recorded_and_a_failing_guard_switches_back(
        user: User, pyz: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    _need(BIN / "ansible-playbook")
    w = user.work
    made = []
    for seq, version in ((1, "go1.21.13"), (2, "go1.22.0")):
        c = craft.Craft(name="fleet", sequence=seq)
        c.toolchain(version=version, builds=True)
        made.append(c.write(w / f"fleet-stable-{seq}.rescue.tar.zst", signing.key))
    (w / "app").mkdir()
    (w / "app" / "go.mod").write_text("module example.com/app\n")
    shutil.copy2(pyz, w / "rescue.pyz")
    chown_tree(w, user.uid)
    rescue, prefix = [STOCK_PYTHON, "-I", str(w / "rescue.pyz")], str(w / "P")
    for argv in (["install", str(made[0])], ["install", str(made[1])], ["use", "1.21.13"]):
        done = user.run([*rescue, *argv, "--prefix", prefix], offline=True)
        assert done.returncode == 0, done.stderr
    args = {"pyz": str(w / "rescue.pyz"), "bundle": str(made[1]), "prefix": prefix,
            "bundle_info": _inspected(made[1], signing, capsys), "python": STOCK_PYTHON,
            "guard_projects": [str(w / "app")]}
    (w / "args").mkdir()
    chown_tree(w / "args", user.uid)
    # The host's python runs the module with ansible's module_utils, as Ansible ships them.
    env = user.env(PYTHONPATH=str(Path(ansible_site_packages())))

    def module(**extra: Any) -> Dict[str, Any]:
        path = w / "args" / "args.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, **extra}}))
        done = user.run([STOCK_PYTHON, str(MODULE), str(path)], offline=True, env=env)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    doc = module(guard_commands=["echo guard says no; exit 3"])
    assert (doc["failed"], doc["action"], doc["exit_code"], doc["rolled_back"],
            doc["current"]) == (True, "use", 4, True, OLD)
    assert "guard says no" in doc["msg"] and f"{OLD} is current again" in doc["msg"]
    doc = module(guard_commands=["go version"])
    assert (doc["changed"], doc["action"], doc["current"], doc["previous"]) == (
        True, "use", NEW, OLD)
    assert doc["diff"]["after"].startswith(f"current: {NEW}\nbundle: fleet stable #2 ")
    assert doc["ansible_facts"]["rescue_current"] == NEW
    doc = module()
    assert (doc["changed"], doc["action"], doc["current"]) == (False, "none", NEW)


def ansible_site_packages() -> str:
    """The directory that holds ansible-core's package (the venv's site-packages)."""
    import ansible

    return str(Path(ansible.__file__).parents[1])
