"""`rescue.pyz doctor`: what the user's shell gives `go`, and what is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from installer.options import JSON, PREFIX, TRUST
from installer.output import emit_json

_MARK = {"error": "ERROR", "warning": "WARN ", "info": "info "}


@click.command("doctor")
@PREFIX
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also check this Go project: GOMOD and `go list -m all`.")
@TRUST
@JSON
def doctor(prefix: Optional[Path], project: Optional[Path], trust: Optional[str],
           as_json: bool) -> None:
    """Diagnose the go your shell runs: PATH, GOROOT, settings, start-up files, permissions.

    Also checks P/current and the current GOROOT against its signed manifest by path, type,
    mode and size (`verify` hashes every file; `repair` puts them back). Exit 0 when clean,
    1 with warnings only, 4 when a finding breaks builds.

    \b
    Examples:
      python3 rescue.pyz doctor
      python3 rescue.pyz doctor --project ~/src/service --json
    """
    from installer import doctor as doc
    from installer.cli import load_signers
    from installer.prefix import Layout, default_prefix
    from manifests.errors import NotReadyError

    layout = Layout((prefix or default_prefix()).absolute())
    signers, source, why = None, "", ""
    try:
        signers, source = load_signers(trust, layout.root)
    except NotReadyError as exc:  # doctor still diagnoses the shell; the finding says why
        why = exc.message
    facts = doc.gather(layout, project, signers=signers, trust_source=source, trust_error=why)
    found = doc.findings(facts)
    code = doc.exit_code(found)
    if as_json:
        emit_json({"ok": code == 0, "exit_code": code, "error": None,
                   "prefix": str(layout.root), "go": facts.go, "current": facts.current,
                   "project": facts.project, "findings": [f.to_dict() for f in found]})
    else:
        for f in found:
            click.echo(f"{_MARK.get(f.severity, f.severity)} {f.check}: {f.message}")
            if f.severity != "info" or f.check == "path-go":
                click.echo(f"       at:  {f.evidence}")
            if f.fix:
                click.echo(f"       fix: {f.fix}")
        counts = {s: sum(1 for f in found if f.severity == s) for s in ("error", "warning")}
        click.echo(f"doctor: {counts['error']} error(s), {counts['warning']} warning(s); "
                   f"exit {code}", err=True)
    if code:
        # click's non-standalone main() returns ctx.exit's code instead of raising it, and
        # installer.cli.main() would turn that into 0; SystemExit reaches the process.
        raise SystemExit(code)
