"""Write an SBOM document as CycloneDX 1.6 JSON."""

from __future__ import annotations

from typing import Any, Dict, List

from manifests.sbom_model import Component, Document

SPEC_VERSION = "1.6"


def _component(c: Component, children: Dict[str, List[Component]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": c.kind, "bom-ref": c.ref, "name": c.name}
    if c.supplier:
        out["supplier"] = {"name": c.supplier}
    if c.version:
        out["version"] = c.version
    if c.description:
        out["description"] = c.description
    if c.sha256:
        out["hashes"] = [{"alg": "SHA-256", "content": c.sha256}]
    if c.license:
        # What the component's own license files say; `acknowledgement` is new in 1.6.
        out["licenses"] = ([{"expression": c.license, "acknowledgement": "declared"}]
                           if " " in c.license or "(" in c.license else
                           [{"license": {"id": c.license, "acknowledgement": "declared"}}])
    if c.cpe:
        out["cpe"] = c.cpe
    if c.purl:
        out["purl"] = c.purl
    if c.download:
        ref: Dict[str, Any] = {"type": "distribution", "url": c.download}
        if c.sha256:
            ref["hashes"] = [{"alg": "SHA-256", "content": c.sha256}]
        out["externalReferences"] = [ref]
    props = list(c.properties)
    if c.license_files:
        props.append(("rescue:license-files", ", ".join(c.license_files)))
    if c.file_name:
        props.append(("rescue:file-name", c.file_name))
    if props:
        out["properties"] = [{"name": n, "value": v} for n, v in props]
    nested = children.get(c.ref, [])
    if nested:
        # Nesting is CycloneDX's "contains": the stdlib inside its Go distribution.
        out["components"] = [_component(x, children) for x in nested]
    return out


def cyclonedx(doc: Document) -> Dict[str, Any]:
    """The CycloneDX 1.6 BOM, as a dict ready for json.dumps."""
    children: Dict[str, List[Component]] = {}
    for c in doc.components:
        children.setdefault(c.parent if c.carried else "", []).append(c)
    tool_name, _, tool_version = doc.tool.partition(" ")
    metadata: Dict[str, Any] = {
        "timestamp": doc.created,
        "tools": {"components": [{"type": "application", "name": tool_name,
                                  "version": tool_version}]},
        "component": _component(doc.subject, {}),
    }
    props = [{"name": "rescue:describes-sha256", "value": doc.digest}]
    if doc.signer:
        props.append({"name": "rescue:signer", "value": doc.signer})
    metadata["properties"] = props
    top = [c for c in doc.components if not c.parent or not c.carried]
    deps = [{"ref": doc.subject.ref,
             "dependsOn": [c.ref for c in top if c.carried]}]
    deps += [{"ref": ref, "dependsOn": list(needs)} for ref, needs in doc.depends]
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": doc.serial,
        "version": 1,
        "metadata": metadata,
        "components": [_component(c, children) for c in top],
        "dependencies": deps,
    }
