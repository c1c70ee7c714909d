"""What a prefix remembers: installed bundles, the newest sequence seen per channel."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Dict, List, Optional

from installer import prefix, statefile
from installer.prefix import Layout
from manifests.errors import RescueError
from manifests.files import write_atomic
from manifests.goversion import split_toolchain_id
from manifests.model import GOTOOLCHAIN_CHOICES

STATE_FILE = "installed.json"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
OPS = ("install", "use", "rollback", "guard-rollback")


def entry_problem(entry: Any) -> Optional[str]:
    """What is wrong with one installed-bundle record (None when nothing is): its fields
    become file names (`manifest_sha256`), paths (`toolchains`) and replay marks (`sequence`)."""
    if not isinstance(entry, dict):
        return "a bundle record is not an object"
    for key, kind in (("name", str), ("channel", str), ("sequence", int),
                      ("manifest_sha256", str), ("toolchains", list)):
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
            return f"a bundle record's {key} is missing or not a {kind.__name__}"
    if entry["sequence"] < 0:
        return f"bundle {entry['name']!r} has a negative sequence"
    if not _SHA256_HEX.fullmatch(entry["manifest_sha256"]):
        return f"bundle {entry['name']!r} has a manifest_sha256 that is not sha256 hex"
    bad = [t for t in entry["toolchains"] if split_toolchain_id(t) is None]
    if bad:
        return f"bundle {entry['name']!r} names a toolchain that is not an id: {bad[0]!r}"
    for key, kind in (("signer", str), ("installed_at", str), ("modules", list)):
        if key in entry and not isinstance(entry[key], kind):
            return f"bundle {entry['name']!r} has a {key} that is not a {kind.__name__}"
    if "installed_at" in entry and not _STAMP.fullmatch(entry["installed_at"]):
        return f"bundle {entry['name']!r} has an installed_at that is not a UTC time"
    if not all(isinstance(m, str) for m in entry.get("modules", [])):
        return f"bundle {entry['name']!r} has a module that is not a string"
    if "gotoolchain" in entry and entry["gotoolchain"] not in GOTOOLCHAIN_CHOICES:
        return (f"bundle {entry['name']!r} has a gotoolchain that is not one of "
                f"{', '.join(GOTOOLCHAIN_CHOICES)}")
    return None


def _state_problem(doc: Any) -> Optional[str]:
    if not isinstance(doc, dict):
        return "not a JSON object"
    bundles, channels = doc.get("bundles", []), doc.get("channels", {})
    if not isinstance(bundles, list) or not isinstance(channels, dict):
        return "'bundles' must be a list and 'channels' an object"
    for name, seq in channels.items():
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return f"channel {name!r} has a sequence that is not a whole number >= 0"
    return next(filter(None, map(entry_problem, bundles)), None)


def load(layout: Layout) -> Dict[str, Any]:
    """What installed.json holds, checked field by field; exit 2 naming the file if damaged."""
    doc = statefile.read_json(
        layout.state / STATE_FILE, "installed bundles", check=_state_problem,
        fix="restore it from a backup, or move it aside and install your bundles again to "
            "rebuild it (replay protection then restarts from those bundles)")
    if doc is None:
        return {"bundles": [], "channels": {}}
    doc.setdefault("bundles", [])
    doc.setdefault("channels", {})
    return doc  # type: ignore[no-any-return]


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


def _link_problem(layout: Layout, link: Any) -> Optional[str]:
    """`versions/<id>` of a toolchain installed here, or what else it is."""
    if link is None:
        return None
    head, _, tc_id = link.partition("/") if isinstance(link, str) else ("", "", "")
    if head != "versions" or split_toolchain_id(tc_id) is None:
        return f"its current {link!r} is not versions/<toolchain id>"
    if not os.path.isdir(layout.versions / tc_id) or os.path.islink(layout.versions / tc_id):
        return f"its current {link!r} is not installed"
    return None


def journal_problem(layout: Layout, doc: Any) -> Optional[str]:
    """What makes a journal something rescue did not write (None when nothing does). Its
    entry must be the record of the manifest it carries, byte for byte and field by field."""
    from installer import history
    from manifests.model import parse_manifest

    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("op") not in OPS:
        return f"its op {doc.get('op')!r} is not one rescue journals"
    problem = _link_problem(layout, doc.get("current"))
    if problem:
        return problem
    if doc.get("history") is not None and history.record_problem(doc["history"]):
        return f"its history record is damaged ({history.record_problem(doc['history'])})"
    entry = doc.get("entry")
    if entry is None:
        return None
    problem = entry_problem(entry)
    if problem:
        return problem
    if not isinstance(doc.get("manifest"), str) or not isinstance(doc.get("signature"), str):
        return "its manifest or signature is not text"
    data = doc["manifest"].encode("utf-8")
    if hashlib.sha256(data).hexdigest() != entry["manifest_sha256"]:
        return "its manifest does not hash to the entry's manifest_sha256"
    try:
        m = parse_manifest(data)
    except RescueError as exc:
        return f"its manifest is not one rescue accepts ({exc.message})"
    if (entry["name"], entry["channel"], entry["sequence"]) != (m.name, m.channel, m.sequence):
        return "its entry's name, channel or sequence differ from its manifest's"
    if not set(entry["toolchains"]) <= {t.id for t in m.toolchains}:
        return "its entry names toolchains its manifest does not carry"
    if entry.get("gotoolchain", "") != m.gotoolchain:
        return "its entry's gotoolchain differs from its manifest's"
    return None


def recover(layout: Layout) -> List[str]:
    """Finish a command that was killed inside its journaled step: notes saying so. A journal
    rescue did not write (planted, damaged) is set aside unapplied, and the note says so."""
    from installer import history

    fix = "nothing of it was applied"
    try:
        doc = statefile.read_json(layout.journal, "journal", fix, check=lambda d: None)
    except statefile.DamagedState as exc:
        return [_set_aside(layout, exc.message)]
    if doc is None:
        return []
    problem = journal_problem(layout, doc)
    if problem:
        return [_set_aside(layout, f"reading journal {layout.journal}: {problem}")]
    entry, current = doc.get("entry"), doc.get("current")
    if entry:
        record(layout, load(layout), entry, doc["manifest"].encode("utf-8"),
               doc["signature"].encode("ascii", "replace"))
    if current:
        prefix.switch_symlink(layout.current, current)
        if doc.get("history"):
            history.append(layout, doc["history"])
    finish(layout)
    what = f" of {entry['name']} #{entry['sequence']}" if entry else ""
    return [f"finished an interrupted {doc['op']}{what}"
            + (f" (current -> {current})" if current else "")]


def _set_aside(layout: Layout, why: str) -> str:
    """Keep a journal rescue will not apply for whoever investigates, out of the way."""
    aside = layout.journal.with_name(f"{layout.journal.name}.rejected")
    try:
        os.replace(layout.journal, aside)
    except OSError as exc:  # a directory planted in its place, say
        raise statefile.damaged(layout.journal, "journal", f"{why}; and it cannot be moved "
                                f"aside ({exc.strerror})", f"remove {layout.journal}") from None
    return (f"{why}; it was NOT applied and is kept as {aside} (remove it once read); "
            f"`list` and `history` show the state as it is")
