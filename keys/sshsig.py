"""SSHSIG signatures (`ssh-keygen -Y sign`, PROTOCOL.sshsig) over ed25519: sign, parse, verify."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys.sshkey import (
    KEY_TYPE,
    PublicKey,
    WireError,
    WireReader,
    public_key_from_blob,
    public_key_of,
    ssh_string,
)
from manifests.errors import TrustError
from manifests.limits import DEFAULT_LIMITS

NAMESPACE = "rescue-manifest"
MAGIC = b"SSHSIG"
VERSION = 1
HASH_ALGORITHM = "sha512"  # what `ssh-keygen -Y sign` uses by default
_HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}  # the two PROTOCOL.sshsig allows
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_WRAP = 70  # ssh-keygen's column width


@dataclass(frozen=True)
class Signature:
    """A parsed (not yet verified) SSH signature."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    raw: bytes  # the 64-byte ed25519 signature
    reserved: bytes = b""


def _signed_data(namespace: str, reserved: bytes, hash_algorithm: str, data: bytes) -> bytes:
    digest = _HASHES[hash_algorithm](data).digest()
    return (
        MAGIC
        + ssh_string(namespace)
        + ssh_string(reserved)
        + ssh_string(hash_algorithm)
        + ssh_string(digest)
    )


def sign(private_key: Ed25519PrivateKey, data: bytes, namespace: str = NAMESPACE) -> str:
    """Sign data the way `ssh-keygen -Y sign -n NAMESPACE` does; returns the armored text."""
    if not namespace:
        raise ValueError("an SSH signature needs a namespace")
    raw = private_key.sign(_signed_data(namespace, b"", HASH_ALGORITHM, data))
    blob = (
        MAGIC
        + struct.pack(">I", VERSION)
        + ssh_string(public_key_of(private_key).wire_blob())
        + ssh_string(namespace)
        + ssh_string(b"")
        + ssh_string(HASH_ALGORITHM)
        + ssh_string(ssh_string(KEY_TYPE) + ssh_string(raw))
    )
    text = base64.b64encode(blob).decode("ascii")
    lines = [text[i : i + _WRAP] for i in range(0, len(text), _WRAP)]
    return "\n".join([_BEGIN, *lines, _END, ""])


def _dearmor(armored: Union[str, bytes], max_bytes: int) -> bytes:
    if len(armored) > max_bytes:
        raise WireError(f"{len(armored)} bytes is more than the {max_bytes} a signature may have")
    if isinstance(armored, bytes):
        try:
            armored = armored.decode("ascii")
        except UnicodeDecodeError:
            raise WireError("not text: an armored signature is ASCII") from None
    text = armored.strip()
    if not text.startswith(_BEGIN):
        raise WireError(f"does not start with {_BEGIN}")
    if not text.endswith(_END):
        raise WireError(f"does not end with {_END}")
    inner = "".join(text[len(_BEGIN) : -len(_END)].split())
    try:
        return base64.b64decode(inner, validate=True)
    except binascii.Error:
        raise WireError("the base64 between the armor lines is corrupt") from None


def _parse_blob(blob: bytes) -> Signature:
    reader = WireReader(blob)
    if reader.take(len(MAGIC), "magic") != MAGIC:
        raise WireError("wrong magic: not an SSHSIG signature")
    version = reader.uint32("version")
    if version != VERSION:
        raise WireError(f"signature format version {version} is not supported (only {VERSION})")
    public_key = public_key_from_blob(reader.string("public key"))
    namespace = reader.text("namespace")
    reserved = reader.string("reserved field")
    hash_algorithm = reader.text("hash algorithm")
    if hash_algorithm not in _HASHES:
        raise WireError(f"hash algorithm {hash_algorithm!r} is not one of sha512, sha256")
    inner = WireReader(reader.string("signature"))
    reader.done("the signature")
    sig_type = inner.text("signature type")
    if sig_type != KEY_TYPE:
        raise WireError(f"signature type {sig_type!r} does not match key type {KEY_TYPE}")
    raw = inner.string("ed25519 signature")
    if len(raw) != 64:
        raise WireError(f"ed25519 signature is {len(raw)} bytes, expected 64")
    inner.done("the ed25519 signature")
    return Signature(public_key, namespace, hash_algorithm, raw, reserved)


def parse(armored: Union[str, bytes], max_bytes: int = DEFAULT_LIMITS.signature_bytes) -> Signature:
    """Parse an armored SSH signature from untrusted input; raises TrustError when malformed."""
    try:
        return _parse_blob(_dearmor(armored, max_bytes))
    except WireError as e:
        raise TrustError(f"parsing SSH signature: {e}") from None


def check(signature: Signature, data: bytes) -> bool:
    """True when the signature's key signed these data under the signature's own namespace."""
    signed = _signed_data(signature.namespace, signature.reserved, signature.hash_algorithm, data)
    try:
        Ed25519PublicKey.from_public_bytes(signature.public_key.raw).verify(signature.raw, signed)
    except InvalidSignature:
        return False
    return True


def verify(armored: Union[str, bytes], data: bytes, namespace: str = NAMESPACE) -> PublicKey:
    """Verify a signature over data in a namespace; returns the signing key. Trust is not checked:
    any key verifies here, the caller decides whether it trusts it (see keys.trust)."""
    signature = parse(armored)
    if signature.namespace != namespace:
        raise TrustError(
            f"verifying SSH signature by key {signature.public_key.key_id}: it was made for "
            f"namespace {signature.namespace!r}, not {namespace!r}"
        )
    if not check(signature, data):
        raise TrustError(
            f"verifying SSH signature by key {signature.public_key.key_id}: "
            "the signature does not match the data"
        )
    return signature.public_key
