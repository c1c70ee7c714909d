"""Keep `P/bin/go<V>` for each installed toolchain of this host: go's `GOTOOLCHAIN=path` and
`auto` look for them on PATH before any download, and scripts call `go1.22.10` by name."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Dict, List

from installer import hostos
from installer.host import host_target
from installer.prefix import Layout
from manifests.files import write_atomic
from manifests.goversion import split_toolchain_id

# Only names this module makes are ever removed from P/bin.
_OURS = re.compile(r"go1\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?(\.cmd)?")


def bin_dir(layout: Layout) -> Path:
    return layout.root / "bin"


def wanted(layout: Layout) -> Dict[str, str]:
    """`go1.22.10` -> its link target, relative (`../versions/<id>/bin/go`: P/versions/<id> is
    the GOROOT), so the prefix can move; one per installed version of this host's platform."""
    from installer.versions import installed_ids  # versions builds on this module

    out = {}
    for tc_id in installed_ids(layout):
        split = split_toolchain_id(tc_id)
        if split and split[1] == host_target():
            out[split[0]] = f"../versions/{tc_id}/bin/go"
    return out


def sync(layout: Layout) -> List[str]:
    """Make P/bin hold exactly the wanted commands; what could not be done, as notes (a
    missing command only costs a download from P/goproxy, never correctness)."""
    notes: List[str] = []
    want = wanted(layout)
    where = bin_dir(layout)
    if not want and not where.is_dir():
        return notes
    if where.is_symlink():  # never write through a link out of P (prefix.refuse_links)
        return [f"{where} is a symbolic link: go<V> commands not updated; mv {where} "
                f"{where}.link, then run `rescue repair`"]
    try:
        where.mkdir(mode=0o755, exist_ok=True)
        for name in os.listdir(where):
            path = where / name
            if (_OURS.fullmatch(name) and name not in want and path.is_symlink()
                    or hostos.WINDOWS and name.endswith(".cmd") and _OURS.fullmatch(name)
                    and name[:-4] not in want and path.is_file()):
                path.unlink()
        if hostos.WINDOWS:
            return notes + _sync_cmd(where, want)
        for name, target in sorted(want.items()):
            path = where / name
            if path.is_symlink() and os.readlink(path) == target:
                continue
            tmp = where / f".{name}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                os.symlink(target, tmp)
            except OSError:  # no symlinks here (some Windows set-ups): a script that execs it
                tmp.write_text(_script(where, target))
                tmp.chmod(0o755)
            os.replace(tmp, path)
    except OSError as exc:
        notes.append(f"{where}: go<V> commands not updated ({exc.strerror or exc}); "
                     "run `rescue repair`")
    return notes


def _script(where: Path, target: str) -> str:
    return f'#!/bin/sh\nexec "{(where / target).resolve()}" "$@"\n'


def _sync_cmd(where: Path, want: Dict[str, str]) -> List[str]:
    """Windows: `go1.22.10.cmd`, which go's toolchain search finds through PATHEXT (a symlink
    needs admin rights, and a copy of go.exe would look for its GOROOT in P)."""
    for name, target in sorted(want.items()):
        path = where / f"{name}.cmd"
        exe = os.path.normpath(os.path.join(where, target)) + ".exe"
        text = f'@"{exe}" %*\r\n'
        with contextlib.suppress(OSError):
            if path.read_bytes() == text.encode():
                continue
        write_atomic(path, text)
    return []
