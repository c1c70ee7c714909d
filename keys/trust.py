"""The installer's trust policy: is this manifest signed by a key the trust store allows, now?"""

from __future__ import annotations

from datetime import datetime
from typing import List, Sequence

from keys import sshsig
from keys.allowed_signers import AllowedSigner, store_line, store_name
from keys.sshsig import NAMESPACE
from manifests.errors import TrustError

_DOING = "verifying bundle signature"
# Said where the signature is checked, which is most often the isolated host: its rescue.pyz
# has no `keys` command, so the way out is a store passed in, or a pyz built with the key.
_ADD_KEY_HINT = (
    "ask the bundle's builder for their public key and pass an allowed_signers file that "
    "lists it with --trust FILE, or use a rescue.pyz built with it (`rescue zipapp --trust "
    "FILE` on the connected host)"
)


def known_keys(signers: Sequence[AllowedSigner]) -> str:
    """What a store trusts, for a message: "it trusts KEY (principals, comment); ..." """
    if not signers:
        return "it is empty"
    shown = [s.describe() for s in signers[:5]]
    more = f" and {len(signers) - 5} more" if len(signers) > 5 else ""
    return "it trusts " + "; ".join(shown) + more


def verify_manifest_signature(
    armored_sig: bytes,
    manifest: bytes,
    signers: Sequence[AllowedSigner],
    now: datetime,
    namespace: str = NAMESPACE,
    trust_source: str = "allowed_signers",
) -> AllowedSigner:
    """Return the trust-store entry whose key made this signature over the manifest.

    Raises TrustError naming the key and what to do when the key is unknown, not allowed the
    namespace, outside its validity window, or when the signature does not match."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # a caller bug, not an attack
    try:
        signature = sshsig.parse(armored_sig)
    except TrustError as e:
        raise TrustError(f"{_DOING}: {e}") from None
    key = signature.public_key
    if signature.namespace != namespace:
        raise TrustError(
            f"{_DOING}: signature by key {key.key_id} was made for namespace "
            f"{signature.namespace!r}, not {namespace!r} (it signs something other than a "
            "bundle manifest)"
        )
    candidates: List[AllowedSigner] = [s for s in signers if s.public_key == key]
    if not candidates:
        raise TrustError(
            f"{_DOING}: signed by key {key.key_id}, which is not in "
            f"{store_name(trust_source)} ({known_keys(signers)}); {_ADD_KEY_HINT}"
        )
    if not sshsig.check(signature, manifest):
        raise TrustError(
            f"{_DOING}: signature by {candidates[0].describe()} does not match the manifest "
            "(the manifest was edited after signing, or the signature belongs to another bundle)"
        )
    # The same key may sit on several lines (say, before and after a rotation date): any line
    # that allows this namespace now is enough; otherwise report the first line's problem.
    problems: List[str] = []
    for signer in candidates:
        where = store_line(trust_source, signer.line)
        if not signer.permits_namespace(namespace):
            allowed = ",".join(signer.namespaces or ())
            problems.append(
                f"key {signer.describe()} may not sign namespace {namespace!r} "
                f"(allowed: {allowed!r}, {where}); add {namespace} to its namespaces= option"
            )
        elif signer.valid_after is not None and now < signer.valid_after:
            problems.append(
                f"key {signer.describe()} is not valid until "
                f"{signer.valid_after.isoformat()} ({where}, now is {now.isoformat()}); "
                "check this machine's clock"
            )
        elif signer.valid_before is not None and now > signer.valid_before:
            problems.append(
                f"key {signer.describe()} expired at {signer.valid_before.isoformat()} "
                f"({where}, now is {now.isoformat()}); get a bundle signed with the "
                "builder's current key, or check this machine's clock"
            )
        else:
            return signer
    raise TrustError(f"{_DOING}: {problems[0]}")
