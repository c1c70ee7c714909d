"""Every switch of `current`, appended to `P/state/history.jsonl`: when, from, to, why, which
command, who, and the CI context. `rollback` reads it to know where to go back to."""

from __future__ import annotations

import errno
import getpass
import json
import os
import re
import socket
import stat
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from installer import hostos, statefile
from installer.prefix import Layout
from manifests import files
from manifests.goversion import split_toolchain_id
from manifests.limits import DEFAULT_LIMITS

HISTORY_FILE = "history.jsonl"  # also in Layout.own_paths: never a link

# Variables that say which CI job ran a command (never a token: only ids, commits and refs).
CI_VARIABLES = {
    "github": ("GITHUB_ACTIONS", ["GITHUB_WORKFLOW", "GITHUB_RUN_ID", "GITHUB_JOB",
                                  "GITHUB_SHA", "GITHUB_REF"]),
    "gitlab": ("GITLAB_CI", ["CI_JOB_NAME", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_COMMIT_SHA",
                             "CI_COMMIT_REF_NAME"]),
    "jenkins": ("JENKINS_URL", ["JOB_NAME", "BUILD_NUMBER", "GIT_COMMIT", "GIT_BRANCH"]),
    "buildkite": ("BUILDKITE", ["BUILDKITE_PIPELINE_SLUG", "BUILDKITE_BUILD_NUMBER",
                                "BUILDKITE_JOB_ID", "BUILDKITE_COMMIT", "BUILDKITE_BRANCH"]),
}


def ci_context(env: Optional[Dict[str, str]] = None) -> Optional[Dict[str, str]]:
    """The CI system and its job coordinates, or None outside CI."""
    env = dict(os.environ) if env is None else env
    for system, (marker, names) in CI_VARIABLES.items():
        if env.get(marker):
            return {"system": system, **{n: env[n] for n in names if env.get(n)}}
    if env.get("CI"):
        return {"system": "generic"}
    return None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (containers, setpriv)
        return str(hostos.uid())


def new_record(op: str, previous: Optional[str], current: Optional[str], why: str,
               seconds: float = 0.0) -> Dict[str, Any]:
    return {
        "id": uuid.uuid4().hex, "op": op,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "from": _version_of(previous), "to": _version_of(current), "why": why,
        "command": " ".join(["rescue", *sys.argv[1:]])[:500], "user": _user(),
        "host": socket.gethostname(), "ci": ci_context(), "seconds": round(seconds, 2),
        "unix": time.time(),
    }


def _version_of(link: Optional[str]) -> Optional[str]:
    """`versions/go1.21.13.linux-amd64` -> `go1.21.13.linux-amd64`; None for a link that names
    no toolchain (a `current` planted elsewhere is no place to roll back to)."""
    tc_id = link.rsplit("/", 1)[-1] if link else None
    return tc_id if split_toolchain_id(tc_id) else None


_FIX = "move it aside (`mv F F.old`); a new one starts with the next switch"
_HEX_ID = re.compile(r"[0-9a-f]{32}")


def record_problem(rec: Any) -> Optional[str]:
    """What makes a history line something rescue did not write (None when nothing does):
    `from`/`to` name the toolchains `rollback` goes back to."""
    if not isinstance(rec, dict):
        return "not an object"
    if not isinstance(rec.get("id"), str) or not _HEX_ID.fullmatch(rec["id"]):
        return "its id is not 32 hex digits"
    for key in ("from", "to"):
        if rec.get(key) is not None and split_toolchain_id(rec[key]) is None:
            return f"its {key} is not a toolchain id"
    for key in ("op", "time"):
        if not isinstance(rec.get(key), str):
            return f"its {key} is missing or not text"
    for key in ("why", "command", "user", "host"):
        if not isinstance(rec.get(key, ""), str):
            return f"its {key} is not text"
    ci = rec.get("ci")
    if ci is not None and not (isinstance(ci, dict) and isinstance(ci.get("system"), str)
                               and all(isinstance(v, str) for v in ci.values())):
        return "its ci is not an object of texts with a system"
    for key in ("seconds", "unix"):
        if not isinstance(rec.get(key, 0), (int, float)) or isinstance(rec.get(key), bool):
            return f"its {key} is not a number"
    return None


def load(layout: Layout) -> List[Dict[str, Any]]:
    """The records at the end of the history, oldest first, at most
    `history_tail_bytes` of them; a line that is cut, binary or not a record is skipped."""
    path = layout.state / HISTORY_FILE
    data = statefile.read_tail(path, "history", _FIX.replace("F", str(path)),
                               DEFAULT_LIMITS.history_tail_bytes)
    out = []
    for line in (data or b"").split(b"\n"):
        try:
            rec = statefile.parse_json(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError too: a line cut by a crash, or not ours
            continue
        if record_problem(rec) is None:
            out.append(rec)
    return out


def append(layout: Layout, record: Dict[str, Any]) -> None:
    """One line, appended and synced; a record already there (same id) is not written twice.
    After a line a crash cut short, the record starts a line of its own."""
    if any(r.get("id") == record["id"] for r in load(layout)):
        return
    layout.state.mkdir(exist_ok=True)
    path = layout.state / HISTORY_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise statefile.damaged(path, "history", "it is a symbolic link, which rescue never "
                                "follows", _FIX.replace("F", str(path))) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise statefile.damaged(path, "history", "it is not a regular file",
                                    _FIX.replace("F", str(path)))
        cut = st.st_size > 0 and hostos.pread(fd, 1, st.st_size - 1) != b"\n"
        line = json.dumps(record, sort_keys=True) + "\n"
        files.write_all(fd, (("\n" if cut else "") + line).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
