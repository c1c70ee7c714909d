"""Rebuild each bundled toolchain's golang.org/toolchain module from its verified GOROOT into
the file GOPROXY, so `GOTOOLCHAIN=auto` switches offline (README "Toolchain switching")."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from installer import statefile
from installer.prefix import Layout
from manifests import toolchainzip
from manifests.dirhash import hash_zip
from manifests.errors import TrustError
from manifests.files import sha256_file, write_atomic
from manifests.model import Manifest, Toolchain

# Go reads the zip's names and contents only (h1), never its compressed bytes: the fastest
# deflate level halves the install-time cost of level 6 for a few MB more on disk.
ZIP_LEVEL = 1
MODULE_DIR = Path(*toolchainzip.MODULE.split("/")) / "@v"
STATE_NAME = "toolchain-modules.json"
REBUILT = "rebuilt by the installer"  # verify's label for these files


@dataclass
class Rebuilt:
    """One module written to staging: what verify will expect of it once merged."""

    version: str
    zip_sha256: str
    info_sha256: str
    seconds: float
    kept: bool  # the prefix already held a zip with this h1: not written again


def _files(m: Manifest, tc: Toolchain, staging: Path) -> List[toolchainzip.ZipFile]:
    """The module's files from the signed manifest's sha256s (each staged file was checked
    against them while it streamed in): the h1 needs no second read of the GOROOT."""
    prefix = f"{toolchainzip.MODULE}@{tc.module_version}"
    head = tc.root + "/"
    found = []
    for mem in m.members:
        if not mem.path.startswith(head) or mem.type not in ("file", "hardlink"):
            continue
        content = m.member(mem.target) if mem.type == "hardlink" else mem
        assert content is not None  # parse_manifest checked every hard link's target
        found.append((mem.path[len(head):], content.sha256, content.size,
                      lambda path=staging / mem.path: open(path, "rb")))
    return toolchainzip.plan(prefix, found)


def _mismatch(tc: Toolchain, got: str, what: str) -> TrustError:
    subject = f"{toolchainzip.MODULE}@{tc.module_version}"
    return TrustError(
        f"verifying {subject}: checksum mismatch\n\t{what}: {got}\n\tmanifest: "
        f"{tc.module_zip_hash}\nThe module rebuilt from the verified {tc.id} GOROOT does not "
        "hash to the h1 the signed manifest records for it (and the checksum database vouched "
        "for at build time): the bundle was altered and re-signed, or built wrongly. Nothing "
        "was installed; use a bundle from a build you trust.",
        subject=subject, expected=tc.module_zip_hash, got=got, tampering=True)


def stage_modules(m: Manifest, staging: Path, layout: Layout, host: str) -> List[Rebuilt]:
    """For each of the bundle's toolchains for `host` that records a module h1: check the h1
    of its staged GOROOT (upstream go.env: call before the wiring rewrites it) against the
    manifest, then write `.zip`, `.mod`, `.info`, `list` under staging/goproxy for the merge."""
    out = []
    for tc in m.toolchains:
        if not tc.module_zip_hash or f"{tc.os}-{tc.arch}" != host:
            continue
        started = time.monotonic()
        files = _files(m, tc, staging)
        got = toolchainzip.zip_hash(files)
        if got != tc.module_zip_hash:
            raise _mismatch(tc, got, f"rebuilt from the {tc.id} GOROOT")
        if toolchainzip.gomod_hash() != tc.module_mod_hash:
            raise TrustError(f"verifying {toolchainzip.MODULE}@{tc.module_version}/go.mod: the "
                             f"manifest records {tc.module_mod_hash}, distpack's go.mod hashes "
                             f"to {toolchainzip.gomod_hash()}", tampering=True)
        staged = staging / "goproxy" / MODULE_DIR
        staged.mkdir(parents=True, exist_ok=True)
        with open(staging / tc.root / "VERSION", "rb") as f:
            _, when = toolchainzip.version_time(f.read(4096))
        info = toolchainzip.info_json(tc.module_version, when)
        (staged / f"{tc.module_version}.info").write_bytes(info)
        (staged / f"{tc.module_version}.mod").write_bytes(toolchainzip.GO_MOD)
        with open(staged / "list", "ab") as f:
            f.write(f"{tc.module_version}\n".encode())
        installed = layout.goproxy / MODULE_DIR / f"{tc.module_version}.zip"
        kept = _installed_h1(installed) == tc.module_zip_hash
        zip_path = installed if kept else staged / f"{tc.module_version}.zip"
        if not kept:
            if installed.exists():  # our own rebuild, damaged: the merge must not keep it
                installed.unlink()
            with open(zip_path, "wb") as out_file:
                # The h1 of the bytes that went in, hashed as they went: a staged file changed
                # since its check shows here, without reading the zip back (2 s a GOROOT).
                written = toolchainzip.write_zip(
                    out_file, f"{toolchainzip.MODULE}@{tc.module_version}", files, when,
                    ZIP_LEVEL)
            if written != tc.module_zip_hash:
                raise _mismatch(tc, written, "the zip written")
        out.append(Rebuilt(tc.module_version, sha256_file(zip_path),
                           hashlib.sha256(info).hexdigest(),
                           round(time.monotonic() - started, 2), kept))
    return out


def _installed_h1(path: Path) -> Optional[str]:
    try:
        return hash_zip(path) if path.is_file() and not path.is_symlink() else None
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


def _check(doc: Any) -> Optional[str]:
    if not isinstance(doc, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("zip"), str) and isinstance(v.get("info"), str)
            for v in doc.values()):
        return "expected {version: {zip: sha256, info: sha256}}"
    return None


def recorded(layout: Layout) -> Dict[str, Dict[str, str]]:
    """version -> sha256 of the `.zip` and `.info` this prefix rebuilt, for verify."""
    doc = statefile.read_json(layout.state / STATE_NAME, "the rebuilt toolchain modules",
                              "run `rescue repair`", _check)
    return doc or {}


def record(layout: Layout, rebuilt: List[Rebuilt],
           doc: Optional[Dict[str, Dict[str, str]]] = None) -> None:
    """Add `rebuilt` to the record (or to `doc`, written in its place)."""
    if not rebuilt and doc is None:
        return
    doc = recorded(layout) if doc is None else doc
    for r in rebuilt:
        doc[r.version] = {"zip": r.zip_sha256, "info": r.info_sha256}
    write_atomic(layout.state / STATE_NAME, json.dumps(doc, indent=1, sort_keys=True) + "\n")

