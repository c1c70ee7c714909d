"""Git as `snapshot sync` and `pull` run it: hardened (no hooks, no system or user config, no
prompts, only file/ssh/https remotes), in a private scratch repository, output read bounded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from manifests.text import plain, shown

INSTALL_GIT = "install git (`apt-get install git`, `dnf install git` or `apk add git`)"
# Every command starts with these: a hook or a config file of the repository, the machine or
# the user never runs or decides anything, and no remote helper (`ext::sh -c ...`) is allowed.
HARDENED = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
            "-c", "protocol.allow=never", "-c", "protocol.file.allow=always",
            "-c", "protocol.ssh.allow=always", "-c", "protocol.https.allow=always",
            "-c", "credential.helper=", "-c", "core.sshCommand=ssh -o BatchMode=yes",
            "-c", "transfer.fsckObjects=true", "-c", "init.defaultBranch=main")
# What git may still see of the caller's environment: a way to reach the server, nothing else.
PASSED = ("PATH", "SSH_AUTH_SOCK", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
          "GIT_SSL_CAINFO")
SCHEMES = ("file", "ssh", "https")
_SCHEME = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]*)::")
_SCP = re.compile(r"\A[^/:]+:")  # host:path, as git reads it (ssh)


class GitFailed(NotReadyError):
    """A git command exited non-zero; `text` holds what it printed (both streams, cut)."""

    text = ""


def remote(given: str) -> str:
    """The repository as git is given it: a URL of an allowed scheme, `host:path` (ssh), or a
    directory (made a file:// URL). Anything git could read as an option or a helper is refused.
    """
    bad = ("it is empty" if not given else
           "it starts with `-`, which git would read as an option" if given.startswith("-") else
           "it holds control characters" if any(ord(c) < 32 or ord(c) == 127 for c in given)
           else "")
    helper = _HELPER.match(given)
    scheme = _SCHEME.match(given)
    if not bad and helper:
        bad = f"`{helper.group(1)}::` runs a remote helper program, which rescue never allows"
    elif not bad and scheme and scheme.group(1).lower() not in SCHEMES:
        bad = f"the scheme {scheme.group(1)}:// is not one of {', '.join(SCHEMES)}"
    if bad:
        raise NotReadyError(
            f"reading --git {shown(given)}: {bad}; pass a directory, a file://, ssh:// or "
            "https:// URL, or host:path", operation="reading --git", subject=shown(given))
    if scheme or _SCP.match(given):
        return given
    return Path(given).absolute().as_uri()


def shown_url(url: str) -> str:
    """A URL in a message: any `user:password@` replaced, escapes never printed."""
    return plain(re.sub(r"(?<=://)[^/@\s]+@", "***@", url))


class Git:
    """One private scratch repository (bare) and the hardened way to run git in it."""

    def __init__(self, base: Path, host: str) -> None:
        exe = shutil.which("git")
        if exe is None:
            raise NotReadyError(f"running git: it is not installed (not on PATH); {INSTALL_GIT}"
                                ", then run the command again", operation="running git",
                                subject="git")
        self.exe, self.dir = exe, base / "repo.git"
        (base / "home").mkdir()
        who = f"rescue snapshot sync ({host})"
        self.env: Dict[str, str] = {k: os.environ[k] for k in PASSED if k in os.environ}
        self.env.setdefault("PATH", os.defpath)
        self.env.update({
            "HOME": str(base / "home"), "XDG_CONFIG_HOME": str(base / "home"), "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true",
            "GIT_AUTHOR_NAME": who, "GIT_COMMITTER_NAME": who,
            "GIT_AUTHOR_EMAIL": "rescue@localhost", "GIT_COMMITTER_EMAIL": "rescue@localhost",
            "GIT_INDEX_FILE": str(base / "index")})
        self.run("init", "-q", "--bare", "--template=", str(self.dir), in_repo=False)

    def run(self, *args: str, stdin: Optional[bytes] = None, in_repo: bool = True,
            limit: int = DEFAULT_LIMITS.snapshot_git_output_bytes) -> bytes:
        """What git printed on stdout (at most `limit` bytes); GitFailed when it failed."""
        argv = [self.exe, *HARDENED, *((f"--git-dir={self.dir}",) if in_repo else ()), *args]
        code, out, err = _bounded(argv, self.env, stdin, limit, args[0])
        if code != 0:
            text = (err + b"\n" + out).decode("utf-8", "replace").strip()
            lines = [plain(line) for line in text.splitlines() if line.strip()]
            first = next((line for line in lines if line.startswith(("fatal", "error"))),
                         lines[0] if lines else f"exit {code}")
            exc = GitFailed(f"running git {args[0]}: {first[:DEFAULT_LIMITS.quoted_output_chars]}",
                            operation="running git", subject=args[0])
            exc.text = text[-DEFAULT_LIMITS.guard_log_tail_bytes:]
            raise exc
        return out


def _bounded(argv: List[str], env: Dict[str, str], stdin: Optional[bytes], limit: int,
             what: str) -> Tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of a git command killed past the time limit, or when its
    stdout passes `limit` (an answer that large is not one rescue asked for)."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, cwd="/")
        except OSError as exc:
            raise NotReadyError(f"running git: {exc.strerror or exc}; {INSTALL_GIT}",
                                operation="running git", subject=argv[0]) from None
        late: List[bool] = []

        def stop() -> None:
            late.append(True)
            proc.kill()

        timer = threading.Timer(DEFAULT_LIMITS.snapshot_git_seconds, stop)
        timer.start()
        try:
            if stdin is not None:
                threading.Thread(target=_feed, args=(proc, stdin), daemon=True).start()
            else:
                proc.stdin.close()  # type: ignore[union-attr]
            out = _read(proc, limit)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if late:
            raise NotReadyError(
                f"running git {what}: it took longer than "
                f"{DEFAULT_LIMITS.snapshot_git_seconds} s; check that the server answers, then "
                "run the command again", operation="running git", subject="git")
        if len(out) > limit:
            raise NotReadyError(
                f"running git {what}: it printed more than {limit} bytes, more than any snapshot "
                "repository needs; check what --git names", operation="running git",
                subject="git")
        err.seek(0)
        return code, out, err.read(64 * 1024)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
    except OSError:  # git exited early: its exit code says why
        pass


def _read(proc: subprocess.Popen, limit: int) -> bytes:
    chunks, size = [], 0
    while size <= limit:
        chunk = proc.stdout.read(1 << 16)  # type: ignore[union-attr]
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        proc.kill()
    proc.stdout.close()  # type: ignore[union-attr]
    return b"".join(chunks)


@contextmanager
def scratch(host: str) -> Iterator[Git]:
    """A Git in a fresh temporary directory, removed afterwards: nothing of one run (a
    half-fetched pack, a planted config) is there for the next."""
    try:
        base = Path(tempfile.mkdtemp(prefix="rescue-snapshot-git-"))
    except OSError as exc:
        raise NotReadyError(
            f"running git: no scratch directory in {tempfile.gettempdir()} "
            f"({exc.strerror or exc}); set TMPDIR to a directory this user can write",
            operation="running git", subject=tempfile.gettempdir()) from None
    try:
        yield Git(base, host)
    finally:
        shutil.rmtree(base, ignore_errors=True)
