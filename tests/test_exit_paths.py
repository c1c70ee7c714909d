"""Every way out of the program: the README's exit codes, and with --json one JSON document of
one schema, for every command, on success and on failure."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from bundler.cli import main as rescue
from tests.support import bundles, clirun, craft, tamper

ROOT = Path(__file__).resolve().parents[1]
ERROR_FIELDS = {"type", "operation", "subject", "expected", "got", "hint", "message",
                "security_error"}


def run(argv: List[Any], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    return clirun.run(argv, capsys, rescue)

def one_document(out: str, code: int) -> Dict[str, Any]:
    doc = json.loads(out)  # exactly one document: json.loads refuses trailing text
    assert doc["exit_code"] == code
    assert doc["ok"] is (code == 0)
    if code:
        assert set(doc["error"]) == ERROR_FIELDS
        assert doc["error"]["message"]
    else:
        assert doc["error"] is None
    return doc  # type: ignore[no-any-return]


def readme_exit_codes() -> Dict[int, str]:
    text = (ROOT / "README.md").read_text()
    return {int(c): m for c, m in re.findall(r"^\| (\d+) \| (.+) \|$", text, re.M)}


@pytest.fixture
def fake(tmp_path: Path, signing: bundles.Signing) -> Path:
    c = craft.Craft()
    c.toolchain()
    return c.write(tmp_path / "fake.tar.zst", signing.key)


def test_each_exit_code_in_the_readme_is_what_the_program_returns(
        tmp_path: Path, fake: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(readme_exit_codes()) == {0, 1, 2, 3, 4, 130}
    trust = ["--trust", signing.signers]
    seen: Dict[int, str] = {}
    # 0: done.
    code, out, _ = run(["inspect", fake, *trust, "--json"], capsys)
    seen[code] = "inspect"
    assert one_document(out, 0)["name"] == "hostile"
    # 2: missing input, and a usage error.
    code, out, err = run(["install", tmp_path / "nope.tar.zst", *trust, "--json"], capsys)
    assert (code, one_document(out, 2)["error"]["type"]) == (2, "not-ready")
    assert f"opening bundle {tmp_path / 'nope.tar.zst'}: no such file" in err
    code, out, err = run(["install", "--no-such-flag", "--json"], capsys)
    doc = one_document(out, 2)
    assert doc["error"]["operation"] == "reading the command line"
    assert "No such option" in err and "--no-such-flag" in err
    assert "see `rescue install --help`" in err
    seen[2] = "usage"
    # 3: untrusted.
    bad = tamper.rewrite(fake, tmp_path / "flipped.tar.zst",
                         lambda i, d: [(i, tamper.flip_byte(d) if i.name.endswith("VERSION")
                                        else d)])
    code, out, err = run(["install", bad, "--prefix", tmp_path / "P", *trust, "--json"], capsys)
    doc = one_document(out, 3)
    assert doc["error"]["security_error"] and err.count("SECURITY ERROR") == 1
    assert doc["error"]["operation"] == "verifying member"
    seen[code] = "install"
    # 4: the checklist failed (a `go` that reports another version).
    liar = craft.Craft(sequence=2)
    root = liar.toolchain()
    for m in liar.members:
        if m["path"] == f"{root}/bin/go":
            liar.members.remove(m)
            break
    liar.file(f"{root}/bin/go", b"#!/bin/sh\necho go version go1.0 linux/amd64\n", 0o755)
    code, out, err = run(["install", liar.write(tmp_path / "liar.tar.zst", signing.key),
                          "--prefix", tmp_path / "P4", *trust, "--json"], capsys)
    doc = one_document(out, 4)
    assert doc["error"]["type"] == "checklist-failed"
    assert [c["ok"] for c in doc["checks"]][0] is False  # the partial result rides along
    assert "the previous toolchain stays active" in err
    seen[code] = "install"
    # 1: a bug, said plainly, with no traceback unless asked for.
    from installer import inspect as insp

    def broken(*a: Any, **k: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(insp, "inspect", broken)
    code, out, err = run(["inspect", fake, *trust, "--json"], capsys)
    doc = one_document(out, 1)
    assert "internal error: ZeroDivisionError: division by zero" in err
    assert "this is a bug in rescue; run again with RESCUE_DEBUG=1" in err
    assert "Traceback" not in err
    seen[code] = "inspect"
    assert set(seen) == {0, 1, 2, 3, 4}  # 130 below, with a real signal


def test_ctrl_c_while_waiting_for_the_lock_exits_130_and_says_what_is_current(
        tmp_path: Path, fake: Path, signing: bundles.Signing) -> None:
    prefix = tmp_path / "P"
    cmd = [sys.executable, "-m", "installer.cli", "install", str(fake), "--prefix", str(prefix),
           "--trust", str(signing.signers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True).returncode == 0
    fd = os.open(prefix, os.O_RDONLY)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        p = subprocess.Popen(cmd + ["--json"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert p.stderr is not None
        line = p.stderr.readline()  # "waiting for another rescue command ..."
        assert "waiting for another rescue command to release the lock" in line
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        os.close(fd)
    assert p.returncode == 130
    assert ("interrupted; nothing of it was kept, and `current` is still "
            "versions/go1.21.13.linux-amd64") in err
    assert one_document(out, 130)["error"]["type"] == "interrupted"


def test_bundle_without_a_toolchain_for_this_machine_is_not_ready_not_done(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain(goarch="arm64")
    bundle = c.write(tmp_path / "arm64.tar.zst", signing.key)
    code, out, err = run(["install", bundle, "--prefix", tmp_path / "P", "--trust",
                          signing.signers], capsys)
    assert code == 2
    assert ("this bundle has no toolchain for linux-amd64 (it carries "
            "go1.21.13.linux-arm64); build one with linux-amd64 in the spec's "
            "toolchains.targets") in err
    assert not (tmp_path / "P").exists()
    code, out, _ = run(["inspect", bundle, "--trust", signing.signers], capsys)
    assert code == 0
    assert "warning    this bundle has no toolchain for linux-amd64" in out


@pytest.mark.parametrize("kind", ["public", "private"])
def test_a_key_file_passed_as_trust_store_is_named_for_what_it_is(
        kind: str, fake: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    path = signing.key.with_name(signing.key.name + ".pub") if kind == "public" else signing.key
    code, _, err = run(["install", fake, "--trust", path], capsys)
    assert code == 2
    if kind == "public":
        assert "this is a public key, not an allowed_signers file; make one with `rescue keys " \
               "trust FILE.pub --store allowed_signers`" in err
    else:
        assert "this is a PRIVATE key: never carry it to the isolated host" in err


def test_every_command_prints_one_json_document_on_success_and_on_failure(
        tmp_path: Path, signing: bundles.Signing, fake: Path, godl_url: str,
        capsys: pytest.CaptureFixture) -> None:
    keys = tmp_path / "keys"
    store = keys / "allowed_signers"
    pyz = tmp_path / "rescue.pyz"
    spec = bundles.write_spec(tmp_path / "spec.toml", keys / "k", godl_url, level=1)
    broken_spec = tmp_path / "broken.toml"
    broken_spec.write_text("[bundle]\nname = 'x'\nvalid_day = 3\n")
    calls = [
        (["keys", "generate", "k", "-d", keys], 0),
        (["keys", "generate", "k", "-d", tmp_path / "fake.tar.zst"], 2),
        (["keys", "trust", keys / "k.pub", "--store", store], 0),
        (["keys", "trust", tmp_path / "missing.pub", "--store", store], 2),
        (["keys", "list", "--store", store], 0),
        (["keys", "list", "--store", tmp_path / "none"], 2),
        (["keys", "untrust", "k", "--store", store], 0),
        (["keys", "untrust", "k", "--store", tmp_path / "none"], 2),
        (["build", broken_spec, "-o", tmp_path / "out"], 2),
        (["zipapp", "--trust", tmp_path / "none", "-o", pyz], 2),
        (["inspect", fake, "--trust", signing.signers], 0),
        (["inspect", fake, "--trust", tmp_path / "none"], 2),
        (["install", fake, "--prefix", tmp_path / "P", "--trust", signing.signers], 0),
        (["install", fake, "--prefix", tmp_path / "P", "--use", "9.9", "--trust",
          signing.signers], 2),
        (["selftest"], 0),
    ]
    for argv, want in calls:
        code, out, _ = run([*argv, "--json"], capsys)
        assert code == want, (argv, out)
        one_document(out, want)
    # The build, once, with the real upstream (slowest: last).
    code, out, _ = run(["keys", "trust", keys / "k.pub", "--store", store, "--json"], capsys)
    code, out, _ = run(["build", spec, "-o", tmp_path / "out", "--cache", tmp_path / "cache",
                        "--json"], capsys)
    doc = one_document(out, 0)
    assert doc["signer"]["key_id"] and doc["modules"] == []
    code, out, _ = run(["install", doc["bundle"], "--prefix", tmp_path / "P2", "--trust", store,
                        "--json"], capsys)
    doc = one_document(out, 0)
    assert set(doc["signer"]) == {"key_id", "principals", "comment"}
    assert isinstance(doc["seconds"], float) and doc["seconds"] == round(doc["seconds"], 2)


def test_pyz_usage_line_names_python3_rescue_pyz(pyz: Path) -> None:
    done = subprocess.run([sys.executable, "-I", str(pyz), "install", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: python3 rescue.pyz install [OPTIONS] BUNDLE")
    assert "Examples:" in done.stdout
