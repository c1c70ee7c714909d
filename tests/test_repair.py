"""`repair` and `install` of a version already there: exactly the damaged paths come back, from
the bundle they came from (checked first) or from local copies, the live tree is swapped in one
step, and `verify` passes afterwards. A bundle that cannot help is named, never guessed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from tests.support import bundles, damaged, tamper, users
from tests.support.damaged import MOD_PATH, MOD_SOURCE, MOD_VERSION, TC, edit, rescue

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bundle(tmp_path: Path, signing: bundles.Signing) -> Path:
    return damaged.toolchain_bundle(tmp_path / "dc.tar.zst", signing.key)


@pytest.fixture
def goroot(prefix: Path, tmp_path: Path, bundle: Path, signing: bundles.Signing,
           capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                          signing.signers, "--modcache-dir", tmp_path / "modcache")
    assert code == 0, err
    return prefix / "versions" / TC


def cli(capsys: pytest.CaptureFixture[str], prefix: Path, signing: bundles.Signing,
        command: str, *args: Any) -> Tuple[int, Dict[str, Any], str]:
    return rescue(capsys, command, *args, "--prefix", prefix, "--trust", signing.signers,
                  "--json")


def damage(goroot: Path) -> None:
    """The issue's reproduction (a deleted tool, an edited source file) plus a planted tool."""
    edit(goroot / "pkg/tool/linux_amd64/vet")
    edit(goroot / "src/fmt/print.go", b"package fmt\n\nfunc Println() { evil() }\n")
    tools = goroot / "pkg/tool/linux_amd64"
    tools.chmod(0o755)
    (tools / "cover").write_bytes(b"#!/bin/sh\necho planted\n")
    (tools / "cover").chmod(0o755)
    tools.chmod(0o555)


def restored(doc: Dict[str, Any]) -> Dict[str, str]:
    return {r["path"]: r["from"] for r in doc["repair"]["restored"]}


