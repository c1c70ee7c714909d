"""`rescue.pyz drill`: rehearse a failure on a throw-away copy, and time detection and recovery."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import click

from installer.options import JSON, PREFIX, TRUST
from installer.output import emit_json, print_checks

CHOICES = ("goroot-corruption", "modcache-poisoning", "truncated-bundle", "proxy-cert", "all")


def _settings_first(layout: Any, names: List[str], as_json: bool) -> None:
    """Exit 2 at once, with the checklist's causes and fixes, when the user's Go settings
    would fail the drills' install or rollback minutes from now."""
    from installer import drill as drills
    from manifests.errors import NotReadyError

    checks = drills.settings_first(layout, names)
    failed = [c.name for c in checks if not c.ok]
    if not failed:
        return
    if not as_json:
        click.echo("your Go settings:")
        print_checks(checks)
    err: Any = NotReadyError(
        f"drilling {layout.root}: your Go settings fail the emergency checklist "
        f"({', '.join(failed)}); the drills' recovery (install, rollback) runs that checklist, "
        "so they would fail after minutes of work. Fix the settings above, then run the drill "
        "again", operation="drilling", subject=str(layout.root))
    err.details = {"checks": [c.to_dict() for c in checks]}
    raise err


@click.command("drill")
@click.argument("name", type=click.Choice(CHOICES), metavar="DRILL")
@click.option("--bundle", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="The bundle that installed the current toolchain: used to "
                                   "repair it and to cut a copy short.")
@PREFIX
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Where the throw-away copy goes (default: the temp dir).")
@click.option("--live", is_flag=True,
              help="Break and repair the live prefix itself, not a copy (asks first).")
@click.option("--yes", is_flag=True, help="With --live: do not ask.")
@TRUST
@JSON
def drill(name: str, bundle: Optional[Path], prefix: Optional[Path], work: Optional[Path],
          live: bool, yes: bool, trust: Optional[str], as_json: bool) -> None:
    """Rehearse a failure and time how long detection and recovery take.

    DRILL is goroot-corruption (go binary overwritten, a source file deleted, a tool planted),
    modcache-poisoning (a cached module zip and an extracted file changed), truncated-bundle
    (a bundle cut short), or all. proxy-cert runs on the build host (`rescue drill
    proxy-cert`). Each runs on a throw-away copy of the prefix: inject, detect (verify,
    doctor, checklist, go build), recover (repair, rollback, copy again), then a real
    `go build`. Exit 0 when every drill detected and recovered, 4 when one did not.

    \b
    Examples:
      python3 rescue.pyz drill all --bundle /media/usb/go-1.21.13.tar.zst
      python3 rescue.pyz drill goroot-corruption --json
    """
    from installer import drill as drills
    from installer.cli import load_signers
    from installer.machine import machine_error
    from installer.prefix import Layout, default_prefix
    from manifests.drillreport import table
    from manifests.errors import ChecklistError, NotReadyError

    layout = Layout((prefix or default_prefix()).absolute())
    if not layout.root.is_dir():
        raise NotReadyError(f"drilling {layout.root}: no such prefix; pass the --prefix you "
                            "installed into", operation="drilling", subject=str(layout.root))
    if yes and not live:
        raise NotReadyError("reading the command line: --yes only goes with --live",
                            operation="reading the command line", subject="--yes")
    if live and not yes:
        if as_json or not sys.stdin.isatty():
            raise NotReadyError(f"drilling {layout.root} --live: it breaks the live prefix; "
                                "confirm with --yes", operation="drilling", subject="--live")
        click.confirm(f"break and repair the live prefix {layout.root}?", abort=True,
                      err=True)
    signers, source = load_signers(trust, layout.root)
    names: List[str] = list(drills.DRILLS) + [drills.CONNECTED_SIDE] if name == "all" \
        else [name]
    _settings_first(layout, names, as_json)
    work_dir = drills.work_dir(layout, work.absolute() if work else None)
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    ctx = drills.Context(layout, signers, source, bundle.absolute() if bundle else None,
                         work_dir, in_place=live, say=say)
    try:
        done = drills.run(names, ctx)
    except OSError as exc:
        raise machine_error(f"drilling {layout.root}", exc) from None
    finally:
        from installer.prefix import remove_tree

        remove_tree(work_dir)
    doc = {"drills": [d.to_dict() for d in done]}
    failed = [d for d in done if not d.ok and not d.skipped]
    if not as_json:
        click.echo(table(done))
    if failed:
        err: Any = ChecklistError(
            f"drilling {layout.root}: {', '.join(d.name for d in failed)} did not detect and "
            "recover as expected; see the steps above (or --json)", operation="drilling",
            subject=str(layout.root))
        err.details = doc
        raise err
    if as_json:
        emit_json(doc)
