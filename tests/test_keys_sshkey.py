"""keys.sshkey: OpenSSH ed25519 key files, interoperable with stock ssh-keygen."""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import sshkey
from keys.sshkey import PublicKey, ssh_string
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="stock ssh-keygen not installed"
)


def ssh_keygen(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh-keygen", *args], capture_output=True, text=True, check=True, timeout=60, **kw
    )


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


# --- generate --------------------------------------------------------------------------------


def test_generated_private_key_is_0600_and_pub_file_holds_the_openssh_line(tmp_path: Path):
    key_path = tmp_path / "signing"
    old = os.umask(0)  # even a permissive umask must not loosen the private key
    try:
        pub = sshkey.generate_keypair(key_path, "builder@ci")
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    line = (tmp_path / "signing.pub").read_text()
    assert line == pub.openssh_line() + "\n"
    assert line.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA") and line.endswith(
        " builder@ci\n"
    )
    assert sshkey.parse_public_line(line) == pub
    assert sshkey.public_key_of(sshkey.load_private_key(key_path)) == pub


def test_generate_refuses_to_overwrite_an_existing_private_key(tmp_path: Path):
    key_path = tmp_path / "signing"
    key_path.write_text("precious")
    with pytest.raises(NotReadyError) as err:
        sshkey.generate_keypair(key_path, "c")
    assert str(err.value) == (
        f"generating key {key_path}: {key_path} already exists; refusing to overwrite a key "
        "(move it away or choose another path)"
    )
    assert key_path.read_text() == "precious"
    assert not (tmp_path / "signing.pub").exists()


def test_generate_refuses_when_only_the_pub_file_exists_and_writes_nothing(tmp_path: Path):
    (tmp_path / "signing.pub").write_text("other")
    with pytest.raises(NotReadyError, match=r"signing.pub already exists; refusing to overwrite"):
        sshkey.generate_keypair(tmp_path / "signing", "c")
    assert not (tmp_path / "signing").exists()
    assert (tmp_path / "signing.pub").read_text() == "other"


def test_generate_refuses_a_dangling_symlink_in_place_of_the_key(tmp_path: Path):
    (tmp_path / "signing").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NotReadyError, match="already exists; refusing to overwrite"):
        sshkey.generate_keypair(tmp_path / "signing", "c")
    assert not (tmp_path / "elsewhere").exists()


def test_generate_into_a_missing_directory_says_which(tmp_path: Path):
    with pytest.raises(NotReadyError) as err:
        sshkey.generate_keypair(tmp_path / "nope" / "signing", "c")
    assert str(err.value) == (
        f"generating key {tmp_path / 'nope' / 'signing'}: directory {tmp_path / 'nope'} "
        "does not exist"
    )


def test_generate_refuses_a_multiline_comment(tmp_path: Path):
    with pytest.raises(NotReadyError, match="the comment must be one line"):
        sshkey.generate_keypair(tmp_path / "k", "a\nssh-ed25519 AAAA evil")


@needs_ssh_keygen
def test_ssh_keygen_accepts_our_key_and_prints_our_key_id(tmp_path: Path):
    key_path = tmp_path / "signing"
    pub = sshkey.generate_keypair(key_path, "builder@ci")
    derived = ssh_keygen("-y", "-f", str(key_path)).stdout.strip()
    assert derived == pub.openssh_line()  # ssh-keygen reads our comment from the private key
    for path in (key_path, tmp_path / "signing.pub"):
        listing = ssh_keygen("-l", "-f", str(path)).stdout.split()
        assert listing == ["256", pub.key_id, "builder@ci", "(ED25519)"]


@needs_ssh_keygen
def test_key_made_by_ssh_keygen_loads_and_matches_its_pub_file(tmp_path: Path):
    key_path = tmp_path / "id_ed25519"
    ssh_keygen("-q", "-t", "ed25519", "-N", "", "-C", "ops@host", "-f", str(key_path))
    private = sshkey.load_private_key(key_path)
    pub = sshkey.parse_public_line((tmp_path / "id_ed25519.pub").read_text())
    assert sshkey.public_key_of(private, "ops@host") == pub
    assert pub.comment == "ops@host"
    assert pub.key_id == ssh_keygen("-l", "-f", str(key_path)).stdout.split()[1]


