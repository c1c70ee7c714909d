"""The SBOMs of a bundle and of rescue.pyz, in SPDX 2.3 and CycloneDX 1.6 JSON, byte-stable."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from manifests.licenses import License
from manifests.model import SBOM_CDX, SBOM_DIR, SBOM_SPDX, Manifest, Toolchain
from manifests.modpath import escape_path, escape_version
from manifests.sbom_cdx import cyclonedx
from manifests.sbom_model import (
    Component,
    Document,
    golang_purl,
    pypi_purl,
    ref_id,
    sha256_hex,
    stdlib_purl,
)
from manifests.sbom_spdx import spdx
from manifests.toolchainzip import MODULE as TOOLCHAIN_MODULE

FORMATS = {"spdx": SBOM_SPDX, "cyclonedx": SBOM_CDX}
# What `rescue build` writes beside BUNDLE and `rescue zipapp` beside the pyz: NAME + suffix.
SUFFIXES = {"spdx": ".spdx.json", "cyclonedx": ".cdx.json"}
# rescue.pyz carries its own SBOM as package data of `installer`, read with pkgutil.
PYZ_PACKAGE = "installer"


def pyz_member(fmt: str) -> str:
    """The pyz's SBOM in `fmt`, relative to the `installer` package."""
    return f"sbom/rescue.pyz{SUFFIXES[fmt]}"


GO_SUPPLIER = "Google LLC"  # publishes go.dev/dl and golang.org/toolchain


@dataclass(frozen=True)
class Project:
    """A spec project: its module path (go.mod) and the module versions its go.sum lists."""

    name: str
    modules: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BundleFacts:
    """What the manifest does not say: who signs, the licenses read from the carried files,
    and the projects the modules are for."""

    signer: str
    licenses: Dict[Tuple[str, str], License] = field(default_factory=dict)  # (path, version)
    toolchain_licenses: Dict[str, License] = field(default_factory=dict)  # toolchain id
    projects: Tuple[Project, ...] = ()


def render(doc: Document, fmt: str) -> bytes:
    body = spdx(doc) if fmt == "spdx" else cyclonedx(doc)
    return (json.dumps(body, indent=1, ensure_ascii=True) + "\n").encode()


def described_sha256(manifest: Manifest) -> str:
    """The sha256 of the manifest as it would be without its SBOM members: what the SBOM
    describes (it cannot hold the digest of the manifest that lists its own sha256)."""
    members = tuple(m for m in manifest.members
                    if m.path != SBOM_DIR and not m.path.startswith(SBOM_DIR + "/"))
    return sha256_hex(dataclasses.replace(manifest, members=members, _index={}).to_json())


def _toolchain(tc: Toolchain, lic: License) -> List[Component]:
    version = tc.version[2:]
    file_name = tc.url.rstrip("/").rsplit("/", 1)[-1]
    godl = tc.source == "godl"
    # Its origin as the Go project publishes it, where anyone can fetch the same sha256; the
    # URL this build fetched from (a mirror, a proxy) is said in the description.
    download = f"https://go.dev/dl/{file_name}" if godl else tc.url
    props = [("rescue:goos", tc.os), ("rescue:goarch", tc.arch)]
    if tc.module_zip_hash:
        props += [("rescue:toolchain-module", f"{TOOLCHAIN_MODULE}@{tc.module_version}"),
                  ("rescue:toolchain-module-h1", tc.module_zip_hash),
                  ("rescue:toolchain-module-go.mod-h1", tc.module_mod_hash)]
    dist = Component(
        ref=ref_id("go", tc.id), kind="application", name="go", version=version,
        cpe=f"cpe:2.3:a:golang:go:{version}:*:*:*:*:*:*:*", sha256=tc.sha256,
        file_name=file_name, download=download, supplier=GO_SUPPLIER if godl else "",
        license=lic.id if lic.known else "", license_files=lic.files,
        description=f"the Go {version} distribution for {tc.os}/{tc.arch} (GOROOT "
                    f"{tc.root}), fetched from {tc.url}, sha256 checked against "
                    + ("the download index" if godl else "the package index"),
        properties=tuple(props))
    std = Component(
        ref=ref_id("stdlib", tc.id), kind="library", name="stdlib", version="v" + version,
        purl=stdlib_purl(tc.version), supplier=GO_SUPPLIER, license=dist.license,
        license_files=lic.files, description=f"Go's standard library in {tc.root}/src",
        parent=dist.ref)
    return [dist, std]


