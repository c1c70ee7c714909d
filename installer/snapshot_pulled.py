"""Other hosts' snapshots brought in by `snapshot pull`: P/state/snapshots-pulled/HOST/ID.json,
apart from this host's own records, named HOST:ID, never replaced once kept."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from installer import snapshot_store, statefile
from installer.prefix import Layout
from installer.snapshot_check import is_id
from manifests.errors import NotReadyError, RescueError, TrustError
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

# A host name becomes a directory in the repository and here: one path part, no `..`.
HOST_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")


def is_host(text: str) -> bool:
    return bool(HOST_RE.match(text)) and ".." not in text


def this_host(given: Optional[str]) -> str:
    """--host (or RESCUE_SNAPSHOT_HOST), else this machine's name; refused unless it can be a
    directory name."""
    name = given if given is not None else socket.gethostname()
    if not is_host(name):
        raise NotReadyError(
            f"naming this host {shown(name)}: not usable as a directory name (letters, digits "
            "and `._-`, at most 63); pass --host NAME", operation="naming this host",
            subject=shown(name))
    return name


def area(layout: Layout) -> Path:
    return layout.state / "snapshots-pulled"


def _fix(host: str) -> str:
    return ("remove it and pull again (`rescue.pyz snapshot pull --git REPO`); the host "
            f"{host} still has its own record")


def load(layout: Layout, ref: str) -> Dict[str, Any]:
    host, _, snapshot_id = ref.partition(":")
    if not is_host(host) or not is_id(snapshot_id):
        raise NotReadyError(
            f"reading snapshot {shown(ref)}: not HOST:ID (a host name, then a snapshot id); "
            "see `rescue.pyz snapshot list --pulled`", operation="reading snapshot",
            subject=shown(ref))
    statefile.no_link(area(layout), "the pulled snapshots")
    statefile.no_link(area(layout) / host, "the pulled snapshots")
    path = area(layout) / host / f"{snapshot_id}.json"
    doc = snapshot_store.read(path, True, snapshot_id, _fix(host))
    if doc is None:
        raise NotReadyError(
            f"reading snapshot {shown(ref)}: not pulled (no {path}); run `rescue.pyz snapshot "
            "pull --git REPO`, then see `rescue.pyz snapshot list --pulled`",
            operation="reading snapshot", subject=shown(ref))
    return doc


def survey(layout: Layout) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(every good pulled snapshot, by host then age; every damaged file), like the store's."""
    statefile.no_link(area(layout), "the pulled snapshots")
    try:
        hosts = sorted(os.listdir(area(layout)))
    except FileNotFoundError:
        return [], []
    good: List[Dict[str, Any]] = []
    damaged: List[Dict[str, Any]] = []
    for host in hosts:
        where = area(layout) / host
        if not is_host(host) or os.path.islink(where) or not where.is_dir():
            damaged.append({"file": str(where), "exit_code": 2, "message": (
                f"reading pulled snapshots {area(layout)}/{shown(host)}: not a host's "
                "directory; move it out of the way")})
            continue
        found = []
        for name in sorted(os.listdir(where)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            sid = name[:-len(".json")]
            try:
                if not is_id(sid):
                    raise statefile.damaged(where / name, "snapshot", "its name is not a "
                                            "snapshot id", _fix(host))
                doc = snapshot_store.read(where / name, True, sid, _fix(host))
            except RescueError as exc:
                damaged.append({"file": str(where / name), "message": exc.message,
                                "exit_code": exc.exit_code})
                continue
            if doc is not None:
                found.append({"ref": f"{host}:{sid}", "host": host, "id": sid,
                               "created": doc["created"], "tag": doc["tag"],
                               "toolchain": doc["toolchain"],
                               "root_hash": doc["goroot"]["root_hash"], "file": str(where / name)})
        good += sorted(found, key=lambda s: (s["created"], s["id"]))
    return good, damaged


def keep(layout: Layout, host: str, snapshot_id: str, data: bytes, where: str) -> bool:
    """Keep a checked record; False when the same bytes are kept already. A different record
    under the same name is never replaced: the repository's copy was changed (exit 3)."""
    statefile.no_link(area(layout), "the pulled snapshots")
    directory = area(layout) / host
    statefile.no_link(directory, "the pulled snapshots")
    if os.path.lexists(directory) and not directory.is_dir():
        raise statefile.damaged(directory, "the pulled snapshots", "it is not a directory",
                                f"move it aside (`mv {directory} {directory}.damaged`) and pull "
                                "again")
    final = directory / f"{snapshot_id}.json"
    had = statefile.read_bytes(final, "snapshot", _fix(host),
                               limit=DEFAULT_LIMITS.snapshot_file_bytes)
    if had is not None and had != data:
        raise TrustError(
            f"pulling snapshot {where}: it differs from the copy pulled before ({final}); a "
            "record is never rewritten, so the repository's was changed after it was pushed; "
            "ask the host's owner which is right, and compare both with `snapshot diff`",
            operation="pulling snapshot", subject=where)
    if had is not None:
        return False
    try:
        return _claim(directory, final, snapshot_id, data)
    except OSError as exc:
        raise NotReadyError(
            f"pulling snapshot {where}: keeping it as {final}: {exc.strerror or exc}; run as "
            f"the user who owns {layout.root}, or pass a --prefix of your own",
            operation="pulling snapshot", subject=where) from None


def _claim(directory: Path, final: Path, snapshot_id: str, data: bytes) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{snapshot_id}.{os.getpid()}.new"
    write_atomic(tmp, data)
    try:
        os.link(tmp, final)  # never replaces a file another pull kept meanwhile
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True
