"""The offline installer's command line (runs inside rescue.pyz on a stock CPython 3.6+)."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from installer.cli_group import Commands
from installer.output import emit_json, print_checks, progress
from manifests import __version__
from manifests.errors import Interrupted, NotReadyError, RescueError

VERSION = __version__


def load_signers(trust: Optional[str], prefix: Optional[Path] = None) -> Tuple[List[Any], str]:
    """The trusted signers: --trust FILE, else the store the prefix adopted from a bundle (key
    rotation), else the store built into the pyz. A prefix whose own directories are links is
    refused first (`prefix.refuse_links`)."""
    from keys import allowed_signers

    if prefix is not None:  # every command on a prefix starts here: it must not lead outside
        from installer.prefix import Layout, refuse_links

        refuse_links(Layout(prefix.absolute()))
    if trust:
        try:
            text = Path(trust).read_text(encoding="utf-8")
        except OSError as exc:
            raise NotReadyError(f"reading trust store {trust}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise NotReadyError(f"reading trust store {trust}: not a text file; pass an "
                                "OpenSSH allowed_signers file") from None
        wrong = allowed_signers.not_a_trust_store(text)
        if wrong:
            raise NotReadyError(f"reading trust store {trust}: {wrong}")
        return allowed_signers.parse(text, trust), trust
    if prefix is not None:
        from installer import trust_policy
        from installer.prefix import Layout

        kept = trust_policy.adopted(Layout(prefix.absolute()))
        if kept is not None:
            return allowed_signers.parse(kept[0], kept[1]), kept[1]
    from installer import embedded

    text = embedded.trusted_signers_text()
    if text is None:
        raise NotReadyError("no trust store: pass --trust FILE (an OpenSSH allowed_signers "
                            "file), or use a rescue.pyz built with `rescue zipapp --trust FILE`")
    source = "the trust store built into rescue.pyz"
    return allowed_signers.parse(text, source), source


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="rescue")
def cli() -> None:
    """Rebuild a working Go environment from a signed rescue bundle, offline.

    \b
    Examples:
      python3 rescue.pyz inspect BUNDLE
      python3 rescue.pyz install BUNDLE --prefix ~/go-emergency
      . ~/go-emergency/env.sh && go version
    """


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install root (default /usr/local/go-emergency if writable, else a per-user "
                   "data dir).")
@click.option("--trust", type=str, default=None, metavar="FILE",
              help="OpenSSH allowed_signers file (default: the one built into rescue.pyz).")
@click.option("--use", type=str, default=None, metavar="VERSION",
              help="The toolchain to make current (default: the newest for this machine).")
@click.option("--modcache", "modcache", is_flag=True,
              help="Also fill your Go module cache (`go env GOMODCACHE`) from the bundle's "
                   "modules, so GOPROXY=off builds work.")
@click.option("--modcache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Fill the module cache in DIR instead (implies --modcache).")
@click.option("--lock-timeout", type=float, default=300.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another rescue command working on the prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def install(bundle: Path, prefix: Optional[Path], trust: Optional[str], use: Optional[str],
            modcache: bool, modcache_dir: Optional[Path], lock_timeout: float,
            as_json: bool, guard_projects: Tuple[Path, ...] = (),
            guard_cmds: Tuple[str, ...] = (), guard_timeout: float = 600.0,
            fail_patterns: Tuple[str, ...] = (), auto_prune: bool = False) -> None:
    """Verify BUNDLE and install it; run the emergency checklist.

    \b
    Examples:
      python3 rescue.pyz install dc-emergency-stable-7.rescue.tar.zst
      python3 rescue.pyz install BUNDLE --prefix ~/go-emergency --use 1.21.13
      python3 rescue.pyz install BUNDLE --modcache --json
      . ~/.local/share/go-emergency/env.sh     # then: go version
    """
    from installer import install as inst
    from installer.cli_versions import make_guard
    from installer.prefix import default_prefix

    root = prefix or default_prefix()
    signers, source = load_signers(trust, root)
    cache_dir = _modcache_dir(modcache, modcache_dir)
    guard = make_guard(guard_projects, guard_cmds, guard_timeout, fail_patterns) or None

    def waiting(msg: str) -> None:
        click.echo(f"rescue: {msg}", err=True)

    try:
        with progress("verifying and staging", as_json) as bar, \
                progress("module cache", as_json) as cache_bar:
            result = inst.install(bundle, root, signers, source, use, on_bytes=bar.advance,
                                  on_total=bar.start, modcache_dir=cache_dir,
                                  on_wait=waiting, lock_timeout=lock_timeout, guard=guard,
                                  auto_prune=auto_prune, on_module=cache_bar.advance)
    except RescueError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            if not as_json:
                print_checks(partial.checks)
            exc.details = inst.result_dict(partial)  # type: ignore[attr-defined]
        raise
    except KeyboardInterrupt:
        from installer.prefix import Layout, current_target

        now = current_target(Layout(root.absolute()))
        raise Interrupted(f"installing {bundle}: interrupted; nothing of it was kept, and "
                          + (f"`current` is still {now}" if now else "no toolchain is current")
                          + f" in {root}") from None
    if as_json:
        emit_json(inst.result_dict(result))
        return
    click.echo(f"bundle   {result.name} (channel {result.channel}, #{result.sequence}) "
               f"signed by {result.signer['key_id']}")
    for tid in result.installed:
        click.echo(f"installed {tid}")
    for tid in result.reused:
        click.echo(f"verified  {tid} (already installed; every file as signed)")
    for fix in result.repaired:
        click.echo(f"repaired  {fix['toolchain']} (already installed but damaged: "
                   f"{fix['changed']} changed, {fix['missing']} missing, {fix['added']} added; "
                   "replaced by this bundle's copy)")
    if result.modules_added or result.modules_kept:
        click.echo(f"modules   {len(result.modules_added)} added, {len(result.modules_kept)} "
                   f"already present in {Path(result.prefix) / 'goproxy'}")
    if result.modcache is not None:
        click.echo(f"modcache  {len(result.modcache['written'])} written, "  # type: ignore[arg-type]
                   f"{len(result.modcache['kept'])} already complete in "  # type: ignore[arg-type]
                   f"{result.modcache['dir']}")
    for note in result.notes:
        click.echo(f"note      {note}")
    if result.checks:
        click.echo(f"checklist ({result.current}):")
        print_checks(result.checks)
    from installer.cli_versions import say_guard
    from installer.wiring import source_line

    say_guard(result.guard)
    click.echo(f"done in {result.seconds:.1f}s; use it with:  "
               f"{source_line(Path(result.prefix))}")


def _modcache_dir(flag: bool, directory: Optional[Path]) -> Optional[Path]:
    """--modcache: the user's GOMODCACHE; --modcache-dir DIR: that one; neither: None."""
    if directory is not None:
        return directory.absolute()
    if not flag:
        return None
    from installer.modcache import default_gomodcache

    return default_gomodcache()


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--trust", type=str, default=None, metavar="FILE",
              help="OpenSSH allowed_signers file (default: the one built into rescue.pyz).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def inspect(bundle: Path, trust: Optional[str], as_json: bool) -> None:
    """Verify BUNDLE's signature and every member's hash without installing it.

    \b
    Examples:
      python3 rescue.pyz inspect dc-emergency-stable-7.rescue.tar.zst
      python3 rescue.pyz inspect BUNDLE --trust allowed_signers --json
    """
    from installer import inspect as insp

    signers, source = load_signers(trust)
    with progress("checking every member", as_json) as bar:
        report = insp.inspect(bundle, signers, source, bar.start, bar.advance)
    if as_json:
        emit_json(report)
        return
    for line in insp.describe(report):
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def selftest(as_json: bool) -> None:
    """Prove the native parts (zstd, Ed25519) load and work on this Python.

    \b
    Examples:
      python3 rescue.pyz selftest
      python3 -I rescue.pyz selftest --json
    """
    from installer import selftest as st

    report = st.run()
    if as_json:
        emit_json(report)
    else:
        for key, value in sorted(report.items()):
            click.echo(f"{key:20} {value}")


