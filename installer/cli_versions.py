"""Day-two commands: list, use, rollback, remove, pin, unpin, prune, history."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import click

from installer.options import JSON, LOCK_TIMEOUT, PREFIX
from installer.output import emit_json, print_checks
from manifests.text import shown


def guard_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--guard-project/--guard-cmd/--guard-timeout/--fail-pattern, shared by install and use."""
    for option in reversed([
        click.option("--guard-project", "guard_projects", multiple=True, metavar="DIR",
                     type=click.Path(file_okay=False, exists=True, path_type=Path),
                     help="After the switch, build/verify/list this project with the new "
                          "go; on failure switch back (repeatable)."),
        click.option("--guard-cmd", "guard_cmds", multiple=True, metavar="CMD",
                     help="Also run CMD in each project, e.g. 'go test ./...' (repeatable)."),
        click.option("--guard-timeout", type=float, default=600.0, show_default=True,
                     metavar="SECONDS", help="Per guard command."),
        click.option("--fail-pattern", "fail_patterns", multiple=True, metavar="REGEX",
                     help="An output line matching REGEX is a failure too (repeatable)."),
    ]):
        f = option(f)
    return f


def make_guard(projects: Tuple[Path, ...], cmds: Tuple[str, ...], timeout: float,
               patterns: Tuple[str, ...]) -> Any:
    import re

    from installer.guard import Guard
    from manifests.errors import NotReadyError

    if not 0 < timeout < float("inf"):  # also NaN
        raise NotReadyError(f"reading the command line: --guard-timeout must be a number of "
                            f"seconds above 0, not {timeout:g}")
    if cmds and not projects:
        raise NotReadyError("reading the command line: --guard-cmd needs --guard-project DIR "
                            "(the directory to run it in)")
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise NotReadyError(f"reading the command line: --fail-pattern {p!r} is not a "
                                f"regular expression ({exc})") from None
    return Guard([d.absolute() for d in projects], list(cmds), timeout, list(patterns))


def _layout(prefix_opt: Optional[Path]) -> Any:
    from installer.prefix import Layout, default_prefix, refuse_links
    from manifests.errors import NotReadyError

    layout = Layout((prefix_opt or default_prefix()).absolute())
    refuse_links(layout)
    if not layout.versions.is_dir():
        raise NotReadyError(f"reading prefix {layout.root}: no toolchain is installed there; "
                            "install a bundle first, or pass --prefix")
    return layout


def _locked(prefix_opt: Optional[Path], timeout: float, doing: str,
            work: Callable[[Any], Any]) -> Tuple[Any, List[str], Any]:
    """Run `work(layout)` holding the prefix lock, after finishing any interrupted command.
    A prefix this user may not change, or a full disk, is told as such (exit 2), naming the
    owner or what to free: `doing` says what the command was doing ("pinning 1.21.13")."""
    from installer import prefix, versions
    from installer.machine import prefix_errors

    layout = _layout(prefix_opt)
    with prefix_errors(f"{doing} in {layout.root}", layout.root), \
            prefix.locked(layout, timeout,
                          lambda msg: click.echo(f"rescue: {msg}", err=True)) as lock:
        notes = lock.notes + versions.recover(layout)
        return layout, notes, work(layout)


def _read(prefix_opt: Optional[Path], doing: str, read: Callable[[Any], Any]) -> Tuple[Any, Any]:
    """`read(layout)` for a command that changes nothing, with `_locked`'s words for a prefix
    this user may not read."""
    from installer.machine import prefix_errors

    layout = _layout(prefix_opt)
    with prefix_errors(f"{doing} {layout.root}", layout.root):
        return layout, read(layout)


def _switching(prefix_opt: Optional[Path], timeout: float, doing: str,
               work: Callable[[Any], Any], as_json: bool) -> Tuple[Any, List[str], Any]:
    """`_locked` for use and rollback: a failed checklist is shown as install shows it, each
    check with its cause and fix, before the one-line error."""
    from manifests.errors import ChecklistError

    try:
        return _locked(prefix_opt, timeout, doing, work)
    except ChecklistError as exc:
        tried = getattr(exc, "result", None)  # None: a guard failed, said in the message
        if tried is not None and not as_json:
            click.echo(f"checklist ({tried.current}):")
            print_checks(tried.checks)
        raise


def _say_notes(notes: List[str]) -> None:
    for n in notes:
        click.echo(f"note      {n}")


def _switch_report(op: str, done: Any, notes: List[str], as_json: bool) -> None:
    if as_json:
        emit_json({"op": op, **done.to_dict(), "notes": notes + done.notes})
        return
    _say_notes(notes + done.notes)
    click.echo(f"checklist ({done.current}):")
    print_checks(done.checks)
    click.echo(f"current   {done.current} (was {done.previous or 'nothing'}); "
               f"{op} took {done.seconds:.1f}s")
    say_guard(done.guard.to_dict() if done.guard else None)


