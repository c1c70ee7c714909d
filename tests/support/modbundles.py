"""Specs and bundles that carry modules: a `[modules]` table for write_spec, tree snapshots."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, List, Optional


def modules_table(goproxy: str, projects: Optional[List[Path]] = None,
                  require: Optional[List[str]] = None, transitive: bool = True,
                  sumdb: str = "off") -> str:
    """A `[modules]` table to append to a spec with bundles.write_spec(extra=...); `sumdb`: the
    checksum database key (tests/support/sumdb_server.SumDB.vkey, mounted on the goproxy) or
    "off" for tests about other things (no test may reach sum.golang.org)."""
    lines = ["[modules]", f'goproxy = "{goproxy}"', f"transitive = {str(transitive).lower()}",
             f'sumdb = "{sumdb}"']
    if projects:
        lines.append("projects = [" + ", ".join(f'"{p}"' for p in projects) + "]")
    if require:
        lines.append("require = [" + ", ".join(f'"{r}"' for r in require) + "]")
    return "\n".join(lines) + "\n"


def snapshot(root: Path) -> Dict[str, str]:
    """Every entry under root: files by sha256 and mode, dirs and links by kind."""
    out: Dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                mode = oct(p.stat().st_mode & 0o777)
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + " " + mode
    return out
