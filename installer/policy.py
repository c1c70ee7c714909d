"""The retention policy of a prefix (`P/state/policy.toml`) and the disk watermarks it sets.

    keep = 3              # toolchains kept by `prune` beside current, previous and pinned
    keep_days = 30        # ... and nothing newer than this many days is pruned
    pinned = ["go1.21.13.linux-amd64"]
    warn_percent = 85     # an install warns above this much of the disk used
    stop_percent = 95     # ... and refuses above this, unless --auto-prune frees enough
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from installer import statefile
from installer.prefix import Layout
from manifests.errors import NotReadyError
from manifests.goversion import split_toolchain_id

POLICY_FILE = "policy.toml"
_LINE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*(?:#.*)?$')


@dataclass
class Policy:
    keep: Optional[int] = None
    keep_days: Optional[int] = None
    pinned: List[str] = field(default_factory=list)
    warn_percent: float = 85.0
    stop_percent: float = 95.0


def parse(text: str, where: str) -> Dict[str, Any]:
    """The flat `key = value` TOML this file uses (Python 3.9/3.10 have no tomllib): integers,
    floats, strings and lists of strings, as JSON reads them; anything else is refused."""
    doc: Dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.strip().startswith("#"):
            continue
        found = _LINE.match(raw)
        try:
            if not found:
                raise ValueError("not `key = value`")
            doc[found.group(1)] = statefile.parse_json(found.group(2))
        except ValueError as exc:
            raise NotReadyError(f"reading policy {where}:{number}: {exc}; write `key = 3`, "
                                '`key = "text"` or `key = ["a", "b"]`') from None
    return doc


# The ranges a sane policy keeps to (a negative keep once meant "remove everything").
_RANGES = {"keep": (0, 10_000), "keep_days": (0, 36_500), "warn_percent": (0, 100),
           "stop_percent": (0, 100)}


def load(layout: Layout) -> Policy:
    path = layout.state / POLICY_FILE
    fix = "fix or remove that line (README: Retention and the disk watermark)"
    text = statefile.read_text(path, "policy", fix)
    if text is None:
        return Policy()
    doc = parse(text, str(path))
    known = Policy.__dataclass_fields__
    for key, value in doc.items():
        if key not in known:
            raise NotReadyError(f"reading policy {path}: unknown key {key!r}; known: "
                                f"{', '.join(known)}")
        if key == "pinned":
            bad = (value if not isinstance(value, list) else
                   next((p for p in value if split_toolchain_id(p) is None), None))
            if bad is not None:
                raise NotReadyError(f"reading policy {path}: pinned must be a list of toolchain "
                                    f"ids like \"go1.21.13.linux-amd64\" ({bad!r} is not one)")
            continue
        kind = (int, float) if key.endswith("_percent") else int
        low, high = _RANGES[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            want = "a number" if kind is not int else "a whole number"
            raise NotReadyError(f"reading policy {path}: {key} must be {want} ({value!r} is "
                                "not)")
        if not low <= value <= high:  # NaN fails this too
            raise NotReadyError(f"reading policy {path}: {key} = {value!r} is outside "
                                f"{low}..{high}")
    policy = Policy(**doc)
    if not 0 < policy.warn_percent <= policy.stop_percent <= 100:
        raise NotReadyError(f"reading policy {path}: need 0 < warn_percent <= stop_percent "
                            "<= 100")
    return policy


@dataclass
class Disk:
    total: int
    used: int
    free: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


def disk(path: Path) -> Disk:
    u = shutil.disk_usage(path)
    return Disk(u.total, u.used, u.free)


def shortfall(d: Disk, needed: int, policy: Policy) -> int:
    """Bytes to free before an install of `needed` bytes may go on (0: none)."""
    after_used = d.used + needed
    by_mark = after_used - int(d.total * policy.stop_percent / 100)
    by_space = needed - d.free
    return max(0, by_mark, by_space)
