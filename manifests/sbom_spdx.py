"""Write an SBOM document as SPDX 2.3 JSON."""

from __future__ import annotations

from typing import Any, Dict, List

from manifests.sbom_model import Component, Document, ref_id

VERSION = "SPDX-2.3"
# A URI that names the document and resolves nowhere (RFC 2606's .invalid): SPDX asks for a
# unique one, and its uniqueness comes from the digest of what the document describes.
NAMESPACE = "https://rescue.invalid/spdxdocs/"
_PURPOSE = {"application": "APPLICATION", "library": "LIBRARY", "file": "ARCHIVE"}


def _id(c: Component) -> str:
    return f"SPDXRef-{c.ref}"


def _package(c: Component, doc: Document) -> Dict[str, Any]:
    pkg: Dict[str, Any] = {"SPDXID": _id(c), "name": c.name}
    if c.version:
        pkg["versionInfo"] = c.version
    if c.file_name:
        pkg["packageFileName"] = c.file_name
    if c.supplier:
        pkg["supplier"] = f"Organization: {c.supplier}"
    pkg["downloadLocation"] = c.download or "NOASSERTION"
    pkg["filesAnalyzed"] = False
    if c.sha256:
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": c.sha256}]
    # What the package's own license files say: declared. Nobody concluded anything.
    pkg["licenseConcluded"] = "NOASSERTION"
    pkg["licenseDeclared"] = c.license or "NOASSERTION"
    pkg["copyrightText"] = "NOASSERTION"
    notes = [c.description] if c.description else []
    if c.license_files:
        notes.append(f"license {c.license or 'NOASSERTION'} read offline from "
                     f"{', '.join(c.license_files)} by rescue's key-phrase matcher "
                     "(MIT, Apache-2.0, BSD-2-Clause, BSD-3-Clause, ISC, MPL-2.0; anything "
                     "else is NOASSERTION)")
    # Properties neither format has a field for, e.g. go.sum's h1: (Go's dirhash, which is no
    # SPDX checksum algorithm): external references of category OTHER, type = the name.
    refs: List[Dict[str, str]] = []
    if c.purl:
        refs.append({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": c.purl})
    if c.cpe:
        refs.append({"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                     "referenceLocator": c.cpe})
    for name, value in c.properties:
        refs.append({"referenceCategory": "OTHER", "referenceType": name,
                     "referenceLocator": value})
        notes.append(f"{name} {value}")
    if refs:
        pkg["externalRefs"] = refs
    if notes:
        pkg["comment"] = "; ".join(notes)
    pkg["primaryPackagePurpose"] = _PURPOSE.get(c.kind, "OTHER")
    if c is doc.subject and doc.signer:
        pkg["annotations"] = [{
            "annotationDate": doc.created, "annotationType": "OTHER",
            "annotator": f"Tool: {_tool(doc)}",
            "comment": f"signed by {doc.signer} (an SSH signature, namespace rescue-manifest, "
                       "over the manifest that lists this document's sha256)"}]
    return pkg


def _tool(doc: Document) -> str:
    return doc.tool.replace(" ", "-")


def spdx(doc: Document) -> Dict[str, Any]:
    """The SPDX 2.3 document, as a dict ready for json.dumps."""
    subject = doc.subject
    creators = [f"Tool: {_tool(doc)}"]
    comment = doc.comment + (f" Signed by {doc.signer}." if doc.signer else "")
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": _id(subject)}]
    by_ref = {c.ref: c for c in doc.components}
    for c in doc.components:
        if c.carried:
            parent = by_ref[c.parent] if c.parent else subject
            relationships.append({"spdxElementId": _id(parent), "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": _id(c)})
    for ref, needs in doc.depends:
        for other in needs:
            relationships.append({"spdxElementId": _id(by_ref[ref]),
                                  "relationshipType": "DEPENDS_ON",
                                  "relatedSpdxElement": _id(by_ref[other])})
    return {
        "spdxVersion": VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "documentNamespace": f"{NAMESPACE}{ref_id(subject.name)}-{doc.digest}",
        "creationInfo": dict({"created": doc.created, "creators": creators},
                             **({"comment": comment.strip()} if comment.strip() else {})),
        "packages": [_package(subject, doc)] + [_package(c, doc) for c in doc.components],
        "relationships": relationships,
    }