# --- load ------------------------------------------------------------------------------------


def write_key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_missing_key_file_says_how_to_create_one(tmp_path: Path):
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(tmp_path / "absent")
    assert str(err.value) == (
        f"reading signing key {tmp_path / 'absent'}: no such file; create one with "
        "`rescue keys generate` or `ssh-keygen -t ed25519`"
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])  # world- or group-readable
def test_key_readable_by_others_is_refused_with_the_chmod_to_run(tmp_path: Path, mode: int):
    key_path = tmp_path / "k"
    sshkey.generate_keypair(key_path, "c")
    key_path.chmod(mode)
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(key_path)
    assert str(err.value) == (
        f"reading signing key {key_path}: permissions {mode:04o} are too open; the key must be "
        f"readable by its owner only: run `chmod 600 {key_path}`"
    )


def test_unreadable_key_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key_path = tmp_path / "k"
    sshkey.generate_keypair(key_path, "c")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sshkey.os, "open", denied)  # root reads anything; simulate a user
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(key_path)
    assert str(err.value) == (
        f"reading signing key {key_path}: permission denied (is it owned by another user?)"
    )


def test_failed_pub_write_leaves_no_half_key_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = sshkey._write_new

    def fail_on_pub(path: Path, data: bytes, mode: int) -> None:
        if path.name.endswith(".pub"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(sshkey, "_write_new", fail_on_pub)
    with pytest.raises(NotReadyError) as err:
        sshkey.generate_keypair(tmp_path / "k", "c")
    assert str(err.value) == (
        f"generating key {tmp_path / 'k'}: writing {tmp_path / 'k.pub'}: No space left on device"
    )
    assert list(tmp_path.iterdir()) == []


def test_failed_private_key_write_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def disk_full(path: Path, data: bytes, mode: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sshkey, "_write_new", disk_full)
    with pytest.raises(NotReadyError) as err:
        sshkey.generate_keypair(tmp_path / "k", "c")
    assert str(err.value) == (
        f"generating key {tmp_path / 'k'}: writing {tmp_path / 'k'}: No space left on device"
    )


def test_directory_in_place_of_key_is_reported(tmp_path: Path):
    with pytest.raises(NotReadyError, match=r"reading signing key .*: not a regular file"):
        sshkey.load_private_key(tmp_path)


def test_huge_file_is_not_read_as_a_key(tmp_path: Path):
    key_path = write_key(tmp_path / "k", b"x" * (DEFAULT_LIMITS.key_file_bytes + 1))
    with pytest.raises(NotReadyError, match="larger than 65536 bytes, not a key file"):
        sshkey.load_private_key(key_path)


def test_passing_the_pub_file_says_to_pass_the_private_one(tmp_path: Path):
    sshkey.generate_keypair(tmp_path / "k", "c")
    pub_path = tmp_path / "k.pub"
    pub_path.chmod(0o600)
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(pub_path)
    assert str(err.value) == (
        f"reading signing key {pub_path}: this is a public key; pass the private key file "
        "(the one without .pub)"
    )


def test_pem_key_is_refused_as_not_openssh(tmp_path: Path):
    key_path = write_key(tmp_path / "k", b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(key_path)
    assert str(err.value) == (
        f"reading signing key {key_path}: not an OpenSSH private key (expected -----BEGIN "
        "OPENSSH PRIVATE KEY-----); create one with `rescue keys generate` or "
        "`ssh-keygen -t ed25519`"
    )


def armor_private(body: bytes) -> bytes:
    return (
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + base64.encodebytes(body)
        + b"-----END OPENSSH PRIVATE KEY-----\n"
    )


def test_truncated_key_file_is_reported_corrupt(tmp_path: Path):
    body = b"openssh-key-v1\0" + ssh_string("none") + struct.pack(">I", 999)
    key_path = write_key(tmp_path / "k", armor_private(body))
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(key_path)
    assert str(err.value) == (
        f"reading signing key {key_path}: the key file is corrupt (kdf name: needs 999 bytes "
        "but only 0 are left in the buffer)"
    )


def test_wrong_magic_is_reported_corrupt(tmp_path: Path):
    key_path = write_key(tmp_path / "k", armor_private(b"openssh-key-v2\0" + b"\0" * 40))
    with pytest.raises(NotReadyError, match=r"the key file is corrupt \(wrong magic\)"):
        sshkey.load_private_key(key_path)


def test_file_with_two_keys_is_refused(tmp_path: Path):
    body = (
        b"openssh-key-v1\0"
        + ssh_string("none")
        + ssh_string("none")
        + ssh_string(b"")
        + struct.pack(">I", 2)
    )
    key_path = write_key(tmp_path / "k", armor_private(body))
    with pytest.raises(NotReadyError, match=r"corrupt \(holds more than one key\)"):
        sshkey.load_private_key(key_path)


def test_flipped_check_int_is_reported_corrupt(tmp_path: Path):
    private = Ed25519PrivateKey.generate()
    good = sshkey.private_key_bytes(private, "c")
    text = good.decode()
    body = bytearray(base64.b64decode("".join(text.splitlines()[1:-1])))
    # The private section follows the public blob; its first check-int starts 4 bytes in.
    section_at = body.index(b"\x00\x00\x00\x0bssh-ed25519", 60) - 8
    body[section_at] ^= 0xFF
    key_path = write_key(tmp_path / "k", armor_private(bytes(body)))
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(key_path)
    assert str(err.value) == (
        f"reading signing key {key_path}: the key file is corrupt (Corrupt data: broken checksum)"
    )


@needs_ssh_keygen
def test_non_ed25519_key_is_refused_naming_its_type(tmp_path: Path):
    key_path = tmp_path / "id_ecdsa"
    ssh_keygen("-q", "-t", "ecdsa", "-N", "", "-f", str(key_path))
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(key_path)
    assert str(err.value) == (
        f"reading signing key {key_path}: it is a ecdsa-sha2-nistp256 key; rescue signs with "
        "ssh-ed25519 keys only; create one with `rescue keys generate` or "
        "`ssh-keygen -t ed25519`"
    )


@pytest.fixture
def encrypted_key(tmp_path: Path) -> Path:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("stock ssh-keygen not installed")
    key_path = tmp_path / "enc"
    ssh_keygen("-q", "-t", "ed25519", "-N", "sesame", "-f", str(key_path))
    return key_path


def test_encrypted_key_without_passphrase_says_to_set_the_env_var(
    encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("RESCUE_KEY_PASSPHRASE", raising=False)
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(encrypted_key)
    assert str(err.value) == (
        f"reading signing key {encrypted_key}: the key is encrypted with a passphrase; set the "
        "RESCUE_KEY_PASSPHRASE environment variable to it, or run on a terminal to be asked "
        "for it"
    )


def _force_no_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    import cryptography.hazmat.primitives.serialization.ssh as ssh_mod

    def no_bcrypt(*args, **kwargs):
        from cryptography.exceptions import UnsupportedAlgorithm

        raise UnsupportedAlgorithm("Need bcrypt module")

    monkeypatch.setattr(ssh_mod, "_bcrypt_kdf", no_bcrypt)


def test_encrypted_key_without_bcrypt_module_says_what_to_install(
    encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
):
    _force_no_bcrypt(monkeypatch)
    monkeypatch.setenv("RESCUE_KEY_PASSPHRASE", "sesame")
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(encrypted_key)
    assert str(err.value) == (
        f"reading signing key {encrypted_key}: decrypting the key needs the `bcrypt` Python "
        "module, which is not installed; install it, or remove the passphrase with "
        f"`ssh-keygen -p -f {encrypted_key}`"
    )


def test_encrypted_key_with_wrong_passphrase_names_where_it_came_from(
    encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
):
    pytest.importorskip("bcrypt")
    monkeypatch.setenv("RESCUE_KEY_PASSPHRASE", "wrong")
    with pytest.raises(NotReadyError) as err:
        sshkey.load_private_key(encrypted_key)
    assert str(err.value) == (
        f"reading signing key {encrypted_key}: the passphrase in RESCUE_KEY_PASSPHRASE is wrong"
    )
    with pytest.raises(NotReadyError, match="the given passphrase is wrong"):
        sshkey.load_private_key(encrypted_key, b"also wrong")
    assert isinstance(sshkey.load_private_key(encrypted_key, b"sesame"), Ed25519PrivateKey)


def test_passphrase_env_does_not_break_an_unencrypted_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RESCUE_KEY_PASSPHRASE", "for-another-key")
    pub = sshkey.generate_keypair(tmp_path / "k", "c")
    assert sshkey.public_key_of(sshkey.load_private_key(tmp_path / "k")) == pub


# --- public keys -----------------------------------------------------------------------------


def test_key_id_is_sha256_of_the_wire_blob_without_padding():
    key = PublicKey(bytes(range(32)), "c")
    assert key.wire_blob() == ssh_string("ssh-ed25519") + ssh_string(bytes(range(32)))
    assert key.key_id.startswith("SHA256:") and not key.key_id.endswith("=")
    assert len(key.key_id) == len("SHA256:") + 43
    assert key.describe() == f"{key.key_id} (c)"
    assert PublicKey(bytes(range(32))).describe() == key.key_id


def test_keys_are_equal_by_key_bytes_whatever_their_comment():
    assert PublicKey(b"k" * 32, "alice") == PublicKey(b"k" * 32, "bob")
    assert PublicKey(b"k" * 32) != PublicKey(b"j" * 32)


def test_public_line_roundtrips_with_a_comment_holding_spaces():
    key = PublicKey(b"\x01" * 32, "Alice Builder <alice@example.org>")
    parsed = sshkey.parse_public_line("  " + key.openssh_line() + "\n")
    assert parsed == key and parsed.comment == key.comment
    assert sshkey.parse_public_line(PublicKey(b"\x01" * 32).openssh_line()).comment == ""


def test_public_line_without_key_shows_the_expected_shape():
    with pytest.raises(NotReadyError) as err:
        sshkey.parse_public_line("ssh-ed25519")
    assert str(err.value) == (
        "parsing public key 'ssh-ed25519': expected 'ssh-ed25519 AAAA... [comment]' "
        "(the one line of a .pub file)"
    )


def test_rsa_public_line_is_refused_naming_its_type():
    with pytest.raises(NotReadyError) as err:
        sshkey.parse_public_line("ssh-rsa AAAAB3NzaC1yc2E= me")
    assert str(err.value) == (
        "parsing public key 'ssh-rsa AAAAB3NzaC1yc2E= me': key type 'ssh-rsa' is not "
        "supported (rescue uses ssh-ed25519 only)"
    )


def test_cut_public_line_says_base64_is_corrupt():
    line = PublicKey(b"\x02" * 32).openssh_line()[:-3]
    with pytest.raises(NotReadyError, match=r"the key's base64 text is corrupt \(was the line cut"):
        sshkey.parse_public_line(line)


def test_blob_claiming_another_type_than_its_line_is_refused():
    blob = ssh_string("ssh-rsa") + ssh_string(b"\x00" * 32)
    with pytest.raises(NotReadyError, match="key type 'ssh-rsa' is not supported"):
        sshkey.parse_public_line(f"ssh-ed25519 {b64(blob)}")


def test_short_key_in_blob_is_refused():
    blob = ssh_string("ssh-ed25519") + ssh_string(b"\x00" * 31)
    with pytest.raises(NotReadyError, match="ed25519 public key is 31 bytes, expected 32"):
        sshkey.parse_public_line(f"ssh-ed25519 {b64(blob)}")


def test_trailing_bytes_after_the_key_are_refused():
    blob = PublicKey(b"\x03" * 32).wire_blob() + b"x"
    with pytest.raises(NotReadyError, match="1 unexpected trailing bytes after the public key"):
        sshkey.parse_public_line(f"ssh-ed25519 {b64(blob)}")


def test_length_field_past_the_end_of_the_blob_is_refused():
    blob = ssh_string("ssh-ed25519") + struct.pack(">I", 2**32 - 1) + b"\x00" * 32
    with pytest.raises(NotReadyError) as err:
        sshkey.parse_public_line(f"ssh-ed25519 {b64(blob)}")
    assert str(err.value).endswith(
        "ed25519 public key: needs 4294967295 bytes but only 32 are left in the buffer"
    )


def test_overlong_public_line_is_refused_before_decoding():
    with pytest.raises(NotReadyError, match="characters is too long for a key line"):
        sshkey.parse_public_line("ssh-ed25519 " + "A" * 10_000)
