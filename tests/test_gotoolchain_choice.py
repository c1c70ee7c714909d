"""`toolchains.gotoolchain = "local"` in a spec: the installed prefix never switches toolchains
(GOTOOLCHAIN=local in every GOROOT's go.env and in env.sh); the newest bundle that says a choice
wins, and a killed install leaves the prefix's choice as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from bundler import spec as spec_mod
from installer import cli
from manifests.errors import NotReadyError, TrustError
from manifests.model import parse_manifest
from tests.support import bundles, craft, tamper

ROOT = Path(__file__).resolve().parent.parent


def _spec(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text('[bundle]\nname = "b"\nsequence = 1\nsigning_key = "k"\n\n'
                    f'[toolchains]\nversions = ["1.21.13"]\ngotoolchain = "{value}"\n')
    return path


def test_spec_takes_local_or_auto_and_names_the_choices_for_any_other_word(
        tmp_path: Path) -> None:
    assert spec_mod.load(_spec(tmp_path, "local")).gotoolchain == "local"
    assert spec_mod.load(_spec(tmp_path, "auto")).gotoolchain == "auto"
    with pytest.raises(NotReadyError) as exc:
        spec_mod.load(_spec(tmp_path, "go1.22.10"))
    assert ("toolchains.gotoolchain 'go1.22.10' must be \"auto\" (go switches per go.mod to a "
            "toolchain the bundles carry) or \"local\" (go never switches)") in str(exc.value)


def test_manifest_with_another_gotoolchain_is_refused_as_tampering() -> None:
    c = craft.Craft()
    c.toolchain()
    doc = c.doc()
    doc["gotoolchain"] = "path"
    with pytest.raises(TrustError) as exc:
        parse_manifest(tamper.canonical(doc))
    assert "gotoolchain 'path' is not one of auto, local" in str(exc.value)
    doc["gotoolchain"] = ""  # the builder leaves an unset choice out: "" is not canonical
    with pytest.raises(TrustError, match="not in canonical form"):
        parse_manifest(tamper.canonical(doc))


def _bundle(tmp_path: Path, signing: bundles.Signing, seq: int, version: str,
            choice: str = "") -> Path:
    c = craft.Craft(sequence=seq)
    c.toolchain(version=version)
    doc = c.doc()
    if choice:
        doc["gotoolchain"] = choice
    return c.write(tmp_path / f"{seq}.tar.zst", signing.key, doc=doc)


def _install(bundle: Path, prefix: Path, signing: bundles.Signing) -> int:
    return cli.main(["install", str(bundle), "--prefix", str(prefix), "--trust",
                     str(signing.signers)])


def _wired(prefix: Path) -> Dict[str, str]:
    """GOTOOLCHAIN of each installed GOROOT's go.env, and of env.sh."""
    out = {}
    for goroot in sorted((prefix / "versions").iterdir()):
        lines = (goroot / "go.env").read_text().splitlines()
        out[goroot.name] = [x for x in lines if x.startswith("GOTOOLCHAIN=")][-1]
    out["env.sh"] = [w for w in (prefix / "env.sh").read_text().split()
                     if w.startswith("GOTOOLCHAIN=")][-1]
    return out


def _all(prefix: Path, value: str) -> Dict[str, str]:
    return {name: f"GOTOOLCHAIN={value}" for name in [
        *sorted(p.name for p in (prefix / "versions").iterdir()), "env.sh"]}


def test_a_bundle_choosing_local_wires_every_goroot_until_a_newer_bundle_chooses_auto(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    P = tmp_path / "P"
    assert _install(_bundle(tmp_path, signing, 1, "go1.21.13"), P, signing) == 0
    assert _wired(P) == _all(P, "auto")  # the default
    assert _install(_bundle(tmp_path, signing, 2, "go1.22.10", "local"), P, signing) == 0
    assert _wired(P) == _all(P, "local")  # go1.21.13's go.env too
    # A bundle that says nothing (a module refresh, a patch release) keeps the choice.
    assert _install(_bundle(tmp_path, signing, 3, "go1.22.9"), P, signing) == 0
    assert _wired(P) == _all(P, "local")
    assert cli.main(["verify", "--prefix", str(P), "--trust", str(signing.signers)]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", str(_bundle(tmp_path, signing, 4, "go1.21.12", "auto")), "--trust",
                     str(signing.signers)]) == 0
    assert "switching  GOTOOLCHAIN=auto for the prefix\n" in capsys.readouterr().out
    assert _install(tmp_path / "4.tar.zst", P, signing) == 0
    assert _wired(P) == _all(P, "auto")
    assert cli.main(["verify", "--prefix", str(P), "--trust", str(signing.signers)]) == 0