def test_repair_restores_exactly_the_damaged_files_from_the_bundle_and_keeps_the_rest(
        goroot: Path, prefix: Path, bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    intact = os.stat(goroot / "VERSION").st_ino
    damage(goroot)
    code, doc, err = cli(capsys, prefix, signing, "repair", bundle)
    assert code == 0, err
    r = doc["repair"]
    assert restored(doc) == {f"versions/{TC}/pkg/tool/linux_amd64/vet": str(bundle),
                             f"versions/{TC}/src/fmt/print.go": str(bundle)}
    assert r["removed"] == [f"versions/{TC}/pkg/tool/linux_amd64/cover"]
    assert r["found"] == {"changed": 1, "missing": 1, "added": 1}
    assert r["rebuilt"] == [TC] and r["verified_after"] and r["bundle"]["name"] == "dc"
    # Built beside and swapped: intact files are the same inodes, nothing is left over.
    assert os.stat(goroot / "VERSION").st_ino == intact
    assert (goroot / "src/fmt/print.go").read_bytes() == b"package fmt\n\nfunc Println() {}\n"
    assert oct((goroot / "pkg/tool/linux_amd64/vet").stat().st_mode & 0o777) == "0o555"
    assert oct(goroot.stat().st_mode & 0o777) == "0o555"
    assert sorted(p.name for p in goroot.parent.iterdir()) == [TC]
    assert cli(capsys, prefix, signing, "verify", "--all")[0] == 0


def test_repair_without_the_bundle_fixes_what_local_copies_can_and_names_the_bundle(
        goroot: Path, prefix: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    damage(goroot)
    cache = tmp_path / "modcache"
    source = cache / f"{MOD_PATH}@{MOD_VERSION}" / "m.go"
    edit(source, MOD_SOURCE + b"func Backdoor() {}\n")
    code, doc, err = cli(capsys, prefix, signing, "repair", "--modcache", cache)
    assert code == 2, err
    msg = doc["error"]["message"]
    sha = doc["repair"]["needs_bundle"][0]["manifest_sha256"]
    assert msg == (
        f"repairing {prefix}: 2 path(s) repaired from local copies (removed what no bundle "
        f"installed: versions/{TC}/pkg/tool/linux_amd64/cover); still missing or changed, and "
        f"only the bundle it came from restores it: dc #1 (manifest sha256 {sha}) for "
        f"versions/{TC}/pkg/tool/linux_amd64/vet, versions/{TC}/src/fmt/print.go. Bring that "
        "bundle file and run `repair BUNDLE`"), msg
    assert source.read_bytes() == MOD_SOURCE  # from P/goproxy
    assert doc["repair"]["modules"] == [f"{MOD_PATH}@{MOD_VERSION}"]
    # The planted tool is gone at once; the rest of the GOROOT waits for the bundle.
    assert not (goroot / "pkg/tool/linux_amd64/cover").exists()
    assert oct((goroot / "pkg/tool/linux_amd64").stat().st_mode & 0o777) == "0o555"
    assert doc["repair"]["removed"] == [f"versions/{TC}/pkg/tool/linux_amd64/cover"]
    assert doc["repair"]["rebuilt"] == []
    code, doc, _ = cli(capsys, prefix, signing, "verify", "--modcache", cache)
    assert code == 3 and {p["path"] for p in doc["verify"]["changed"]} == {
        f"versions/{TC}/src/fmt/print.go"} and not doc["verify"]["added"]


def test_repair_without_a_bundle_removes_a_planted_executable_even_when_a_file_is_missing(
        goroot: Path, prefix: Path, bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    edit(goroot / "src/fmt/print.go")  # missing: only the bundle has it
    tools = goroot / "pkg/tool/linux_amd64"
    edit(tools / "cover", b"#!/bin/sh\necho planted\n")
    (tools / "cover").chmod(0o555)
    code, doc, _ = cli(capsys, prefix, signing, "repair")
    assert code == 2 and doc["error"]["type"] == "not-ready"
    assert not (tools / "cover").exists() and oct(tools.stat().st_mode & 0o777) == "0o555"
    msg = doc["error"]["message"]
    assert (f"1 path(s) repaired from local copies (removed what no bundle installed: "
            f"versions/{TC}/pkg/tool/linux_amd64/cover); still missing or changed, and only "
            f"the bundle it came from restores it: dc #1 (manifest sha256 ") in msg, msg
    assert msg.endswith(f") for versions/{TC}/src/fmt/print.go. Bring that bundle file and "
                        "run `repair BUNDLE`"), msg
    assert doc["repair"]["needs_bundle"][0]["paths"] == [f"versions/{TC}/src/fmt/print.go"]
    code, doc, _ = cli(capsys, prefix, signing, "verify")
    assert code == 3 and not doc["verify"]["added"] and [m["path"] for m in
                                                         doc["verify"]["missing"]] == [
        f"versions/{TC}/src/fmt/print.go"]
    code, doc, err = cli(capsys, prefix, signing, "repair", bundle)
    assert code == 0 and restored(doc) == {f"versions/{TC}/src/fmt/print.go": str(bundle)}, err


def test_mode_symlink_and_hard_link_damage_needs_no_bundle(
        goroot: Path, prefix: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    (goroot / "VERSION").chmod(0o666)
    link = goroot / "src/fmt/latest"
    (goroot / "src/fmt").chmod(0o755)
    link.unlink()
    link.symlink_to("/etc/passwd")
    (goroot / "src/fmt").chmod(0o555)
    code, doc, err = cli(capsys, prefix, signing, "repair")
    assert code == 0, err
    assert restored(doc) == {f"versions/{TC}/VERSION": "the live tree (mode only)",
                             f"versions/{TC}/src/fmt/latest": "the signed manifest"}
    assert os.readlink(link) == "print.go"
    assert oct((goroot / "VERSION").stat().st_mode & 0o777) == "0o444"


def test_a_deleted_hard_link_comes_back_sharing_its_targets_content(
        goroot: Path, prefix: Path, bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    edit(goroot / "bin/gofmt")
    code, doc, err = cli(capsys, prefix, signing, "repair", bundle)
    assert code == 0, err
    assert (goroot / "bin/gofmt").read_bytes() == b"\x7fELF vet\n"


def test_module_proxy_file_comes_from_the_bundle_and_its_list_from_the_manifests(
        goroot: Path, prefix: Path, bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    at = prefix / "goproxy" / MOD_PATH / "@v"
    edit(at / f"{MOD_VERSION}.zip", b"PK not the module")
    edit(at / "list", "")
    code, doc, _ = cli(capsys, prefix, signing, "repair")
    assert code == 2 and f"for goproxy/{MOD_PATH}/@v/{MOD_VERSION}.zip" in doc["error"]["message"]
    assert (at / "list").read_text() == f"{MOD_VERSION}\n"
    code, doc, err = cli(capsys, prefix, signing, "repair", bundle)
    assert code == 0, err
    assert restored(doc) == {f"goproxy/{MOD_PATH}/@v/{MOD_VERSION}.zip": str(bundle)}
    assert oct((at / f"{MOD_VERSION}.zip").stat().st_mode & 0o777) == "0o444"


def test_tampered_bundle_is_refused_and_the_damaged_tree_is_left_untouched(
        goroot: Path, prefix: Path, bundle: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    damage(goroot)
    def flip_last_file(info: Any, data: Any) -> Any:
        # The module zip streams after the GOROOT's files: wanted files were already written.
        if info.name.endswith(".zip"):
            data = tamper.flip_byte(data)
        return [(info, data)]

    bad = tamper.rewrite(bundle, tmp_path / "bad.tar.zst", flip_last_file)
    code, doc, _ = cli(capsys, prefix, signing, "repair", bad)
    assert code == 3 and doc["error"]["type"] == "untrusted"
    assert (goroot / "pkg/tool/linux_amd64/cover").exists()  # still as it was
    assert sorted(p.name for p in goroot.parent.iterdir()) == [TC]


def test_bundle_without_that_toolchain_is_refused_naming_the_one_needed(
        goroot: Path, prefix: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    damage(goroot)
    other = damaged.toolchain_bundle(tmp_path / "other.tar.zst", signing.key,
                                     version="go1.21.12", sequence=2)
    code, doc, _ = cli(capsys, prefix, signing, "repair", other)
    assert code == 2
    assert (f"repairing versions/{TC}: bundle {other} (dc #2 (manifest sha256 "
            in doc["error"]["message"])
    assert f"does not carry {TC}; it came from bundle dc #1" in doc["error"]["message"]


def test_clean_prefix_has_nothing_to_repair(goroot: Path, prefix: Path,
                                            signing: bundles.Signing,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = rescue(capsys, "repair", "--prefix", prefix, "--trust", signing.signers)
    assert code[0] == 0
    assert "ok: nothing to repair in" in code[1]["text"]


@pytest.mark.parametrize("point", ["repair-built", "repair-swapped"])
def test_killed_repair_is_finished_by_the_next_command(
        point: str, goroot: Path, prefix: Path, bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    damage(goroot)
    killed = subprocess.run(
        [sys.executable, "-m", "installer.cli", "repair", str(bundle), "--prefix", str(prefix),
         "--trust", str(signing.signers)], cwd=ROOT, capture_output=True,
        env={**os.environ, "RESCUE_CRASH_AT": point})
    assert killed.returncode == -9
    assert (goroot / "VERSION").exists()  # a live tree at every moment
    code, doc, err = cli(capsys, prefix, signing, "repair", bundle)
    assert code == 0, err
    assert sorted(p.name for p in goroot.parent.iterdir()) == [TC]
    assert any("repair" in n for n in doc["repair"]["notes"]), doc["repair"]["notes"]


def test_install_of_a_version_already_there_verifies_it_and_repairs_it_from_that_bundle(
        goroot: Path, prefix: Path, bundle: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, out, err = rescue(capsys, "install", bundle, "--prefix", prefix, "--trust",
                            signing.signers)
    assert code == 0, err
    assert f"verified  {TC} (already installed; every file as signed)" in out["text"]
    damage(goroot)
    code, doc, err = cli(capsys, prefix, signing, "install", bundle)
    assert code == 0, err
    [fix] = doc["repaired"]
    assert (fix["toolchain"], fix["changed"], fix["missing"], fix["added"]) == (TC, 1, 1, 1)
    assert any("was already installed but damaged" in n for n in doc["notes"])
    assert cli(capsys, prefix, signing, "verify")[0] == 0
    assert sorted(p.name for p in goroot.parent.iterdir()) == [TC]


# --- end to end: the real Go 1.21.13, `python3 -I rescue.pyz`, offline, root and uid 65534 -----

def test_real_goroot_with_deleted_vet_and_edited_print_go_is_repaired_and_go_vet_works_again(
        user: users.User, rescue: List[str], toolchain_bundle: Path) -> None:
    bundle = user.give(toolchain_bundle)
    prefix = user.home / "go-emergency"
    assert user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)],
                    offline=True).returncode == 0
    goroot = prefix / "versions" / TC
    project = user.work / "app"
    project.mkdir()
    (project / "go.mod").write_text("module app\n\ngo 1.21\n")
    (project / "main.go").write_text('package main\n\nimport "fmt"\n\n'
                                     'func main() { fmt.Println("ok") }\n')
    users.chown_tree(project, user.uid)
    go = [str(prefix / "current" / "bin" / "go")]

    def break_it() -> None:  # the reproduction, done as the user
        script = (f"chmod u+w {goroot}/pkg/tool/linux_amd64 {goroot}/src/fmt/print.go && "
                  f"rm {goroot}/pkg/tool/linux_amd64/vet && "
                  f"echo 'func Broken() {{' >> {goroot}/src/fmt/print.go && "
                  f"chmod u-w {goroot}/pkg/tool/linux_amd64 {goroot}/src/fmt/print.go")
        assert user.run(["sh", "-c", script]).returncode == 0
        vet = user.run([*go, "vet", "./..."], cwd=project, offline=True)
        assert vet.returncode != 0 and 'no such tool "vet"' in vet.stderr, vet.stderr

    break_it()
    again = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)], offline=True)
    assert again.returncode == 0, again.stderr
    assert f"repaired  {TC} (already installed but damaged: 1 changed, 1 missing" in again.stdout
    for cmd in (["vet", "./..."], ["build", "./..."]):
        done = user.run([*go, *cmd], cwd=project, offline=True)
        assert done.returncode == 0, done.stderr

    break_it()
    alone = user.run([*rescue, "repair", "--prefix", str(prefix)], offline=True)
    assert alone.returncode == 2 and "rescue-test #1 (manifest sha256 " in alone.stderr
    fixed = user.run([*rescue, "repair", str(bundle), "--prefix", str(prefix), "--json"],
                     offline=True)
    assert fixed.returncode == 0, fixed.stderr
    doc = json.loads(fixed.stdout)["repair"]
    assert sorted(restored({"repair": doc})) == [f"versions/{TC}/pkg/tool/linux_amd64/vet",
                                                 f"versions/{TC}/src/fmt/print.go"]
    for cmd in (["vet", "./..."], ["build", "./..."]):
        done = user.run([*go, *cmd], cwd=project, offline=True)
        assert done.returncode == 0, done.stderr
    assert user.run([*rescue, "verify", "--prefix", str(prefix)], offline=True).returncode == 0


def test_real_goroot_repair_without_a_bundle_removes_a_planted_tool_and_names_the_missing_file(
        user: users.User, rescue: List[str], toolchain_bundle: Path) -> None:
    bundle = user.give(toolchain_bundle)
    prefix = user.home / "go-emergency"
    assert user.run([*rescue, "install", str(bundle), "--prefix", str(prefix)],
                    offline=True).returncode == 0
    goroot = prefix / "versions" / TC
    tools = goroot / "pkg/tool/linux_amd64"
    script = (f"chmod u+w {goroot}/src/fmt {tools} && rm {goroot}/src/fmt/print.go && "
              f"printf '#!/bin/sh\\necho planted\\n' > {tools}/asm-helper && "
              f"chmod 555 {tools}/asm-helper && chmod u-w {goroot}/src/fmt {tools}")
    assert user.run(["sh", "-c", script]).returncode == 0
    alone = user.run([*rescue, "repair", "--prefix", str(prefix)], offline=True)
    assert alone.returncode == 2, alone.stderr
    assert f"removed  versions/{TC}/pkg/tool/linux_amd64/asm-helper" in alone.stdout
    assert not (tools / "asm-helper").exists()
    assert ("still missing or changed, and only the bundle it came from restores it: "
            "rescue-test #1 (manifest sha256 ") in alone.stderr
    assert (f"for versions/{TC}/src/fmt/print.go. Bring that bundle file and run `repair "
            "BUNDLE`") in alone.stderr
    fixed = user.run([*rescue, "repair", str(bundle), "--prefix", str(prefix)], offline=True)
    assert fixed.returncode == 0, fixed.stderr
    assert user.run([*rescue, "verify", "--prefix", str(prefix)], offline=True).returncode == 0
