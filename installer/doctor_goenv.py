"""Doctor on the GOENV file itself: one go cannot use, and its lines this shell hides."""

from __future__ import annotations

import shlex
from typing import Collection, List, Mapping, Sequence, Tuple

from installer import goenv_file, usersettings

ERROR, WARNING, INFO = "error", "warning", "info"
Row = Tuple[str, str, str, str, str]  # check, severity, message, evidence, fix


def find_file(g: goenv_file.EnvFile) -> List[Row]:
    """What is wrong with the file as a file, and what go does with it."""
    if not g.problem:
        return []
    where = f"{g.path} (found as go finds it: {g.origin})"
    again = (f"mv {shlex.quote(g.path)} {shlex.quote(g.path + '.' + g.kind)}, then set again "
             "only what you need with go env -w")
    if g.kind == goenv_file.IGNORED:
        return [("goenv-file", INFO, f"your GOENV file {g.path}: {g.problem}; go cannot read "
                 "it either and carries on without it, so it sets nothing", where, "")]
    if g.kind == goenv_file.HANGS:
        return [("goenv-file", ERROR, f"your GOENV file {g.path}: {g.problem}; {goenv_file.WAITS} "
                 "(doctor ran go with GOENV=off)", where, goenv_file.hang_fix(g))]
    if g.kind == goenv_file.UNREAD:
        return [("goenv-file", ERROR, f"your GOENV file {g.path}: {g.problem} (`go env -w` "
                 "writes a few lines); doctor cannot say which settings in it override the "
                 "offline wiring, and go applies every one of them", where, again)]
    return [("goenv-file", ERROR, f"your GOENV file {g.path} is damaged: {g.problem}, which "
             "`go env -w` never writes (cut short by a crash, or written by another "
             "program); go still applies each KEY=VALUE line in it", where, again)]


def find_hidden(g: goenv_file.EnvFile, env: Mapping[str, str],
                alone: Sequence[usersettings.Finding], shown: Collection[str]) -> List[Row]:
    """Lines that would override the offline wiring (`alone`: the file judged with nothing
    exported) but that this shell hides with an export: a go started without it reads them."""
    out = []
    for j in alone:
        if j.key in shown or j.key not in g.lines or not env.get(j.key):
            continue
        number, value = g.lines[j.key]
        out.append(("goenv-file", WARNING, f"your GOENV file {g.path} line {number} sets "
                    f"{j.key}={value}, which this shell hides with the exported "
                    f"{j.key}={env[j.key]}; a go started without that export (a shell that "
                    f"does not source env.sh, cron, an IDE) reads it: {j.lines[0]}",
                    f"{g.path}:{number}: {j.key}={value}", f"go env -u {j.key}"))
    return out
