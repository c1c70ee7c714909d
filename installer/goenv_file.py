"""The user's GOENV file: where go looks for it, read as go reads it, bounded, never waited on."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

from installer import statefile
from manifests.limits import DEFAULT_LIMITS

# What is wrong with a GOENV file, by what go does with it.
IGNORED = "ignored"  # go cannot read it either, and carries on without it
HANGS = "hangs"  # go reads it whole before every command and never gets to the end
UNREAD = "unread"  # larger than any `go env -w` writes: doctor did not read it; go does
DAMAGED = "damaged"  # not text: go still applies each KEY=VALUE line in it
WAITS = "go reads it whole before every command, so every go command waits on it without end"
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


@dataclass(frozen=True)
class EnvFile:
    """One GOENV file: KEY -> (line number, value) as go reads it, or why it could not be."""

    path: str  # "" when go reads none (GOENV=off, no HOME)
    origin: str  # how go found it, e.g. "$HOME/.config/go/env"
    lines: Dict[str, Tuple[int, str]] = field(default_factory=dict)
    problem: str = ""
    kind: str = ""  # IGNORED, HANGS, UNREAD or DAMAGED with a problem


def locate(env: Mapping[str, str], platform: str = sys.platform) -> Tuple[str, str]:
    """(path, origin) as cmd/go/internal/cfg.EnvFile finds it: $GOENV (`off`: none), else
    os.UserConfigDir()/go/env; ("", why) when go reads no file."""
    goenv = env.get("GOENV", "")
    if goenv == "off":
        return "", "GOENV=off"
    if goenv:
        return goenv, f"GOENV={goenv}"
    home = env.get("HOME", "")
    if platform == "win32":
        base, origin = env.get("AppData", ""), "%AppData%"
    elif platform == "darwin":
        base = home and home + "/Library/Application Support"
        origin = "$HOME/Library/Application Support"
    else:
        base, origin = env.get("XDG_CONFIG_HOME", ""), "$XDG_CONFIG_HOME"
        if base and not os.path.isabs(base):
            # Go 1.22 on reads no file then (go 1.21 read it relative to where go runs).
            return "", f"XDG_CONFIG_HOME={base} is relative"
        if not base:
            base, origin = home and home + "/.config", "$HOME/.config"
    if not base:
        return "", f"{origin} is not set"
    return os.path.join(base, "go", "env"), f"{origin}/go/env"


def parse(data: bytes) -> Dict[str, Tuple[int, str]]:
    """`KEY=VALUE` lines whose first byte is A-Z, no quoting, the last line for a key wins
    (cmd/go/internal/cfg readEnvFile)."""
    found: Dict[str, Tuple[int, str]] = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        key, eq, value = raw.partition(b"=")
        if not eq or not b"A" <= raw[:1] <= b"Z":
            continue
        found[key.decode("utf-8", "replace")] = (number, value.decode("utf-8", "replace"))
    return found


def _damage(data: bytes) -> str:
    for number, raw in enumerate(data.split(b"\n"), 1):
        if b"\0" in raw:
            return f"line {number} holds a NUL byte"
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"line {number} is not UTF-8 text"
    return ""


def read(path: str, origin: str = "") -> EnvFile:
    """The file at `path` (links followed, as go does), at most the limit, never a FIFO."""
    if not path:
        return EnvFile(path, origin)
    try:
        fd = os.open(path, statefile.READ_FOLLOWING)
    except FileNotFoundError:
        return EnvFile(path, origin)
    except OSError as exc:
        return EnvFile(path, origin, problem=f"it cannot be opened ({exc.strerror})",
                       kind=IGNORED)
    limit = DEFAULT_LIMITS.goenv_file_bytes
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return EnvFile(path, origin, problem="it is a directory", kind=IGNORED)
        if not stat.S_ISREG(st.st_mode):
            if os.path.realpath(path) == os.devnull:
                return EnvFile(path, origin)  # empty, as go reads it
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            return EnvFile(path, origin, problem=f"it is {kind}, not a regular file",
                           kind=HANGS)
        if st.st_size > limit:
            return EnvFile(path, origin, problem=f"it holds {st.st_size} bytes, more than the "
                           f"{limit} doctor reads", kind=UNREAD)
        data = statefile.read_at_most(fd, limit)
    except OSError as exc:
        return EnvFile(path, origin, problem=f"it cannot be read ({exc.strerror})",
                       kind=IGNORED)
    finally:
        os.close(fd)
    if len(data) > limit:
        return EnvFile(path, origin, problem=f"it grew past {limit} bytes while doctor read it",
                       kind=UNREAD)
    damage = _damage(data)
    return EnvFile(path, origin, parse(data), damage, DAMAGED if damage else "")


def hang_fix(g: EnvFile) -> str:
    """The way out of a GOENV file go would wait on (kind HANGS)."""
    if g.origin.startswith("GOENV="):
        return "unset GOENV (and remove the export from your shell profile)"
    return f"rm {shlex.quote(g.path)}, then set again only what you need with go env -w"
