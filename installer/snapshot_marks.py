"""The disk marks of the snapshot store's file system: above the pause mark `snapshot create`
writes nothing; above the clean mark it first removes the oldest snapshots neither tagged nor
pinned, a few at a time, measuring again after each few."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from installer import snapshot_pins, snapshot_store
from installer.policy import disk
from installer.prefix import Layout, existing_ancestor
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS

PAUSE = DEFAULT_LIMITS.snapshot_pause_percent
CLEAN = DEFAULT_LIMITS.snapshot_clean_percent
BATCH = DEFAULT_LIMITS.snapshot_clean_batch


class Paused(NotReadyError):
    """The store's disk is past the pause mark: no snapshot was written (exit 2)."""


def make_room(layout: Layout) -> Dict[str, Any]:
    """{used_percent, removed, ...} after the clean mark had its say; Paused when the disk is
    still past the pause mark."""
    where = existing_ancestor(snapshot_store.store(layout))
    before = disk(where).percent
    used = before
    removed: List[str] = []
    if used >= CLEAN:
        pinned = snapshot_pins.load(layout)
        candidates = [s for s in snapshot_store.listing(layout)  # oldest first
                      if not s["tag"] and s["id"] not in pinned]
        while used >= CLEAN and candidates:
            batch, candidates = candidates[:BATCH], candidates[BATCH:]
            for s in batch:
                try:
                    os.unlink(s["file"])
                except FileNotFoundError:  # pruned meanwhile: gone all the same
                    pass
                except OSError as exc:
                    raise NotReadyError(
                        f"cleaning snapshots {s['file']}: {exc.strerror}; the disk is "
                        f"{used:.0f}% used (clean mark {CLEAN:g}%): run as the user who owns "
                        "the prefix, or free space", operation="cleaning snapshots",
                        subject=s["file"]) from None
                removed.append(s["id"])
            used = disk(where).percent
    marks = {"used_percent": round(used, 1), "before_percent": round(before, 1),
             "pause_percent": PAUSE, "clean_percent": CLEAN, "removed": removed,
             "paused": used >= PAUSE, "filesystem": str(where)}
    if used >= PAUSE:
        went = (f"; the clean mark ({CLEAN:g}%) removed {', '.join(removed)}" if removed else
                f"; past the clean mark ({CLEAN:g}%) nothing was left to remove: every "
                "snapshot is tagged or pinned" if before >= CLEAN else "")
        err = Paused(
            f"taking a snapshot of {layout.root}: paused, the disk holding "
            f"{snapshot_store.store(layout)} is {used:.0f}% used, past the pause mark of "
            f"{PAUSE:g}%{went}; no snapshot was written. Free space on {where}, or remove old "
            "snapshots (`rescue.pyz snapshot prune --keep N`, `snapshot unpin ID`), then run it "
            "again", operation="taking a snapshot of", subject=str(layout.root))
        err.details = {"marks": marks}  # type: ignore[attr-defined]
        raise err
    return marks
