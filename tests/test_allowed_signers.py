"""keys.allowed_signers: the OpenSSH trust store format, read strictly and edited atomically."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import allowed_signers, sshkey, sshsig
from keys.allowed_signers import SkippedLine
from keys.sshkey import PublicKey
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from tests.support import sshkeygen

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="stock ssh-keygen not installed"
)
ALICE = PublicKey(b"\x0a" * 32, "alice laptop")
BOB = PublicKey(b"\x0b" * 32, "bob")
UTC = timezone.utc


def parse_error(text: str) -> str:
    with pytest.raises(NotReadyError) as err:
        allowed_signers.parse(text, "store")
    return str(err.value)


# --- parsing ---------------------------------------------------------------------------------


def test_plain_line_with_comment_parses():
    (signer,) = allowed_signers.parse(f"alice@example.org {ALICE.openssh_line()}\n")
    assert signer.principals == ("alice@example.org",)
    assert signer.public_key == ALICE and signer.public_key.comment == "alice laptop"
    assert (signer.namespaces, signer.valid_after, signer.valid_before) == (None, None, None)
    assert signer.line == 1
    assert signer.describe() == f"{ALICE.key_id} (alice@example.org, alice laptop)"


def test_comments_blank_lines_and_line_numbers():
    text = (
        "# builders of the go-emergency channel\n"
        "\n"
        f"   alice,ci@build {ALICE.openssh_line()}\n"
        f"bob {BOB.openssh_line()}"  # no final newline
    )
    signers = allowed_signers.parse(text)
    assert [(s.principals, s.line) for s in signers] == [(("alice", "ci@build"), 3), (("bob",), 4)]


def test_options_namespaces_and_validity_window_are_read():
    text = (
        f'alice namespaces="rescue-manifest,git",valid-after="20240101",'
        f'valid-before="20250630123045Z" {ALICE.openssh_line()}\n'
    )
    (signer,) = allowed_signers.parse(text)
    assert signer.namespaces == ("rescue-manifest", "git")
    assert signer.valid_after == datetime(2024, 1, 1).astimezone()  # no Z: local time
    assert signer.valid_before == datetime(2025, 6, 30, 12, 30, 45, tzinfo=UTC)


def test_option_names_are_case_insensitive_and_principals_may_be_quoted():
    text = f'"alice,bob" NAMESPACES="x" {ALICE.openssh_line()}'
    (signer,) = allowed_signers.parse(text)
    assert signer.principals == ("alice", "bob") and signer.namespaces == ("x",)


def test_time_forms_yyyymmdd_hhmm_and_seconds():
    assert allowed_signers.parse_time("20240102Z") == datetime(2024, 1, 2, tzinfo=UTC)
    assert allowed_signers.parse_time("202401020304Z") == datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    assert allowed_signers.parse_time("20240102030405Z") == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=UTC
    )


def test_namespace_patterns_follow_openssh_wildcards_and_negation():
    def permits(namespaces: str, ns: str) -> bool:
        text = f'a namespaces="{namespaces}" {ALICE.openssh_line()}'
        return allowed_signers.parse(text)[0].permits_namespace(ns)

    assert permits("rescue-*", "rescue-manifest")
    assert permits("rescue-manifes?", "rescue-manifest")
    assert not permits("git,file", "rescue-manifest")
    assert not permits("*,!rescue-manifest", "rescue-manifest")
    assert allowed_signers.parse(f"a {ALICE.openssh_line()}")[0].permits_namespace("anything")


def test_cert_authority_and_other_key_types_are_skipped_and_reported():
    text = (
        f"ca@example.org cert-authority {ALICE.openssh_line()}\n"
        "rsa@example.org ssh-rsa AAAAB3NzaC1yc2E= old key\n"
        "cert@example.org ssh-ed25519-cert-v01@openssh.com AAAA\n"
        f"bob {BOB.openssh_line()}\n"
    )
    skipped: list = []
    signers = allowed_signers.parse(text, "store", skipped)
    assert [s.principals for s in signers] == [("bob",)]
    assert skipped == [
        SkippedLine(1, "cert-authority keys are not supported by rescue"),
        SkippedLine(2, "key type ssh-rsa is not supported (ssh-ed25519 only)"),
        SkippedLine(
            3, "key type ssh-ed25519-cert-v01@openssh.com is not supported (ssh-ed25519 only)"
        ),
    ]


def test_malformed_line_is_an_error_naming_source_and_line():
    text = f"# header\nalice {ALICE.openssh_line()}\nbob\n"
    assert parse_error(text) == (
        "reading trust store store:3: expected 'principals [options] keytype base64 [comment]'"
    )


def test_unknown_word_in_place_of_a_key_type_is_refused():
    assert parse_error("alice frobnicate AAAA") == (
        "reading trust store store:1: 'frobnicate' is neither an option nor a known key type"
    )


def test_unknown_option_is_refused_like_ssh_keygen_does():
    assert parse_error(f'alice namespaces="x",no-touch {ALICE.openssh_line()}') == (
        "reading trust store store:1: unknown option 'no-touch' (known: cert-authority, "
        "namespaces, valid-after, valid-before)"
    )


def test_unquoted_option_value_is_refused_because_ssh_keygen_refuses_it():
    assert parse_error(f"alice namespaces=x {ALICE.openssh_line()}") == (
        "reading trust store store:1: option namespaces needs a double-quoted value, "
        'like namespaces="..."'
    )


def test_unterminated_quote_is_refused():
    assert parse_error(f'alice namespaces="x {ALICE.openssh_line()}') == (
        "reading trust store store:1: unterminated double quote"
    )


def test_option_given_twice_is_refused():
    assert parse_error(f'a namespaces="x",namespaces="y" {ALICE.openssh_line()}') == (
        "reading trust store store:1: option namespaces given twice"
    )


def test_cert_authority_with_a_value_is_refused():
    assert parse_error(f'a cert-authority="yes" {ALICE.openssh_line()}') == (
        "reading trust store store:1: option cert-authority takes no value"
    )


def test_empty_namespaces_is_refused_rather_than_read_as_all():
    assert parse_error(f'a namespaces="" {ALICE.openssh_line()}') == (
        'reading trust store store:1: namespaces="" names no namespace'
    )


def test_bad_times_are_refused():
    assert parse_error(f'a valid-after="2024-01-01" {ALICE.openssh_line()}') == (
        "reading trust store store:1: time '2024-01-01' is not YYYYMMDD[HHMM[SS]][Z]"
    )
    assert parse_error(f'a valid-after="20241301" {ALICE.openssh_line()}') == (
        "reading trust store store:1: time '20241301' is not a real date"
    )


def test_window_that_ends_before_it_starts_is_refused():
    text = f'a valid-after="20250101Z",valid-before="20240101Z" {ALICE.openssh_line()}'
    assert parse_error(text) == (
        "reading trust store store:1: valid-before is not later than valid-after"
    )


def test_empty_principal_is_refused():
    assert parse_error(f'"" {ALICE.openssh_line()}') == (
        "reading trust store store:1: no principal before the key"
    )


def test_corrupt_key_in_store_is_refused_naming_the_line():
    line = ALICE.openssh_line().split()
    assert parse_error(f"a ssh-ed25519 {line[1][:-2]}") == (
        "reading trust store store:1: the key's base64 text is corrupt (was the line cut or "
        "wrapped?)"
    )


# --- format_line -----------------------------------------------------------------------------


def test_format_line_roundtrips_through_parse():
    line = allowed_signers.format_line("alice@example.org", ALICE)
    assert line == f'alice@example.org namespaces="rescue-manifest" {ALICE.openssh_line()}'
    (signer,) = allowed_signers.parse(line)
    assert signer.namespaces == ("rescue-manifest",) and signer.public_key == ALICE
    assert allowed_signers.format_line("a", BOB, None) == f"a {BOB.openssh_line()}"


def test_format_line_refuses_a_principal_that_would_change_the_line():
    with pytest.raises(NotReadyError) as err:
        allowed_signers.format_line("alice smith", ALICE)
    assert str(err.value) == (
        "adding signer 'alice smith': a principal is one word (no spaces, quotes or leading #), "
        "e.g. an email address"
    )
    for bad in ("", '"a"', "#a", "a\nb"):
        with pytest.raises(NotReadyError, match="a principal is one word"):
            allowed_signers.format_line(bad, ALICE)


def test_format_line_refuses_an_injected_line_in_the_comment():
    evil = PublicKey(b"\x0c" * 32, f"x\nmallory {BOB.openssh_line()}")
    with pytest.raises(NotReadyError, match="adding signer 'a': the key comment must be one line"):
        allowed_signers.format_line("a", evil)


def test_format_line_refuses_a_namespace_with_separators():
    with pytest.raises(NotReadyError) as err:
        allowed_signers.format_line("a", ALICE, ('x",valid-before="1',))
    assert str(err.value) == "adding signer 'a': invalid namespace 'x\",valid-before=\"1'"


# --- files -----------------------------------------------------------------------------------


def test_add_signer_creates_the_store_then_appends(tmp_path: Path):
    store = tmp_path / "allowed_signers"
    added = allowed_signers.add_signer(store, "alice", ALICE.openssh_line())
    assert added.public_key == ALICE and added.principals == ("alice",)
    assert stat.S_IMODE(store.stat().st_mode) == 0o644
    store.write_text(store.read_text() + "# keep me")  # no final newline
    store.chmod(0o640)
    allowed_signers.add_signer(store, "bob", BOB.openssh_line() + "\n", namespaces=None)
    assert store.read_text() == (
        f'alice namespaces="rescue-manifest" {ALICE.openssh_line()}\n'
        f"# keep me\nbob {BOB.openssh_line()}\n"
    )
    assert stat.S_IMODE(store.stat().st_mode) == 0o640  # an edit keeps the owner's choice
    assert [s.principals for s in allowed_signers.load(store)] == [("alice",), ("bob",)]
    assert [p.name for p in tmp_path.iterdir()] == ["allowed_signers"]  # no temp file left


def test_add_signer_refuses_a_key_already_trusted(tmp_path: Path):
    store = tmp_path / "allowed_signers"
    allowed_signers.add_signer(store, "alice", ALICE.openssh_line())
    before = store.read_bytes()
    with pytest.raises(NotReadyError) as err:
        allowed_signers.add_signer(store, "mallory", PublicKey(ALICE.raw, "x").openssh_line())
    assert str(err.value) == (
        f"adding signer mallory: key {ALICE.key_id} is already in {store} (line 1, as alice); "
        "remove it first to change it"
    )
    assert store.read_bytes() == before


def test_add_signer_refuses_a_bad_public_line_and_writes_nothing(tmp_path: Path):
    store = tmp_path / "allowed_signers"
    with pytest.raises(NotReadyError, match="parsing public key 'ssh-rsa AAAA'"):
        allowed_signers.add_signer(store, "a", "ssh-rsa AAAA")
    assert not store.exists()


def test_add_signer_into_a_missing_directory_says_which(tmp_path: Path):
    store = tmp_path / "nope" / "allowed_signers"
    with pytest.raises(NotReadyError) as err:
        allowed_signers.add_signer(store, "a", ALICE.openssh_line())
    assert str(err.value) == f"adding signer a: directory {tmp_path / 'nope'} does not exist"


def test_add_signer_refuses_to_rewrite_a_malformed_store(tmp_path: Path):
    store = tmp_path / "allowed_signers"
    store.write_text("garbage\n")
    with pytest.raises(NotReadyError, match=r"reading trust store .*allowed_signers:1: expected"):
        allowed_signers.add_signer(store, "a", ALICE.openssh_line())
    assert store.read_text() == "garbage\n"


def test_remove_signer_by_key_id_or_principal_keeps_everything_else(tmp_path: Path):
    store = tmp_path / "allowed_signers"
    old = PublicKey(b"\x0d" * 32)
    store.write_text(
        "# team\n"
        f"alice {ALICE.openssh_line()}\n"
        f"bob {BOB.openssh_line()}\n"
        f"alice-old,alice {old.openssh_line()}\n"
        f"ca cert-authority {ALICE.openssh_line()}\n"
    )
    assert allowed_signers.remove_signer(store, BOB.key_id) == 1
    assert allowed_signers.remove_signer(store, "alice") == 2
    assert allowed_signers.remove_signer(store, "nobody") == 0
    assert store.read_text() == f"# team\nca cert-authority {ALICE.openssh_line()}\n"


def test_missing_store_says_how_to_add_a_key(tmp_path: Path):
    with pytest.raises(NotReadyError) as err:
        allowed_signers.load(tmp_path / "absent")
    assert str(err.value) == (
        f"reading trust store {tmp_path / 'absent'}: no such file; add a builder's public key "
        "with `rescue keys trust`"
    )
    with pytest.raises(NotReadyError, match="no such file"):
        allowed_signers.remove_signer(tmp_path / "absent", "alice")


def test_store_that_is_a_directory_is_reported(tmp_path: Path):
    with pytest.raises(NotReadyError) as err:
        allowed_signers.load(tmp_path)
    assert str(err.value) == f"reading trust store {tmp_path}: Is a directory"


def test_huge_or_binary_store_is_refused(tmp_path: Path):
    big = tmp_path / "big"
    big.write_bytes(b"#" * (DEFAULT_LIMITS.trust_store_bytes + 1))
    with pytest.raises(NotReadyError, match="larger than 1048576 bytes, not a trust store"):
        allowed_signers.load(big)
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(NotReadyError, match=r"reading trust store .*bin: not UTF-8 text"):
        allowed_signers.load(binary)


def test_load_reports_skipped_lines(tmp_path: Path):
    store = tmp_path / "s"
    store.write_text(f"ca cert-authority {ALICE.openssh_line()}\n")
    skipped: list = []
    assert allowed_signers.load(store, skipped) == []
    assert skipped == [SkippedLine(1, "cert-authority keys are not supported by rescue")]


def test_failed_write_is_reported_and_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = tmp_path / "s"
    allowed_signers.add_signer(store, "alice", ALICE.openssh_line())
    before = store.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the disk fills up while the store is written
    with pytest.raises(NotReadyError) as err:
        allowed_signers.add_signer(store, "bob", BOB.openssh_line())
    assert str(err.value) == f"adding signer bob: writing {store}: No space left on device"
    with pytest.raises(NotReadyError) as err:
        allowed_signers.remove_signer(store, "alice")
    assert str(err.value) == f"removing signer alice: writing {store}: No space left on device"
    assert store.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"], "no temp file left behind"


# --- interop with stock ssh-keygen -----------------------------------------------------------


@needs_ssh_keygen
def test_ssh_keygen_reads_our_options_the_way_we_do(tmp_path: Path):
    private = Ed25519PrivateKey.generate()
    pub = sshkey.public_key_of(private, "c")
    (tmp_path / "manifest.sig").write_text(sshsig.sign(private, b"m"))
    store = tmp_path / "allowed_signers"

    def ssh_verify(options: str) -> int:
        store.write_text(f"alice {options} {pub.openssh_line()}\n")
        allowed_signers.load(store)  # we accept what we hand to ssh-keygen
        return sshkeygen.verify(store, "alice", tmp_path / "manifest.sig", b"m").returncode

    assert ssh_verify('namespaces="rescue-*",valid-after="20200101Z"') == 0
    assert ssh_verify('namespaces="git"') != 0
    assert ssh_verify('valid-before="20200101"') != 0
    assert ssh_verify('VALID-AFTER="20200101",valid-before="29991231235959Z"') == 0
