"""The offline installer's command line (runs inside rescue.pyz on a stock CPython 3.9+)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from manifests.errors import NotReadyError, RescueError

VERSION = "0.1.0"


def load_signers(trust: Optional[str]) -> Tuple[List[Any], str]:
    """The trusted signers: --trust FILE, else the store built into the pyz."""
    from keys import allowed_signers

    if trust:
        try:
            text = Path(trust).read_text(encoding="utf-8")
        except OSError as exc:
            raise NotReadyError(f"reading trust store {trust}: {exc.strerror}") from None
        return allowed_signers.parse(text), trust
    from installer import embedded

    text = embedded.trusted_signers_text()
    if text is None:
        raise NotReadyError("no trust store: pass --trust FILE (an OpenSSH allowed_signers "
                            "file), or use a rescue.pyz built with `rescue zipapp --trust FILE`")
    return allowed_signers.parse(text), "the trust store built into rescue.pyz"


def emit_json(doc: Dict[str, Any]) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def _fail(exc: RescueError, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": False, "error": str(exc), "kind": type(exc).__name__})
    raise exc


def print_checks(checks: List[Any]) -> None:
    width = max((len(c.name) for c in checks), default=10)
    for c in checks:
        mark = "FAIL" if not c.ok else "WARN" if getattr(c, "warn", False) else "ok  "
        click.echo(f"  {mark} {c.name:<{width}}  {c.got}")
        if not c.ok or getattr(c, "warn", False):
            click.echo(f"       {'':<{width}}  expected: {c.expected}")
        for line in getattr(c, "detail", ()):  # why, where it is set, the fix
            click.echo(f"       {'':<{width}}  {line}")


class _Progress:
    """A bar on stderr, started once the signed manifest says how many bytes will stream."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def start(self, total: int) -> None:
        self.bar = click.progressbar(length=max(total, 1), label=self.label, file=sys.stderr)
        self.bar.__enter__()

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="rescue")
def cli() -> None:
    """Rebuild a working Go environment from a signed rescue bundle, offline."""


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install root (default /usr/local/go-emergency if writable, else a per-user "
                   "data dir).")
@click.option("--trust", type=str, default=None, metavar="FILE",
              help="OpenSSH allowed_signers file (default: the one built into rescue.pyz).")
@click.option("--use", type=str, default=None, metavar="VERSION",
              help="The toolchain to make current (default: the newest for this machine).")
@click.option("--modcache", "modcache", is_flag=False, flag_value="", default=None,
              metavar="[DIR]",
              help="Also fill a Go module cache from the bundle's modules, so GOPROXY=off builds "
                   "work (default DIR: your `go env GOMODCACHE`). Put it after BUNDLE.")
@click.option("--lock-timeout", type=float, default=300.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another rescue command working on the prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def install(bundle: Path, prefix: Optional[Path], trust: Optional[str], use: Optional[str],
            modcache: Optional[str], lock_timeout: float, as_json: bool) -> None:
    """Verify BUNDLE and install it; run the emergency checklist."""
    from installer import install as inst
    from installer.prefix import default_prefix

    root = prefix or default_prefix()
    try:
        signers, source = load_signers(trust)
        cache_dir = _modcache_dir(modcache)
        def waiting(msg: str) -> None:
            click.echo(f"rescue: {msg}", err=True)

        if as_json or not sys.stderr.isatty():
            result = inst.install(bundle, root, signers, source, use, modcache_dir=cache_dir,
                                  on_wait=waiting, lock_timeout=lock_timeout)
        else:
            with _Progress("verifying and staging") as bar:
                result = inst.install(bundle, root, signers, source, use, on_bytes=bar.advance,
                                      on_total=bar.start, modcache_dir=cache_dir,
                                      on_wait=waiting, lock_timeout=lock_timeout)
    except RescueError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None and not as_json:
            print_checks(partial.checks)
        if as_json and partial is not None:
            doc = inst.result_dict(partial)
            doc.update(error=str(exc), kind=type(exc).__name__)
            emit_json(doc)
            raise
        _fail(exc, as_json)
        raise
    if as_json:
        emit_json(inst.result_dict(result))
        return
    click.echo(f"bundle   {result.name} (channel {result.channel}, #{result.sequence}) "
               f"signed by {result.signer}")
    for tid in result.installed:
        click.echo(f"installed {tid}")
    for tid in result.reused:
        click.echo(f"kept      {tid} (already installed)")
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
    click.echo(f"done in {result.seconds:.1f}s; use it with:  . {Path(result.prefix) / 'env.sh'}")


def _modcache_dir(value: Optional[str]) -> Optional[Path]:
    """--modcache: None when absent; the user's GOMODCACHE when given without a DIR."""
    if value is None:
        return None
    from installer.modcache import default_gomodcache

    return Path(value).absolute() if value else default_gomodcache()


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", type=str, default=None, metavar="FILE",
              help="OpenSSH allowed_signers file (default: the one built into rescue.pyz).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def inspect(bundle: Path, trust: Optional[str], as_json: bool) -> None:
    """Verify BUNDLE's signature and every member's hash without installing it."""
    from installer import inspect as insp

    try:
        signers, source = load_signers(trust)
        report = insp.inspect(bundle, signers, source)
    except RescueError as exc:
        _fail(exc, as_json)
        raise
    if as_json:
        emit_json(report)
        return
    for line in insp.describe(report):
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def selftest(as_json: bool) -> None:
    """Prove the native parts (zstd, Ed25519) load and work on this Python."""
    from installer import selftest as st

    report = st.run()
    if as_json:
        emit_json(report)
    else:
        for key, value in sorted(report.items()):
            click.echo(f"{key:20} {value}")


def main(argv: Optional[Sequence[str]] = None, group: click.Group = cli) -> int:
    """Entry point that tests call directly; returns the exit code instead of exiting."""
    try:
        group.main(args=list(argv) if argv is not None else None, prog_name="rescue",
                   standalone_mode=False)
    except RescueError as exc:
        click.echo(f"rescue: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted; the previous state stays active.", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
