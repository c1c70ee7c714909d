"""Day-two operations on installed toolchains: list, use, remove, pin, prune, rollback.

Every command that changes the prefix holds its lock, finishes an interrupted command first,
and keeps `current` pointing at a complete toolchain that passed the checklist: a switch is
checked before it happens and journaled while it happens; a removal is a rename out of
`versions/` first (atomic), then the delete.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from installer import (
    checklist,
    crashpoints,
    go_commands,
    guard_pending,
    history,
    hostos,
    prefix,
    state,
    statefile,
)
from installer import guard as guard_mod
from installer import policy as policy_mod
from installer.checklist import Check
from installer.host import host_target
from installer.prefix import Layout
from installer.statefile import DamagedState, damaged
from manifests.errors import ChecklistError, Interrupted, NotReadyError
from manifests.goversion import normalize, split_toolchain_id, version_key

PINS_FILE = "pins.json"
TRASH = ".trash-"
# In P/versions while `repair` rebuilds a GOROOT beside the live one and swaps it in.
REPAIR_NEW, REPAIR_OLD = ".repair-new-", ".repair-old-"


@dataclass
class Installed:
    id: str
    version: str
    target: str
    current: bool
    pinned: bool
    bundle: Optional[str]  # name #sequence of the newest bundle that carried it
    signer: Optional[str]
    installed_at: Optional[str]
    bytes: int

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Switched:
    """What `use` / `rollback` did."""

    previous: Optional[str]
    current: Optional[str]
    checks: List[Check] = field(default_factory=list)
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)
    guard: Optional[guard_mod.Report] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"previous": self.previous, "current": self.current, "notes": self.notes,
                "checks": [c.to_dict() for c in self.checks], "seconds": round(self.seconds, 2),
                "guard": self.guard.to_dict() if self.guard else None}


def _split(tc_id: str) -> Optional[tuple]:
    """`go1.21.13.linux-amd64` -> (`go1.21.13`, `linux-amd64`), or None for any other name."""
    return split_toolchain_id(tc_id)


def installed_ids(layout: Layout) -> List[str]:
    try:
        names = os.listdir(layout.versions)
    except FileNotFoundError:
        return []
    return sorted((n for n in names if _split(n) and _is_real_dir(layout.versions / n)),
                  key=lambda n: (version_key(_split(n)[0]), n))


def _linked_ids(layout: Layout) -> List[str]:
    """Toolchain names in P/versions that are links (a distro's Go linked in by hand)."""
    try:
        names = os.listdir(layout.versions)
    except OSError:
        return []
    return sorted(n for n in names if _split(n) and os.path.islink(layout.versions / n))


def current_id(layout: Layout) -> Optional[str]:
    """The installed toolchain `current` names, or None when there is no `current` or it is
    anything but a link to `versions/<installed id>` (see `checked_current`)."""
    try:
        return checked_current(layout)
    except NotReadyError:
        return None


def current_problem(layout: Layout) -> Optional[str]:
    """What is wrong with `P/current` (None when it is absent or names an installed toolchain):
    a link planted outside the prefix, dangling, a loop, or not a link at all."""
    if not os.path.lexists(layout.current):
        return None
    if not hostos.is_dir_link(layout.current):
        return "it is not a symbolic link"
    try:
        target = hostos.link_target(layout.current)
    except (OSError, ValueError) as exc:
        return f"it cannot be read ({exc})"
    head, _, tc_id = target.partition("/")
    if head != "versions" or _split(tc_id) is None:
        return f"it points to {target!r}, not to versions/<an installed toolchain>"
    if not _is_real_dir(layout.versions / tc_id):
        return f"it points to {target!r}, which is not installed"
    return None


def checked_current(layout: Layout) -> Optional[str]:
    """The current toolchain's id, None when nothing is current; a `current` that is anything
    but `versions/<installed id>` is refused with its fix, before a command acts on it."""
    problem = current_problem(layout)
    if problem:
        have = installed_ids(layout)
        raise NotReadyError(
            f"reading {layout.current}: {problem}; make an installed toolchain current with "
            f"`use VERSION` (installed: {', '.join(have) or 'none'})",
            hint="`use VERSION` replaces the link; nothing else was changed")
    link = prefix.current_target(layout)
    return link.rsplit("/", 1)[-1] if link else None


def _is_real_dir(path: Path) -> bool:
    """A directory itself, not a link to one (nor a junction): rescue never walks through a
    link."""
    return hostos.is_real_dir(path)


def pins(layout: Layout) -> List[str]:
    """Pinned by `pin`, or by the policy's `pinned` list."""
    pinned = statefile.read_json(
        layout.state / PINS_FILE, "pins", check=_pins_problem,
        fix=f"remove it (`rm {layout.state / PINS_FILE}`) and pin again with `pin VERSION`")
    return sorted(set(pinned or []) | set(policy_mod.load(layout).pinned))


def _pins_problem(doc: Any) -> Optional[str]:
    if not isinstance(doc, list):
        return "not a JSON list of toolchain ids"
    bad = next((p for p in doc if _split(p) is None), None)
    return None if bad is None else f"{bad!r} is not a toolchain id"


def list_installed(layout: Layout, sizes: bool = True) -> List[Installed]:
    bundles = state.load(layout).get("bundles", [])
    cur, pinned = current_id(layout), set(pins(layout))
    out = []
    for tc_id in installed_ids(layout):
        version, target = _split(tc_id)
        src = next((b for b in reversed(bundles) if tc_id in b.get("toolchains", [])), None)
        out.append(Installed(
            tc_id, version, target, tc_id == cur, tc_id in pinned,
            f"{src['name']} #{src['sequence']}" if src else None,
            src.get("signer") if src else None, src.get("installed_at") if src else None,
            prefix.tree_bytes(layout.versions / tc_id) if sizes else 0))
    return out


def resolve(layout: Layout, name: str) -> str:
    """`1.21.13`, `go1.21.13` or `go1.21.13.linux-amd64` -> an installed toolchain id."""
    have = installed_ids(layout)
    if name in have:
        return name
    want = normalize(name)
    matches = [i for i in have if _split(i)[0] == want]
    mine = [i for i in matches if _split(i)[1] == host_target()]
    if len(mine) == 1 or len(matches) == 1:
        return (mine or matches)[0]
    if matches:
        raise NotReadyError(f"choosing {name}: several are installed ({', '.join(matches)}); "
                            "name one in full")
    for link in _linked_ids(layout):
        if name == link or _split(link)[0] == want:
            path = layout.versions / link
            raise NotReadyError(
                f"choosing {name}: {path} is a symbolic link to {os.readlink(path)!r}, not a "
                "toolchain rescue installed; rescue never uses or removes anything through a "
                f"link. Remove the link itself (`rm {path}`) or install {link} from a bundle")
    raise NotReadyError(f"choosing {name}: not installed in {layout.root}; installed: "
                        f"{', '.join(have) or 'none'}. Install it from a bundle first")


def previous_id(layout: Layout) -> Optional[str]:
    """The toolchain that was current before the present one (from the history)."""
    cur = current_id(layout)
    for rec in reversed(history.load(layout)):
        if rec.get("to") == cur and rec.get("from") and rec.get("from") != cur:
            return rec["from"]  # type: ignore[no-any-return]
    return None


def switch(layout: Layout, tc_id: str, op: str, why: str,
           run_checks: Callable[[Path, str], List[Check]]) -> Switched:
    """Make `tc_id` current: checklist first (its own go), then a journaled switch."""
    started = time.monotonic()
    version, target = _split(tc_id)
    if target != host_target():
        raise NotReadyError(f"switching to {tc_id}: it is built for {target}, this machine is "
                            f"{host_target()}")
    prev = prefix.current_target(layout)
    result = Switched(current_id(layout), tc_id)
    goroot = layout.version_dir(tc_id)
    result.checks = run_checks(goroot, version)
    if not all(c.ok for c in result.checks):
        failed = ", ".join(c.name for c in result.checks if not c.ok)
        err = ChecklistError(f"switching to {tc_id}: the emergency checklist failed ({failed});"
                             f" {result.previous or 'nothing'} stays current")
        err.details = result.to_dict()  # type: ignore[attr-defined]
        err.result = result  # type: ignore[attr-defined]  # as install's: the CLI shows it
        raise err
    link = f"versions/{tc_id}"
    record = history.new_record(op, prev, link, why)
    state.begin(layout, op, link, record)
    crashpoints.reached(f"{op}-journaled")
    prefix.switch_symlink(layout.current, link)
    crashpoints.reached(f"{op}-switched")
    record["seconds"] = round(time.monotonic() - started, 2)
    history.append(layout, record)
    crashpoints.reached(f"{op}-logged")
    state.finish(layout)
    result.seconds = time.monotonic() - started
    return result


def checks_for(layout: Layout) -> Callable[[Path, str], List[Check]]:
    def run(goroot: Path, version: str) -> List[Check]:
        target = goroot.name.rpartition(".")[2]
        os_, _, arch = target.partition("-")
        return checklist.run(goroot, version, os_, arch, layout)
    return run


def remove(layout: Layout, tc_id: str) -> int:
    """Delete an installed toolchain (never the current one); the bytes freed."""
    if tc_id == checked_current(layout):
        raise NotReadyError(f"removing {tc_id}: it is the current toolchain; make another one "
                            f"current first (`use VERSION` or `rollback`), then remove it")
    if tc_id in pins(layout):
        raise NotReadyError(f"removing {tc_id}: it is pinned; `unpin {tc_id}` first")
    src = layout.version_dir(tc_id)
    if not _is_real_dir(src):  # `resolve` names only real directories; this is the last guard
        raise NotReadyError(f"removing {tc_id}: {src} is not a directory rescue installed; "
                            "rescue never removes through a link")
    size = prefix.tree_bytes(src)
    trash = layout.versions / f"{TRASH}{tc_id}-{os.getpid()}"
    os.rename(src, trash)  # atomic: from here on `list` no longer shows it
    crashpoints.reached("remove-renamed")
    prefix.remove_tree(trash)
    go_commands.sync(layout)  # no P/bin/go<V> left pointing at it
    return size


def remove_trash(layout: Layout) -> List[str]:
    """Finish removals a kill interrupted."""
    notes = []
    try:
        names = os.listdir(layout.versions)
    except FileNotFoundError:
        return notes
    for n in names:
        if n.startswith(TRASH):
            path = layout.versions / n
            if prefix.is_link(path):
                notes.append(_unlinked(path))
                continue
            prefix.remove_tree(path)
            notes.append(f"finished removing {n[len(TRASH):].rsplit('-', 1)[0]}, interrupted "
                         "before")
    return notes


def _unlinked(path: Path) -> str:
    """Unlink a link found where rescue leaves only its own directories, and say so."""
    target = os.readlink(path)
    os.unlink(path)
    return (f"removed {path.parent.name}/{path.name}, a symbolic link to {target!r} that rescue "
            "did not make (its target was not touched)")


def _why_not_adopted(layout: Layout, path: Path, tc_id: str) -> Optional[str]:
    """None when a tree a repair set aside may go back: a real directory (never a link), owned
    like P/versions, of a toolchain an installed bundle carried; else why not."""
    st, top = os.lstat(path), os.lstat(layout.versions)
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != top.st_uid:
        return f"it is owned by uid {st.st_uid}, not by the owner of {layout.versions}"
    if _split(tc_id) is None or not any(tc_id in b.get("toolchains", [])
                                        for b in state.load(layout).get("bundles", [])):
        return f"no installed bundle carried {tc_id}"
    return None


def finish_repairs(layout: Layout) -> List[str]:
    """Finish a repair a kill interrupted: an old tree set aside goes back if nothing replaced
    it, and a half-built one goes."""
    notes = []
    try:
        names = sorted(os.listdir(layout.versions))
    except FileNotFoundError:
        return notes
    for n in names:
        path = layout.versions / n
        if n.startswith((REPAIR_OLD, REPAIR_NEW)) and prefix.is_link(path):
            notes.append(_unlinked(path))
        elif n.startswith(REPAIR_OLD):
            tc_id = n[len(REPAIR_OLD):].rsplit("-", 1)[0]
            live = layout.versions / tc_id
            why = None if os.path.lexists(live) else _why_not_adopted(layout, path, tc_id)
            if os.path.lexists(live):
                prefix.remove_tree(path)
                notes.append(f"removed the damaged copy of {tc_id} an interrupted repair had "
                             "set aside (the repaired one is in place)")
            elif why is None:
                os.rename(path, live)
                notes.append(f"put {tc_id} back: a repair was interrupted while swapping it")
            elif os.lstat(path).st_uid != os.lstat(layout.versions).st_uid:
                notes.append(f"left {path} alone: {why}; rescue did not make it, remove it "
                             "yourself")
            else:
                prefix.remove_tree(path)
                notes.append(f"removed {path}: not a toolchain rescue set aside ({why})")
        elif n.startswith(REPAIR_NEW):
            prefix.remove_tree(path)
            notes.append(f"removed a half-built repair of {n[len(REPAIR_NEW):].rsplit('-', 1)[0]}")
    return notes


def set_pinned(layout: Layout, tc_id: str, pinned: bool) -> List[str]:
    from manifests.files import write_atomic

    now = [p for p in pins(layout) if p != tc_id] + ([tc_id] if pinned else [])
    layout.state.mkdir(exist_ok=True)
    write_atomic(layout.state / PINS_FILE, json.dumps(sorted(now)) + "\n")
    return sorted(now)


def prunable(layout: Layout) -> List[str]:
    """Oldest first in Go's order; never the current, the previous or a pinned one. Nothing
    is prunable while `current` is damaged: what it should protect is unknown."""
    protected = {checked_current(layout), previous_id(layout), *pins(layout)}
    return [i for i in installed_ids(layout) if i not in protected]


def prune_plan(layout: Layout, keep: Optional[int] = None) -> List[str]:
    """The toolchains `prune` removes: all prunable ones but the `keep` newest (default: the
    policy's `keep`), and with the policy's `keep_days` none installed more recently."""
    policy = policy_mod.load(layout)
    keep = policy.keep if keep is None else keep
    if keep is None and policy.keep_days is None:
        raise NotReadyError(f"pruning {layout.root}: say how many to keep (--keep N), or set "
                            f"keep / keep_days in {layout.state / policy_mod.POLICY_FILE}")
    candidates = prunable(layout)
    plan = candidates[:max(0, len(candidates) - keep)] if keep is not None else candidates
    if policy.keep_days is not None:
        when = {i.id: i.installed_at for i in list_installed(layout, sizes=False)}
        cutoff = time.time() - policy.keep_days * 86400
        plan = [i for i in plan if when.get(i) is None or _epoch(when[i]) < cutoff]
    return plan


def _epoch(stamp: str) -> float:
    from datetime import datetime, timezone

    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()


def make_room(layout: Layout, needed: int, auto_prune: bool) -> List[str]:
    """The disk watermarks before an install: a note above the warn mark; above the stop mark
    (or short of space) remove the oldest prunable toolchains when `auto_prune` allows it,
    else refuse with the numbers. Notes say what happened."""
    policy = policy_mod.load(layout)
    d = policy_mod.disk(layout.root)
    notes = []
    short = policy_mod.shortfall(d, needed, policy)
    removed: List[str] = []
    for tc in prunable(layout) if short and auto_prune else []:
        freed = remove(layout, tc)
        removed.append(tc)
        notes.append(f"--auto-prune removed {tc} ({freed / 1e6:.0f} MB)")
        short = policy_mod.shortfall(policy_mod.disk(layout.root), needed, policy)
        if not short:
            break
    if short:
        d = policy_mod.disk(layout.root)
        raise NotReadyError(
            f"installing into {layout.root}: the disk would pass its stop mark of "
            f"{policy.stop_percent:g}% ({d.percent:.0f}% used, {d.free / 1e6:.0f} MB free, "
            f"{needed / 1e6:.0f} MB needed, {short / 1e6:.0f} MB short"
            + (f"; --auto-prune removed {', '.join(removed)} and found nothing more to remove"
               if auto_prune else "")
            + "). Remove or unpin toolchains (`list`, `prune`), or pass --prefix on a larger "
            "filesystem" + ("" if auto_prune else ", or pass --auto-prune"))
    after = 100.0 * (d.used + needed) / d.total if d.total else 0.0
    if after > policy.warn_percent:
        notes.append(f"the disk will be {after:.0f}% used after this install (warn mark "
                     f"{policy.warn_percent:g}%); consider `prune`")
    return notes


def recover(layout: Layout) -> List[str]:
    """Everything the next command does about an interrupted one, said as notes."""
    finished = state.recover(layout)
    if finished:  # an install's record may change the wiring of every GOROOT (GOTOOLCHAIN)
        from installer import wiring

        finished += wiring.rewire_installed(layout)
    return remove_trash(layout) + finish_repairs(layout) + finished + recover_guard(layout)


def recover_guard(layout: Layout) -> List[str]:
    """A guarded switch whose guard never gave its verdict: its toolchain was never verified,
    so the one before it is made current again (its checklist re-run)."""
    try:
        doc = guard_pending.read(layout, lambda i: _split(i) is not None,
                                 lambda i: _split(i) is not None
                                 and _is_real_dir(layout.versions / i))
    except DamagedState as exc:
        path = layout.state / guard_pending.PENDING_FILE
        if _is_real_dir(path):  # not a file rescue can drop for the operator
            raise damaged(path, "the guarded-switch journal", "it is a directory",
                          f"move it away (`mv {path} {path}.bad`) and run the command again; "
                          "then check with `list` that the current toolchain is the one you "
                          "want") from None
        guard_pending.clear(layout)
        return [str(exc)]
    if doc is None:
        return []
    tc_id, prev, op = doc["guarded"], doc["previous"], doc["op"]
    ended = guard_mod.kill_leftovers(doc["run"])
    cur = current_id(layout)
    if prev == tc_id:
        note = f"a guard of {tc_id} was cut short; it was current before and stays current"
    elif cur != tc_id:
        note = (f"a guard of {tc_id} was cut short before {tc_id} became current; "
                f"{cur or 'nothing'} stays current")
    elif prev is None:
        note = (f"a guard of {tc_id} was cut short and no toolchain was current before it; "
                f"{tc_id} stays current, unverified: check it with `use {tc_id} "
                "--guard-project DIR`")
    else:
        note = (f"a guard of {tc_id} was cut short; "
                + _switch_back(layout, prev, f"the guard of {tc_id} after {op} was cut short "
                               "(killed or interrupted)", tc_id))
    guard_pending.clear(layout)
    if ended:
        note += f" (ended {ended} process{'es' if ended > 1 else ''} its guard left running)"
    return [note]


def _switch_back(layout: Layout, prev: str, why: str, unverified: str) -> str:
    """Make `prev` current again after a guard of `unverified` did not pass; says what is
    current now."""
    try:
        back = switch(layout, prev, "guard-rollback", why, checks_for(layout))
    except ChecklistError as exc:
        return (f"putting {prev} back failed ({exc}); {unverified} stays current, "
                "unverified: run `doctor`")
    return (f"{back.current} is current again (checklist "
            f"{'ok' if all(c.ok for c in back.checks) else 'FAILED'}, {back.seconds:.1f}s)")


def guarded(layout: Layout, tc_id: str, op: str, why: str,
            guard: Optional[guard_mod.Guard]) -> Switched:
    """`switch`, then the guard; a failing guard makes the previous toolchain current again."""
    if not guard:
        return switch(layout, tc_id, op, why, checks_for(layout))
    before = guard_mod.baseline(guard, layout)
    run_id = guard_pending.write(layout, op, tc_id, current_id(layout))
    try:
        done = switch(layout, tc_id, op, why, checks_for(layout))
    except Exception:
        if current_id(layout) != tc_id:  # refused before the switch: nothing to verify
            guard_pending.clear(layout)
        raise
    run_guard(layout, done, guard, before, op, run_id)
    return done


def run_guard(layout: Layout, done: Switched, guard: guard_mod.Guard,
              before: Dict[Path, Optional[List[str]]], op: str, run_id: str) -> None:
    """The guard after a journaled switch to `done.current`, and its verdict acted on: pass,
    nothing; failure, the previous toolchain again and exit 4; Ctrl-C, the previous toolchain
    again and exit 130. The journal goes once that is done (a kill before leaves it for
    `recover_guard`)."""
    try:
        done.guard = guard_mod.run(guard, layout, before, op, run_id)
    except KeyboardInterrupt:
        where = (_switch_back(layout, done.previous, f"the guard of {done.current} after {op} "
                              "was interrupted (Ctrl-C)", done.current or "")
                 if done.previous else f"{done.current} stays current, unverified (nothing "
                 "was current before it)")
        guard_pending.clear(layout)
        err = Interrupted(f"guarded {op} of {done.current}: interrupted while its guard ran; "
                          f"{where}")
        err.details = done.to_dict()  # type: ignore[attr-defined]
        raise err from None
    try:
        check_guard(layout, done, op)
    except Exception:
        guard_pending.clear(layout)
        raise
    guard_pending.clear(layout)


def check_guard(layout: Layout, done: Switched, op: str) -> None:
    """Raise (exit 4) after switching back when the guard failed; nothing when it passed."""
    report = done.guard
    if report is None or report.failure is None:
        return
    f = report.failure
    code = "timed out" if f.exit_code is None else f"exit {f.exit_code}"
    if done.previous and _is_real_dir(layout.versions / done.previous):
        where = _switch_back(layout, done.previous,
                             f"guard failed after {op} of {done.current}: {f.stage}",
                             done.current or "")
    else:
        where = f"there is no earlier toolchain to go back to; {done.current} stays current"
    err = ChecklistError(f"guarded {op} of {done.current}: {f.stage} failed ({code}): "
                         f"{f.line}; {where}. Full log: {f.log}",
                         hint=f"read {f.log}, fix the project or the toolchain, then try again")
    err.details = done.to_dict()  # type: ignore[attr-defined]
    raise err
