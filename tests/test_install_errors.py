"""What an operator meets when the install is asked for wrongly: each message says what to do."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from installer.cli import main
from manifests.errors import TrustError
from manifests.model import parse_manifest
from tests.support import bundles


def run(argv, capsys) -> tuple:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_bundle_file_is_named(tmp_path: Path, signing: bundles.Signing, capsys) -> None:
    code, _, err = run(["install", tmp_path / "nope.tar.zst", "--prefix", tmp_path / "p",
                        "--trust", signing.signers], capsys)
    assert code == 2
    assert err == f"rescue: opening bundle {tmp_path / 'nope.tar.zst'}: no such file\n"
    assert not (tmp_path / "p").exists()


def test_missing_trust_file_is_named(tmp_path: Path, toolchain_bundle: Path, capsys) -> None:
    code, _, err = run(["install", toolchain_bundle, "--prefix", tmp_path / "p",
                        "--trust", tmp_path / "signers"], capsys)
    assert code == 2
    assert err == (f"rescue: reading trust store {tmp_path / 'signers'}: "
                   "No such file or directory\n")


def test_no_trust_store_at_all_says_how_to_give_one(tmp_path: Path, toolchain_bundle: Path,
                                                    capsys) -> None:
    # Run from the source tree, which has no trust store built in (a pyz built without --trust).
    code, out, err = run(["inspect", toolchain_bundle, "--json"], capsys)
    assert code == 2
    assert "no trust store: pass --trust FILE (an OpenSSH allowed_signers file), or use a " \
           "rescue.pyz built with `rescue zipapp --trust FILE`" in err
    assert json.loads(out)["ok"] is False


def test_use_of_a_version_the_bundle_lacks_lists_what_it_has(tmp_path: Path,
                                                             toolchain_bundle: Path,
                                                             signing: bundles.Signing,
                                                             capsys) -> None:
    code, _, err = run(["install", toolchain_bundle, "--prefix", tmp_path / "p", "--trust",
                        signing.signers, "--use", "1.22.0"], capsys)
    assert code == 2
    assert err == ("rescue: --use 1.22.0: the bundle has no go1.22.0 for linux-amd64; it has "
                   "go1.21.13.linux-amd64\n")
    assert not (tmp_path / "p").exists()


def test_second_install_waits_for_the_prefix_lock_then_says_who_holds_it(
        tmp_path: Path, toolchain_bundle: Path, signing: bundles.Signing, capsys) -> None:
    prefix = tmp_path / "p"
    prefix.mkdir()
    fd = os.open(prefix, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running install holds it
        code, _, err = run(["install", toolchain_bundle, "--prefix", prefix, "--trust",
                            signing.signers, "--lock-timeout", "0.5"], capsys)
    finally:
        os.close(fd)
    assert code == 2
    assert err == (f"rescue: waiting for another rescue command to release the lock on {prefix}\n"
                   f"rescue: locking {prefix}: another rescue command still holds the prefix "
                   "lock after 0.5s; wait for it to finish (see `ps -ef | grep rescue`), or pass "
                   "a longer --lock-timeout\n")
    assert list(prefix.iterdir()) == [], "waiting for the lock writes nothing"


def test_manifest_of_a_newer_format_asks_for_a_matching_installer() -> None:
    with pytest.raises(TrustError) as e:
        parse_manifest(b'{"format": 2, "members": []}')
    assert str(e.value) == ("reading manifest: format 2 is not supported (this installer reads "
                            "format 1); use a rescue.pyz of the same release as the bundler")
