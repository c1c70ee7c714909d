"""What a prefix remembers: installed bundles, the newest sequence seen per channel."""

from __future__ import annotations

import json
from typing import Any, Dict

from installer.prefix import Layout
from manifests.errors import TrustError
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



def check_sequence(state: Dict[str, Any], channel: str, sequence: int, name: str) -> None:
    """Refuse a bundle older than one already installed on its channel (a replay)."""
    newest = state.get("channels", {}).get(channel, 0)
    if sequence < newest:
        raise TrustError(
            f"checking bundle {name} #{sequence}: channel {channel!r} already installed "
            f"sequence {newest} here; installing an older bundle over a newer one is refused "
            "(it could replay a known-bad release). To go back to an older toolchain, build "
            f"a bundle of it on channel {channel!r} with a sequence above {newest}.")


def record(layout: Layout, state: Dict[str, Any], entry: Dict[str, Any],
           manifest_bytes: bytes) -> None:
    layout.bundles.mkdir(parents=True, exist_ok=True)
    write_atomic(layout.bundles / f"{entry['manifest_sha256']}.json",
                  manifest_bytes.decode("utf-8"))
    state["bundles"] = [b for b in state.get("bundles", [])
                        if b.get("manifest_sha256") != entry["manifest_sha256"]] + [entry]
    channels = state.setdefault("channels", {})
    channels[entry["channel"]] = max(channels.get(entry["channel"], 0), entry["sequence"])
    save(layout, state)
