"""The checklist's checksum database row: a bundled module downloads into a fresh module cache
with GOSUMDB on, verified by go from the data the bundles carry."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

from installer import statefile, sumdb_prefix
from installer.prefix import Layout, remove_tree
from manifests.limits import DEFAULT_LIMITS
from manifests.modpath import (
    ModulePathError,
    escape_path,
    escape_version,
    unescape_path,
    unescape_version,
)
from manifests.pycompat import CAPTURE_TEXT
from manifests.sumdb_lookup import open_tree
from manifests.sumdb_note import NoteError, Verifier, parse_verifier
from manifests.tlog import TlogError, Tree

NAME = "go mod download (sumdb)"
TIMEOUT = 300


def probe(layout: Layout, name: str) -> Optional[Tuple[str, str]]:
    """A module@version the database data vouches for and P/goproxy carries a .zip of."""
    base = layout.goproxy / "sumdb" / name / "lookup"
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for file in sorted(filenames):
            esc_m, _, esc_v = Path(dirpath, file).relative_to(base).as_posix().rpartition("@")
            try:
                m, v = unescape_path(esc_m), unescape_version(esc_v)
            except ModulePathError:
                continue
            if (layout.goproxy / escape_path(m) / "@v" / f"{escape_version(v)}.zip").is_file():
                return m, v
    return None


Row = Tuple[bool, str, str, Tuple[str, ...]]  # ok, expected, got, detail (a warning if ok)


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return " | ".join(lines[-3:]) if lines else ""


def run(go: Path, layout: Layout, wired: Dict[str, str], env: Dict[str, str]) -> Optional[Row]:
    """The row, or None when the prefix carries no checksum database data."""
    db = sumdb_prefix.read(layout)
    found = probe(layout, db.name) if db is not None else None
    if db is None or found is None:
        return None
    m, v = found
    want = f"{m}@{v} verified by {db.name} from P/goproxy/sumdb"
    work = Path(tempfile.mkdtemp(prefix="rescue-sumdb-check-"))
    try:
        # A fresh GOMODCACHE and GOPATH: nothing cached, no `latest` head saved by earlier
        # runs, so go must read the lookup and tiles the bundles carry. The wired values, not
        # the user's: their own settings are judged by the rows above.
        run_env = {**env, "GOMODCACHE": str(work / "modcache"), "GOPATH": str(work / "gopath"),
                   "GOFLAGS": "-modcacherw", "GOPROXY": wired["GOPROXY"],
                   "GOSUMDB": wired["GOSUMDB"], "GONOSUMDB": wired.get("GONOSUMDB", ""),
                   "GOPRIVATE": "", "GONOPROXY": "", "GOWORK": "off", "GOENV": "off",
                   "GOTOOLCHAIN": "local"}
        try:
            out = subprocess.run([str(go), "mod", "download", "-json", f"{m}@{v}"],
                                 env=run_env, **CAPTURE_TEXT, timeout=TIMEOUT,
                                 cwd=str(work))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, want, f"cannot run {go}: {exc}", ()
        latest = work / "gopath" / "pkg" / "sumdb" / db.name / "latest"
        ok = out.returncode == 0 and latest.is_file()
        got = (f"{m}@{v} verified" if ok else
               _tail(out.stderr) or _tail(out.stdout) or f"exit {out.returncode}, no sumdb head")
        if not ok:
            return ok, want, got, (
                "go could not verify a bundled module against the checksum database data in "
                f"{layout.goproxy / 'sumdb' / db.name}",
                "fix: rescue verify, then rescue repair BUNDLE; or install a newer bundle of it")
        newer = _users_newer_head(go, db, env, latest)
        return ok, want, got, newer
    finally:
        remove_tree(work)


def _head(path: Path, verifier: Verifier) -> Optional[Tree]:
    try:
        fd = os.open(path, statefile.READ)
        with os.fdopen(fd, "rb") as f:
            return open_tree(f.read(DEFAULT_LIMITS.sumdb_note_bytes), verifier)
    except (OSError, NoteError, TlogError):
        return None


def _users_newer_head(go: Path, db: sumdb_prefix.PrefixSumdb, env: Dict[str, str],
                      carried: Path) -> Tuple[str, ...]:
    """A warning when the user's own GOPATH saved a newer head of the database (the host was
    online once): go proves every lookup in that tree and has none of its tiles offline, so it
    refuses any module missing from go.sum until a bundle carries that tree."""
    verifier = parse_verifier(db.key)
    ours = _head(carried, verifier)
    try:
        out = subprocess.run([str(go), "env", "GOPATH"], env=env, **CAPTURE_TEXT,
                             timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    first = out.stdout.strip().split(os.pathsep)[0]
    saved = Path(first) / "pkg" / "sumdb" / db.name / "latest" if first else None
    theirs = _head(saved, verifier) if saved is not None else None
    if ours is None or theirs is None or theirs.n <= ours.n:
        return ()
    return (f"{saved} holds tree#{theirs.n} of {db.name}, newer than the carried "
            f"tree#{ours.n}: go proves lookups in the newest tree it has seen, so it will "
            "refuse any module missing from go.sum",
            f"fix: install a bundle built after that head, or move {saved} aside (go saves "
            "the carried head again)")
