"""Snapshots kept in P/state/snapshots/<id>.json: stored under an id claimed atomically, read
back bounded and checked field by field, listed, pruned."""

from __future__ import annotations

import errno
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from installer import statefile
from installer.prefix import Layout
from installer.snapshot_check import CREATED, contradiction, is_id, problem
from manifests.errors import NotReadyError, RescueError, TrustError
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

WHAT = "snapshot"


def store(layout: Layout) -> Path:
    return layout.state / "snapshots"


def check_id(snapshot_id: str) -> str:
    if not is_id(snapshot_id):
        raise NotReadyError(
            f"reading snapshot {shown(snapshot_id)}: not a snapshot id (letters, digits and "
            "`._+-`); see `rescue.pyz snapshot list` for the ids, or pass the path of a "
            "snapshot file", operation="reading snapshot", subject=shown(snapshot_id))
    return snapshot_id


# --- writing ----------------------------------------------------------------------------------

def save(layout: Layout, snap: Dict[str, Any], copy_to: Optional[Path] = None
         ) -> Tuple[Optional[Path], List[str]]:
    """Write the snapshot into the store (a free id: `-2`, `-3` after a taken one) and to
    `copy_to`. Returns (stored path or None, notes). A store this user may not write is an
    error, unless the copy could be written."""
    notes: List[str] = []
    stored: Optional[Path] = None
    try:
        statefile.no_link(store(layout), "the snapshot store")
        store(layout).mkdir(parents=True, exist_ok=True)
        stored = _claim(store(layout), snap)
    except OSError as exc:
        if copy_to is None or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise NotReadyError(
                f"writing snapshot {store(layout)}: {exc.strerror or exc}; pass -o FILE to "
                "write it elsewhere, or run as the user who owns the prefix",
                operation="writing snapshot", subject=str(store(layout))) from None
        notes.append(f"not kept in {store(layout)} ({exc.strerror}): only {copy_to} has it")
    if copy_to is not None:
        try:
            write_atomic(copy_to.absolute(), _text(snap))
        except OSError as exc:
            raise NotReadyError(
                f"writing snapshot {copy_to}: {exc.strerror or exc}; pass -o with a file in a "
                "directory you can write", operation="writing snapshot",
                subject=str(copy_to)) from None
    return stored, notes


def _text(snap: Dict[str, Any]) -> str:
    return json.dumps(snap, indent=2, sort_keys=True) + "\n"


def _claim(directory: Path, snap: Dict[str, Any]) -> Path:
    """Store the whole record under the first free id (`ID`, `ID-2`, ...). Two commands in one
    second make one id: the name is claimed by link(2), which like O_CREAT|O_EXCL fails when it
    is taken, so neither replaces the other's record, and the file appears whole."""
    base, n = snap["id"], 1
    while True:
        final = directory / f"{check_id(snap['id'])}.json"
        tmp = directory / f".{snap['id']}.{os.getpid()}.new"
        write_atomic(tmp, _text(snap))  # fsynced under a private name first
        try:
            _link(tmp, final)
            return final
        except FileExistsError:
            n += 1
            snap["id"] = f"{base}-{n}"
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)


def _link(tmp: Path, final: Path) -> None:
    try:
        os.link(tmp, final)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # No hard links on this file system: claim the name empty, then fill it.
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o644))
        os.replace(tmp, final)


# --- reading ----------------------------------------------------------------------------------

