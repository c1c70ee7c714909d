"""Wire Go to work offline: the toolchain's own go.env, plus shell snippets for PATH and the
same settings."""

from __future__ import annotations

import errno
import os
import shlex
import stat
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from installer import hostos, statefile, sumdb_prefix, toolchain_choice
from installer.prefix import Layout, read_only_mode
from manifests.errors import NotReadyError, TrustError
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

# What each character a prefix path cannot hold would break. Percent-encoding covers `%`, `#`,
# `?` and spaces in the URL; these break something no encoding reaches.
_GOPROXY_LIST = ("which go reads as a GOPROXY list separator: the offline proxy's file:// URL "
                 "would split into a network proxy")
_REFUSED = {
    ",": ("a comma", _GOPROXY_LIST),
    "|": ("a vertical bar", _GOPROXY_LIST),
    # P/current/bin goes on PATH, which cannot hold its own separator.
    os.pathsep: ("a " + ("colon" if os.pathsep == ":" else "semicolon"),
                 "which splits PATH, so `. env.sh` could not put P/current/bin on it"),
}
if os.sep == "/":  # on Windows it is the separator itself
    # cmd/go quotes * ? [ ] in a package directory before globbing //go:embed patterns, but
    # not the backslash: the standard library's embedded files go missing (`go list std`).
    _REFUSED["\\"] = ("a backslash", "which go reads as a glob escape in the GOROOT, so it "
                                     "cannot build its own standard library")


def prefix_problem(root: Path) -> Optional[str]:
    """Why go or the shell snippets cannot work from a prefix at this path, or None."""
    for char in str(root):
        if char in _REFUSED:
            name, why = _REFUSED[char]
            return f"the path holds {name} ({char!r}), {why}"
        category = unicodedata.category(char)
        if category == "Cs":  # a byte os.fsdecode could not decode
            return (f"the path holds a byte that is not UTF-8 ({char!r}), which go.env, a "
                    "UTF-8 text file, cannot hold")
        if category in ("Cc", "Zl", "Zp"):
            return (f"the path holds a control character or line break ({char!r}), which the "
                    "line-based places the path goes (go.env, `go env` output, messages) "
                    "cannot carry")
    return None


def check_prefix(root: Path) -> None:
    """Refuse, before anything is written, a prefix whose path the wiring cannot carry."""
    problem = prefix_problem(root)
    if problem:
        raise NotReadyError(f"installing into {shown(root, 4096)}: {problem}; choose another "
                            "--prefix without it")


def file_url(path: Path) -> str:
    """A file:// URL the go command accepts (Windows: file:///C:/..., forward slashes).

    cmd/go url.Parse-s each GOPROXY entry and reads the file at its decoded path: `%`, `#`,
    `?`, spaces and anything else outside RFC 3986's path characters are percent-encoded.
    `,` and `|` are never left bare (go splits the list there) and are refused anyway."""
    posix = path.absolute().as_posix()
    posix = posix if posix.startswith("/") else "/" + posix
    return "file://" + urllib.parse.quote(posix, safe="/:@!$&'()*+;=")


def source_line(root: Path) -> str:
    """`. P/env.sh` as a line to paste: quoted, so a path with `$(...)` or a backtick runs
    nothing but the `.`; every message that tells the user to source env.sh prints this.
    Windows: PowerShell's `. 'P\\env.ps1'` (cmd.exe users `call P\\env.cmd`)."""
    if hostos.WINDOWS:
        return ". " + _ps_quote(str(root / "env.ps1"))
    return ". " + shlex.quote(str(root / "env.sh"))


def go_settings(layout: Layout) -> Dict[str, str]:
    db = sumdb_prefix.read(layout)
    settings = {
        # Every module comes from the signed, hash-checked proxy the bundles filled.
        "GOPROXY": file_url(layout.goproxy),
        # The checksum database answers from the data the bundles carry under
        # P/goproxy/sumdb/<name>/ (go asks the proxy's /sumdb/<name>/supported first), so a
        # module missing from go.sum is verified as online. "off" only for a prefix whose
        # bundles carry no such data (built with modules.sumdb = "off", or before rescue
        # carried it): README "Offline wiring".
        "GOSUMDB": db.gosumdb if db is not None else "off",
        # Switch per go.mod/go.work the way go does online, from what the bundles carry: a
        # `go<V>` in P/bin (found on PATH first) or the golang.org/toolchain module the
        # installer rebuilt into P/goproxy; a version carried by no bundle fails with go's
        # "toolchain not available", never a download (README "Toolchain switching").
        # "local" when a bundle's spec chose it (toolchains.gotoolchain).
        "GOTOOLCHAIN": toolchain_choice.read(layout),
    }
    if db is not None and db.nosumdb:
        settings["GONOSUMDB"] = db.nosumdb  # the bundles' private modules, which it cannot know
    return settings


