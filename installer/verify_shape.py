"""The current GOROOT against its kept signed manifest by path, type, mode, size and link
target, nothing hashed: doctor's integrity check, in a fraction of verify's time."""

from __future__ import annotations

import time
from typing import Dict, List, Optional

from installer import hostos, state
from installer.prefix import Layout
from installer.verify import Bundle, Expect, Report, Scan, goroot_expectations, load_bundles
from keys.allowed_signers import AllowedSigner


def check_shape(layout: Layout, signers: List[AllowedSigner], trust_source: str,
                tc_id: str) -> Report:
    """What differs in versions/<tc_id>, collected as verify collects it (same Report), except
    that a file's content counts only by its size: `verify` hashes every byte."""
    started = time.monotonic()
    # The bundles the state records as carrying it: their signed manifests say so, or all are
    # read, as verify reads them.
    bundles = load_bundles(layout, signers, trust_source, tc_id) if any(
        tc_id in b.get("toolchains", []) for b in state.load(layout).get("bundles", [])) else []
    carrier = _carrier(bundles, tc_id)
    if carrier is None:
        bundles = load_bundles(layout, signers, trust_source)
        carrier = _carrier(bundles, tc_id)
    report = Report(str(layout.root), toolchains=[tc_id],
                    bundles=[b.to_dict() for b in bundles])
    scan = Scan(layout.versions / tc_id, f"versions/{tc_id}", None)
    report.unreadable += scan.unreadable
    if carrier is None:
        report.added.append({"path": scan.shown_top, "type": "dir",
                             "note": "no recorded bundle carries this toolchain"})
    elif not scan.exists:
        report.missing.append({"path": scan.shown_top, "type": "dir", "bundle": carrier.label})
    else:
        _compare(report, scan, goroot_expectations(carrier, tc_id))
    report.seconds = round(time.monotonic() - started, 2)
    return report


def _carrier(bundles: List[Bundle], tc_id: str) -> Optional[Bundle]:
    return next((b for b in reversed(bundles)
                 if any(t.id == tc_id for t in b.manifest.toolchains)), None)


def _compare(report: Report, scan: Scan, expect: Dict[str, Expect]) -> None:
    for rel, found in scan.entries.items():
        e, path = expect.get(rel), scan.shown(rel)
        if e is None:
            added = {"path": path, "type": found.kind, "mode": f"{found.mode:04o}"}
            if found.kind not in ("dir", "symlink") and found.mode & 0o111:
                added["executable"] = True
            report.added.append(added)
            continue
        what: Dict[str, List[str]] = {}
        if found.kind != e.type:
            what["type"] = [e.type, found.kind]
        elif e.mode is not None and hostos.mode_differs(found.kind, e.mode, found.mode):
            what["mode"] = [f"{e.mode:04o}", f"{found.mode:04o}"]
        if found.kind == e.type == "symlink" and found.target != e.target:
            what["target"] = [e.target, found.target]
        # go.env is rewritten by the installer: its size is not the manifest's.
        if found.kind == e.type == "file" and not e.go_env and found.size != e.size:
            what["size"] = [str(e.size), str(found.size)]
        if what:
            report.changed.append({"path": path, "bundle": e.bundle, **what})
        elif found.kind == "file":
            report.files += 1
            report.bytes += found.size
    for rel in sorted(set(expect) - set(scan.entries)):
        report.missing.append({"path": scan.shown(rel), "type": expect[rel].type,
                               "bundle": expect[rel].bundle})
