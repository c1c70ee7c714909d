"""Threat: a content member that is not what the signed manifest says: unlisted, another type,
size, link target or mode."""

from __future__ import annotations

import pytest

from manifests.errors import TrustError
from manifests.member_check import MemberHeader, check_member
from manifests.model import parse_manifest
from tests.core.conftest import Headers
from tests.support import tamper

ROOT = "toolchains/go1.21.13.linux-amd64/go"


@pytest.fixture(scope="module")
def manifest(headers: Headers):
    return parse_manifest(tamper.canonical(headers.doc()))


def test_member_as_listed_passes(manifest) -> None:
    m = check_member(MemberHeader(f"{ROOT}/src/a.go", "file", 10, 0o644), manifest)
    assert m.sha256 and m.size == 10


@pytest.mark.parametrize("header, message", [
    (MemberHeader("evil/../../x", "file", 1, 0o644),
     "verifying member 'evil/../../x': the bundle carries it but the signed manifest does not "
     "list it"),
    (MemberHeader(f"{ROOT}/src/a.go", "symlink", 0, 0o777, "/etc/passwd"),
     f"verifying member {ROOT}/src/a.go: type mismatch\n\tbundle:   symlink\n\tmanifest: file"),
    (MemberHeader(f"{ROOT}/src/a.go", "file", 1 << 40, 0o644),
     f"verifying member {ROOT}/src/a.go: size mismatch"),
    (MemberHeader(f"{ROOT}/src/a.go", "file", 10, 0o4755),
     f"verifying member {ROOT}/src/a.go: mode mismatch\n\tbundle:   755\n\tmanifest: 644"),
    (MemberHeader(f"{ROOT}/src", "'3'", 0, 0o755),
     f"verifying member {ROOT}/src: type mismatch\n\tbundle:   '3'\n\tmanifest: dir"),
])
def test_member_unlike_its_manifest_entry_is_refused(manifest, header, message) -> None:
    with pytest.raises(TrustError) as e:
        check_member(header, manifest)
    assert str(e.value.message).startswith(message), e.value.message
    assert e.value.tampering