def rewire_installed(layout: Layout, skip: Sequence[str] = ()) -> List[str]:
    """Bring every installed GOROOT's go.env to the prefix's wiring (a bundle that brought
    checksum data turns GOSUMDB on for all of them); what could not be rewritten, as notes."""
    notes = []
    for goroot in sorted(layout.versions.iterdir()) if layout.versions.is_dir() else []:
        path = goroot / "go.env"
        if goroot.name in skip or goroot.is_symlink() or not path.is_file():
            continue
        try:
            have = read_go_env(path)
            from installer.verify import expected_go_env  # verify builds on this module

            want = expected_go_env(have, layout)
            if have == want:
                continue
            mode = goroot.stat().st_mode & 0o777
            os.chmod(goroot, mode | 0o200)
            try:
                write_atomic(path, want, mode=read_only_mode(0o644))
            finally:
                os.chmod(goroot, mode)
        except (OSError, TrustError) as exc:
            notes.append(f"{path}: not rewired ({exc}); run `rescue repair`")
    return notes


def go_env_text(layout: Layout, upstream: str) -> str:
    """The GOROOT's go.env: the upstream comments kept, its settings replaced by offline ones."""
    settings = go_settings(layout)
    kept = [line for line in upstream.splitlines()
            if line.split("=", 1)[0].strip() not in settings]
    lines = ["# Written by rescue: this toolchain works offline with no further setup.",
             "# The upstream go.env follows, with the settings rescue replaces removed.", ""]
    lines += kept + [""] + [f"{k}={v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def read_go_env(path: Path) -> str:
    """The upstream go.env, never through a link and never more than a small regular file:
    the bundle chose what lies at this path."""
    try:
        # O_NONBLOCK: a FIFO at this path must not hang the install before fstat refuses it.
        fd = os.open(path, statefile.READ)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TrustError(f"wiring {path}: go.env is a symlink; refused", tampering=True
                             ) from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > DEFAULT_LIMITS.go_env_bytes:
            raise TrustError(f"wiring {path}: go.env is not a regular file of at most "
                             f"{DEFAULT_LIMITS.go_env_bytes} bytes; refused", tampering=True)
        data = f.read(DEFAULT_LIMITS.go_env_bytes + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TrustError(f"wiring {path}: go.env is not UTF-8 text", tampering=True
                         ) from None


def write_go_env(goroot: Path, layout: Layout) -> None:
    path = goroot / "go.env"
    # A new file, never an in-place write: go.env may be a hard link shared with another GOROOT.
    write_atomic(path, go_env_text(layout, read_go_env(path)), mode=read_only_mode(0o644))


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def shell_snippets(layout: Layout) -> Dict[str, str]:
    """`. P/env.sh` (or env.fish, env.ps1): the emergency go first on PATH, exactly once however
    often it is sourced, and the wired settings exported. An exported variable beats the user's
    GOENV file and any stale export, where the GOROOT's go.env loses to both (README "Offline
    wiring")."""
    bin_dir = str(layout.current / "bin")
    # P/bin/go<V> right after: go (GOTOOLCHAIN=auto or path) finds an installed go1.22.10
    # there before it would download one.
    versions_dir = str(layout.root / "bin")
    settings = go_settings(layout)
    b, vb = shlex.quote(bin_dir), shlex.quote(versions_dir)
    sh_exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in settings.items())
    return {
        "env.sh": (
            "# rescue: `. env.sh` puts the emergency Go toolchain first on PATH and the go<V>\n"
            "# commands of every installed version next (once, however often it is sourced),\n"
            "# and exports its offline settings, which win over a stale export or a line in\n"
            "# your GOENV file (~/.config/go/env) for this shell.\n"
            '_rescue_path=":$PATH:"\n'
            f"for _rescue_bin in {b} {vb}; do\n"
            '  while case $_rescue_path in *:"$_rescue_bin":*) true ;; *) false ;; esac; do\n'
            '    _rescue_path=${_rescue_path%%:"$_rescue_bin":*}:'
            '${_rescue_path#*:"$_rescue_bin":}\n'
            "  done\n"
            "done\n"
            "_rescue_path=${_rescue_path#:}\n"
            "_rescue_path=${_rescue_path%:}\n"
            f'PATH={b}:{vb}${{_rescue_path:+:$_rescue_path}}\n'
            "unset _rescue_bin _rescue_path\n"
            f"export PATH {sh_exports}\n"
            "# A stale GOROOT would point this go at another tree; it finds its own.\n"
            "unset GOROOT\n"),
        "env.fish": (
            "# rescue: `source env.fish` puts the emergency Go toolchain first on PATH (once)\n"
            "# and exports its offline settings.\n"
            f"for d in {_fish_quote(bin_dir)} {_fish_quote(versions_dir)}\n"
            "    while set -l i (contains -i -- $d $PATH)\n"
            "        set -e PATH[$i]\n"
            "    end\n"
            "end\n"
            f"set -gx PATH {_fish_quote(bin_dir)} {_fish_quote(versions_dir)} $PATH\n"
            + "".join(f"set -gx {k} {_fish_quote(v)}\n" for k, v in settings.items())
            # `set -e` of an unset variable returns 4, which would make `source env.fish; and
            # go build` skip the build: the last status must be 0 either way.
            + "if set -q GOROOT\n    set -e GOROOT\nend\n"),
        "env.ps1": (
            "# rescue: `. env.ps1` puts the emergency Go toolchain first on PATH (once) and\n"
            "# exports its offline settings, which win over a stale export or a line in your\n"
            "# GOENV file (%AppData%\\go\\env on Windows) for this shell.\n"
            f"$rescueCurrent = {_ps_quote(str(layout.current))}\n"
            "$rescueFirst = Join-Path $rescueCurrent 'bin'\n"
            # Where the file system has no junctions, `current` is a file naming versions/<id>.
            "if (Test-Path -LiteralPath $rescueCurrent -PathType Leaf) {\n"
            f"  $rescueFirst = Join-Path (Join-Path {_ps_quote(str(layout.root))} "
            "((Get-Content -LiteralPath $rescueCurrent -TotalCount 1).Trim())) 'bin'\n"
            "}\n"
            f"$rescueBin = @($rescueFirst, {_ps_quote(bin_dir)}, {_ps_quote(versions_dir)})\n"
            "$rescueSep = [IO.Path]::PathSeparator\n"
            "$env:PATH = (@($rescueFirst, $rescueBin[2]) + @(($env:PATH -split "
            "[regex]::Escape($rescueSep)) | Where-Object { $_ -and $rescueBin -notcontains $_ }))"
            " -join $rescueSep\n"
            + "".join(f"$env:{k} = {_ps_quote(v)}\n" for k, v in settings.items())
            + "Remove-Item Env:GOROOT -ErrorAction SilentlyContinue\n"),
        "env.cmd": cmd_snippet(layout, settings),
    }


def _cmd_value(text: str) -> str:
    # Inside `set "NAME=value"` only % is special in a batch file (delayed expansion is off).
    return text.replace("%", "%%")


def cmd_snippet(layout: Layout, settings: Dict[str, str]) -> str:
    """`call P\\env.cmd` for cmd.exe: the same as env.ps1. A `current` junction is on PATH as
    itself; a pointer file (no junctions on this file system) is read when it is sourced."""
    current, root = _cmd_value(str(layout.current)), _cmd_value(str(layout.root))
    first = current + "\\bin"
    lines = [
        "@echo off",
        "rem rescue: `call env.cmd` puts the emergency Go toolchain first on PATH and sets its",
        "rem offline settings, which win over a stale setting or a line in your GOENV file",
        "rem (%%AppData%%\\go\\env) for this cmd.exe window.",
        f'set "RESCUE_BIN={first}"',
        f'if not exist "{first}\\" for /f "usebackq delims=" %%i in ("{current}") do '
        f'set "RESCUE_BIN={root}\\%%i\\bin"',
        'set "RESCUE_BIN=%RESCUE_BIN:/=\\%"',
        # Earlier copies out first: sourcing twice leaves each directory once.
        'call set "PATH=%%PATH:%RESCUE_BIN%;=%%"',
        f'call set "PATH=%%PATH:{_cmd_value(str(layout.root / "bin"))};=%%"',
        f'set "PATH=%RESCUE_BIN%;{_cmd_value(str(layout.root / "bin"))};%PATH%"',
        'set "RESCUE_BIN="',
        *(f'set "{k}={_cmd_value(v)}"' for k, v in settings.items()),
        'set "GOROOT="',
    ]
    return "\r\n".join(lines) + "\r\n"


def write_shell_snippets(layout: Layout) -> None:
    for name, text in shell_snippets(layout).items():
        write_atomic(layout.root / name, text)