def say_guard(report: Optional[Dict[str, Any]]) -> None:
    """The guard's outcome for people: what changed in each project's module list."""
    if report is None:
        return
    click.echo(f"guard     passed in {report['seconds']:.1f}s; log {report['log']}")
    for project, changes in report["module_changes"].items():
        for line in changes:
            click.echo(f"modules   {project}: {line}")


@click.command("list")
@PREFIX
@JSON
def list_cmd(prefix: Optional[Path], as_json: bool) -> None:
    """Show every installed toolchain: current, pinned, from which bundle, size.

    \b
    Examples:
      python3 rescue.pyz list
      python3 rescue.pyz list --prefix ~/go-emergency --json
    """
    from installer import state, versions, wiring

    layout, (rows, previous, damaged, records) = _read(prefix, "listing", lambda layout: (
        versions.list_installed(layout), versions.previous_id(layout),
        versions.current_problem(layout), state.load(layout)["bundles"]))
    if damaged:
        click.echo(f"rescue: warning: {layout.current}: {damaged}; no toolchain is current "
                   "until `use VERSION` makes one", err=True)
    if as_json:
        current = next((r.id for r in rows if r.current), None)
        # What a fleet tool needs to stay idempotent and to report (ansible/): every bundle
        # recorded here by manifest sha256, and the wiring the current toolchain runs with.
        emit_json({"prefix": str(layout.root), "toolchains": [r.to_dict() for r in rows],
                   "previous": previous, "current_problem": damaged,
                   "bundles": [_bundle_record(b) for b in records],
                   "goroot": str(layout.versions / current) if current else None,
                   "goproxy": wiring.file_url(layout.goproxy)})
        return
    for r in rows:
        flags = ("*" if r.current else " ") + ("P" if r.pinned else " ")
        click.echo(f"{flags} {r.id:<28} {r.bytes / 1e6:7.0f} MB  {r.bundle or '-'}  "
                   f"signed by {r.signer or '-'}  {r.installed_at or ''}")
    click.echo("(* current, P pinned)")


def _bundle_record(entry: Dict[str, Any]) -> Dict[str, Any]:
    return {k: entry.get(k) for k in ("name", "channel", "sequence", "manifest_sha256",
                                      "signer", "toolchains", "installed_at")}


@click.command("use")
@click.argument("version")
@PREFIX
@guard_options
@LOCK_TIMEOUT
@JSON
def use_cmd(version: str, prefix: Optional[Path], guard_projects: Tuple[Path, ...],
            guard_cmds: Tuple[str, ...], guard_timeout: float, fail_patterns: Tuple[str, ...],
            lock_timeout: float, as_json: bool) -> None:
    """Make an installed VERSION current (its checklist must pass first).

    VERSION may be 1.21.13, go1.21.13 or go1.21.13.linux-amd64. With --guard-project, the
    projects are built and tested with it after the switch; a failure switches back (exit 4).

    \b
    Examples:
      python3 rescue.pyz use 1.21.13
      python3 rescue.pyz use 1.22.10 --guard-project ~/src/app --guard-cmd 'go test ./...'
      python3 rescue.pyz use go1.22.10.linux-amd64 --json
    """
    from installer import versions

    guard = make_guard(guard_projects, guard_cmds, guard_timeout, fail_patterns)

    def work(layout: Any) -> Any:
        tc = versions.resolve(layout, version)
        return versions.guarded(layout, tc, "use", f"use {version}", guard or None)

    _, notes, done = _switching(prefix, lock_timeout, f"switching to {version}", work, as_json)
    _switch_report("use", done, notes, as_json)


@click.command("rollback")
@click.option("--to", "to", default=None, metavar="VERSION",
              help="Go back to this installed version (default: the one current before).")
@PREFIX
@LOCK_TIMEOUT
@JSON
def rollback_cmd(to: Optional[str], prefix: Optional[Path], lock_timeout: float,
                 as_json: bool) -> None:
    """Make the previously current toolchain current again; no bundle needed.

    \b
    Examples:
      python3 rescue.pyz rollback
      python3 rescue.pyz rollback --to 1.21.13 --json
    """
    from installer import versions
    from manifests.errors import NotReadyError

    def work(layout: Any) -> Any:
        versions.checked_current(layout)
        if to:
            tc = versions.resolve(layout, to)
        else:
            tc = versions.previous_id(layout)
            if tc is None or not (layout.versions / tc).is_dir():
                raise NotReadyError(
                    f"rolling back in {layout.root}: the history names no earlier toolchain "
                    f"that is still installed{f' ({tc} was removed)' if tc else ''}; "
                    "name one with --to VERSION (see `list`)")
        return versions.switch(layout, tc, "rollback",
                               f"rollback{' --to ' + to if to else ''}",
                               versions.checks_for(layout))

    _, notes, done = _switching(prefix, lock_timeout, "rolling back", work, as_json)
    _switch_report("rollback", done, notes, as_json)


