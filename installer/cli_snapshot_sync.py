"""`rescue.pyz snapshot sync|pull|pin|unpin`: share snapshots through a Git repository, and keep
chosen ones from every clean-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import click

from installer.cli_snapshot import _emit, _layout
from installer.options import JSON, PREFIX

HOST = click.option("--host", default=None, metavar="NAME", envvar="RESCUE_SNAPSHOT_HOST",
                    help="This host's directory in the repository (default: the machine's "
                         "name; also RESCUE_SNAPSHOT_HOST).")
BRANCH = click.option("--branch", default="main", show_default=True, metavar="B",
                      help="The repository's branch that holds snapshots/.")
GIT = click.option("--git", "repo", required=True, metavar="DIR|URL",
                   help="The repository: a directory, file://, ssh:// or https:// URL, or "
                        "host:path.")


def _repo_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return GIT(HOST(BRANCH(PREFIX(JSON(fn)))))


@click.command()
@_repo_options
def sync(repo: str, host: Optional[str], branch: str, prefix: Optional[Path],
         as_json: bool) -> None:
    """Commit this host's new snapshots to REPO's snapshots/HOST/ and push.

    Only records the repository lacks are committed (nothing new: no commit). A push another
    host's beat is fetched again and retried, never forced. Git runs without hooks, system or
    user config, or prompts; only file, ssh and https remotes.

    \b
    Examples:
      python3 rescue.pyz snapshot sync --git ssh://git.corp/ops/snapshots.git
      python3 rescue.pyz snapshot sync --git /srv/git/snapshots.git --host build-7 --json
    """
    from installer import snapshot_git, snapshot_pulled, snapshot_sync

    url = snapshot_git.remote(repo)
    result = snapshot_sync.sync(_layout(prefix), url, snapshot_pulled.this_host(host), branch)
    if as_json:
        _emit(result)
        return
    where = f"{result['repository']} ({branch}, snapshots/{result['host']}/)"
    for sid in result["new"]:
        click.echo(f"pushed    {sid}")
    for sid in result["differ"]:
        click.echo(f"warning   {sid}: the repository's copy differs from this host's; kept "
                   "both as they are (compare with `snapshot pull` and `snapshot diff`)")
    for path in result["damaged"]:
        click.echo(f"skipped   {path}: damaged (see `snapshot list`)")
    if result["commit"]:
        click.echo(f"{len(result['new'])} new snapshot(s) committed to {where} as "
                   f"{result['commit'][:12]}")
    else:
        click.echo(f"nothing new: {where} has all {result['already']} of this host's "
                   "snapshot(s); no commit made")


@click.command()
@_repo_options
def pull(repo: str, host: Optional[str], branch: str, prefix: Optional[Path],
         as_json: bool) -> None:
    """Bring other hosts' snapshots from REPO into P/state/snapshots-pulled/HOST/.

    Each record is read bounded and checked like a local one; a damaged one is refused
    (exit 2), an edited one too (exit 3), each named, after the good ones are kept. This
    host's own records and a record pulled before are never replaced. Use them as HOST:ID.

    \b
    Examples:
      python3 rescue.pyz snapshot pull --git ssh://git.corp/ops/snapshots.git
      python3 rescue.pyz snapshot list --pulled
      python3 rescue.pyz snapshot diff build-7:v1.2.0-20261128T142307Z --live
      python3 rescue.pyz snapshot verify build-7:v1.2.0-20261128T142307Z
    """
    from installer import snapshot_git, snapshot_pulled, snapshot_sync

    url = snapshot_git.remote(repo)
    result = snapshot_sync.pull(_layout(prefix), url, snapshot_pulled.this_host(host), branch)
    if as_json:
        _emit(result)
        return
    for ref in result["pulled"]:
        click.echo(f"pulled    {ref}")
    click.echo(f"{len(result['pulled'])} pulled into {result['area']}, {result['already']} "
               f"had already, {result['own']} of this host's own left to its store"
               + ("" if result["branch_found"] else
                  f" (the repository has no branch {branch} yet)"))


def _pin_command(pin: bool) -> click.Command:
    verb = "pin" if pin else "unpin"

    @PREFIX
    @JSON
    @click.argument("snapshot_id", metavar="ID")
    def command(snapshot_id: str, prefix: Optional[Path], as_json: bool) -> None:
        from installer import snapshot_pins, snapshot_store

        layout = _layout(prefix)
        if pin:
            snapshot_store.load(layout, snapshot_store.check_id(snapshot_id))  # must exist
        had = snapshot_id in snapshot_pins.load(layout)
        pinned = snapshot_pins.change(layout, snapshot_id, pin)
        if as_json:
            _emit({"id": snapshot_id, "pinned": pin, "changed": had != pin, "pins": pinned})
            return
        click.echo(f"{verb}ned {snapshot_id}" if had != pin else
                   f"{snapshot_id} was {'already' if pin else 'not'} pinned")

    command.__doc__ = (
        "Keep snapshot ID from the disk marks' clean-up and from `snapshot prune`."
        if pin else "Let snapshot ID be removed again by the disk marks and `snapshot prune`.")
    return click.command(verb)(command)


def register(group: click.Group) -> None:
    for command in (sync, pull, _pin_command(True), _pin_command(False)):
        group.add_command(command)
