"""Signed notes (golang.org/x/mod/sumdb/note): verifier keys, and opening a note with one key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import List, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.pycompat import isascii

_ALG_ED25519 = 1
SIG_PREFIX = "\u2014 "  # an em dash and a space open every signature line
_MAX_SIGNATURES = 100  # x/mod refuses a note with more signature lines than this


class NoteError(ValueError):
    """A verifier key or note that x/mod would refuse; the text is x/mod's own wording."""


@dataclass(frozen=True)
class Verifier:
    """One checksum database key: `<name>+<hex8 key hash>+<base64(0x01 || ed25519 key)>`."""

    name: str
    key_hash: int
    public_key: bytes  # the 32 raw Ed25519 bytes
    text: str  # the key as written, for messages and GOSUMDB

    @property
    def id(self) -> str:
        return f"{self.name}+{self.key_hash:08x}"

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, msg)
        except InvalidSignature:
            return False
        return True


def key_hash(name: str, key: bytes) -> int:
    """The first 4 bytes, big-endian, of sha256(name + "\\n" + key), key with its algorithm byte."""
    return struct.unpack(">I", hashlib.sha256(name.encode() + b"\n" + key).digest()[:4])[0]


def valid_name(name: str) -> bool:
    return name != "" and "+" not in name and not any(c.isspace() for c in name)


def _b64(text: str) -> bytes:
    # Go's StdEncoding: padded, no whitespace, nothing outside the alphabet.
    if not isascii(text) or any(c.isspace() for c in text):
        raise binascii.Error("not base64")
    return base64.b64decode(text, validate=True)


def parse_verifier(vkey: str, limits: Limits = DEFAULT_LIMITS) -> Verifier:
    """A verifier key, refused the way x/mod's NewVerifier refuses it."""
    if len(vkey) > limits.sumdb_key_chars:
        raise NoteError("malformed verifier id")
    name, _, rest = vkey.partition("+")
    hash16, _, key64 = rest.partition("+")
    try:
        key = _b64(key64)
        if len(hash16) != 8 or not all(c in "0123456789abcdefABCDEF" for c in hash16):
            raise ValueError
        want = int(hash16, 16)
    except (ValueError, binascii.Error):
        raise NoteError("malformed verifier id") from None
    if not valid_name(name) or not key:
        raise NoteError("malformed verifier id")
    if want != key_hash(name, key):
        raise NoteError("invalid verifier hash")
    if key[0] != _ALG_ED25519:
        raise NoteError("unknown verifier algorithm")
    if len(key) != 33:
        raise NoteError("malformed verifier id")
    return Verifier(name, want, key[1:], vkey)


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key text for a raw Ed25519 public key (note.NewEd25519VerifierKey)."""
    key = bytes([_ALG_ED25519]) + public_key
    return f"{name}+{key_hash(name, key):08x}+{base64.b64encode(key).decode()}"


def signature_line(name: str, khash: int, sig: bytes) -> str:
    return f"{SIG_PREFIX}{name} {base64.b64encode(struct.pack('>I', khash) + sig).decode()}\n"


def _check_chars(msg: bytes) -> str:
    try:
        text = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("malformed note") from None
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("malformed note")
    return text


def _signature_lines(sigs: str) -> List[Tuple[str, int, bytes]]:
    out = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise NoteError("malformed note")
        name, _, b64 = line[len(SIG_PREFIX):].partition(" ")
        try:
            sig = _b64(b64)
        except binascii.Error:
            raise NoteError("malformed note") from None
        if not valid_name(name) or b64 == "" or len(sig) < 5:
            raise NoteError("malformed note")
        out.append((name, struct.unpack(">I", sig[:4])[0], sig[4:]))
        if len(out) > _MAX_SIGNATURES:
            raise NoteError("malformed note")
    return out


def open_note(msg: bytes, verifier: Verifier, limits: Limits = DEFAULT_LIMITS) -> str:
    """The text of a note that `verifier` signed (note.Open with a list of one key).

    Signatures by other keys are skipped, as Go skips them; a bad signature by our key, or no
    signature by it at all, is refused.
    """
    if len(msg) > limits.sumdb_note_bytes:
        raise NoteError(f"note too large ({len(msg)} bytes; limit {limits.sumdb_note_bytes})")
    whole = _check_chars(msg)
    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note")
    text, sigs = whole[:split + 1], whole[split + 2:]
    if not sigs.endswith("\n"):
        raise NoteError("malformed note")
    others = []
    for name, khash, sig in _signature_lines(sigs):  # every line is parsed before any is trusted
        if (name, khash) != (verifier.name, verifier.key_hash):
            others.append(f"{name}+{khash:08x}")
            continue
        # Go checks the first line by our key and skips later copies of it.
        if not verifier.verify(text.encode("utf-8"), sig):
            raise NoteError(f"invalid signature for key {verifier.id}")
        return text
    seen = ", ".join(dict.fromkeys(others)) or "none"
    raise NoteError(f"note has no verifiable signatures (signed by {seen}; want {verifier.id})")
