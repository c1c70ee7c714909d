"""Inspect a bundle without installing: signer, targets, contents, every hash checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List

from installer.bundle_reader import BundleReader
from installer.install import no_toolchain_for_host
from installer.stage import Discard, stage
from keys.allowed_signers import AllowedSigner
from manifests.goversion import version_key
from manifests.model import SBOM_FILES
from manifests.toolchainzip import MODULE as TOOLCHAIN_MODULE


def inspect(bundle: Path, signers: List[AllowedSigner], trust_source: str,
            on_total: Callable[[int], None] = lambda n: None,
            on_bytes: Callable[[int], None] = lambda n: None) -> Dict[str, Any]:
    with BundleReader(bundle) as reader:
        v = reader.header(signers, trust_source)
        m = v.manifest
        on_total(m.content_bytes)
        stage(reader, m, Discard(), on_bytes)  # every member hashed, nothing written
    return {
        "ok": True,
        "bundle": str(bundle),
        "size": bundle.stat().st_size,
        "name": m.name, "channel": m.channel, "sequence": m.sequence,
        "created": m.created, "expires": m.expires, "builder": m.builder,
        "targets": list(m.targets),
        "signer": v.signer.to_dict(),
        # Every distinct trusted key that signed, and how many the trust store asks for.
        "signatures": [s.to_dict() for s in v.signers],
        "threshold": v.needed,
        "manifest_sha256": v.manifest_sha256,
        "warnings": [w for w in [no_toolchain_for_host(list(m.toolchains))] if w],
        # Both origins of each toolchain: the go.dev archive, and the golang.org/toolchain
        # module as the checksum database records it (rebuilt at install, never carried).
        "toolchains": [{"id": t.id, "version": t.version, "os": t.os, "arch": t.arch,
                        "source": t.source, "url": t.url, "sha256": t.sha256,
                        "module": (f"{TOOLCHAIN_MODULE}@{t.module_version}"
                                   if t.module_zip_hash else None),
                        "module_zip_hash": t.module_zip_hash or None,
                        "module_mod_hash": t.module_mod_hash or None,
                        "module_vouched_by": (m.sumdb.name if t.module_zip_hash and m.sumdb
                                              and m.sumdb.covers(TOOLCHAIN_MODULE) else None)}
                       for t in m.toolchains],
        # The toolchain install makes current on each target without --use: the newest.
        "current_by_target": {f"{t.os}-{t.arch}": t.id for t in sorted(
            m.toolchains, key=lambda t: version_key(t.version))},
        "modules": [{"path": x.path, "version": x.version, "zip_hash": x.zip_hash,
                     "mod_hash": x.mod_hash} for x in m.modules],
        "members": len(m.members),
        "content_bytes": m.content_bytes,
        # The checksum database whose lookups and tiles goproxy/sumdb/<name>/ carries.
        "sumdb": vars(m.sumdb) if m.sumdb is not None else None,
        # GOTOOLCHAIN the installed prefix gets: None leaves the prefix's own (auto when new).
        "gotoolchain": m.gotoolchain or None,
        # The SBOM members (signed like the rest): `sbom BUNDLE` prints them.
        "sbom": [p for p in SBOM_FILES if m.member(p) is not None],
    }


def describe(r: Dict[str, Any]) -> List[str]:
    lines = [
        f"bundle     {r['bundle']} ({r['size'] / 1e6:.1f} MB)",
        f"name       {r['name']}  channel {r['channel']}  sequence {r['sequence']}",
        f"created    {r['created']}  expires {r['expires']}  by {r['builder']}",
        "signed by  " + "; ".join(f"{s['key_id']} ({', '.join(s['principals'])})"
                                   for s in r["signatures"])
        + f"  ({len(r['signatures'])} of {r['threshold']} needed: policy met)",
        f"targets    {', '.join(r['targets'])}",
        f"content    {r['members']} members, {r['content_bytes'] / 1e6:.1f} MB, all hashes ok",
    ]
    for t in r["toolchains"]:
        lines.append(f"toolchain  {t['id']}  from {t['url']}")
        lines.append(f"             archive sha256 {t['sha256']}")
        if t.get("module"):
            by = (f"checked against {t['module_vouched_by']}" if t.get("module_vouched_by")
                  else "built from the archive; no checksum database asked")
            lines.append(f"             module {t['module']} {t['module_zip_hash']} ({by})")
    if r.get("gotoolchain"):
        lines.append(f"switching  GOTOOLCHAIN={r['gotoolchain']} for the prefix"
                     + ("  (go never switches: `use VERSION` or P/bin/go<V> do)"
                        if r["gotoolchain"] == "local" else ""))
    for w in r["warnings"]:
        lines.append(f"warning    {w}")
    for x in r["modules"]:
        lines.append(f"module     {x['path']} {x['version']}")
    if r.get("sbom"):
        lines.append(f"sbom       {', '.join(r['sbom'])}  (`sbom BUNDLE [--format cyclonedx]` "
                     "prints them)")
    db = r.get("sumdb")
    if db:
        lines.append(f"sumdb      {db['name']}  tree#{db['size']} {db['hash']}"
                     + (f"  (GONOSUMDB {db['nosumdb']})" if db["nosumdb"] else ""))
    return lines
