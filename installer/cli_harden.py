"""CI agent hardening: `allowlist` (a fapolicyd trust file) and `exec` (a bubblewrap sandbox)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Tuple

import click

from installer.allowlist import FORMATS
from manifests.files import write_atomic

_PREFIX_HELP = ("Install root (default /usr/local/go-emergency if writable, else a per-user "
                "data dir).")


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="fapolicyd",
              show_default=True, help="fapolicyd's trust file (`path size sha256` lines).")
@click.option("-o", "--output", type=str, default="-", show_default=True, metavar="FILE",
              help="Write it to FILE (whole or not at all); - prints it.")
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=_PREFIX_HELP)
@click.option("--trust", type=str, default=None, metavar="FILE",
              help="OpenSSH allowed_signers file (default: the prefix's or rescue.pyz's).")
def allowlist(fmt: str, output: str, prefix: Optional[Path], trust: Optional[str]) -> None:
    """Print every file of every installed toolchain as an allowlist trust file.

    Each tree is first checked against its signed manifest (as `verify` does): a file no
    bundle put there is never listed (exit 3). Paths are the real ones, P/versions/<id>/...,
    which is what fapolicyd sees when P/current/bin/go runs.

    \b
    Examples:
      python3 rescue.pyz allowlist --format fapolicyd -o /etc/fapolicyd/trust.d/go-emergency
      fapolicyd-cli --update
    """
    from installer import allowlist as allow
    from installer.cli import load_signers
    from installer.prefix import Layout, default_prefix

    root = (prefix or default_prefix()).absolute()
    signers, source = load_signers(trust, root)
    items = allow.entries(Layout(root), signers, source)
    data = allow.fapolicyd_text(items)
    if output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_atomic(Path(output), data)
    click.echo(f"wrote {output} ({fmt}, {len(items)} files)", err=True)


def _env_pair(ctx: click.Context, param: click.Parameter,
              values: Tuple[str, ...]) -> Tuple[Tuple[str, str], ...]:
    pairs = []
    for value in values:
        name, eq, rest = value.partition("=")
        if not eq or not name or any(c in name for c in "\0 \t\n"):
            raise click.BadParameter(f"{value!r}: give NAME=VALUE")
        pairs.append((name, rest))
    return tuple(pairs)


@click.command("exec", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=_PREFIX_HELP)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Keep HOME, GOCACHE, GOPATH and TMPDIR in DIR (yours, 0700) "
                                  "between runs (default: a new temp dir, removed after).")
@click.option("-e", "--env", "extra_env", multiple=True, metavar="NAME=VALUE",
              callback=_env_pair, help="Set a variable inside (repeatable).")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(prefix: Optional[Path], workdir: Optional[Path],
          extra_env: Tuple[Tuple[str, str], ...], cmd: Tuple[str, ...]) -> None:
    """Run CMD in a bubblewrap sandbox wired to the prefix's go; exit with CMD's code.

    Inside: /usr, /etc and the prefix read-only; the current directory (your project)
    read-write; HOME, GOCACHE, GOPATH and TMPDIR in a private 0700 work dir; a fresh /tmp;
    no network; your own uid (bwrap makes an unprivileged user namespace: no root, no setuid).
    GOPROXY, GOSUMDB and GOTOOLCHAIN as env.sh sets them. A sandbox that cannot be made
    (no bwrap, user namespaces off) is exit 2.

    \b
    Examples:
      python3 rescue.pyz exec -- go build ./...
      python3 rescue.pyz exec --prefix /opt/go-emergency --workdir ~/.cache/ci-go -- go test ./...
    """
    from installer import sandbox
    from installer.prefix import default_prefix

    code = sandbox.run((prefix or default_prefix()).absolute(), cmd, workdir, extra_env)
    click.get_current_context().exit(code)
