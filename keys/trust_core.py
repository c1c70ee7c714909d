"""The trust decision, bytes in: a bundle's header members, the trusted signers, the clock and
what is installed give a verified header, or a TrustError saying why not. No file or tar I/O
here, so every threat against it is tested in milliseconds (tests/core/)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional

from keys import trust
from keys.allowed_signers import AllowedSigner
from manifests.errors import TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.model import (
    HEADER_NAMES,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    Manifest,
    parse_manifest,
    sums_text,
)


@dataclass(frozen=True)
class Verified:
    """A bundle header whose signature, expiry and consistency checked out."""

    manifest: Manifest
    manifest_bytes: bytes
    manifest_sha256: str
    signer: AllowedSigner
    signature: bytes = b""  # manifest.sig as carried: kept so `verify` can check it again


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise TrustError(f"reading manifest: time {text!r} is not RFC 3339 UTC") from None


def verify_header(members: Mapping[str, bytes], signers: List[AllowedSigner], now: datetime,
                  trust_source: str, installed: Optional[Mapping[str, Any]] = None,
                  limits: Limits = DEFAULT_LIMITS, where: str = "bundle") -> Verified:
    """Signature first (nothing of the manifest is believed before it), then the manifest's
    own rules, SHA256SUMS, expiry, and with `installed` (P/state's record) replay."""
    missing = [n for n in HEADER_NAMES if n not in members]
    if missing or len(members) != len(HEADER_NAMES):
        raise TrustError(f"reading {where}: its header must be exactly {', '.join(HEADER_NAMES)}"
                         f" (missing: {', '.join(missing) or 'none'})", tampering=True)
    manifest_bytes = members[MANIFEST_NAME]
    signer = trust.verify_manifest_signature(members[SIGNATURE_NAME], manifest_bytes, signers,
                                             now, trust_source=trust_source)
    manifest = parse_manifest(manifest_bytes, limits)
    if members[SUMS_NAME] != sums_text(manifest):
        raise TrustError(f"reading {where}: SHA256SUMS does not match the signed manifest",
                         tampering=True)
    if now > parse_time(manifest.expires):
        raise TrustError(
            f"checking bundle {manifest.name} #{manifest.sequence}: it expired on "
            f"{manifest.expires}; stale bundles are refused. Build a fresh bundle on the "
            "connected host (bundle.expires / bundle.valid_days in the spec)")
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if installed is not None:
        check_replay(installed, manifest.channel, manifest.sequence, manifest.name, digest)
    return Verified(manifest, manifest_bytes, digest, signer, members[SIGNATURE_NAME])


def check_replay(installed: Mapping[str, Any], channel: str, sequence: int, name: str,
                 manifest_sha256: str) -> None:
    """Refuse a bundle older than one already installed on its channel (a replay), and another
    bundle under the sequence number already installed (only the identical one may come again).
    """
    channels = installed.get("channels", {})
    newest = channels.get(channel, 0)
    if channel in channels and sequence == newest and not any(
            b.get("channel") == channel and b.get("sequence") == sequence
            and b.get("manifest_sha256") == manifest_sha256
            for b in installed.get("bundles", [])):
        raise TrustError(
            f"checking bundle {name} #{sequence}: channel {channel!r} already installed another "
            f"bundle with sequence {sequence} here (its manifest differs); two bundles under one "
            "sequence number are refused, since either could be a forgery or a replay. Build "
            f"the bundle again with a sequence above {newest}.")
    if sequence < newest:
        raise TrustError(
            f"checking bundle {name} #{sequence}: channel {channel!r} already installed "
            f"sequence {newest} here; installing an older bundle over a newer one is refused "
            "(it could replay a known-bad release). To go back to an older toolchain, build "
            f"a bundle of it on channel {channel!r} with a sequence above {newest}.")