def test_inspect_says_a_local_bundle_never_switches(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    bundle = _bundle(tmp_path, signing, 1, "go1.21.13", "local")
    assert cli.main(["inspect", str(bundle), "--trust", str(signing.signers)]) == 0
    assert ("switching  GOTOOLCHAIN=local for the prefix  (go never switches: `use VERSION` "
            "or P/bin/go<V> do)\n") in capsys.readouterr().out
    assert cli.main(["inspect", str(bundle), "--trust", str(signing.signers), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gotoolchain"] == "local"


def _rescue(argv: List[str], **env: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from installer import cli; sys.exit(cli.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("point, recorded", [("install-checked", False),
                                             ("install-recorded", True)])
def test_install_killed_leaves_the_choice_as_its_record_says(
        tmp_path: Path, signing: bundles.Signing, point: str, recorded: bool) -> None:
    P = tmp_path / "P"
    assert _install(_bundle(tmp_path, signing, 1, "go1.21.13"), P, signing) == 0
    argv = ["install", str(_bundle(tmp_path, signing, 2, "go1.22.10", "local")), "--prefix",
            str(P), "--trust", str(signing.signers)]
    killed = _rescue(argv, RESCUE_CRASH_AT=point)
    assert killed.returncode == -9, killed.stderr
    # The next command finishes a journaled install (and rewires every GOROOT) or finds none.
    done = _rescue(["use", "1.21.13", "--prefix", str(P)])
    assert done.returncode == 0, done.stderr
    if recorded:
        assert "finished an interrupted install of hostile #2" in done.stdout + done.stderr
        assert _wired(P) == _all(P, "local")
    else:  # nothing recorded: the old GOROOT keeps auto, and the install, run again, wires all
        assert _wired(P)["go1.21.13.linux-amd64"] == "GOTOOLCHAIN=auto"
        assert _rescue(argv).returncode == 0
        assert _wired(P) == _all(P, "local")
    assert _rescue(["verify", "--prefix", str(P), "--trust", str(signing.signers)]
                   ).returncode == 0


def test_a_damaged_choice_in_installed_json_names_the_file(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    P = tmp_path / "P"
    assert _install(_bundle(tmp_path, signing, 1, "go1.21.13", "local"), P, signing) == 0
    path = P / "state" / "installed.json"
    doc: Dict[str, Any] = json.loads(path.read_text())
    doc["bundles"][0]["gotoolchain"] = "$(reboot)"
    os.chmod(path, 0o644)
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert _install(_bundle(tmp_path, signing, 2, "go1.22.10"), P, signing) == 2
    err = capsys.readouterr().err
    assert f"{path}" in err
    assert "bundle 'hostile' has a gotoolchain that is not one of auto, local" in err


def test_doctor_tells_a_local_prefix_to_bring_and_make_current_when_nothing_serves() -> None:
    """With GOTOOLCHAIN=local chosen, installing a newer bundle is not enough: go never
    switches to it, so doctor's fix says to make it current."""
    from installer import doctor_go

    g = doctor_go.GoFacts(running="go1.21.13", platform="linux-amd64",
                          installed=["go1.21.13"])
    here = "python3 rescue.pyz use {} --prefix /srv/P"
    assert doctor_go._fix(g, "1.23", here, wired="local") == (
        "bring a bundle with go1.23.0 or newer for linux-amd64 (a spec listing it in versions), "
        "install it and make it current: python3 rescue.pyz use go1.23.0 --prefix /srv/P; this "
        "prefix keeps GOTOOLCHAIN=local (its bundle's spec chose toolchains.gotoolchain = "
        "\"local\"), so go never switches by itself")
