"""What an SBOM says, before it is SPDX or CycloneDX: components, containment, dependencies."""

from __future__ import annotations

import hashlib
import string
import uuid
from dataclasses import dataclass
from typing import Tuple
from urllib.parse import quote

# Properties: (name, value) pairs that neither format has a field for, such as go.sum's h1:
# (no SPDX or CycloneDX hash algorithm is Go's dirhash). Names are `rescue:<what>`.
Property = Tuple[str, str]
_ID_CHARS = frozenset(string.ascii_letters + string.digits + ".-")


@dataclass(frozen=True)
class Component:
    ref: str  # unique in its document; letters, digits, '.', '-' (an SPDX id's alphabet)
    kind: str  # CycloneDX's component type: application, library, file
    name: str
    version: str
    purl: str = ""
    cpe: str = ""
    sha256: str = ""
    file_name: str = ""
    download: str = ""  # "" when rescue cannot say where it is published (NOASSERTION)
    supplier: str = ""  # an organization's name
    license: str = ""  # an SPDX id; "" for NOASSERTION
    license_files: Tuple[str, ...] = ()
    description: str = ""
    properties: Tuple[Property, ...] = ()
    parent: str = ""  # ref of the component that contains it; "" for the document's subject
    carried: bool = True  # False: named for its relationships only (a project), not inside


@dataclass(frozen=True)
class Document:
    subject: Component  # the bundle, or rescue.pyz
    components: Tuple[Component, ...]
    depends: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (ref, the refs it depends on)
    created: str  # RFC 3339, UTC
    digest: str  # sha256 hex of what the document describes: its namespace and serial number
    tool: str  # "rescue 0.9.0"
    signer: str = ""  # key id (SHA256:...) of the key that signed the subject
    comment: str = ""

    @property
    def serial(self) -> str:
        """The CycloneDX serialNumber: a UUID derived from the digest, the same every build."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:rescue:{self.subject.name}:sha256:"
                          f"{self.digest}").urn


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _segment(text: str) -> str:
    """Percent-encode one purl segment as purl-spec does (unreserved characters stay)."""
    return quote(text, safe="-._~")


def golang_purl(module: str, version: str) -> str:
    """`pkg:golang/<namespace>/<name>@<version>`: purl-spec's golang type lowercases the
    namespace and name, and encodes each segment (`+incompatible` becomes `%2Bincompatible`)."""
    segments = "/".join(_segment(s) for s in module.lower().split("/"))
    return f"pkg:golang/{segments}@{_segment(version)}"


def stdlib_purl(go_version: str) -> str:
    """`pkg:golang/stdlib@v1.21.13`: the name vulnerability scanners match Go's stdlib by."""
    return f"pkg:golang/stdlib@{_segment('v' + go_version[2:])}"


def pypi_purl(project: str, version: str, file_name: str = "") -> str:
    """`pkg:pypi/<name>@<version>`, the name normalized as PEP 503 and purl-spec say."""
    name = "-".join(project.lower().replace("_", "-").replace(".", "-").split("-"))
    tail = f"?file_name={_segment(file_name)}" if file_name else ""
    return f"pkg:pypi/{_segment(name)}@{_segment(version)}{tail}"


def ref_id(*parts: str) -> str:
    """An id in SPDX's alphabet (letters, digits, '.', '-') from free text."""
    out = "".join(c if c in _ID_CHARS else "-" for c in "-".join(parts))
    return out.strip("-") or "x"
