"""`rescue.pyz snapshot ...`: record the build environment, list, show, diff, verify, prune
(sharing through Git and pins: cli_snapshot_sync)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import click

from installer import snapshot as snap
from installer import snapshot_pins, snapshot_store
from installer.cli_group import Commands
from installer.options import JSON, PREFIX
from installer.prefix import Layout
from manifests.text import plain


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    return PREFIX(JSON(fn))


def _layout(prefix: Optional[Path]) -> Layout:
    from installer.prefix import default_prefix, refuse_links

    layout = Layout((prefix or default_prefix()).absolute())
    refuse_links(layout)  # snapshots are written to and read from P/state/snapshots
    return layout


def _emit(doc: Dict[str, Any]) -> None:
    from installer.output import emit_json

    emit_json(doc)


@click.group("snapshot", cls=Commands)
def snapshot() -> None:
    """Record the environment that builds your software, and check it later.

    \b
    Examples:
      python3 rescue.pyz snapshot create --tag v1.2.0
      python3 rescue.pyz snapshot list
      python3 rescue.pyz snapshot diff v1.2.0-20261128T142307Z --live
      python3 rescue.pyz snapshot verify v1.2.0-20261128T142307Z
      python3 rescue.pyz snapshot sync --git ssh://git.corp/ops/snapshots.git
      python3 rescue.pyz snapshot pull --git ssh://git.corp/ops/snapshots.git
    """


@snapshot.command()
@click.option("--tag", default=None, metavar="T",
              help="A semantic version (v1.2.0) or short free text; it starts the id.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Also write the snapshot to FILE.")
@_common
def create(tag: Optional[str], output: Optional[Path], prefix: Optional[Path],
           as_json: bool) -> None:
    """Snapshot the current GOROOT (every file's sha256), go env, modules and bundle.

    Kept as P/state/snapshots/ID.json; the id joins the tag, the UTC time and the CI run.
    Disk marks of the store's file system: from 85% used it writes nothing (exit 2, JSON
    `marks.paused`); from 95% it first removes the oldest snapshots neither tagged nor pinned,
    three at a time, until under 95% (JSON `marks.removed`).

    \b
    Examples:
      python3 rescue.pyz snapshot create --tag v1.2.0
      python3 rescue.pyz snapshot create --tag "before upgrade" -o audit/snap.json --json
    """
    from installer import snapshot_marks

    layout = _layout(prefix)
    snap.check_tag(tag)  # a bad tag is refused before the marks remove anything
    marks = snapshot_marks.make_room(layout)
    doc = snap.take(layout, tag)
    stored, notes = snapshot_store.save(layout, doc, output)
    if marks["removed"]:
        notes.insert(0, f"the disk was {marks['before_percent']:g}% used (clean mark "
                     f"{marks['clean_percent']:g}%): removed {', '.join(marks['removed'])}")
    if as_json:
        _emit({"snapshot": {k: v for k, v in doc.items() if k != "goroot"},
               "id": doc["id"], "root_hash": doc["goroot"]["root_hash"],
               "file": str(stored) if stored else None, "marks": marks,
               "output": str(output) if output else None, "notes": notes})
        return
    click.echo(f"snapshot  {doc['id']}")
    for line in _describe(doc):
        click.echo(line)
    for note in notes:
        click.echo(f"note      {note}")
    click.echo(f"written   {', '.join(str(p) for p in (stored, output) if p)}")


def _describe(doc: Dict[str, Any]) -> List[str]:
    """A checked snapshot (snapshot_check) for people: every text from the file through
    `plain`, so an escape sequence in it never reaches the terminal."""
    b, ci = doc.get("bundle") or {}, doc.get("ci") or {}
    lines = [
        f"created   {doc['created']} by {plain(doc['user']['name'])}@{plain(doc['host'])}",
        f"toolchain {plain(doc['toolchain'])}: "
        f"{plain(doc['go']['version'] or doc['go']['error'])}",
        f"goroot    {plain(doc['goroot']['path'])} ({doc['goroot']['file_count']} files, "
        f"{doc['goroot']['root_hash']})",
        f"modules   {len(doc['modules'])} in {plain(doc['prefix'] + '/goproxy')}",
    ]
    if doc.get("tag"):
        lines.insert(0, f"tag       {plain(doc['tag'])} ({doc['tag_kind']})")
    if b:
        lines.append(f"bundle    {plain(b['name'])} (channel {plain(b['channel'])}, "
                     f"#{b['sequence']}) signed by {plain(b['signer'])}, manifest sha256 "
                     f"{plain(b['manifest_sha256'])}")
    if ci:
        lines.append("ci        " + " ".join(f"{plain(k)}={plain(v)}" for k, v in ci.items()
                                             if k != "slug"))
    return lines


@snapshot.command("list")
@click.option("--pulled", is_flag=True,
              help="Other hosts' snapshots from `snapshot pull` (as HOST:ID) instead.")
@_common
def list_(pulled: bool, prefix: Optional[Path], as_json: bool) -> None:
    """The stored snapshots, oldest first; damaged files are named after them, with the way out.
    """
    layout = _layout(prefix)
    if pulled:
        from installer import snapshot_pulled

        snaps, damaged = snapshot_pulled.survey(layout)
        _show_listing(snaps, damaged, snapshot_pulled.area(layout), as_json, "ref", 56,
                      "no pulled snapshots in {}; bring them with `snapshot pull --git REPO`")
        return
    snaps, damaged = snapshot_store.survey(layout)
    pins = snapshot_pins.load(layout)
    for s in snaps:
        s["pinned"] = s["id"] in pins
    _show_listing(snaps, damaged, snapshot_store.store(layout), as_json, "id", 48,
                  "no snapshots in {}; take one with `snapshot create`")


def _show_listing(snaps: List[Dict[str, Any]], damaged: List[Dict[str, Any]], store: Path,
                  as_json: bool, key: str, width: int, empty: str) -> None:
    if as_json:
        _emit({"snapshots": snaps, "damaged": damaged, "store": str(store)})
        return
    if not snaps and not damaged:
        click.echo(empty.format(store))
    for s in snaps:
        click.echo(f"{s[key]:<{width}} {s['created']}  {plain(s['toolchain'])}  "
                   f"{s['root_hash'][:19]}" + ("  pinned" if s.get("pinned") else ""))
    for d in damaged:
        click.echo(f"damaged {d['message']}")


@snapshot.command()
@click.argument("snapshot_id", metavar="ID")
@_common
def show(snapshot_id: str, prefix: Optional[Path], as_json: bool) -> None:
    """One snapshot: ID from `snapshot list`, or the path of a snapshot file."""
    doc = snapshot_store.load(_layout(prefix), snapshot_id)
    if as_json:
        _emit({"snapshot": doc})
        return
    click.echo(f"snapshot  {doc['id']}")
    for line in _describe(doc):
        click.echo(line)
    for m in doc["modules"]:
        click.echo(f"  {plain(m['module'])} {plain(m['zip_hash'] or m['mod_hash'])}")


@snapshot.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B", required=False)
@click.option("--live", is_flag=True, help="Compare A with the prefix as it is now.")
@_common
def diff_(a: str, b: Optional[str], live: bool, prefix: Optional[Path], as_json: bool) -> None:
    """What changed from snapshot A to B (or to now, with --live).

    \b
    Examples:
      python3 rescue.pyz snapshot diff v1.2.0-20261128T142307Z --live
      python3 rescue.pyz snapshot diff ID_A ID_B --json
    """
    from manifests.errors import NotReadyError

    if (b is None) == (not live):
        raise NotReadyError("reading the command line: give two snapshots (diff A B) or one "
                            "and --live (diff A --live)", operation="reading the command line",
                            subject="snapshot diff")
    layout = _layout(prefix)
    old = snapshot_store.load(layout, a)
    new = snap.take(layout) if live else snapshot_store.load(layout, b)  # type: ignore[arg-type]
    if live:
        new["id"] = "live"
    report = snap.diff(old, new)
    if as_json:
        _emit({"diff": report})
        return
    click.echo(f"{report['from']} -> {report['to']}: "
               + ("no changes" if report["same"] else "changed"))
    for label, pair in (("toolchain", report["toolchain"]), ("go", report["go_version"])):
        if pair[0] != pair[1]:
            click.echo(f"  {label:<9} {plain(pair[0])} -> {plain(pair[1])}")
    f = report["files"]
    for path in f["added"]:
        click.echo(f"  + {plain(path)}")
    for path in f["removed"]:
        click.echo(f"  - {plain(path)}")
    for c in f["changed"]:
        click.echo(f"  ~ {plain(c['path'])} ({', '.join(k for k in c if k != 'path')})")
    e = report["env"]
    for k, v in e["added"].items():
        click.echo(f"  env + {plain(k)}={plain(v)}")
    for k, v in e["removed"].items():
        click.echo(f"  env - {plain(k)}={plain(v)}")
    for k, (x, y) in e["changed"].items():
        click.echo(f"  env ~ {plain(k)}: {plain(x)} -> {plain(y)}")
    m = report["modules"]
    for mod in m["added"]:
        click.echo(f"  module + {plain(mod)}")
    for mod in m["removed"]:
        click.echo(f"  module - {plain(mod)}")
    for c in m["changed"]:
        click.echo(f"  module ~ {plain(c['module'])}")


@snapshot.command()
@click.argument("snapshot_id", metavar="ID")
@_common
def verify(snapshot_id: str, prefix: Optional[Path], as_json: bool) -> None:
    """Check the live GOROOT against snapshot ID, file by file: exit 0 when equal, 3 when not.

    \b
    Examples:
      python3 rescue.pyz snapshot verify v1.2.0-20261128T142307Z
      python3 rescue.pyz snapshot verify audit/snap.json --json
    """
    layout = _layout(prefix)
    report = snap.verify(snapshot_store.load(layout, snapshot_id), layout)
    if as_json:
        _emit({"verify": report})
        return
    click.echo(f"ok: {report['goroot']} matches snapshot {report['id']} "
               f"({report['root_hash'][1]})")


@snapshot.command()
@click.option("--keep", type=click.IntRange(min=0), default=None, metavar="N",
              help="Keep the newest N snapshots.")
@click.option("--older-than", type=click.FloatRange(min=0), default=None, metavar="DAYS",
              help="Remove snapshots older than DAYS (those --keep keeps stay).")
@click.option("--include-tagged", is_flag=True,
              help="Prune tagged snapshots too (kept by default: a release's record).")
@click.option("--include-pinned", is_flag=True,
              help="Prune pinned snapshots too (kept by default: `snapshot pin`).")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@_common
def prune(keep: Optional[int], older_than: Optional[float], include_tagged: bool,
          include_pinned: bool, dry_run: bool, prefix: Optional[Path], as_json: bool) -> None:
    """Remove old snapshots: all but the newest N, and/or those older than DAYS.

    Tagged snapshots stay (and take none of the N places) unless --include-tagged, pinned ones
    unless --include-pinned; damaged
    files stay for a person to look at (`snapshot list` names them).

    \b
    Examples:
      python3 rescue.pyz snapshot prune --keep 20
      python3 rescue.pyz snapshot prune --keep 5 --older-than 90 --dry-run
    """
    from manifests.errors import NotReadyError

    if keep is None and older_than is None:
        raise NotReadyError("pruning snapshots: nothing to decide by; pass --keep N, "
                            "--older-than DAYS, or both", operation="pruning snapshots",
                            subject="")
    layout = _layout(prefix)
    try:
        result = snapshot_store.prune(layout, keep, older_than, dry_run=dry_run,
                                      include_tagged=include_tagged,
                                      include_pinned=include_pinned)
    except OSError as exc:
        raise NotReadyError(f"pruning snapshots {snapshot_store.store(layout)}: "
                            f"{exc.strerror}; run as the user who owns the prefix",
                            operation="pruning snapshots",
                            subject=str(snapshot_store.store(layout))) from None
    if as_json:
        _emit({**result, "dry_run": dry_run})
        return
    for sid in result["removed"]:
        click.echo(f"{'would remove' if dry_run else 'removed'} {sid}")
    tagged = (f" ({len(result['tagged'])} tagged, kept; --include-tagged prunes them too)"
              if result["tagged"] else "")
    tagged += (f" ({len(result['pinned'])} pinned, kept; --include-pinned prunes them too)"
               if result["pinned"] else "")
    damaged = (f"; {len(result['damaged'])} damaged file(s) left alone, see `snapshot list`"
               if result["damaged"] else "")
    click.echo(f"{len(result['removed'])} {'to remove' if dry_run else 'removed'}, "
               f"{len(result['kept'])} kept{tagged}{damaged}")
