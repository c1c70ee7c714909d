"""Threat: an old bundle replayed (a known-bad release), or a second bundle under a sequence
number already installed (one of them a forgery)."""

from __future__ import annotations

import hashlib

import pytest

from keys.trust_core import check_replay, verify_header
from manifests.errors import TrustError
from manifests.model import MANIFEST_NAME
from tests.core.conftest import NOW, Headers


def _installed(members, channel="stable", sequence=3):
    sha = hashlib.sha256(members[MANIFEST_NAME]).hexdigest()
    return {"channels": {channel: sequence},
            "bundles": [{"channel": channel, "sequence": sequence, "manifest_sha256": sha}]}


def test_lower_sequence_is_a_replay(headers: Headers) -> None:
    installed = {"channels": {"stable": 3}, "bundles": []}
    with pytest.raises(TrustError, match="already installed sequence 3 here; installing an "
                                         "older bundle over a newer one is refused"):
        verify_header(headers.members(), headers.signers, NOW, "s", installed=installed)


def test_same_sequence_with_other_content_is_refused(headers: Headers) -> None:
    first = headers.members(headers.doc(sequence=3))
    second = headers.members(headers.doc(sequence=3, name="other"))
    with pytest.raises(TrustError, match="already installed another bundle with sequence 3"):
        verify_header(second, headers.signers, NOW, "s", installed=_installed(first))


def test_the_identical_bundle_may_come_again_and_a_newer_one_passes(headers: Headers) -> None:
    same = headers.members(headers.doc(sequence=3))
    verify_header(same, headers.signers, NOW, "s", installed=_installed(same))
    newer = headers.members(headers.doc(sequence=4))
    verify_header(newer, headers.signers, NOW, "s", installed=_installed(same))


def test_channels_do_not_replay_each_other() -> None:
    check_replay({"channels": {"beta": 9}, "bundles": []}, "stable", 1, "x", "0" * 64)
