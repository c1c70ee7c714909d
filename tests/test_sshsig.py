"""keys.sshsig: SSHSIG signatures that stock `ssh-keygen -Y` makes and accepts."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import allowed_signers, sshkey, sshsig
from keys.sshkey import ssh_string
from manifests.errors import TrustError
from tests.support import sshkeygen

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="stock ssh-keygen not installed"
)
MANIFEST = b'{"name": "go-emergency", "sequence": 7}\n'


def ssh_keygen(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh-keygen", *args], capture_output=True, timeout=60, **kw)


def armor(blob: bytes) -> str:
    return sshsig._BEGIN + "\n" + base64.b64encode(blob).decode() + "\n" + sshsig._END + "\n"


def blob_of(armored: str) -> bytes:
    return base64.b64decode("".join(armored.strip().splitlines()[1:-1]))


def build(
    *,
    magic: bytes = b"SSHSIG",
    version: int = 1,
    key: bytes = None,
    namespace: bytes = b"rescue-manifest",
    hash_algorithm: bytes = b"sha512",
    sig_type: bytes = b"ssh-ed25519",
    raw: bytes = b"\x00" * 64,
    sig_extra: bytes = b"",
    extra: bytes = b"",
) -> str:
    if key is None:
        key = sshkey.PublicKey(b"\x05" * 32).wire_blob()
    blob = (
        magic
        + struct.pack(">I", version)
        + ssh_string(key)
        + ssh_string(namespace)
        + ssh_string(b"")
        + ssh_string(hash_algorithm)
        + ssh_string(ssh_string(sig_type) + ssh_string(raw) + sig_extra)
        + extra
    )
    return armor(blob)


def parse_error(armored) -> str:
    with pytest.raises(TrustError) as err:
        sshsig.parse(armored)
    return str(err.value)


# --- sign / verify ---------------------------------------------------------------------------


def test_signature_verifies_and_names_its_key():
    private = Ed25519PrivateKey.generate()
    armored = sshsig.sign(private, MANIFEST)
    assert sshsig.verify(armored, MANIFEST, "rescue-manifest") == sshkey.public_key_of(private)
    sig = sshsig.parse(armored.encode())
    assert (sig.namespace, sig.hash_algorithm, len(sig.raw)) == ("rescue-manifest", "sha512", 64)


def test_armor_is_wrapped_at_70_columns_with_a_trailing_newline_like_ssh_keygen():
    armored = sshsig.sign(Ed25519PrivateKey.generate(), MANIFEST)
    lines = armored.split("\n")
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----"
    assert lines[-2:] == ["-----END SSH SIGNATURE-----", ""]
    assert [len(x) for x in lines[1:-2]] == [70, 70, 70, 38]


def test_signing_is_deterministic_so_rebuilt_bundles_are_byte_identical():
    private = Ed25519PrivateKey.generate()
    assert sshsig.sign(private, MANIFEST) == sshsig.sign(private, MANIFEST)


def test_manifest_edited_after_signing_is_refused():
    private = Ed25519PrivateKey.generate()
    armored = sshsig.sign(private, MANIFEST)
    with pytest.raises(TrustError) as err:
        sshsig.verify(armored, MANIFEST.replace(b"7", b"8"), "rescue-manifest")
    assert str(err.value) == (
        f"verifying SSH signature by key {sshkey.public_key_of(private).key_id}: "
        "the signature does not match the data"
    )


def test_signature_from_another_namespace_is_refused_even_over_the_same_bytes():
    private = Ed25519PrivateKey.generate()
    armored = sshsig.sign(private, MANIFEST, namespace="git")
    with pytest.raises(TrustError) as err:
        sshsig.verify(armored, MANIFEST, "rescue-manifest")
    assert str(err.value) == (
        f"verifying SSH signature by key {sshkey.public_key_of(private).key_id}: it was made "
        "for namespace 'git', not 'rescue-manifest'"
    )


def test_namespace_renamed_in_the_blob_breaks_the_signature():
    # The namespace is inside the signed data: relabelling a git signature must not work.
    private = Ed25519PrivateKey.generate()
    sig = sshsig.parse(sshsig.sign(private, MANIFEST, namespace="git"))
    relabelled = build(key=sig.public_key.wire_blob(), namespace=b"rescue-manifest", raw=sig.raw)
    with pytest.raises(TrustError, match="the signature does not match the data"):
        sshsig.verify(relabelled, MANIFEST, "rescue-manifest")


def test_sign_requires_a_namespace():
    with pytest.raises(ValueError, match="needs a namespace"):
        sshsig.sign(Ed25519PrivateKey.generate(), MANIFEST, namespace="")


# --- interop with stock ssh-keygen -----------------------------------------------------------


@needs_ssh_keygen
def test_our_signature_verifies_with_ssh_keygen_and_our_allowed_signers(tmp_path: Path):
    pub = sshkey.generate_keypair(tmp_path / "signing", "builder@ci")
    armored = sshsig.sign(sshkey.load_private_key(tmp_path / "signing"), MANIFEST)
    (tmp_path / "manifest.sig").write_text(armored)
    store = tmp_path / "allowed_signers"
    allowed_signers.add_signer(store, "builder@ci", pub.openssh_line())
    result = sshkeygen.verify(store, "builder@ci", tmp_path / "manifest.sig", MANIFEST)
    assert result.returncode == 0, result.stderr
    assert f'Good "rescue-manifest" signature for builder@ci with ED25519 key {pub.key_id}' in (
        result.stdout.decode()
    )
    tampered = sshkeygen.verify(store, "builder@ci", tmp_path / "manifest.sig", MANIFEST + b" ")
    assert tampered.returncode != 0


@needs_ssh_keygen
def test_signature_made_by_ssh_keygen_verifies_with_ours(tmp_path: Path):
    key_path = tmp_path / "id_ed25519"
    ssh_keygen("-q", "-t", "ed25519", "-N", "", "-f", str(key_path), check=True)
    (tmp_path / "manifest").write_bytes(MANIFEST)
    sshkeygen.sign(key_path, tmp_path / "manifest")
    armored = (tmp_path / "manifest.sig").read_bytes()
    key = sshsig.verify(armored, MANIFEST, "rescue-manifest")
    assert key == sshkey.parse_public_line((tmp_path / "id_ed25519.pub").read_text())
    with pytest.raises(TrustError, match="does not match the data"):
        sshsig.verify(armored, MANIFEST[:-1], "rescue-manifest")


@needs_ssh_keygen
def test_ssh_keygen_and_we_produce_the_same_signature_bytes(tmp_path: Path):
    pub = sshkey.generate_keypair(tmp_path / "signing", "c")
    (tmp_path / "manifest").write_bytes(MANIFEST)
    sshkeygen.sign(tmp_path / "signing", tmp_path / "manifest")
    ours = sshsig.sign(sshkey.load_private_key(tmp_path / "signing"), MANIFEST)
    assert (tmp_path / "manifest.sig").read_text() == ours
    assert sshsig.parse(ours).public_key == pub


# --- strict parsing of untrusted signatures --------------------------------------------------


def test_well_formed_built_signature_parses():
    assert sshsig.parse(build()).namespace == "rescue-manifest"


def test_oversized_signature_is_refused_before_parsing():
    assert parse_error("A" * (64 * 1024 + 1)) == (
        "parsing SSH signature: 65537 bytes is more than the 65536 a signature may have"
    )


def test_binary_garbage_is_refused_as_not_text():
    assert parse_error(b"\xff\xfe") == (
        "parsing SSH signature: not text: an armored signature is ASCII"
    )


def test_missing_armor_lines_are_refused():
    assert parse_error("hello") == (
        "parsing SSH signature: does not start with -----BEGIN SSH SIGNATURE-----"
    )
    assert parse_error(sshsig._BEGIN + "\nAAAA\n") == (
        "parsing SSH signature: does not end with -----END SSH SIGNATURE-----"
    )


def test_corrupt_base64_is_refused():
    assert parse_error(sshsig._BEGIN + "\nAA*A\n" + sshsig._END) == (
        "parsing SSH signature: the base64 between the armor lines is corrupt"
    )


def test_wrong_magic_is_refused():
    assert parse_error(build(magic=b"SSHSIH")) == (
        "parsing SSH signature: wrong magic: not an SSHSIG signature"
    )


def test_unknown_format_version_is_refused():
    assert parse_error(build(version=2)) == (
        "parsing SSH signature: signature format version 2 is not supported (only 1)"
    )


def test_rsa_key_signature_is_refused_naming_the_key_type():
    rsa_blob = ssh_string("ssh-rsa") + ssh_string(b"\x01\x00\x01") + ssh_string(b"\x00" * 64)
    assert parse_error(build(key=rsa_blob)) == (
        "parsing SSH signature: key type 'ssh-rsa' is not supported (rescue uses ssh-ed25519 only)"
    )


def test_certificate_key_signature_is_refused():
    cert = ssh_string("ssh-ed25519-cert-v01@openssh.com") + ssh_string(b"\x00" * 32)
    assert "key type 'ssh-ed25519-cert-v01@openssh.com' is not supported" in parse_error(
        build(key=cert)
    )


def test_unknown_hash_algorithm_is_refused():
    assert parse_error(build(hash_algorithm=b"md5")) == (
        "parsing SSH signature: hash algorithm 'md5' is not one of sha512, sha256"
    )


def test_signature_type_differing_from_key_type_is_refused():
    assert parse_error(build(sig_type=b"rsa-sha2-512")) == (
        "parsing SSH signature: signature type 'rsa-sha2-512' does not match key type ssh-ed25519"
    )


def test_short_ed25519_signature_is_refused():
    assert parse_error(build(raw=b"\x00" * 63)) == (
        "parsing SSH signature: ed25519 signature is 63 bytes, expected 64"
    )


def test_trailing_bytes_after_the_signature_are_refused():
    assert parse_error(build(extra=b"\x00")) == (
        "parsing SSH signature: 1 unexpected trailing bytes after the signature"
    )
    assert parse_error(build(sig_extra=b"\x00\x00")) == (
        "parsing SSH signature: 2 unexpected trailing bytes after the ed25519 signature"
    )


def test_length_field_beyond_the_buffer_is_refused():
    good = blob_of(build())
    # Overwrite the namespace length (after magic, version and the 51-byte key string).
    at = 6 + 4 + 4 + 51
    bad = good[:at] + struct.pack(">I", 0x7FFFFFFF) + good[at + 4 :]
    assert parse_error(armor(bad)) == (
        f"parsing SSH signature: namespace: needs {0x7FFFFFFF} bytes but only "
        f"{len(good) - at - 4} are left in the buffer"
    )


def test_truncated_blob_is_refused():
    good = blob_of(build())
    assert parse_error(armor(good[:8])) == (
        "parsing SSH signature: version: needs 4 bytes but only 2 are left in the buffer"
    )


def test_namespace_that_is_not_utf8_is_refused():
    assert parse_error(build(namespace=b"\xff")) == (
        "parsing SSH signature: namespace: not valid UTF-8"
    )


def test_sha256_signatures_are_accepted_as_protocol_allows():
    private = Ed25519PrivateKey.generate()
    signed = sshsig._signed_data("rescue-manifest", b"", "sha256", MANIFEST)
    armored = build(
        key=sshkey.public_key_of(private).wire_blob(),
        hash_algorithm=b"sha256",
        raw=private.sign(signed),
    )
    assert sshsig.verify(armored, MANIFEST, "rescue-manifest") == sshkey.public_key_of(private)
