"""What a prefix remembers: installed bundles, the newest sequence seen per channel."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from installer import prefix
from installer.prefix import Layout
from manifests.files import write_atomic

STATE_FILE = "installed.json"


def load(layout: Layout) -> Dict[str, Any]:
    path = layout.state / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        return {"bundles": [], "channels": {}}


def save(layout: Layout, state: Dict[str, Any]) -> None:
    write_atomic(layout.state / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")



def record(layout: Layout, state: Dict[str, Any], entry: Dict[str, Any],
           manifest_bytes: bytes, signature: bytes = b"") -> None:
    """Note the bundle, and keep its signed manifest and signature for `verify`."""
    layout.bundles.mkdir(parents=True, exist_ok=True)
    if signature:  # before the manifest: a kept manifest always has its signature beside it
        write_atomic(layout.bundles / f"{entry['manifest_sha256']}.sig", signature)
    write_atomic(layout.bundles / f"{entry['manifest_sha256']}.json",
                  manifest_bytes.decode("utf-8"))
    state["bundles"] = [b for b in state.get("bundles", [])
                        if b.get("manifest_sha256") != entry["manifest_sha256"]] + [entry]
    channels = state.setdefault("channels", {})
    channels[entry["channel"]] = max(channels.get(entry["channel"], 0), entry["sequence"])
    save(layout, state)


# The journal makes "record the bundle, switch `current`, note it in the history" one step:
# written before, removed after. Whoever takes the lock next and finds it finishes the step (the
# checklist had passed), so the state and the history always match `current`.


def begin(layout: Layout, op: str, current: Optional[str], record: Optional[Dict[str, Any]],
          entry: Optional[Dict[str, Any]] = None, manifest_bytes: bytes = b"",
          signature: bytes = b"") -> None:
    layout.state.mkdir(exist_ok=True)
    write_atomic(layout.journal, json.dumps({
        "op": op, "entry": entry, "current": current, "history": record,
        "manifest": manifest_bytes.decode("utf-8"),
        "signature": signature.decode("ascii")}, sort_keys=True))


def finish(layout: Layout) -> None:
    os.unlink(layout.journal)


def recover(layout: Layout) -> Optional[str]:
    """Finish a command that was killed inside its journaled step. A note saying so, or None."""
    from installer import history

    try:
        doc = json.loads(layout.journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # cut short before its rename: the step never began
        os.unlink(layout.journal)
        return None
    entry, current = doc.get("entry"), doc.get("current")
    if entry:
        record(layout, load(layout), entry, doc["manifest"].encode("utf-8"),
               doc.get("signature", "").encode("ascii"))
    if current and (layout.root / current).is_dir():
        prefix.switch_symlink(layout.current, current)
    if doc.get("history") and current:
        history.append(layout, doc["history"])
    finish(layout)
    what = f" of {entry['name']} #{entry['sequence']}" if entry else ""
    return (f"finished an interrupted {doc.get('op', 'command')}{what}"
            + (f" (current -> {current})" if current else ""))