def main(argv: Optional[Sequence[str]] = None, group: click.Group = cli,
         prog_name: str = "rescue") -> int:
    """Entry point that tests call directly; returns the exit code instead of exiting.

    Every way out maps to the README's exit codes, and with --json every way out prints one
    JSON document: errors of rescue, usage errors, interrupts and bugs alike.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    args = [str(a) for a in args]
    as_json = "--json" in args
    try:
        rc = group.main(args=args, prog_name=prog_name, standalone_mode=False)
    except RescueError as exc:
        return _report(exc, as_json, getattr(exc, "details", None))
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: exit 2, like a missing input
        if not as_json:
            exc.show()
            return 2
        return _report(NotReadyError(exc.format_message(), operation="reading the command line",
                                     subject=" ".join(args[:1]),
                                     hint=f"see `{prog_name} {' '.join(args[:1])} --help`"),
                       as_json)
    except (click.exceptions.Abort, KeyboardInterrupt):
        return _report(Interrupted("interrupted; the previous state stays active"), as_json)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for a report
        if os.environ.get("RESCUE_DEBUG"):
            traceback.print_exc()
        return _report(RescueError(
            f"internal error: {type(exc).__name__}: {exc}", operation="running rescue",
            subject=" ".join(args[:1]),
            hint="this is a bug in rescue; run again with RESCUE_DEBUG=1 for the traceback and "
                 "report it; what was installed before stays active"), as_json)
    # click returns the code of `ctx.exit(code)` in non-standalone mode: pass it on.
    return rc if isinstance(rc, int) else 0


def _report(exc: RescueError, as_json: bool, details: Optional[Dict[str, Any]] = None) -> int:
    """The error on stderr for people; with --json also the document on stdout for scripts."""
    text = str(exc)
    if exc.hint and exc.hint not in text:
        text += f"\n{exc.hint}"
    click.echo(f"rescue: {text}", err=True)
    if as_json:
        emit_json({**(details or {}), "ok": False, "exit_code": exc.exit_code,
                   "error": exc.to_dict()})
    return exc.exit_code


def _register() -> None:
    """Commands that live in their own modules (imported last: they use the helpers above)."""
    from installer import cli_versions
    from installer.cli_doctor import doctor
    from installer.cli_drill import drill
    from installer.cli_harden import allowlist, exec_
    from installer.cli_sbom import sbom
    from installer.cli_serve import serve
    from installer.cli_snapshot import snapshot
    from installer.cli_snapshot_sync import register as register_snapshot_sync
    from installer.cli_verify import repair, verify

    for command in [*cli_versions.COMMANDS, snapshot, doctor, verify, repair, drill, serve, sbom,
                    allowlist, exec_]:
        cli.add_command(command)
    cli_versions.guard_options(install)  # the same guard options as `use`
    register_snapshot_sync(snapshot)
    click.option("--auto-prune", is_flag=True,
                 help="Above the disk's stop mark, remove the oldest unpinned toolchains "
                      "(never current or previous) until the bundle fits.")(install)


_register()


if __name__ == "__main__":
    sys.exit(main())

