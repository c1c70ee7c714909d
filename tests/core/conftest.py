"""The trust core's tests: header members made in memory, signed with real keys, judged by
the pure functions alone (no tar, no files), so each threat costs milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

import pytest

from keys import allowed_signers, sshkey, sshsig
from keys.allowed_signers import AllowedSigner
from manifests.model import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from tests.support import bundles, craft, tamper

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@dataclass
class Headers:
    signing: bundles.Signing
    signers: List[AllowedSigner]

    def doc(self, **change: Any) -> Dict[str, Any]:
        c = craft.Craft(name="core", sequence=change.pop("sequence", 1))
        root = c.toolchain()
        c.dir(f"{root}/src").file(f"{root}/src/a.go", b"package a\n")
        return {**c.doc(), **change}

    def members(self, doc: Optional[Dict[str, Any]] = None, *,
                namespace: str = sshsig.NAMESPACE,
                edit: Callable[[bytes], bytes] = lambda b: b) -> Dict[str, bytes]:
        """The three header members of a bundle of `doc`, signed by the trusted key; `edit`
        changes the manifest after signing."""
        doc = doc or self.doc()
        manifest = tamper.canonical(doc)
        key = sshkey.load_private_key(self.signing.key)
        return {MANIFEST_NAME: edit(manifest), SUMS_NAME: tamper.sums(doc),
                SIGNATURE_NAME: sshsig.sign(key, manifest, namespace).encode()}


@pytest.fixture(scope="session")
def headers(signing: bundles.Signing) -> Headers:
    return Headers(signing, allowed_signers.load(signing.signers))
