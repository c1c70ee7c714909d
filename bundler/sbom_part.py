"""Plan the bundle's `sbom/` members: licenses read from the carried files, projects, signer."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Sequence, Tuple

from bundler.gosum import parse_gomod, parse_gosum
from bundler.part import Part
from manifests import licenses, sbom
from manifests.limits import DEFAULT_LIMITS
from manifests.model import SBOM_DIR, Manifest, Member
from manifests.sbom_model import sha256_hex

Opener = Callable[[], BinaryIO]


def _openers(manifest: Manifest, parts: Sequence[Part]) -> Dict[str, Opener]:
    """Member path -> its bytes, for every file member (a hard link opens its target)."""
    out: Dict[str, Opener] = {}
    for part in parts:
        for m in part.members:
            if m.type == "file":
                out[m.path] = lambda m=m, part=part: part.open(m)  # type: ignore[misc]
    for m in manifest.members:
        if m.type == "hardlink" and m.target in out:
            out[m.path] = out[m.target]
    return out


def _read(opener: Opener, limit: int) -> bytes:
    with opener() as f:
        return f.read(limit)


def _toolchain_license(manifest: Manifest, root: str, openers: Dict[str, Opener]) -> \
        licenses.License:
    """From the GOROOT's own license files (Go's LICENSE)."""
    head = root + "/"
    texts = {m.path[len(head):]: _read(openers[m.path], DEFAULT_LIMITS.module_license_bytes)
             for m in manifest.members
             if m.path.startswith(head) and "/" not in m.path[len(head):]
             and licenses.is_candidate(m.path[len(head):]) and m.path in openers}
    return licenses.detect(texts)


def _project(directory: Path) -> sbom.Project:
    """A spec project: the module path its go.mod names, the module versions its go.sum lists."""
    gomod = directory / "go.mod"
    name = parse_gomod(gomod.read_bytes(), str(gomod)).module or directory.name
    gosum = directory / "go.sum"
    lines = parse_gosum(gosum.read_bytes(), str(gosum)).lines if gosum.exists() else []
    return sbom.Project(name, tuple(sorted({(s.path, s.version) for s in lines})))


def sbom_part(manifest: Manifest, parts: Sequence[Part], signer: str,
              projects: Sequence[Path] = ()) -> Tuple[Part, Dict[str, bytes]]:
    """The `sbom/` members describing `manifest` (planned without them) and their bytes."""
    openers = _openers(manifest, parts)
    found: Dict[Tuple[str, str], licenses.License] = {}
    for mod in manifest.modules:
        path = sbom.module_zip_member(mod.path, mod.version)
        if path in openers:
            with openers[path]() as f:
                found[(mod.path, mod.version)] = licenses.from_module_zip(f, mod.path, mod.version)
    facts = sbom.BundleFacts(
        signer=signer, licenses=found,
        toolchain_licenses={tc.id: _toolchain_license(manifest, tc.root, openers)
                            for tc in manifest.toolchains},
        projects=tuple(_project(p) for p in projects))
    files = sbom.bundle_files(manifest, facts)
    members: List[Member] = [Member(SBOM_DIR, "dir", 0o755)]
    members += [Member(path, "file", 0o644, len(data), sha256_hex(data))
                for path, data in files.items()]
    return Part(members, lambda m: io.BytesIO(files[m.path])), files


def beside(bundle: Path, fmt: str) -> Path:
    """BUNDLE.spdx.json / BUNDLE.cdx.json: the SBOM an auditor reads before the gap."""
    return bundle.with_name(bundle.name + sbom.SUFFIXES[fmt])


def written_beside(bundle: Path, files: Dict[str, bytes]) -> List[Path]:
    from manifests.files import write_atomic

    out = []
    for fmt, member in sbom.FORMATS.items():
        path = beside(bundle, fmt)
        write_atomic(path, files[member])
        out.append(path)
    return out
