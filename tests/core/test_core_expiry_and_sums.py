"""Threats: a stale bundle kept back and delivered late; a header whose SHA256SUMS or member set
does not match the signed manifest (two lists that could be read two ways)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keys.trust_core import verify_header
from manifests.errors import TrustError
from manifests.model import SIGNATURE_NAME, SUMS_NAME
from tests.core.conftest import NOW, Headers


def test_expired_bundle_is_refused_with_the_date_and_the_fix(headers: Headers) -> None:
    members = headers.members(headers.doc(expires="2026-05-31T00:00:00Z"))
    with pytest.raises(TrustError, match="it expired on 2026-05-31T00:00:00Z; stale bundles "
                                         "are refused. Build a fresh bundle"):
        verify_header(members, headers.signers, NOW, "s")
    verify_header(members, headers.signers, NOW - timedelta(days=2), "s")


def test_sums_that_disagree_with_the_manifest_are_refused(headers: Headers) -> None:
    members = headers.members()
    members[SUMS_NAME] = members[SUMS_NAME].replace(b"a", b"b", 1)
    with pytest.raises(TrustError, match="SHA256SUMS does not match the signed manifest"):
        verify_header(members, headers.signers, NOW, "s")


def test_header_without_its_signature_or_with_an_extra_member_is_refused(
        headers: Headers) -> None:
    members = headers.members()
    del members[SIGNATURE_NAME]
    with pytest.raises(TrustError, match="missing: manifest.sig"):
        verify_header(members, headers.signers, NOW, "s")
    with pytest.raises(TrustError, match="its header must be manifest.json, manifest.sig, "
                                         "SHA256SUMS and at most 15 co-signatures"):
        verify_header({**headers.members(), "extra": b""}, headers.signers, NOW, "s")


def test_duplicate_keys_in_the_signed_manifest_are_refused(headers: Headers) -> None:
    doc = headers.doc(sequence=1)
    members = headers.members(doc)
    # Signed as is: a manifest whose text two parsers could read two ways.
    from tests.support import tamper

    forged = tamper.canonical(doc).replace(b'"sequence":1', b'"sequence":1,"sequence":7')
    from keys import sshkey, sshsig

    key = sshkey.load_private_key(headers.signing.key)
    members.update({"manifest.json": forged,
                    SIGNATURE_NAME: sshsig.sign(key, forged).encode()})
    with pytest.raises(TrustError, match="duplicate"):
        verify_header(members, headers.signers, NOW, "s")
