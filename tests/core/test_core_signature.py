"""Threat: a manifest the trusted keys did not sign (changed after signing, another key, a
signature for something else) is refused before a byte of it is believed."""

from __future__ import annotations

import pytest

from keys import sshsig
from keys.trust_core import verify_header
from manifests.errors import TrustError
from manifests.model import SIGNATURE_NAME
from tests.core.conftest import NOW, Headers
from tests.support import tamper


def test_signed_header_is_verified(headers: Headers) -> None:
    v = verify_header(headers.members(), headers.signers, NOW, "store")
    assert v.manifest.name == "core" and v.signer.public_key.key_id == headers.signing.key_id


def test_manifest_changed_after_signing_is_refused(headers: Headers) -> None:
    members = headers.members(edit=lambda b: b.replace(b'"sequence":1', b'"sequence":9'))
    with pytest.raises(TrustError, match="signature"):
        verify_header(members, headers.signers, NOW, "store")


def test_flipped_signature_byte_is_refused(headers: Headers) -> None:
    members = headers.members()
    sig = members[SIGNATURE_NAME]
    members[SIGNATURE_NAME] = sig[:60] + bytes([sig[60] ^ 1]) + sig[61:]
    with pytest.raises(TrustError):
        verify_header(members, headers.signers, NOW, "store")


def test_untrusted_key_is_named_with_the_store(headers: Headers, tmp_path) -> None:
    other = tamper.resign(tamper.canonical(headers.doc()), _other_key(tmp_path))
    members = {**headers.members(), SIGNATURE_NAME: other}
    with pytest.raises(TrustError, match="which is not in the trust store store"):
        verify_header(members, headers.signers, NOW, "store")


def test_signature_for_another_namespace_is_refused(headers: Headers) -> None:
    members = headers.members(namespace="file")
    with pytest.raises(TrustError, match="was made for namespace 'file', not "
                                         f"'{sshsig.NAMESPACE}'"):
        verify_header(members, headers.signers, NOW, "store")


def _other_key(tmp_path):
    from tests.support import bundles

    return bundles.make_signing(tmp_path, "intruder").key
