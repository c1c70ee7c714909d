"""Every switch of `current`, appended to `P/state/history.jsonl`: when, from, to, why, which
command, who, and the CI context. `rollback` reads it to know where to go back to."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from installer.prefix import Layout

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
        return str(os.getuid())


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
    """`versions/go1.21.13.linux-amd64` -> `go1.21.13.linux-amd64`."""
    return link.rsplit("/", 1)[-1] if link else None


def load(layout: Layout) -> List[Dict[str, Any]]:
    try:
        text = (layout.state / HISTORY_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash: the rest still counts
    return out


def append(layout: Layout, record: Dict[str, Any]) -> None:
    """One line, appended and synced; a record already there (same id) is not written twice."""
    if any(r.get("id") == record["id"] for r in load(layout)):
        return
    layout.state.mkdir(exist_ok=True)
    # Never through a link planted in its place: the history stays inside the prefix.
    fd = os.open(layout.state / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                 | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