def module_zip_member(path: str, version: str) -> str:
    return f"goproxy/{escape_path(path)}/@v/{escape_version(version)}.zip"


def _module_zip(manifest: Manifest, path: str, version: str) -> str:
    m = manifest.member(module_zip_member(path, version))
    return m.sha256 if m is not None else ""


def bundle_document(manifest: Manifest, facts: BundleFacts) -> Document:
    m = manifest
    subject = Component(
        ref="bundle", kind="file", name=m.name, version=f"{m.channel}-{m.sequence}",
        description=f"rescue bundle {m.name}, channel {m.channel}, sequence {m.sequence}, "
                    f"created {m.created}, expires {m.expires}, built by {m.builder}",
        properties=(("rescue:channel", m.channel), ("rescue:sequence", str(m.sequence)),
                    ("rescue:expires", m.expires)))
    components: List[Component] = []
    for tc in m.toolchains:
        components += _toolchain(tc, facts.toolchain_licenses.get(tc.id, License()))
    refs: Dict[Tuple[str, str], str] = {}
    for i, mod in enumerate(m.modules):
        lic = facts.licenses.get((mod.path, mod.version), License())
        props = [(name, value) for name, value in (("rescue:go.sum-h1", mod.zip_hash),
                                                   ("rescue:go.sum-go.mod-h1", mod.mod_hash))
                 if value]
        ref = ref_id("module", str(i), mod.path, mod.version)
        refs[(mod.path, mod.version)] = ref
        components.append(Component(
            ref=ref, kind="library", name=mod.path, version=mod.version,
            purl=golang_purl(mod.path, mod.version),
            sha256=_module_zip(m, mod.path, mod.version),
            license=lic.id if lic.known else "", license_files=lic.files,
            description="" if mod.zip_hash else "carried as its go.mod only: Go reads it to "
                                                "load the module graph, no code of it is built",
            properties=tuple(props)))
    depends = []
    for i, project in enumerate(facts.projects):
        ref = ref_id("project", str(i), project.name)
        components.append(Component(
            ref=ref, kind="application", name=project.name, version="", carried=False,
            description="a project this bundle was built for (the spec's modules.projects): "
                        "its go.sum's modules are carried, the project itself is not"))
        needs = tuple(sorted({refs[k] for k in project.modules if k in refs}))
        depends.append((ref, needs))
    return Document(
        subject=subject, components=tuple(components), depends=tuple(depends),
        created=m.created, digest=described_sha256(m), tool=m.builder, signer=facts.signer,
        comment=f"The SBOM of rescue bundle {m.name} ({m.channel} #{m.sequence}); it describes "
                f"the manifest whose sha256, without the SBOM members, is {described_sha256(m)}.")


def bundle_files(manifest: Manifest, facts: BundleFacts) -> Dict[str, bytes]:
    """The SBOM members: member path -> bytes, both formats."""
    doc = bundle_document(manifest, facts)
    return {path: render(doc, fmt) for fmt, path in FORMATS.items()}


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    file_name: str
    sha256: str
    license: str = ""  # the wheel's declared SPDX id, when its metadata says one


def pyz_files(name: str, version: str, build_id: str, created: str,
              wheels: Sequence[Wheel]) -> Dict[str, bytes]:
    """The SBOM of rescue.pyz (its own code and the wheels it carries): format -> bytes."""
    subject = Component(
        ref="rescue-pyz", kind="application", name=name, version=version,
        description=f"the offline installer {name}, build {build_id}: rescue's installer, "
                    "manifests and keys packages, and the wheels below",
        properties=(("rescue:build-id", build_id),))
    components = tuple(Component(
        ref=ref_id("wheel", w.file_name), kind="library", name=w.project, version=w.version,
        purl=pypi_purl(w.project, w.version, w.file_name), sha256=w.sha256,
        file_name=w.file_name, license=w.license,
        download=f"https://pypi.org/project/{w.project}/{w.version}/")
        for w in sorted(wheels, key=lambda w: w.file_name))
    digest = sha256_hex(json.dumps([build_id] + [w.sha256 for w in components]).encode())
    doc = Document(subject=subject, components=components, depends=(), created=created,
                   digest=digest, tool=f"rescue {version}",
                   comment=f"The SBOM of {name} build {build_id}.")
    return {fmt: render(doc, fmt) for fmt in FORMATS}
