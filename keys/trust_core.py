"""The trust decision, bytes in: a bundle's header members, the trusted signers, the clock and
what is installed give a verified header, or a TrustError saying why not. No file or tar I/O
here, so every threat against it is tested in milliseconds (tests/core/)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from keys import allowed_signers, trust
from keys.allowed_signers import AllowedSigner
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.model import (
    HEADER_NAMES,
    MANIFEST_NAME,
    MAX_SIGNATURES,
    SIGNATURE_NAME,
    SUMS_NAME,
    Manifest,
    cosignature_name,
    parse_manifest,
    sums_text,
)


@dataclass(frozen=True)
class Verified:
    """A bundle header whose signatures, expiry and consistency checked out."""

    manifest: Manifest
    manifest_bytes: bytes
    manifest_sha256: str
    signer: AllowedSigner  # the first trusted signature's
    signature: bytes = b""  # manifest.sig as carried: kept so `verify` can check it again
    cosignatures: Tuple[bytes, ...] = ()  # manifest.sig.2 ... as carried
    signers: Tuple[AllowedSigner, ...] = ()  # every distinct trusted key that signed
    needed: int = 1  # the trust store's threshold for this channel
    adopt_policy: str = ""  # a newer trust store the bundle carries, signed by both: adopt it
    policy_version: int = 0


    def kept_signatures(self) -> bytes:
        """Every signature as one text, the way P/state keeps it for `verify`."""
        return b"\n".join((self.signature, *self.cosignatures))


def split_signatures(kept: bytes) -> List[bytes]:
    """The armored signatures of a kept text (one, or several joined by kept_signatures)."""
    end = b"-----END SSH SIGNATURE-----"
    parts = [p.strip() + b"\n" + end + b"\n" for p in kept.split(end) if p.strip()]
    return parts or [kept]


def required(signers: Sequence[AllowedSigner], channel: str) -> int:
    """How many distinct trusted keys must sign a bundle of `channel` (1 for a plain list)."""
    threshold = getattr(signers, "threshold", None)
    return threshold(channel) if threshold is not None else 1


def signed_by(signatures: Sequence[bytes], manifest_bytes: bytes,
              signers: Sequence[AllowedSigner], now: datetime, trust_source: str
              ) -> Tuple[List[AllowedSigner], List[TrustError]]:
    """The distinct trusted keys whose signature over `manifest_bytes` checks out, and why
    each other signature does not count (a key counts once however often it signed)."""
    valid: List[AllowedSigner] = []
    problems: List[TrustError] = []
    for sig in signatures:
        try:
            signer = trust.verify_manifest_signature(sig, manifest_bytes, list(signers), now,
                                                     trust_source=trust_source)
        except TrustError as exc:
            problems.append(exc)
            continue
        gone = getattr(signers, "revoked", {}).get(signer.public_key.key_id)
        if gone is not None:
            problems.append(TrustError(
                f"key {gone.key_id} was revoked on {gone.date}"
                + (f" ({gone.reason})" if gone.reason else "") + f" by {trust_source}; get a "
                "bundle signed by a current key"))
        elif any(v.public_key == signer.public_key for v in valid):
            problems.append(TrustError(f"key {signer.public_key.key_id} signed more than once "
                                       "(it counts once)"))
        else:
            valid.append(signer)
    return valid, problems


def check_threshold(manifest: Manifest, valid: Sequence[AllowedSigner],
                    problems: Sequence[TrustError], needed: int, trust_source: str) -> None:
    if len(valid) >= needed:
        return
    why = "; ".join(p.message.splitlines()[0] for p in problems)
    raise TrustError(
        f"checking bundle {manifest.name} #{manifest.sequence}: channel {manifest.channel!r} "
        f"needs signatures by {needed} distinct trusted keys ({trust_source}); it has "
        f"{len(valid)} ({', '.join(v.public_key.key_id for v in valid)})"
        + (f"; not counted: {why}" if why else "")
        + ". Have another trusted signer co-sign it: rescue sign BUNDLE --key KEY",
        operation="checking bundle", subject=f"{manifest.name} #{manifest.sequence}",
        expected=f"{needed} signatures", got=f"{len(valid)}")


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
    cosigs = [cosignature_name(n) for n in range(2, 2 + len(members) - len(HEADER_NAMES))]
    if missing or set(members) != set(HEADER_NAMES) | set(cosigs) \
            or len(cosigs) > MAX_SIGNATURES - 1:
        raise TrustError(f"reading {where}: its header must be {', '.join(HEADER_NAMES)} and "
                         f"at most {MAX_SIGNATURES - 1} co-signatures manifest.sig.2, .3, ... "
                         f"(missing: {', '.join(missing) or 'none'})", tampering=True)
    manifest_bytes = members[MANIFEST_NAME]
    signatures = [members[SIGNATURE_NAME]] + [members[n] for n in cosigs]
    manifest, valid, needed = signed_manifest(signatures, manifest_bytes, signers, now,
                                              trust_source, limits)
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
    adopt, version = new_policy(manifest, signatures, signers, now, trust_source)
    return Verified(manifest, manifest_bytes, digest, valid[0], members[SIGNATURE_NAME],
                    tuple(members[n] for n in cosigs), tuple(valid), needed, adopt, version)


def signed_manifest(signatures: Sequence[bytes], manifest_bytes: bytes,
                    signers: Sequence[AllowedSigner], now: datetime, trust_source: str,
                    limits: Limits = DEFAULT_LIMITS
                    ) -> Tuple[Manifest, List[AllowedSigner], int]:
    """The manifest, once enough distinct trusted keys signed it: (manifest, those signers,
    the threshold its channel needs). Nothing of it is parsed before one signature holds."""
    valid, problems = signed_by(signatures, manifest_bytes, signers, now, trust_source)
    if not valid:
        raise problems[0]  # nothing of the manifest is believed: the first reason, as it was
    manifest = parse_manifest(manifest_bytes, limits)
    needed = required(signers, manifest.channel)
    check_threshold(manifest, valid, problems, needed, trust_source)
    return manifest, valid, needed


def new_policy(manifest: Manifest, signatures: Sequence[bytes],
               signers: Sequence[AllowedSigner], now: datetime, trust_source: str
               ) -> Tuple[str, int]:
    """The trust store a bundle carries, to adopt: newer than the one in use and signed by
    the threshold of its own keys too (the current store's was checked already), so neither
    the old keys alone nor the new ones alone can rotate trust. ("", 0): nothing to adopt."""
    if not manifest.trust_policy:
        return "", 0
    what = f"bundle {manifest.name} #{manifest.sequence}"
    try:
        new = allowed_signers.parse(manifest.trust_policy, f"the trust policy in {what}")
    except NotReadyError as exc:
        raise TrustError(f"checking {what}: {exc.message}", tampering=True) from None
    current = getattr(signers, "version", 0)
    if new.version <= current:
        if new.version < current:
            raise TrustError(
                f"checking {what}: it carries trust policy version {new.version}, older than "
                f"version {current} in use ({trust_source}); an older policy could bring back "
                "removed keys. Build the bundle without it, or with a newer policy")
        return "", 0  # the policy in use already
    valid, problems = signed_by(signatures, manifest.to_json(), new, now,
                                f"the trust policy in {what}")
    needed = new.threshold(manifest.channel)
    if len(valid) < needed:
        raise TrustError(
            f"checking {what}: it carries trust policy version {new.version}, which must be "
            f"signed by {needed} of its own keys too; it has {len(valid)}"
            + (f" ({', '.join(v.public_key.key_id for v in valid)})" if valid else "")
            + ". Have the new key(s) co-sign it: rescue sign BUNDLE --key NEWKEY",
            operation="checking bundle", subject=what)
    return manifest.trust_policy, new.version


def check_replay(installed: Mapping[str, Any], channel: str, sequence: int, name: str,
                 manifest_sha256: str, way_back: str = "") -> None:
    """Refuse a bundle older than one already installed on its channel (a replay), and another
    bundle under the sequence number already installed (only the identical one may come again).
    `way_back`: what the operator can do instead of an older bundle, when the caller knows (its
    toolchain is still installed); else the advice is to build a newer bundle of it.
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
            "(it could replay a known-bad release). " + (way_back or "To go back to an older "
            f"toolchain, build a bundle of it on channel {channel!r} with a sequence above "
            f"{newest}."))
