"""`rescue.pyz verify`: installed GOROOTs, P/goproxy and a module cache against signed manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from installer.options import JSON, LOCK_TIMEOUT, PREFIX, TRUST
from installer.output import emit_json, progress


@click.command("verify")
@click.argument("version", required=False, metavar="[VERSION]")
@click.option("--all", "every", is_flag=True, help="Every installed toolchain.")
@click.option("--modcache", "modcache", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Also check the module cache in DIR that `install --modcache` rebuilt.")
@PREFIX
@TRUST
@JSON
def verify(version: Optional[str], every: bool, modcache: Optional[Path],
           prefix: Optional[Path], trust: Optional[str], as_json: bool) -> None:
    """Check installed toolchains and modules against the signed manifests they came from.

    Every file's sha256, mode and type; missing and added paths; module .zip and .mod against
    their go.sum h1: hashes. Without VERSION or --all: the current toolchain. Exit 0 when
    everything matches, 3 naming what differs.

    \b
    Examples:
      python3 rescue.pyz verify
      python3 rescue.pyz verify 1.21.13 --prefix ~/go-emergency
      python3 rescue.pyz verify --all --modcache ~/go/pkg/mod --json
    """
    from installer import verify as check
    from installer.cli import load_signers
    from installer.machine import machine_error
    from installer.prefix import Layout, default_prefix
    from manifests.errors import NotReadyError

    if version and every:
        raise NotReadyError("reading the command line: give VERSION or --all, not both",
                            operation="reading the command line", subject="verify")
    layout = Layout((prefix or default_prefix()).absolute())
    signers, source = load_signers(trust, layout.root)
    cache = modcache.absolute() if modcache else None
    try:
        with progress("verifying", as_json) as bar:
            report = check.verify(layout, signers, source, version, every, cache,
                                  on_total=bar.start, on_bytes=bar.advance)
    except OSError as exc:
        raise machine_error(f"verifying {layout.root}", exc) from None
    if not as_json:
        _describe(report)
        for tc_id in report.removed_while_verifying:
            click.echo(f"note: {tc_id} was removed while being verified (by another rescue "
                       "command); not checked")
    if not report.ok or report.unreadable:
        err: Any = check.failure(report)
        err.details = report.to_dict()
        raise err
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(f"ok: {', '.join(report.toolchains) or 'no toolchain'} and goproxy match the "
               f"signed manifests ({report.files} files, {report.bytes / 1e6:.0f} MB, "
               f"{report.seconds:.1f}s)")


def _describe(report: Any) -> None:
    """Each difference on its own line, on stdout for people (the error goes to stderr)."""
    for c in report.changed:
        what = ", ".join(f"{k} {v[0]} -> {v[1]}" if k not in ("versions", "go_env") else
                         f"{k}: {v[1]}" for k, v in c.items() if k not in ("path", "bundle"))
        click.echo(f"changed  {c['path']}: {what}")
    for m in report.missing:
        click.echo(f"missing  {m['path']} ({m['type']})")
    for a in report.added:
        extra = " EXECUTABLE" if a.get("executable") else ""
        click.echo(f"added    {a['path']} ({a['type']} {a.get('mode', '')}){extra}")
    for u in report.unreadable:
        click.echo(f"unreadable {u['path']}: {u['error']}")


@click.command("repair")
@click.argument("bundle", required=False, metavar="[BUNDLE]",
                type=click.Path(path_type=Path))
@click.option("--modcache", "modcache", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Also repair the module cache in DIR (from P/goproxy).")
@PREFIX
@TRUST
@LOCK_TIMEOUT
@JSON
def repair(bundle: Optional[Path], modcache: Optional[Path], prefix: Optional[Path],
           trust: Optional[str], lock_timeout: float, as_json: bool) -> None:
    """Restore exactly what `verify --all` finds damaged, then verify again.

    GOROOT files need the bundle they came from: it is verified, and only the damaged members
    are taken from it. Without BUNDLE, what local copies can restore is restored (module cache
    entries from P/goproxy, modes, links, added files removed) and the message names the
    bundle still needed. A repaired GOROOT is built beside the live one and swapped in at
    once. Exit 0 when verify passes afterwards.

    \b
    Examples:
      python3 rescue.pyz repair /media/usb/go-1.21.13.tar.zst
      python3 rescue.pyz repair --modcache ~/go/pkg/mod --json
    """
    from installer import repair as fix
    from installer.cli import load_signers
    from installer.machine import prefix_error
    from installer.prefix import Layout, default_prefix

    layout = Layout((prefix or default_prefix()).absolute())
    signers, source = load_signers(trust, layout.root)
    cache = modcache.absolute() if modcache else None
    try:
        result = fix.repair(layout, signers, source, bundle, cache, lock_timeout,
                            on_wait=lambda msg: click.echo(msg, err=True))
    except OSError as exc:
        raise prefix_error(f"repairing {layout.root}", layout.root, exc) from None
    if not as_json:
        for r in result.restored:
            click.echo(f"restored {r['path']} (from {r['from']})")
        for path in result.removed:
            click.echo(f"removed  {path} (no bundle installed it)")
        for tc_id in result.rebuilt:
            click.echo(f"swapped  versions/{tc_id} for its repaired copy")
        for note in result.notes:
            click.echo(f"note     {note}")
    if not result.ok:
        err: Any = fix.failure(result)
        err.details = result.to_dict()
        raise err
    if as_json:
        emit_json(result.to_dict())
        return
    if not any(result.found.values()):
        click.echo(f"ok: nothing to repair in {layout.root}; verify finds every path as signed")
    else:
        click.echo(f"ok: repaired in {result.seconds:.1f}s; verify now finds every path as "
                   "signed")
