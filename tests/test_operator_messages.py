"""What an operator reads when a command cannot do what was asked: the checklist's causes and
fixes on every switch, trust settings told apart from tampering, the way out an offline
machine has, the command they meant, and which key signed what is installed."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from bundler import cli as bundler_cli
from installer import cli
from keys import sshkey
from tests.support import bundles, clirun, craft
from tests.support.users import STOCK_PYTHON


def run(argv: List[Any], capsys: pytest.CaptureFixture[str],
        main: Any = cli.main) -> Tuple[int, str, str]:
    return clirun.run(argv, capsys, main)

def crafted(dest: Path, key: Path, version: str = "go1.21.13", sequence: int = 1) -> Path:
    c = craft.Craft(sequence=sequence)
    c.toolchain(version=version)
    return c.write(dest, key)


def install(capsys: pytest.CaptureFixture[str], bundle: Path, prefix: Path,
            signers: Path) -> None:
    code, _, err = run(["install", bundle, "--prefix", prefix, "--trust", signers], capsys)
    assert code == 0, err


@pytest.fixture
def two(tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture[str]) -> Path:
    """A prefix with go1.21.12 (bundle #1), then go1.21.13 (bundle #2, current)."""
    prefix = tmp_path / "P"
    for seq, version in ((1, "go1.21.12"), (2, "go1.21.13")):
        install(capsys, crafted(tmp_path / f"{seq}.tar.zst", signing.key, version, seq), prefix,
                signing.signers)
    return prefix


# --- (a) use and rollback show the checklist as install does ---------------------------------

def test_use_with_a_failing_checklist_shows_each_check_with_its_cause_and_fix(
        two: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPROXY", "https://proxy.example.com")
    code, out, err = run(["use", "1.21.12", "--prefix", two], capsys)
    print(out, err)  # as the operator sees it
    assert code == 4
    assert "checklist (go1.21.12.linux-amd64):\n" in out
    assert "  ok   go version" in out
    assert "  FAIL go env GOPROXY      https://proxy.example.com\n" in out
    assert f"expected: file://{two}/goproxy" in out
    assert ("go would fetch modules over the network (https://proxy.example.com) instead of "
            "from the bundles' proxy") in out
    assert "exported in the environment (GOPROXY=https://proxy.example.com)\n" in out
    assert "fix: unset GOPROXY  (and remove the export from your shell profile)\n" in out
    assert (f"or, for one shell: . {two}/env.sh  (exports GOPROXY=file://{two}/goproxy)"
            in out)
    assert ("switching to go1.21.12.linux-amd64: the emergency checklist failed (go env "
            "GOPROXY); go1.21.13.linux-amd64 stays current") in err
    # The same table for rollback; --json keeps stdout one document.
    code, out, _ = run(["rollback", "--prefix", two], capsys)
    assert code == 4 and "checklist (go1.21.12.linux-amd64):\n" in out
    assert "  FAIL go env GOPROXY      https://proxy.example.com\n" in out
    code, out, _ = run(["use", "1.21.12", "--prefix", two, "--json"], capsys)
    doc = json.loads(out)
    assert code == 4 and doc["error"]["type"] == "checklist-failed"
    assert [c["name"] for c in doc["checks"] if not c["ok"]] == ["go env GOPROXY"]


# --- (b) a trust store that lacks the installing key is not tampering ------------------------

def test_verify_and_repair_under_another_trust_store_say_not_trusted_without_tampering(
        two: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = bundles.make_signing(tmp_path / "other", "other")
    for command in ("verify", "repair"):
        code, out, err = run([command, "--prefix", two, "--trust", other.signers], capsys)
        print(err)
        assert code == 3, err
        assert "SECURITY ERROR" not in err and "tampered" not in err
        assert ("verifying bundle hostile #1 (manifest sha256 " in err
                and f"signed by key {signing.key_id}, the key that signed it when it was "
                    f"installed, which is not in the trust store {other.signers} (it trusts "
                    f"{other.key_id} (other@rescue, other)); the trust store in use is not "
                    "the one it was installed with") in err
        assert ("pass --trust FILE with the store it was installed with, or use the rescue.pyz "
                "that installed it; if nobody changed the trust store, install the bundle "
                "again from the build host's copy") in err
    code, out, _ = run(["verify", "--prefix", two, "--trust", other.signers, "--json"], capsys)
    doc = json.loads(out)
    assert (code, doc["error"]["type"], doc["error"]["security_error"]) == (3, "untrusted", False)


def test_kept_manifest_re_signed_by_a_stranger_is_still_called_tampering(
        two: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The contrast: a kept signature by a key the install never recorded was put there."""
    sshkey.generate_keypair(tmp_path / "mallory", comment="mallory")
    from tests.support import tamper

    for kept in (two / "state" / "bundles").glob("*.json"):
        sig = kept.with_suffix(".sig")
        sig.chmod(0o644)
        sig.write_bytes(tamper.resign(kept.read_bytes(), tmp_path / "mallory"))
    code, _, err = run(["verify", "--prefix", two, "--trust", signing.signers], capsys)
    assert code == 3
    assert "fails the signature check" in err and "SECURITY ERROR" in err


# --- (c) one wording for every trust store, and an offline way out ---------------------------

def test_unknown_signer_names_the_built_in_store_once_and_an_offline_way_out(
        tmp_path: Path, pyz: Path, signing: bundles.Signing) -> None:
    stranger = bundles.make_signing(tmp_path / "stranger", "stranger")
    bundle = crafted(tmp_path / "b.tar.zst", stranger.key)
    done = subprocess.run([STOCK_PYTHON, "-I", str(pyz), "install", str(bundle), "--prefix",
                           str(tmp_path / "P")], capture_output=True, text=True)
    print(done.stderr)
    assert done.returncode == 3
    assert (f"signed by key {stranger.key_id}, which is not in the trust store built into "
            f"rescue.pyz (it trusts {signing.key_id} (release@rescue, release)); ") in done.stderr
    assert "the trust store the trust store" not in done.stderr
    assert "rescue keys trust" not in done.stderr  # the pyz has no `keys` command
    assert ("ask the bundle's builder for their public key and pass an allowed_signers file "
            "that lists it with --trust FILE, or use a rescue.pyz built with it (`rescue "
            "zipapp --trust FILE` on the connected host)") in done.stderr


def test_trust_store_wording_reads_once_for_a_file_and_for_a_label() -> None:
    from keys import allowed_signers
    from manifests.errors import NotReadyError

    assert allowed_signers.store_name("/etc/rescue/allowed_signers") == \
        "the trust store /etc/rescue/allowed_signers"
    adopted = ("the trust policy version 2 adopted on 2026-01-01 from bundle b #3 "
               "(/P/state/trust/allowed_signers)")
    for source, where in (("/etc/rescue/allowed_signers",
                           "trust store /etc/rescue/allowed_signers:2"),
                          ("the trust store built into rescue.pyz",
                           "the trust store built into rescue.pyz, line 2"),
                          (adopted, f"{adopted}, line 2")):
        assert allowed_signers.store_name(source).count("trust store") <= 1
        with pytest.raises(NotReadyError) as e:
            allowed_signers.parse("# team\n# rescue-threshold many\n", source)
        assert e.value.message == (f"reading {where}: '# rescue-threshold many': write "
                                   "`# rescue-threshold K` or `# rescue-threshold CHANNEL K` "
                                   "with K from 1 to 16")
        assert e.value.operation == "reading trust store"


def test_mistyped_command_in_the_pyz_suggests_the_nearest_one(pyz: Path) -> None:
    """The pyz's click (8.1) suggests for options only: the nearest command comes from rescue."""
    typo = subprocess.run([STOCK_PYTHON, "-I", str(pyz), "isntall"], capture_output=True,
                          text=True)
    assert typo.returncode == 2
    assert "No such command 'isntall'. Did you mean 'install'?" in typo.stderr


# --- (d) an older bundle: the way back is rollback ------------------------------------------

def test_older_bundle_refused_as_a_replay_suggests_rollback_to_its_installed_version(
        two: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["install", tmp_path / "1.tar.zst", "--prefix", two, "--trust",
                        signing.signers], capsys)
    print(err)
    assert code == 3
    assert ("checking bundle hostile #1: channel 'stable' already installed sequence 2 here; "
            "installing an older bundle over a newer one is refused") in err
    assert ("go1.21.12.linux-amd64, which this bundle carries, is still installed here: "
            "`rollback --to 1.21.12` makes it current again, no bundle needed") in err
    assert "SECURITY ERROR" not in err
    code, out, _ = run(["rollback", "--to", "1.21.12", "--prefix", two], capsys)
    assert code == 0 and "current   go1.21.12.linux-amd64" in out  # the advice holds
    code, _, err = run(["install", tmp_path / "1.tar.zst", "--prefix", two, "--trust",
                        signing.signers], capsys)
    assert code == 3 and ("go1.21.12.linux-amd64, which this bundle carries, is the current "
                          "toolchain already.") in err


# --- (e) drill checks the user's Go settings before any drill --------------------------------

def test_drill_all_with_polluted_go_settings_stops_up_front_naming_the_fix(
        two: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    started = time.monotonic()
    code, out, err = run(["drill", "all", "--prefix", two, "--trust", signing.signers], capsys)
    print(out, err)
    assert time.monotonic() - started < 20
    assert code == 2
    assert "  FAIL go env GOFLAGS      -mod=mod\n" in out
    assert "fix: unset GOFLAGS" in out
    assert (f"drilling {two}: your Go settings fail the emergency checklist (go env GOFLAGS); "
            "the drills' recovery (install, rollback) runs that checklist, so they would fail "
            "after minutes of work. Fix the settings above, then run the drill again") in err
    assert not list(Path(two).glob(".staging-*"))
    code, out, _ = run(["drill", "all", "--prefix", two, "--trust", signing.signers, "--json"],
                       capsys)
    doc = json.loads(out)
    assert code == 2 and [c["name"] for c in doc["checks"] if not c["ok"]] == ["go env GOFLAGS"]


# --- (f) keys trust of a trusted key ---------------------------------------------------------

def test_keys_trust_of_an_already_trusted_key_changes_nothing_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pub = sshkey.generate_keypair(tmp_path / "release", comment="release")
    store = tmp_path / "allowed_signers"
    argv = ["keys", "trust", tmp_path / "release.pub", "--store", store]
    assert run(argv, capsys, bundler_cli.main)[0] == 0
    before = store.read_text()
    code, out, err = run(argv, capsys, bundler_cli.main)
    assert code == 0, err
    assert out == (f"already trusted: {pub.key_id} is in {store} (line 1, as release); "
                   "nothing changed\n")
    assert store.read_text() == before
    code, out, _ = run([*argv, "--principal", "ops@dc1"], capsys, bundler_cli.main)
    assert code == 0 and store.read_text() == before
    assert (f"as release); nothing changed; to name it ops@dc1, `rescue keys untrust "
            f"{pub.key_id} --store {store}` first") in out
    code, out, _ = run([*argv, "--json"], capsys, bundler_cli.main)
    doc = json.loads(out)
    assert (code, doc["added"], doc["principals"], doc["line"]) == (0, False, ["release"], 1)


# --- (g) integers are integers ---------------------------------------------------------------

def test_spec_with_a_quoted_number_says_an_integer(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('[bundle]\nname = "b"\nsequence = "7"\nsigning_key = "k"\n'
                    '[toolchains]\nversions = ["1.21.13"]\n')
    code, _, err = run(["build", spec, "-o", tmp_path / "out"], capsys, bundler_cli.main)
    assert code == 2
    assert f"reading spec {spec}:3: bundle.sequence must be an integer, got '7'" in err
    assert "a int" not in err
    spec.write_text('[bundle]\nname = "b"\nsequence = 7\nsigning_key = "k"\n'
                    '[toolchains]\nversions = "1.21.13"\n')
    code, _, err = run(["build", spec, "-o", tmp_path / "out"], capsys, bundler_cli.main)
    assert code == 2 and "toolchains.versions must be a list, got '1.21.13'" in err


def test_manifest_with_a_string_sequence_says_an_integer() -> None:
    from manifests.errors import TrustError
    from manifests.model import parse_manifest
    from tests.support import tamper

    doc = craft.Craft().doc()
    doc["sequence"] = "7"
    with pytest.raises(TrustError) as e:
        parse_manifest(tamper.canonical(doc))
    assert "field 'sequence' must be an integer" in e.value.message


# --- (h) the checksum file is not the bundle -------------------------------------------------

def test_install_of_the_checksum_file_names_it_and_the_bundle_to_pass(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = crafted(tmp_path / "dc-stable-7.rescue.tar.zst", signing.key)
    sums = tmp_path / "dc-stable-7.rescue.tar.zst.sha256"
    sums.write_text(f"{'0' * 64}  {bundle.name}\n")
    for command in ("install", "inspect"):
        code, _, err = run([command, sums, "--prefix" if command == "install" else "--trust",
                            *([tmp_path / "P", "--trust"] if command == "install" else []),
                            signing.signers], capsys)
        assert code == 2, err
        assert (f"opening bundle {sums}: it is the bundle's checksum file (`sha256sum -c` "
                f"reads it); pass the bundle {bundle}") in err
        assert "SECURITY ERROR" not in err


# --- (i) did you mean ------------------------------------------------------------------------

def test_mistyped_command_suggests_the_nearest_one_on_both_sides(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["isntall", "b.tar.zst"], capsys)
    assert code == 2 and "No such command 'isntall'. Did you mean 'install'?" in err
    code, _, err = run(["snapshot", "craete"], capsys)
    assert code == 2 and "No such command 'craete'. Did you mean 'create'?" in err
    code, _, err = run(["zipap"], capsys, bundler_cli.main)
    assert code == 2 and "No such command 'zipap'. Did you mean 'zipapp'?" in err
    code, _, err = run(["keys", "trsut"], capsys, bundler_cli.main)
    assert code == 2 and "No such command 'trsut'. Did you mean 'trust'?" in err
    code, _, err = run(["xyzzy"], capsys)
    assert code == 2 and "No such command 'xyzzy'." in err and "Did you mean" not in err
    code, out, _ = run(["isntall", "--json"], capsys)
    doc = json.loads(out)
    assert code == 2 and "Did you mean 'install'?" in doc["error"]["message"]


# --- (j) list names the signer ---------------------------------------------------------------

def test_list_shows_the_key_that_signed_each_toolchain(
        two: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["list", "--prefix", two], capsys)
    print(out)
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("   go1.21.12.linux-amd64")
    assert f" MB  hostile #1  signed by {signing.key_id}  20" in rows[0]
    assert rows[1].startswith("*  go1.21.13.linux-amd64")
    assert f" MB  hostile #2  signed by {signing.key_id}  20" in rows[1]
    code, out, _ = run(["list", "--prefix", two, "--json"], capsys)
    assert [t["signer"] for t in json.loads(out)["toolchains"]] == [signing.key_id] * 2
