"""OpenSSH ed25519 key files and public key lines: generate, load, parse, fingerprint."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS

KEY_TYPE = "ssh-ed25519"
PASSPHRASE_ENV = "RESCUE_KEY_PASSPHRASE"
# A key file is a few hundred bytes; anything far larger is not a key and is not read whole.

_PRIVATE_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_PRIVATE_END = "-----END OPENSSH PRIVATE KEY-----"
_PRIVATE_MAGIC = b"openssh-key-v1\0"
_GENERATE_HINT = "create one with `rescue keys generate` or `ssh-keygen -t ed25519`"


# --- SSH wire format (RFC 4251 §5), shared by the modules of keys/ ---------------------------


class WireError(ValueError):
    """A length-prefixed SSH structure is malformed; the message says where."""


def ssh_string(value: Union[bytes, str]) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return struct.pack(">I", len(value)) + value


class WireReader:
    """Reads SSH wire fields from untrusted bytes; every length is checked against the buffer."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise WireError(
                f"{what}: needs {n} bytes but only {self.remaining()} are left in the buffer"
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def uint32(self, what: str) -> int:
        (value,) = struct.unpack(">I", self.take(4, what))
        return value

    def string(self, what: str) -> bytes:
        return self.take(self.uint32(f"length of {what}"), what)

    def text(self, what: str) -> str:
        raw = self.string(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError(f"{what}: not valid UTF-8") from None

    def done(self, what: str) -> None:
        if self.remaining():
            raise WireError(f"{self.remaining()} unexpected trailing bytes after {what}")


# --- public keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """An ed25519 public key; two keys are equal when their key bytes are, whatever the comment."""

    raw: bytes
    comment: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError(f"an ed25519 public key is 32 bytes, got {len(self.raw)}")

    def wire_blob(self) -> bytes:
        return ssh_string(KEY_TYPE) + ssh_string(self.raw)

    @property
    def key_id(self) -> str:
        """The fingerprint `ssh-keygen -l` prints: SHA256 of the wire blob, unpadded base64."""
        digest = hashlib.sha256(self.wire_blob()).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def openssh_line(self) -> str:
        line = f"{KEY_TYPE} {base64.b64encode(self.wire_blob()).decode('ascii')}"
        return f"{line} {self.comment}" if self.comment else line

    def describe(self) -> str:
        """`SHA256:... (comment)`, the way messages name a key."""
        return f"{self.key_id} ({self.comment})" if self.comment else self.key_id


def public_key_from_blob(blob: bytes, comment: str = "") -> PublicKey:
    """Decode an SSH public key blob; raises WireError unless it is exactly one ed25519 key."""
    reader = WireReader(blob)
    key_type = reader.text("public key type")
    if key_type != KEY_TYPE:
        raise WireError(f"key type {key_type!r} is not supported (rescue uses {KEY_TYPE} only)")
    raw = reader.string("ed25519 public key")
    if len(raw) != 32:
        raise WireError(f"ed25519 public key is {len(raw)} bytes, expected 32")
    reader.done("the public key")
    return PublicKey(raw, comment)


def decode_public_key(key_type: str, b64: str, comment: str = "") -> PublicKey:
    """Decode the `keytype base64` pair of a public key line; raises WireError."""
    if key_type != KEY_TYPE:
        raise WireError(f"key type {key_type!r} is not supported (rescue uses {KEY_TYPE} only)")
    try:
        blob = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise WireError("the key's base64 text is corrupt (was the line cut or wrapped?)") from None
    return public_key_from_blob(blob, comment)


def parse_public_line(line: str) -> PublicKey:
    """Parse `ssh-ed25519 AAAA... [comment]`, the content of a `.pub` file."""
    shown = line.strip()
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if len(line) > DEFAULT_LIMITS.public_line_chars:
        raise NotReadyError(
            f"parsing public key {shown!r}: {len(line)} characters is too long for a key line"
        )
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise NotReadyError(
            f"parsing public key {shown!r}: expected '{KEY_TYPE} AAAA... [comment]' "
            "(the one line of a .pub file)"
        )
    comment = parts[2].strip() if len(parts) == 3 else ""
    try:
        return decode_public_key(parts[0], parts[1], comment)
    except WireError as e:
        raise NotReadyError(f"parsing public key {shown!r}: {e}") from None


def public_key_of(private: Ed25519PrivateKey, comment: str = "") -> PublicKey:
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return PublicKey(raw, comment)


# --- private key files -----------------------------------------------------------------------


def private_key_bytes(private: Ed25519PrivateKey, comment: str) -> bytes:
    """The unencrypted OpenSSH private key file, with its comment (cryptography drops it)."""
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = public_key_of(private)
    check = secrets.token_bytes(4)  # equal check-ints are how OpenSSH detects a wrong passphrase
    section = (
        check
        + check
        + ssh_string(KEY_TYPE)
        + ssh_string(public.raw)
        + ssh_string(seed + public.raw)
        + ssh_string(comment)
    )
    section += bytes(range(1, 1 + (-len(section) % 8)))  # pad to the 8-byte "none" cipher block
    body = (
        _PRIVATE_MAGIC
        + ssh_string("none")
        + ssh_string("none")
        + ssh_string(b"")
        + struct.pack(">I", 1)
        + ssh_string(public.wire_blob())
        + ssh_string(section)
    )
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join([_PRIVATE_BEGIN, *lines, _PRIVATE_END, ""]).encode("ascii")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL from the first byte: never truncate someone's key, never race a symlink into place.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        os.fchmod(fd, mode)  # a restrictive umask must not leave the key unreadable to its owner
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(private_path: Path, comment: str) -> PublicKey:
    """Write a new unencrypted ed25519 key (mode 0600) and its `.pub` line; never overwrite."""
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    if "\n" in comment or "\r" in comment:
        raise NotReadyError(f"generating key {private_path}: the comment must be one line")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise NotReadyError(
                f"generating key {private_path}: {path} already exists; refusing to overwrite "
                "a key (move it away or choose another path)"
            )
    if not private_path.parent.is_dir():
        raise NotReadyError(
            f"generating key {private_path}: directory {private_path.parent} does not exist"
        )
    private = Ed25519PrivateKey.generate()
    public = public_key_of(private, comment)
    try:
        _write_new(private_path, private_key_bytes(private, comment), 0o600)
    except FileExistsError:
        raise NotReadyError(
            f"generating key {private_path}: {private_path} already exists; refusing to overwrite "
            "a key (move it away or choose another path)"
        ) from None
    except OSError as e:
        raise NotReadyError(
            f"generating key {private_path}: writing {private_path}: {e.strerror}"
        ) from None
    try:
        _write_new(public_path, (public.openssh_line() + "\n").encode("utf-8"), 0o644)
    except OSError as e:
        os.unlink(private_path)  # half a key pair is worse than none
        raise NotReadyError(
            f"generating key {private_path}: writing {public_path}: {e.strerror}"
        ) from None
    return public


def _read_key_file(path: Path) -> bytes:
    doing = f"reading signing key {path}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise NotReadyError(f"{doing}: no such file; {_GENERATE_HINT}") from None
    except PermissionError:
        raise NotReadyError(f"{doing}: permission denied (is it owned by another user?)") from None
    except OSError as e:
        raise NotReadyError(f"{doing}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotReadyError(f"{doing}: not a regular file")
        # ssh refuses such keys too: a signing key others can read is a key others may hold.
        if os.name == "posix" and st.st_mode & 0o077:
            raise NotReadyError(
                f"{doing}: permissions {stat.S_IMODE(st.st_mode):04o} are too open; the key "
                f"must be readable by its owner only: run `chmod 600 {path}`"
            )
        data = os.read(fd, DEFAULT_LIMITS.key_file_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > DEFAULT_LIMITS.key_file_bytes:
        raise NotReadyError(f"{doing}: larger than {DEFAULT_LIMITS.key_file_bytes} bytes, "
                            "not a key file")
    return data


def _private_envelope(data: bytes, doing: str) -> tuple[str, str]:
    """Read the unencrypted header of an OpenSSH key file: (cipher name, key type)."""
    text = data.decode("ascii", errors="replace").strip()
    if text.startswith(KEY_TYPE + " ") or text.startswith("ssh-"):
        raise NotReadyError(
            f"{doing}: this is a public key; pass the private key file (the one without .pub)"
        )
    if not (text.startswith(_PRIVATE_BEGIN) and text.endswith(_PRIVATE_END)):
        raise NotReadyError(
            f"{doing}: not an OpenSSH private key (expected {_PRIVATE_BEGIN}); {_GENERATE_HINT}"
        )
    inner = text[len(_PRIVATE_BEGIN) : -len(_PRIVATE_END)]
    try:
        body = base64.b64decode("".join(inner.split()), validate=True)
        reader = WireReader(body)
        if reader.take(len(_PRIVATE_MAGIC), "magic") != _PRIVATE_MAGIC:
            raise WireError("wrong magic")
        cipher = reader.text("cipher name")
        reader.string("kdf name")
        reader.string("kdf options")
        if reader.uint32("key count") != 1:
            raise WireError("holds more than one key")
        key_type = WireReader(reader.string("public key")).text("key type")
    except (binascii.Error, WireError) as e:
        raise NotReadyError(f"{doing}: the key file is corrupt ({e})") from None
    return cipher, key_type


def load_private_key(path: Path, passphrase: Optional[bytes] = None,
                     prompt: Optional[Callable[[str], str]] = None) -> Ed25519PrivateKey:
    """Load an OpenSSH ed25519 private key.

    An encrypted key's passphrase is, in this order: `passphrase`, $RESCUE_KEY_PASSPHRASE (CI),
    or what `prompt` (a hidden terminal prompt, given by the CLI only on a terminal) returns.
    """
    doing = f"reading signing key {path}"
    data = _read_key_file(Path(path))
    cipher, key_type = _private_envelope(data, doing)
    if key_type != KEY_TYPE:
        raise NotReadyError(
            f"{doing}: it is a {key_type} key; rescue signs with {KEY_TYPE} keys only; "
            f"{_GENERATE_HINT}"
        )
    source = "the given passphrase"
    if cipher == "none":
        passphrase = None  # a passphrase set for other keys must not break an unencrypted one
    elif passphrase is None:
        env = os.environ.get(PASSPHRASE_ENV, "")
        if env:
            passphrase, source = env.encode("utf-8"), f"the passphrase in {PASSPHRASE_ENV}"
        elif prompt is not None:
            typed = prompt(f"Passphrase for signing key {path}")
            passphrase, source = typed.encode("utf-8"), "the passphrase typed at the prompt"
        else:
            raise NotReadyError(
                f"{doing}: the key is encrypted with a passphrase; set the {PASSPHRASE_ENV} "
                "environment variable to it, or run on a terminal to be asked for it"
            )
    try:
        key = serialization.load_ssh_private_key(data, passphrase)
    except UnsupportedAlgorithm:
        raise NotReadyError(
            f"{doing}: decrypting the key needs the `bcrypt` Python module, which is not "
            f"installed; install it, or remove the passphrase with `ssh-keygen -p -f {path}`"
        ) from None
    except ValueError as e:
        if "checksum" in str(e) and passphrase is not None:
            raise NotReadyError(f"{doing}: {source} is wrong") from None
        raise NotReadyError(f"{doing}: the key file is corrupt ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):  # the envelope said ed25519; trust, but check
        raise NotReadyError(f"{doing}: not an {KEY_TYPE} key")
    return key
