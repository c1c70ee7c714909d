"""Every file of every installed toolchain as an application-allowlist trust file (fapolicyd)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

from installer import verify, versions
from installer.prefix import Layout
from keys.allowed_signers import AllowedSigner
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

FORMATS = ("fapolicyd",)
# fapolicyd 1.1.7 writes a space, a tab and `%` as %20, %09 and %25 and reads back only those
# (its trust-file.c); every other byte stays raw.
_ESCAPES = {b"%": b"%25", b" ": b"%20", b"\t": b"%09"}
# Its reader splits a line at these (sscanf %s) and a file at \n: no escape carries them.
_UNSAYABLE = b"\n\r\v\f"

Entry = Tuple[bytes, int, str]  # real path, size, sha256


def escape_path(path: bytes) -> bytes:
    return b"".join(_ESCAPES.get(path[i:i + 1], path[i:i + 1]) for i in range(len(path)))


def entries(layout: Layout, signers: List[AllowedSigner], trust_source: str,
            workers: Optional[int] = None) -> List[Entry]:
    """Every regular file of every installed toolchain, at the path the kernel reports when it
    runs (the prefix resolved, P/versions/<id>/..., never P/current/...), with its size and
    sha256, once each tree checked out against its signed manifest: an allowlist must never
    vouch for a file no bundle put there (that is exit 3, like `verify`)."""
    if not layout.root.is_dir():
        raise NotReadyError(f"listing {layout.root}: no such prefix; pass the --prefix you "
                            "installed into", operation="listing", subject=str(layout.root))
    ids = versions.installed_ids(layout)
    if not ids:
        raise NotReadyError(f"listing {layout.root}: no toolchain is installed there; install "
                            "a bundle first", operation="listing", subject=str(layout.root))
    # fapolicyd matches the path the kernel reports for an executed file: links resolved.
    real = os.fsencode(os.path.realpath(str(layout.root)))
    bad = next((c for c in _UNSAYABLE if c in real), None)
    if bad is not None:
        raise NotReadyError(
            f"listing {shown(layout.root, DEFAULT_LIMITS.path_chars)}: its real path "
            f"{real!r} holds {bytes([bad])!r}, which a fapolicyd trust file cannot carry (its "
            "reader splits lines there); move the prefix to a path without it",
            operation="listing", subject=str(layout.root))
    bundles = verify.load_bundles(layout, signers, trust_source)
    check = verify.Verifier(verify.Report(str(layout.root)), lambda n: None,
                            workers or min(8, 2 * (os.cpu_count() or 1)))
    scans = []
    with ThreadPoolExecutor(max_workers=check.workers) as pool:
        for tc_id in ids:
            scan = verify.Scan(layout.versions / tc_id, f"versions/{tc_id}", pool)
            carrier = next((b for b in reversed(bundles)
                            if any(t.id == tc_id for t in b.manifest.toolchains)), None)
            if carrier is None:
                check.report.added.append({"path": scan.shown_top, "type": "dir",
                                           "note": "no recorded bundle carries this toolchain"})
            else:
                check.compare(scan, verify.goroot_expectations(carrier, tc_id), layout)
            check.report.unreadable.extend(scan.unreadable)
            scans.append((tc_id, scan))
    if not check.report.ok or check.report.unreadable:
        raise verify.failure(check.report)
    out = []
    for tc_id, scan in scans:
        top = real + b"/versions/" + os.fsencode(tc_id)
        for rel, entry in scan.entries.items():
            if entry.kind == "file":
                future, index = entry.digest  # hashed by the pool, already judged
                out.append((top + b"/" + os.fsencode(rel), entry.size,
                            future.result()[index][0]))
    return sorted(out)


def fapolicyd_text(items: List[Entry]) -> bytes:
    """fapolicyd's trust file: `path size sha256` lines, `#` comments (fapolicyd.trust(5))."""
    lines = [b"# rescue allowlist: every file of the installed Go toolchains; write it again\n"
             b"# after install, remove or prune, then run `fapolicyd-cli --update`.\n"]
    for path, size, sha in items:
        if any(c in path for c in _UNSAYABLE):  # pragma: no cover - member names exclude them
            raise NotReadyError(f"listing {path!r}: a line break in a path; fapolicyd cannot "
                                "read it")
        lines.append(b"%s %d %s\n" % (escape_path(path), size, sha.encode()))
    return b"".join(lines)
