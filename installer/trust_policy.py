"""The trust store a prefix adopted from a bundle (key rotation), kept under P/state/trust/."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from installer.prefix import Layout
from keys.trust_core import Verified
from manifests.errors import NotReadyError
from manifests.files import write_atomic


def _paths(layout: Layout) -> Tuple[Path, Path]:
    base = layout.state / "trust"
    return base / "allowed_signers", base / "adopted.json"


def adopted(layout: Layout) -> Optional[Tuple[str, str]]:
    """The adopted store's text and a label naming where and when it came from, or None."""
    store, about = _paths(layout)
    try:
        text = store.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotReadyError(f"reading the adopted trust policy {store}: {exc}; restore it or "
                            "pass --trust FILE", operation="reading trust store",
                            subject=str(store)) from None
    try:
        info = json.loads(about.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    return text, (f"the trust policy version {info.get('version', '?')} adopted on "
                  f"{info.get('adopted_at', '?')} from bundle {info.get('bundle', '?')} "
                  f"({store})")


def earlier(layout: Layout) -> List[Tuple[str, str]]:
    """The stores in use before each adoption (text, label): a key rotated out still vouches
    for the bundles it signed while it was trusted."""
    out = []
    for path in sorted(layout.state.glob("trust/before-v*.allowed_signers")):
        try:
            out.append((path.read_text(encoding="utf-8"), str(path)))
        except (OSError, UnicodeDecodeError):
            continue
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
