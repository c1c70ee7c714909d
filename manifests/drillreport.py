"""One shape for a fault drill's outcome, on both sides of the air gap: a table and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from manifests.limits import DEFAULT_LIMITS
from manifests.text import first_line


@dataclass
class Step:
    """One thing the drill did: inject, detect, recover or check, and what it showed."""

    phase: str  # inject, detect, recover, check
    action: str  # what ran, as a user would type it where possible
    ok: bool
    seconds: float
    detail: str = ""  # the message the user saw: its first line, cut short


@dataclass
class Drill:
    name: str  # goroot-corruption, modcache-poisoning, truncated-bundle, proxy-cert
    fault: str = ""  # what was injected, in one line
    detected_by: str = ""  # the first check that caught it
    detect_seconds: Optional[float] = None  # injection to the first failing check
    recovered_by: str = ""
    recover_seconds: Optional[float] = None  # detection to a passing check of real use
    ok: bool = False  # the fault was detected and recovered from
    skipped: str = ""  # why it did not run (a bundle is needed, no modules installed)
    steps: List[Step] = field(default_factory=list)

    def step(self, phase: str, action: str, ok: bool, seconds: float, detail: str = "") -> Step:
        s = Step(phase, action, ok, round(seconds, 2),
                 first_line(detail, DEFAULT_LIMITS.step_detail_chars))
        self.steps.append(s)
        return s

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def table(drills: List[Drill]) -> str:
    """Time to detect and to recover per drill, as the README's runbook shows it."""
    rows = [("drill", "result", "detected by", "detect s", "recovered by", "recover s")]
    for d in drills:
        result = "skipped" if d.skipped else "ok" if d.ok else "FAILED"
        rows.append((d.name, result, d.detected_by or "-", _secs(d.detect_seconds),
                     d.recovered_by or "-", _secs(d.recover_seconds)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for d in drills:
        if d.skipped:
            lines.append(f"{d.name}: skipped: {d.skipped}")
        for s in d.steps:
            if not s.ok and s.phase in ("recover", "check"):
                lines.append(f"{d.name}: {s.phase} failed: {s.action}: {s.detail}")
    return "\n".join(lines)


def _secs(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"