def read(path: Path, in_store: bool, expect_id: Optional[str] = None,
         fix: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The snapshot in `path` (None when there is no such file), or the error naming the file,
    what is wrong and the way out: damage exit 2, sums that contradict its own list exit 3."""
    if fix is None and in_store:
        fix = (f"move it aside (`mv {path} {path}.damaged`) and take a new snapshot with "
               "`rescue.pyz snapshot create`, or put back the copy written with -o")
    elif fix is None:
        fix = ("pass a snapshot file as `rescue.pyz snapshot create -o FILE` wrote it (copy it "
               "again if it was cut on the way)")
    data = statefile.read_bytes(path, WHAT, fix, limit=DEFAULT_LIMITS.snapshot_file_bytes)
    if data is None:
        return None
    return check_bytes(data, str(path), fix, expect_id)


def check_bytes(data: bytes, where: str, fix: str, expect_id: Optional[str] = None
                ) -> Dict[str, Any]:
    """The snapshot these bytes hold (read bounded from a file or a Git blob), checked field by
    field and against its own sums; `where` names them in the error."""
    path: Any = where  # a file, or `URL:snapshots/HOST/ID.json` (never made a Path: `//`)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise statefile.damaged(path, WHAT, f"not UTF-8 text (byte {exc.start})", fix) from None
    if not text.strip():
        raise statefile.damaged(path, WHAT, "it is empty (cut short?)", fix)
    try:
        doc = statefile.parse_json(text)
    except ValueError as exc:
        raise statefile.damaged(path, WHAT, f"not JSON ({exc})", fix) from None
    wrong = problem(doc)
    if wrong:
        raise statefile.damaged(path, WHAT, wrong, fix)
    if expect_id is not None and doc["id"] != expect_id:
        raise statefile.damaged(path, WHAT, f"it holds snapshot {shown(doc['id'])}, not the "
                                f"{shown(expect_id)} its name says", fix)
    bad = contradiction(doc)
    if bad:
        what, recorded, computed = bad
        raise TrustError(
            f"reading snapshot {where}: {what} ({recorded} recorded, {computed} computed): it "
            "was edited after `snapshot create` wrote it, so it proves nothing; compare it with "
            "the copy written with -o, or take a new snapshot of a toolchain `rescue.pyz "
            "verify` passes", operation="reading snapshot", subject=where, expected=recorded,
            got=computed)
    return doc  # type: ignore[no-any-return]


def load(layout: Layout, ref: str) -> Dict[str, Any]:
    """A stored snapshot by id, a pulled one by HOST:ID, or a snapshot file by path (one with
    a `/`)."""
    if ":" in ref and "/" not in ref and os.sep not in ref:
        from installer import snapshot_pulled

        return snapshot_pulled.load(layout, ref)
    if "/" in ref or os.sep in ref:
        doc = read(Path(ref), in_store=False)
        if doc is None:
            raise NotReadyError(f"reading snapshot {ref}: no such file; pass the path of a file "
                                "written by `rescue.pyz snapshot create -o FILE`",
                                operation="reading snapshot", subject=ref)
        return doc
    statefile.no_link(store(layout), "the snapshot store")
    doc = read(store(layout) / f"{check_id(ref)}.json", in_store=True, expect_id=ref)
    if doc is None:
        known = [s["id"] for s in listing(layout)][-5:]
        raise NotReadyError(
            f"reading snapshot {shown(ref)}: no such snapshot in {store(layout)}; "
            + (f"the newest are {', '.join(known)}; " if known else "there are none yet; ")
            + "see `rescue.pyz snapshot list`", operation="reading snapshot",
            subject=shown(ref))
    return doc


def _each(layout: Layout) -> Iterator[Tuple[Path, Optional[Tuple[bytes, Dict[str, Any]]],
                                            Optional[Dict[str, Any]]]]:
    """Every record file of the store, read once: (path, (its bytes, the checked snapshot) or
    None when it went meanwhile, None) or (path, None, what is damaged: file, message, exit
    code). One damaged file never hides the others."""
    statefile.no_link(store(layout), "the snapshot store")
    try:
        names = sorted(os.listdir(store(layout)))
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = store(layout) / name
        if not is_id(name[:-len(".json")]):  # not ours, and its name may not be printable
            yield path, None, {"file": str(path), "exit_code": 2, "message": (
                f"reading snapshot {store(layout)}/{shown(name)}: its name is not a snapshot "
                "id; move it out of the store")}
            continue
        fix = (f"move it aside (`mv {path} {path}.damaged`) and take a new snapshot with "
               "`rescue.pyz snapshot create`, or put back the copy written with -o")
        try:
            data = statefile.read_bytes(path, WHAT, fix,
                                        limit=DEFAULT_LIMITS.snapshot_file_bytes)
            good = None if data is None else (
                data, check_bytes(data, str(path), fix, name[:-len(".json")]))
        except RescueError as exc:
            yield path, None, {"file": str(path), "message": exc.message,
                               "exit_code": exc.exit_code}
            continue
        yield path, good, None


def survey(layout: Layout) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(a summary of every good stored snapshot, oldest first; every damaged one: its file, the
    error's message and exit code)."""
    good, damaged = [], []
    for path, found, bad in _each(layout):
        if bad is not None:
            damaged.append(bad)
        elif found is not None:  # else removed since the directory was listed
            doc = found[1]
            good.append({"id": doc["id"], "created": doc["created"], "tag": doc["tag"],
                         "toolchain": doc["toolchain"], "root_hash": doc["goroot"]["root_hash"],
                         "ci": (doc["ci"] or {}).get("provider"), "file": str(path)})
    return sorted(good, key=lambda s: (s["created"], s["id"])), damaged


def stored_bytes(layout: Layout) -> Tuple[Dict[str, bytes], List[Dict[str, Any]]]:
    """({id: the bytes of each good stored snapshot}, the damaged ones): what `snapshot sync`
    pushes is exactly what was checked, read once."""
    records, damaged = {}, []
    for _, found, bad in _each(layout):
        if bad is not None:
            damaged.append(bad)
        elif found is not None:
            records[found[1]["id"]] = found[0]
    return records, damaged


def listing(layout: Layout) -> List[Dict[str, Any]]:
    return survey(layout)[0]


def prune(layout: Layout, keep: Optional[int], older_than_days: Optional[float],
          now: Optional[datetime] = None, dry_run: bool = False,
          include_tagged: bool = False, include_pinned: bool = False) -> Dict[str, List[Any]]:
    """Remove stored snapshots. Kept: the newest `keep`, and those younger than the given days;
    with both options a snapshot goes only when neither keeps it. A tagged snapshot (a
    release's record) is kept apart, and takes none of the `keep` places, unless
    `include_tagged`; so is a pinned one (`snapshot pin`) unless `include_pinned`. Damaged files
    are left for a person to look at (`snapshot list`)."""
    from installer import snapshot_pins

    now = now or datetime.now(timezone.utc)
    pins = set() if include_pinned else snapshot_pins.load(layout)
    snaps, damaged = survey(layout)
    cutoff = now - timedelta(days=older_than_days) if older_than_days is not None else None
    removed, kept, tagged, pinned = [], [], [], []
    place = 0
    for s in reversed(snaps):  # newest first
        if s["id"] in pins:
            pinned.append(s["id"])
            kept.append(s["id"])
            continue
        if s["tag"] and not include_tagged:
            tagged.append(s["id"])
            kept.append(s["id"])
            continue
        created = datetime.strptime(s["created"], CREATED).replace(tzinfo=timezone.utc)
        keep_it = ((keep is not None and place < keep)
                   or (cutoff is not None and created >= cutoff)
                   or (keep is None and cutoff is None))
        place += 1
        (kept if keep_it else removed).append(s["id"])
        if not keep_it and not dry_run:
            os.unlink(s["file"])
    return {"removed": removed, "kept": kept, "tagged": tagged, "pinned": pinned,
            "damaged": [d["file"] for d in damaged]}
