"""keys.trust: the installer accepts a manifest only when a trusted, current key signed it."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import allowed_signers, sshkey, sshsig
from keys.sshkey import PublicKey
from keys.trust import verify_manifest_signature
from manifests.errors import TrustError
from tests.support import sshkeygen

UTC = timezone.utc
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MANIFEST = b'{"name": "go-emergency", "channel": "stable", "sequence": 42}\n'
STORE = "/etc/rescue/allowed_signers"
ADD_KEY_HINT = (
    "ask the bundle's builder for their public key and pass an allowed_signers file that "
    "lists it with --trust FILE, or use a rescue.pyz built with it (`rescue zipapp --trust "
    "FILE` on the connected host)"
)


@pytest.fixture
def builder() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def store_for(key: Ed25519PrivateKey, options: str = "", principal: str = "builder@ci"):
    pub = sshkey.public_key_of(key, "ci key")
    return allowed_signers.parse(f"{principal} {options} {pub.openssh_line()}\n".replace("  ", " "))


def verify(sig, signers, now=NOW, manifest=MANIFEST, **kw):
    sig = sig.encode() if isinstance(sig, str) else sig
    return verify_manifest_signature(sig, manifest, signers, now, trust_source=STORE, **kw)


def refusal(*args, **kw) -> str:
    with pytest.raises(TrustError) as err:
        verify(*args, **kw)
    return str(err.value)


def test_manifest_signed_by_trusted_key_is_accepted_and_names_the_signer(builder):
    signers = store_for(builder, 'namespaces="rescue-manifest"')
    signer = verify(sshsig.sign(builder, MANIFEST), signers)
    assert signer is signers[0] and signer.principals == ("builder@ci",)


def test_signature_by_untrusted_key_is_refused_naming_its_key_id(builder):
    stranger = Ed25519PrivateKey.generate()
    signers = store_for(builder)
    assert refusal(sshsig.sign(stranger, MANIFEST), signers) == (
        "verifying bundle signature: signed by key "
        f"{sshkey.public_key_of(stranger).key_id}, which is not in the trust store {STORE} "
        f"(it trusts {signers[0].public_key.key_id} (builder@ci, ci key)); {ADD_KEY_HINT}"
    )


def test_empty_trust_store_refuses_every_bundle_and_says_it_is_empty(builder):
    assert refusal(sshsig.sign(builder, MANIFEST), []) == (
        f"verifying bundle signature: signed by key {sshkey.public_key_of(builder).key_id}, "
        f"which is not in the trust store {STORE} (it is empty); {ADD_KEY_HINT}"
    )


def test_untrusted_key_message_lists_at_most_five_trusted_keys(builder):
    others = [store_for(Ed25519PrivateKey.generate(), principal=f"p{i}")[0] for i in range(7)]
    message = refusal(sshsig.sign(builder, MANIFEST), others)
    assert message.count("SHA256:") == 6 and " and 2 more); " in message


def test_manifest_edited_after_signing_is_refused(builder):
    signers = store_for(builder)
    edited = MANIFEST.replace(b"42", b"43")
    assert refusal(sshsig.sign(builder, MANIFEST), signers, manifest=edited) == (
        f"verifying bundle signature: signature by {signers[0].describe()} does not match the "
        "manifest (the manifest was edited after signing, or the signature belongs to another "
        "bundle)"
    )


def test_signature_of_another_bundle_is_refused(builder):
    other_sig = sshsig.sign(builder, b'{"name": "other"}\n')
    assert "does not match the manifest" in refusal(other_sig, store_for(builder))


def test_signature_made_for_another_namespace_is_refused(builder):
    # A trusted key's git commit signature must not pass as a bundle signature.
    sig = sshsig.sign(builder, MANIFEST, namespace="git")
    assert refusal(sig, store_for(builder)) == (
        f"verifying bundle signature: signature by key {sshkey.public_key_of(builder).key_id} "
        "was made for namespace 'git', not 'rescue-manifest' (it signs something other than a "
        "bundle manifest)"
    )


def test_key_not_allowed_the_namespace_in_the_store_is_refused(builder):
    signers = store_for(builder, 'namespaces="git,file"')
    assert refusal(sshsig.sign(builder, MANIFEST), signers) == (
        f"verifying bundle signature: key {signers[0].describe()} may not sign namespace "
        f"'rescue-manifest' (allowed: 'git,file', {STORE}:1); add rescue-manifest to its "
        "namespaces= option"
    )


def test_key_not_yet_valid_is_refused(builder):
    signers = store_for(builder, 'valid-after="20250401Z"')
    assert refusal(sshsig.sign(builder, MANIFEST), signers) == (
        f"verifying bundle signature: key {signers[0].describe()} is not valid until "
        f"2025-04-01T00:00:00+00:00 ({STORE}:1, now is 2025-03-01T12:00:00+00:00); "
        "check this machine's clock"
    )


def test_expired_key_is_refused(builder):
    signers = store_for(builder, 'valid-before="20250201Z"')
    assert refusal(sshsig.sign(builder, MANIFEST), signers) == (
        f"verifying bundle signature: key {signers[0].describe()} expired at "
        f"2025-02-01T00:00:00+00:00 ({STORE}:1, now is 2025-03-01T12:00:00+00:00); get a "
        "bundle signed with the builder's current key, or check this machine's clock"
    )


def test_validity_window_bounds_are_inclusive_like_ssh_keygen(builder):
    signers = store_for(builder, 'valid-after="20250301Z",valid-before="20250302Z"')
    sig = sshsig.sign(builder, MANIFEST)
    assert verify(sig, signers, now=datetime(2025, 3, 1, tzinfo=UTC))
    assert verify(sig, signers, now=datetime(2025, 3, 2, tzinfo=UTC))
    with pytest.raises(TrustError, match="expired at"):
        verify(sig, signers, now=datetime(2025, 3, 2, tzinfo=UTC) + timedelta(seconds=1))


def test_same_key_on_an_expired_and_a_current_line_is_accepted_by_the_current_one(builder):
    pub = sshkey.public_key_of(builder)
    signers = allowed_signers.parse(
        f'old valid-before="20250101Z" {pub.openssh_line()}\n'
        f'new valid-after="20250101Z" {pub.openssh_line()}\n'
    )
    assert verify(sshsig.sign(builder, MANIFEST), signers).principals == ("new",)


def test_malformed_signature_is_refused_naming_the_parse_problem(builder):
    assert refusal(b"not a signature", store_for(builder)) == (
        "verifying bundle signature: parsing SSH signature: does not start with "
        "-----BEGIN SSH SIGNATURE-----"
    )


def test_oversized_signature_is_refused(builder):
    assert "more than the 65536 a signature may have" in refusal(b"x" * 70_000, store_for(builder))


def test_naive_clock_is_a_programmer_error_not_a_trust_failure(builder):
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(sshsig.sign(builder, MANIFEST), store_for(builder), now=datetime(2025, 3, 1))


def test_trust_is_by_key_bytes_not_by_comment_or_principal(builder):
    # A store line with the right comment but another key must not vouch for this signature.
    impostor = PublicKey(b"\x00" * 32, "ci key")
    signers = allowed_signers.parse(f"builder@ci {impostor.openssh_line()}\n")
    assert "which is not in the trust store" in refusal(sshsig.sign(builder, MANIFEST), signers)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="stock ssh-keygen not installed")
def test_bundle_signed_with_stock_ssh_keygen_passes_our_policy(tmp_path: Path):
    key_path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(key_path)],
        check=True,
        timeout=60,
    )
    (tmp_path / "manifest").write_bytes(MANIFEST)
    sshkeygen.sign(key_path, tmp_path / "manifest")
    store = tmp_path / "allowed_signers"
    allowed_signers.add_signer(store, "ops@example.org", (tmp_path / "id_ed25519.pub").read_text())
    signer = verify_manifest_signature(
        (tmp_path / "manifest.sig").read_bytes(),
        MANIFEST,
        allowed_signers.load(store),
        NOW,
        trust_source=str(store),
    )
    assert signer.principals == ("ops@example.org",) and signer.public_key.comment == "ops"
