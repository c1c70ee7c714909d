"""The trust store a prefix adopted from a bundle (key rotation), kept under P/state/trust/."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from installer import statefile
from installer.prefix import Layout
from keys.trust_core import Verified
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown


def _paths(layout: Layout) -> Tuple[Path, Path]:
    base = layout.state / "trust"
    return base / "allowed_signers", base / "adopted.json"


def adopted(layout: Layout) -> Optional[Tuple[str, str]]:
    """The adopted store's text and a label naming where and when it came from, or None."""
    store, about = _paths(layout)
    text = statefile.read_text(store, "the adopted trust policy", "restore it or pass --trust "
                               "FILE", DEFAULT_LIMITS.trust_store_bytes)
    if text is None:
        return None
    try:  # only words for the label: a damaged one is shown as '?'
        info = statefile.read_json(about, "adopted trust policy record", "",
                                   check=lambda d: None if isinstance(d, dict) else "not an object")
    except statefile.DamagedState:
        info = None
    info = info or {}
    return text, (f"the trust policy version {_said(info.get('version'))} adopted on "
                  f"{_said(info.get('adopted_at'))} from bundle {_said(info.get('bundle'))} "
                  f"({store})")


def _said(value: Any) -> str:
    """A field of adopted.json as words: plain when it is short printable text, else quoted."""
    text = str(value) if isinstance(value, (str, int)) and value is not None else "?"
    return text if text.isprintable() and len(text) <= 80 else shown(text)


def earlier(layout: Layout) -> List[Tuple[str, str]]:
    """The stores in use before each adoption (text, label): a key rotated out still vouches
    for the bundles it signed while it was trusted."""
    out = []
    for path in sorted(layout.state.glob("trust/before-v*.allowed_signers")):
        try:
            text = statefile.read_text(path, "an earlier trust store", "",
                                       DEFAULT_LIMITS.trust_store_bytes)
        except statefile.DamagedState:
            continue
        if text is not None:
            out.append((text, str(path)))
    return out


def adopt(layout: Layout, verified: Verified, current: Sequence[Any]) -> str:
    """Keep the bundle's newer trust store; from now on it decides which keys count. The
    store it replaces is kept too, for `verify` of bundles installed under it."""
    store, about = _paths(layout)
    store.parent.mkdir(parents=True, exist_ok=True)
    before = store.parent / f"before-v{verified.policy_version}.allowed_signers"
    write_atomic(before, getattr(current, "text", ""))
    m = verified.manifest
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    write_atomic(about, json.dumps({"version": verified.policy_version,
                                    "bundle": f"{m.name} #{m.sequence}",
                                    "manifest_sha256": verified.manifest_sha256,
                                    "adopted_at": when}, sort_keys=True) + "\n")
    write_atomic(store, verified.adopt_policy)
    return (f"adopted trust policy version {verified.policy_version} from bundle {m.name} "
            f"#{m.sequence}: bundles signed only by keys it removed or revoked are refused from "
            f"now on ({store})")