@click.command("remove")
@click.argument("version")
@PREFIX
@LOCK_TIMEOUT
@JSON
def remove_cmd(version: str, prefix: Optional[Path], lock_timeout: float,
               as_json: bool) -> None:
    """Delete an installed toolchain (never the current or a pinned one).

    \b
    Examples:
      python3 rescue.pyz remove 1.21.12
      python3 rescue.pyz remove go1.21.12.linux-amd64 --json
    """
    from installer import versions

    def work(layout: Any) -> Tuple[str, int]:
        tc = versions.resolve(layout, version)
        return tc, versions.remove(layout, tc)

    _, notes, (tc, freed) = _locked(prefix, lock_timeout, f"removing {version}", work)
    if as_json:
        emit_json({"removed": [tc], "freed_bytes": freed, "notes": notes})
        return
    _say_notes(notes)
    click.echo(f"removed   {tc} ({freed / 1e6:.0f} MB freed)")


def _pin(version: str, prefix: Optional[Path], lock_timeout: float, as_json: bool,
         pinned: bool) -> None:
    from installer import versions

    def work(layout: Any) -> Tuple[str, List[str]]:
        tc = versions.resolve(layout, version)
        return tc, versions.set_pinned(layout, tc, pinned)

    _, notes, (tc, now) = _locked(prefix, lock_timeout,
                                  f"{'pinning' if pinned else 'unpinning'} {version}", work)
    if as_json:
        emit_json({"pinned": now, "notes": notes})
        return
    _say_notes(notes)
    click.echo(f"{'pinned' if pinned else 'unpinned'}  {tc}")


@click.command("pin")
@click.argument("version")
@PREFIX
@LOCK_TIMEOUT
@JSON
def pin_cmd(version: str, prefix: Optional[Path], lock_timeout: float, as_json: bool) -> None:
    """Keep VERSION: prune and remove leave it alone.

    \b
    Examples:
      python3 rescue.pyz pin 1.21.13
    """
    _pin(version, prefix, lock_timeout, as_json, True)


@click.command("unpin")
@click.argument("version")
@PREFIX
@LOCK_TIMEOUT
@JSON
def unpin_cmd(version: str, prefix: Optional[Path], lock_timeout: float,
              as_json: bool) -> None:
    """Let prune and remove consider VERSION again.

    \b
    Examples:
      python3 rescue.pyz unpin 1.21.13
    """
    _pin(version, prefix, lock_timeout, as_json, False)


@click.command("prune")
@click.option("--keep", type=click.IntRange(0), default=None, metavar="N",
              help="How many toolchains to keep beside the current, previous and pinned ones "
                   "(default: keep / keep_days of P/state/policy.toml).")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@PREFIX
@LOCK_TIMEOUT
@JSON
def prune_cmd(keep: Optional[int], dry_run: bool, prefix: Optional[Path], lock_timeout: float,
              as_json: bool) -> None:
    """Remove the oldest toolchains (Go's version order), never current, previous or pinned.

    \b
    Examples:
      python3 rescue.pyz prune --keep 2 --dry-run
      python3 rescue.pyz prune --keep 2 --json
      python3 rescue.pyz prune            # as P/state/policy.toml says (keep, keep_days)
    """
    from installer import versions

    def work(layout: Any) -> Tuple[List[str], int]:
        plan = versions.prune_plan(layout, keep)
        freed = 0 if dry_run else sum(versions.remove(layout, tc) for tc in plan)
        return plan, freed

    _, notes, (plan, freed) = _locked(prefix, lock_timeout, "pruning", work)
    if as_json:
        emit_json({"removed": [] if dry_run else plan, "would_remove": plan if dry_run else [],
                   "freed_bytes": freed, "dry_run": dry_run, "notes": notes})
        return
    _say_notes(notes)
    for tc in plan:
        click.echo(f"{'would remove' if dry_run else 'removed'}  {tc}")
    if not plan:
        click.echo("nothing to prune")
    elif not dry_run:
        click.echo(f"freed {freed / 1e6:.0f} MB")


@click.command("history")
@PREFIX
@JSON
def history_cmd(prefix: Optional[Path], as_json: bool) -> None:
    """Every switch of `current`: when, from, to, why, which command, who, CI context.

    \b
    Examples:
      python3 rescue.pyz history
      python3 rescue.pyz history --json
    """
    from installer import history

    layout, records = _read(prefix, "reading the history of", history.load)
    if as_json:
        emit_json({"history": records})
        return
    for r in records:  # text from the file is quoted: it cannot forge lines or escapes
        ci = f" [{shown(r['ci']['system'], 40)}]" if r.get("ci") else ""
        click.echo(f"{shown(r['time'], 40)}  {shown(r['op'], 20):<10} {r.get('from') or '-'} "
                   f"-> {r.get('to') or '-'}  by {shown(r.get('user'), 40)}{ci}  "
                   f"({shown(r.get('why'))})")
    if not records:
        click.echo("no switches recorded yet", err=not sys.stdout.isatty())


COMMANDS = [list_cmd, use_cmd, rollback_cmd, remove_cmd, pin_cmd, unpin_cmd, prune_cmd,
            history_cmd]
