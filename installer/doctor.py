"""Diagnose what a user's shell gives `go`: pure findings over facts gathered at the edge."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from installer import (
    checklist,
    doctor_go,
    doctor_goenv,
    go_commands,
    goenv_file,
    hostos,
    statefile,
    toolchain_choice,
    usersettings,
    verify_shape,
    versions,
)
from installer.prefix import Layout
from installer.verify import Report
from installer.versions import installed_ids
from installer.wiring import go_settings, source_line
from keys.allowed_signers import AllowedSigner
from manifests.errors import RescueError, TrustError
from manifests.pycompat import CAPTURE_TEXT
from manifests.text import shown

ERROR, WARNING, INFO = "error", "warning", "info"
EXIT = {ERROR: 4, WARNING: 1}
TIMEOUT = 120
PROFILE_MAX_BYTES = 1 << 20
# Start-up files of the shells people use, in the order a login shell reads them.
HOME_PROFILES = (".profile", ".bash_profile", ".bashrc", ".zshrc", ".config/fish/config.fish")
ETC_ENV = "RESCUE_DOCTOR_ETC"  # tests point it at a crafted /etc
# `go env -json` of these, besides the settings usersettings judges.
PLACES = ("GOVERSION", "GOROOT", "GOPATH", "GOMOD", "GOENV")
GO_EXE = "go.exe" if hostos.WINDOWS else "go"


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # ERROR (breaks builds), WARNING or INFO
    message: str
    evidence: str  # the file and line, variable or path that shows it
    fix: str = ""

    def to_dict(self) -> Dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Ran:
    """One go command: its exit status and output, or why it could not start."""

    argv: Tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    oserror: str = ""

    @property
    def ok(self) -> bool:
        return not self.oserror and self.returncode == 0

    def words(self) -> str:
        return self.oserror or checklist._tail(self.stderr) or checklist._tail(self.stdout)


@dataclass(frozen=True)
class Entry:
    """One PATH entry as found on disk."""

    index: int
    text: str
    is_dir: bool = False
    exists: bool = False
    mode: int = 0
    uid: int = -1
    go: str = ""  # the executable `go` in it, if any


@dataclass
class Facts:
    """Everything doctor looks at, gathered once; the findings are computed from this alone."""

    env: Dict[str, str]
    uid: int
    layout: Layout
    current: Optional[str]  # toolchain id P/current points at
    current_goroot: Optional[str]  # its real path
    path: List[Entry]
    go: Optional[str]  # the go that is diagnosed: the one the shell runs, else rescue's
    go_root_of_binary: Optional[str]  # realpath(go)/../..
    version: Optional[Ran] = None
    env_json: Optional[Ran] = None
    settings: Dict[str, str] = field(default_factory=dict)
    settings_error: str = ""
    listed: Optional[Ran] = None  # go list -m all, with --project
    project: Optional[str] = None
    version_file: Dict[str, str] = field(default_factory=dict)  # GOROOT -> first line of VERSION
    sdk: Dict[str, bool] = field(default_factory=dict)  # GOROOT -> looks like an SDK tree
    modes: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # path -> (mode, uid)
    profiles: Dict[str, str] = field(default_factory=dict)  # start-up file -> its text
    has_go: Dict[str, bool] = field(default_factory=dict)  # dir named in a profile -> holds go
    carried: List[str] = field(default_factory=list)
    linked: Dict[str, str] = field(default_factory=dict)  # prefix dir that is a link -> target
    go_checks: Optional[doctor_go.GoFacts] = None  # the project's go lines, go.env, P/versions
    current_problem: str = ""  # what is wrong with P/current (versions.current_problem)
    installed: List[str] = field(default_factory=list)
    shape: Optional[Report] = None  # the current GOROOT against its signed manifest
    shape_error: str = ""  # why it could not be checked
    shape_untrusted: bool = False  # ... because a kept manifest failed its check
    shape_checked: bool = False  # a trust store was there to check it with
    goenv: Optional[goenv_file.EnvFile] = None  # the GOENV file, found and read as go does
    settings_by: str = ""  # who answered for `settings` when the diagnosed go could not
    settings_without: str = ""  # GOROOT=... left out of that go's environment
    windows: Optional[Any] = None  # doctor_windows.WinFacts, on Windows

    @property
    def effective(self) -> Dict[str, str]:
        """`settings`, with the GOENV file doctor found and read itself."""
        return {**self.settings, "GOENV": self.goenv.path} if self.goenv else self.settings

    @property
    def values(self) -> Dict[str, str]:
        """`go env -json` of the diagnosed go, or {}."""
        if self.env_json is None or not self.env_json.ok:
            return {}
        try:
            return {k: str(v) for k, v in json.loads(self.env_json.stdout).items()}
        except (ValueError, AttributeError):
            return {}


# --- findings: pure functions of Facts ------------------------------------------------------


def find_path_gos(f: Facts) -> List[Finding]:
    out = []
    gos = [e for e in f.path if e.go]
    # Windows: `current` may be a pointer file, so its toolchain is named by its id
    here = (f.layout.versions / f.current if f.current and f.windows is not None
            else f.layout.current)
    mine = os.path.normcase(os.path.realpath(here / "bin" / GO_EXE)) if f.current else None
    source_env = source_line(f.layout.root)
    for n, e in enumerate(gos):
        wins = "wins" if n == 0 else "shadowed by the first"
        out.append(Finding("path-go", INFO, f"go on PATH #{n + 1}: {e.go} ({wins})",
                           f"PATH entry {e.index + 1}: {e.text}"))
    if not gos:
        out.append(Finding("path-go", ERROR, "no go on PATH: the shell finds no go command",
                           f"PATH={f.env.get('PATH', '')}",
                           source_env if f.current else "install a bundle: python3 "
                           "rescue.pyz install BUNDLE, then . P/env.sh"))
    elif mine is None and f.current_problem:
        pass  # find_current_link names the link and its fix
    elif mine is None:
        out.append(Finding("path-go", ERROR, f"no rescue toolchain is current in "
                           f"{f.layout.root}; the shell runs {gos[0].go}",
                           f"{f.layout.current} does not exist",
                           "python3 rescue.pyz install BUNDLE --prefix "
                           + shlex.quote(str(f.layout.root))))
    elif os.path.normcase(os.path.realpath(gos[0].go)) != mine:
        out.append(Finding("path-go", ERROR, f"the go that wins on PATH is {gos[0].go}, not "
                           f"rescue's {f.layout.current / 'bin' / 'go'}",
                           f"PATH entry {gos[0].index + 1}: {gos[0].text}",
                           f"{source_env}  (puts {f.layout.current / 'bin'} first on PATH)"))
    return out


def _version_word(text: str) -> str:
    parts = text.split()
    return parts[2] if len(parts) >= 4 and parts[:2] == ["go", "version"] else ""


def find_versions(f: Facts) -> List[Finding]:
    """`go version` against `go env GOVERSION` and the VERSION file of the GOROOT it uses."""
    if f.version is None or not f.version.ok:
        return []
    said = _version_word(f.version.stdout)
    values = f.values
    out = []
    if said and values.get("GOVERSION") and values["GOVERSION"] != said:
        out.append(Finding("go-version", ERROR, f"`go version` says {said} but `go env "
                           f"GOVERSION` says {values['GOVERSION']}", f"{f.go}",
                           "reinstall the toolchain: python3 rescue.pyz install BUNDLE"))
    root = values.get("GOROOT", "")
    on_disk = f.version_file.get(root, "")
    if said and on_disk and on_disk != said:
        out.append(Finding("go-version", ERROR, f"{f.go} is {said} but its GOROOT {root} holds "
                           f"{on_disk}: the compiler and the standard library disagree",
                           f"{root}/VERSION", "unset GOROOT; use one GOROOT's own bin/go"))
    if root and f.go_root_of_binary and os.path.realpath(root) != f.go_root_of_binary:
        out.append(Finding("goroot", ERROR, f"{f.go} runs from {f.go_root_of_binary} but uses "
                           f"GOROOT {root}", "GOROOT", "unset GOROOT (go finds its own tree)"))
    return out


def find_goroot_setting(f: Facts) -> List[Finding]:
    goenv = f.goenv.path if f.goenv else f.values.get("GOENV", "")
    out = []
    for src in usersettings.sources("GOROOT", f.env, goenv):
        value = src.where.rsplit("GOROOT=", 1)[-1][:-1]  # "... (GOROOT=VALUE)"
        same = f.go_root_of_binary and os.path.realpath(value) == f.go_root_of_binary
        out.append(Finding("goroot", INFO if same else ERROR,
                           f"GOROOT is {src.where}" + (
                               "; it names the tree go finds by itself" if same else
                               f"; the go on PATH lives in {f.go_root_of_binary or '?'}"),
                           src.where, src.fix))
    return out


def find_gopath(f: Facts) -> List[Finding]:
    values = f.values
    root = values.get("GOROOT", "")
    out = []
    for gopath in filter(None, values.get("GOPATH", "").split(os.pathsep)):
        real, real_root = os.path.realpath(gopath), os.path.realpath(root)
        if root and (real == real_root or real.startswith(real_root.rstrip("/") + "/")):
            out.append(Finding("gopath", ERROR, f"GOPATH {gopath} is "
                               f"{'the same as' if real == real_root else 'inside'} GOROOT "
                               f"{root}: the module cache would go into the read-only SDK",
                               "GOPATH", "unset GOPATH (default ~/go), or go env -u GOPATH"))
    return out


def find_gomod(f: Facts) -> List[Finding]:
    if f.project is None or not f.values:
        return []
    gomod = f.values.get("GOMOD", "")
    if gomod in ("", os.devnull):
        why = ("go is not in module mode (GO111MODULE=off)" if not gomod else
               f"no go.mod in {f.project} or any directory above it")
        return [Finding("gomod", ERROR, why, f"GOMOD={gomod!r} in {f.project}",
                        "cd to the module's root, or: go mod init MODULE")]
    return [Finding("gomod", INFO, f"module file {gomod}", f"GOMOD in {f.project}")]


def _judged(f: Facts, effective: Mapping[str, str], env: Mapping[str, str]
            ) -> List[usersettings.Finding]:
    """usersettings' verdict on each setting the offline wiring cares about."""
    version = (f.current or "").rsplit(".", 1)[0]
    return [j for j in usersettings.judge(effective, env, go_settings(f.layout), version,
                                          f.carried, source_line(f.layout.root),
                                          installed=list(go_commands.wanted(f.layout)))
            if j.level != "ok"]


def find_settings(f: Facts) -> List[Finding]:
    """The offline wiring's settings as this go sees them, judged by usersettings."""
    if not f.settings or not f.current:
        return []
    out = []
    rescue_go = f.layout.current / "bin" / "go"
    if f.settings_by == "doctor":
        out.append(Finding("settings", INFO, "no go answers `go env` (neither the go on PATH "
                           f"nor rescue's {rescue_go}): doctor judged the settings below from "
                           "your environment, your GOENV file and the GOROOT's go.env",
                           str(rescue_go)))
    elif f.settings_by:
        without = (f" without your GOROOT={f.settings_without}, which names another tree"
                   if f.settings_without else "")
        out.append(Finding("settings", INFO, "the go on PATH cannot answer `go env`: the "
                           f"settings below are judged with rescue's {f.settings_by}, run with "
                           f"your environment{without}, as it runs once PATH puts it first",
                           f.settings_by))
    for j in _judged(f, f.effective, f.env):
        where = [x for x in j.lines[1:] if not x.startswith(("fix:", "or, for one shell"))]
        fixes = [x[len("fix: "):] for x in j.lines if x.startswith("fix: ")]
        fixes += [x[len("or, for one shell: "):] for x in j.lines
                  if x.startswith("or, for one shell: ")]
        out.append(Finding(f"setting {j.key}", ERROR if j.level == usersettings.FAIL
                           else WARNING, f"{j.key}={j.got}: {j.lines[0]}",
                           "; ".join(where) or j.key, " or ".join(fixes)))
    return out


def find_goenv_file(f: Facts) -> List[Finding]:
    """The GOENV file go would read, whatever state the go on PATH is in."""
    if f.goenv is None or not f.goenv.path:
        return []
    out = [Finding(*x) for x in doctor_goenv.find_file(f.goenv)]
    if f.settings and f.current and f.goenv.lines:
        shown = {j.key for j in _judged(f, f.effective, f.env)}
        alone = {**go_settings(f.layout), **{k: v for k, (_, v) in f.goenv.lines.items()},
                 "GOENV": f.goenv.path}
        out += [Finding(*x) for x in doctor_goenv.find_hidden(f.goenv, f.env,
                                                              _judged(f, alone, {}), shown)]
    return out


_GO_VAR = re.compile(r"^\s*(?:(?:export|declare\s+-x|typeset\s+-x|readonly)\s+)?"
                     r"(GO[A-Z0-9_]*)=")
_GO_VAR_FISH = re.compile(r"^\s*(?:set\s+(?:-[A-Za-z]+\s+)*|setenv\s+)(GO[A-Z0-9_]*)\b")
_PATH_SET = re.compile(r"(?:^|[\s;])(?:export\s+)?(?:PATH|path)\+?=|\bset\s+(?:-[A-Za-z]+\s+)*"
                       r"(?:PATH|fish_user_paths)\b|\bfish_add_path\b")
_GO_BIN = re.compile(r"(?:^|/)go[-0-9.]*/bin/?$")


def _expand(token: str, home: str) -> str:
    for var in ("${HOME}", "$HOME"):
        token = token.replace(var, home)
    return home + token[1:] if token.startswith("~") else token


def scan_profile(name: str, text: str, home: str, mine: str,
                 has_go: Callable[[str], bool]) -> List[Finding]:
    """Lines of one start-up file that set a GO* variable or put another Go on PATH."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.strip()
        if not code or code.startswith("#"):
            continue
        var = _GO_VAR.match(code) or _GO_VAR_FISH.match(code)
        where = f"{name}:{number}: {code[:120]}"
        if var:
            out.append(Finding("startup-go-var", WARNING, f"{name} line {number} sets "
                               f"{var.group(1)} for every new shell", where,
                               f"delete line {number} of {name}, then open a new shell"))
            continue
        if not _PATH_SET.search(code):
            continue
        for token in re.split(r"[\s:\"'=()]+", code):
            plain = _expand(token, home).rstrip("/")
            if not plain or "PATH" in token or plain == mine.rstrip("/"):
                continue
            goroot = "GOROOT" in token
            guessed = bool(_GO_BIN.search(plain)) and not plain.startswith(home + "/")
            if goroot or has_go(plain) or guessed:
                out.append(Finding("startup-path", WARNING, f"{name} line {number} puts "
                                   f"another Go on PATH ({token})", where,
                                   f"delete {token} from line {number} of {name}, then open a "
                                   "new shell"))
                break
    return out


def find_profiles(f: Facts) -> List[Finding]:
    home = f.env.get("HOME", "")
    mine = str(f.layout.current / "bin")
    out: List[Finding] = []
    for name, text in f.profiles.items():
        out += scan_profile(name, text, home, mine, lambda d: f.has_go.get(d, False))
    return out


def find_path_entries(f: Facts) -> List[Finding]:
    if f.windows is not None:
        return []  # judged by find_windows: no uids, drive letters, ACLs
    out = []
    for e in f.path:
        where = f"PATH entry {e.index + 1}: {e.text!r}"
        drop = f"remove {e.text!r} from PATH in your shell profile"
        if not e.text:
            out.append(Finding("path-entry", WARNING, "empty PATH entry: the current directory "
                               "is searched, so a `go` in any directory you cd into wins",
                               where, "remove the empty entry (`::` or a leading/trailing `:`)"))
            continue
        if not e.text.startswith("/"):
            out.append(Finding("path-entry", WARNING, f"relative PATH entry {e.text!r}: it "
                               "names a different directory in every working directory",
                               where, drop))
        if " " in e.text:
            out.append(Finding("path-entry", WARNING, f"PATH entry {e.text!r} contains a "
                               "space: scripts that split PATH unquoted break", where,
                               "use a directory without spaces (or a symlink to it)"))
        if not e.exists:
            out.append(Finding("path-entry", INFO, f"PATH entry {e.text!r} does not exist",
                               where, drop))
            continue
        if e.mode & stat.S_IWOTH:
            out.append(Finding("path-entry", WARNING, f"PATH entry {e.text} is writable by "
                               "every user: anyone can put a `go` there (hijack risk)", where,
                               f"chmod o-w {e.text}"))
        if e.uid not in (0, f.uid):
            out.append(Finding("path-entry", WARNING, f"PATH entry {e.text} is owned by uid "
                               f"{e.uid}, neither you nor root: its owner decides what `go` "
                               "runs (hijack risk)", where, drop))
    return out


def find_tree_modes(f: Facts) -> List[Finding]:
    if f.windows is not None:
        return []  # a Windows mode is a read-only flag; ACLs decide who may write
    out = []
    for path, (mode, _uid) in sorted(f.modes.items()):
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            out.append(Finding("permissions", WARNING, f"{path} is writable by anyone but its "
                               f"owner (mode {stat.filemode(mode)}): another user can change "
                               "the Go it holds", path, f"chmod go-w {path}"))
    return out


def find_trio(f: Facts) -> List[Finding]:
    """go version, go env, go list -m all: each failure with its usual cause."""
    out = []
    if f.go is None:
        return out
    root = f.values.get("GOROOT") or f.go_root_of_binary or ""
    not_sdk = root and not f.sdk.get(root, True)
    if not_sdk:
        out.append(Finding("goroot-sdk", ERROR, f"GOROOT {root} is not a Go SDK tree (no "
                           "src/runtime or pkg/tool)", root,
                           "unset GOROOT, or reinstall: python3 rescue.pyz install BUNDLE"))
    v = f.version
    if v is not None and (not v.ok or not _version_word(v.stdout)):
        cause = (f"{f.go} is not a working go binary: GOROOT/bin/go was overwritten (a copy "
                 "cut short, another program copied over it)")
        out.append(Finding("go version", ERROR, f"`go version` failed: {v.words()}; {cause}",
                           f.go, "reinstall the toolchain (python3 rescue.pyz install BUNDLE) "
                           "or switch back (python3 rescue.pyz rollback)"))
        return out
    e = f.env_json
    if e is not None and (not e.ok or not f.values):
        cause = (f"GOROOT {root} is not an SDK tree" if not_sdk
                 else "go cannot read its settings (a bad GOENV file or GOFLAGS?)")
        out.append(Finding("go env", ERROR, f"`go env` failed: {e.words()}; {cause}",
                           f.go, "unset GOROOT GOFLAGS; go env -u GOFLAGS"))
    if f.project is None:
        out.append(Finding("go list -m all", INFO, "not run: pass --project DIR to check a "
                           "project's module graph", "--project"))
        return out
    ls = f.listed
    if ls is not None and not ls.ok:
        words = ls.words()
        if "go.mod file not found" in words or "not using modules" in words:
            cause = f"no go.mod in {f.project} or above"
        elif "lookup disabled" in words or "missing go.sum entry" in words or \
                "dial tcp" in words or "connect" in words:
            cause = "a module is neither in the bundles' proxy nor in your module cache"
        elif "requires go >=" in words:  # doctor runs go with GOTOOLCHAIN=local
            cause = "the project asks for another go than this one"
        else:
            cause = "see go's words"
        fix = ("see the go-version-needed finding" if cause.startswith("the project asks") else
               "cd to the module root (go mod init if there is none); a module missing offline "
               "needs a bundle that carries it")
        out.append(Finding("go list -m all", ERROR, f"`go list -m all` failed in "
                           f"{f.project}: {words}; {cause}", f.project, fix))
    return out


def find_prefix_links(f: Facts) -> List[Finding]:
    """A directory of the prefix that is a link: rescue refuses to work through it."""
    return [Finding("prefix-links", ERROR, f"{path} is a symbolic link to {target!r}: rescue "
                    "keeps its files only inside the prefix and refuses to work through it",
                    path, f"mv {path} {path}.link")
            for path, target in sorted(f.linked.items())]


def _wired_toolchain(layout: Layout) -> str:
    """The prefix's GOTOOLCHAIN; a damaged installed.json is reported by its own finding."""
    try:
        return toolchain_choice.read(layout)
    except RescueError:
        return toolchain_choice.DEFAULT


def find_go_checks(f: Facts) -> List[Finding]:
    """The go version the project asks for, and settings that turn Go's own checks off."""
    g = f.go_checks
    if g is None:
        return []
    out = [Finding("go-version-needed", sev, msg, ev, fix) for sev, msg, ev, fix in
           doctor_go.find_requires(g, f.settings.get("GOTOOLCHAIN", ""), str(f.layout.root),
                                   _wired_toolchain(f.layout))]
    if f.settings:
        out += [Finding(*x) for x in doctor_go.find_check_settings(g, f.effective, f.env)]
    return out


def find_current_link(f: Facts) -> List[Finding]:
    if not f.current_problem:
        return []
    return [Finding("current-link", ERROR, f"{f.layout.current}: {f.current_problem}; the go "
                    "it leads to is not a toolchain rescue installed", str(f.layout.current),
                    f"python3 rescue.pyz use VERSION --prefix {f.layout.root} (installed: "
                    f"{', '.join(f.installed) or 'none'})")]


def find_integrity(f: Facts) -> List[Finding]:
    """The current GOROOT's paths, types, modes and sizes against its signed manifest."""
    if f.current is None:
        return []
    where = f"{f.layout.versions / f.current}"
    verify_cmd = f"python3 rescue.pyz verify --prefix {f.layout.root}"
    if f.shape is None and not f.shape_checked:
        return [Finding("integrity", INFO, "the current GOROOT was not checked against its "
                        f"signed manifest: {f.shape_error}", where,
                        f"python3 rescue.pyz doctor --trust FILE --prefix {f.layout.root}")]
    if f.shape is None:
        return [Finding("integrity", ERROR if f.shape_untrusted else WARNING,
                        f"the current GOROOT cannot be checked: {f.shape_error}", where,
                        verify_cmd)]
    r = f.shape
    if r.ok and r.unreadable:
        first = r.unreadable[0]
        return [Finding("integrity", WARNING, f"{len(r.unreadable)} path(s) of the current "
                        f"GOROOT could not be read (first: {shown(first['path'])}: "
                        f"{first['error']})", where, "run doctor as the prefix's owner or root")]
    if r.ok:
        return [Finding("integrity", INFO, f"versions/{f.current} matches its signed manifest "
                        f"by path, type, mode and size ({r.files} files; `verify` also hashes "
                        "their content)", where)]
    counts = ", ".join(f"{len(items)} {label}" for label, items in (
        ("missing", r.missing), ("changed", r.changed), ("added", r.added)) if items)
    paths = [x["path"] for x in r.missing + r.changed + r.added]
    execs = [a["path"] for a in r.added if a.get("executable")]
    message = (f"versions/{f.current} differs from its signed manifest: {counts} (first: "
               f"{shown(paths[0])})")
    if r.missing or r.changed:
        message += "; a missing or changed file breaks builds"
    if execs:
        message += (f"; {len(execs)} executable(s) that no bundle installed, e.g. "
                    f"{shown(execs[0])}: treat this machine as compromised until you know who "
                    "put it there")
    bundles = sorted({str(x["bundle"]) for x in r.missing + r.changed if x.get("bundle")})
    repair = (f"python3 rescue.pyz repair BUNDLE --prefix {f.layout.root} (BUNDLE: "
              f"{'; '.join(bundles)})" if bundles else
              f"python3 rescue.pyz repair --prefix {f.layout.root} (removes what no bundle "
              "installed)")
    return [Finding("integrity", ERROR, message, "; ".join(shown(p) for p in paths[:3])
                    + (f" and {len(paths) - 3} more" if len(paths) > 3 else ""),
                    f"{verify_cmd} (every file hashed), then {repair}")]


def find_windows(f: Facts) -> List[Finding]:
    if f.windows is None:
        return []
    from installer import doctor_windows  # it builds on this module's Finding

    return doctor_windows.findings(f.windows, str(f.layout.root / "env.ps1"))


FINDERS = (find_prefix_links, find_current_link, find_path_gos, find_path_entries, find_versions,
           find_goroot_setting, find_gopath, find_gomod, find_settings, find_goenv_file,
           find_profiles, find_tree_modes, find_trio, find_go_checks, find_integrity,
           find_windows)


def findings(f: Facts) -> List[Finding]:
    out: List[Finding] = []
    for finder in FINDERS:
        out += finder(f)
    return out


def exit_code(found: Sequence[Finding]) -> int:
    """0 clean, 1 warnings only, 4 a finding that breaks builds."""
    return max((EXIT.get(x.severity, 0) for x in found), default=0)


# --- gathering: the only I/O ----------------------------------------------------------------


def _entry(index: int, text: str) -> Entry:
    if not text:
        return Entry(index, text)
    try:
        st = os.stat(text)
    except OSError:
        return Entry(index, text)
    go = os.path.join(text, GO_EXE)
    is_go = os.path.isfile(go) and os.access(go, os.X_OK)
    return Entry(index, text, stat.S_ISDIR(st.st_mode), True, st.st_mode, st.st_uid,
                 go if is_go and stat.S_ISDIR(st.st_mode) else "")


def _run(go: str, args: Sequence[str], env: Mapping[str, str], cwd: str) -> Ran:
    argv = (go, *args)
    try:
        out = subprocess.run(argv, env=dict(env), **CAPTURE_TEXT,
                             timeout=TIMEOUT, cwd=cwd, errors="replace")
    except OSError as exc:
        return Ran(argv, -1, "", "", f"cannot run {go}: {exc.strerror}")
    except subprocess.TimeoutExpired:
        return Ran(argv, -1, "", "", f"{' '.join(argv)} did not finish in {TIMEOUT}s")
    return Ran(argv, out.returncode, out.stdout, out.stderr)


def profile_files(home: str, etc: str) -> List[Path]:
    files = [Path(home) / p for p in HOME_PROFILES] if home else []
    files += [Path(etc) / "profile", Path(etc) / "environment"]
    with contextlib.suppress(OSError):
        files += sorted(p for p in (Path(etc) / "profile.d").iterdir() if p.is_file())
    return files


def _read_text(path: Path) -> Optional[str]:
    """A start-up file's first PROFILE_MAX_BYTES, or None: through the links dotfile managers
    make, but never from a FIFO or device (a plain open would wait on a FIFO for ever)."""
    try:
        fd = os.open(path, statefile.READ_FOLLOWING)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = statefile.read_at_most(fd, PROFILE_MAX_BYTES)[:PROFILE_MAX_BYTES]
        return data.decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_first_line(path: str) -> str:
    text = _read_text(Path(path)) or ""
    return text.splitlines()[0].strip() if text.strip() else ""


def _mode(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mode, st.st_uid


def _check_shape(facts: Facts, current: str, signers: Optional[List[AllowedSigner]],
                 trust_source: str, trust_error: str) -> None:
    if signers is None:
        facts.shape_error = trust_error or "no trust store given"
        return
    facts.shape_checked = True
    try:
        facts.shape = verify_shape.check_shape(facts.layout, signers, trust_source, current)
    except TrustError as exc:
        facts.shape_error, facts.shape_untrusted = exc.message, True
    except RescueError as exc:
        facts.shape_error = exc.message
    except OSError as exc:
        facts.shape_error = f"{exc.filename}: {exc.strerror}"


def _settings_elsewhere(facts: Facts, go: str, env: Dict[str, str]) -> None:
    """The diagnosed go cannot answer `go env`: ask rescue's own go, run as the user's shell
    would run it once PATH is fixed; when that cannot answer either, read what go would."""
    mine = facts.layout.current / "bin" / "go"
    goroot = env.get("GOROOT", "")
    if goroot and os.path.realpath(goroot) != facts.current_goroot:
        # It would read that tree's go.env instead of the wiring; find_goroot_setting and
        # the path-go fix (. env.sh unsets GOROOT) cover it, so judge the rest without it.
        env = {k: v for k, v in env.items() if k != "GOROOT"}
        facts.settings_without = goroot
    if os.path.realpath(go) != os.path.realpath(mine):
        try:
            facts.settings, _ = checklist._settings(mine, env, {**env, "GOTOOLCHAIN": "local"})
        except (OSError, subprocess.SubprocessError):
            facts.settings = {}
        facts.settings_by = str(mine) if facts.settings else ""
    if not facts.settings:
        facts.settings_by, facts.settings_without = "doctor", ""
        facts.settings = usersettings.without_go(env, facts.goenv.path if facts.goenv else "",
                                                 Path(facts.current_goroot or "") / "go.env")


def gather(layout: Layout, project: Optional[Path] = None,
           env: Optional[Dict[str, str]] = None, etc: Optional[str] = None,
           signers: Optional[List[AllowedSigner]] = None, trust_source: str = "",
           trust_error: str = "") -> Facts:
    """Without `signers` the GOROOT's integrity is not checked (`trust_error` says why)."""
    env = dict(env if env is not None else checklist.check_env(layout))
    etc = etc or env.get(ETC_ENV) or "/etc"
    problem = versions.current_problem(layout) or ""
    # Only a link to an installed toolchain counts as rescue's: one planted elsewhere is not.
    current = None if problem else versions.current_id(layout)
    # Windows: `current` may be a pointer file (no junctions on this file system).
    here = layout.versions / current if current and hostos.WINDOWS else layout.current
    current_goroot = os.path.realpath(here) if current else None
    entries = [_entry(i, t) for i, t in enumerate(env.get("PATH", "").split(os.pathsep))]
    winner = next((e.go for e in entries if e.go), None)
    go = winner or (str(here / "bin" / GO_EXE) if current else None)
    uid = os.getuid() if hasattr(os, "getuid") else -1  # Windows has SIDs
    facts = Facts(env, uid, layout, current, current_goroot, entries, go,
                  os.path.dirname(os.path.dirname(os.path.realpath(go))) if go else None,
                  project=str(project.absolute()) if project is not None else None,
                  current_problem=problem, installed=versions.installed_ids(layout))
    if current:
        _check_shape(facts, current, signers, trust_source, trust_error)
    if hostos.WINDOWS:
        from installer import doctor_windows

        facts.windows = doctor_windows.gather(env, str(here / "bin") if current else "")
    home = env.get("HOME", "")
    for path in profile_files(home, etc):
        text = _read_text(path)
        if text is None:
            continue
        facts.profiles[str(path)] = text
        for token in re.split(r"[\s:\"'=()]+", text):
            plain = _expand(token, home).rstrip("/")
            if plain.startswith("/") and plain not in facts.has_go:
                target = os.path.join(plain, "go")
                facts.has_go[plain] = os.path.isfile(target) and os.access(target, os.X_OK)
    for path in (str(layout.root), current_goroot, facts.go_root_of_binary):
        if path and _mode(path):
            facts.modes[path] = _mode(path)  # type: ignore[assignment]
    for path, _what in layout.own_paths():
        with contextlib.suppress(OSError):
            facts.linked[str(path)] = os.readlink(path)
    if current:
        facts.carried = usersettings.carried_modules(layout.goproxy)
    facts.goenv = goenv_file.read(*goenv_file.locate(env))
    if go is None:
        return facts
    if facts.goenv.kind == goenv_file.HANGS:
        env = {**env, "GOENV": "off"}  # go would wait on it forever; find_goenv_file says so
    run_env = {**env, "GOTOOLCHAIN": "local"}  # doctor never switches or downloads a toolchain
    cwd = facts.project or str(Path(go).parent)
    if facts.project and not os.path.isdir(facts.project):
        cwd = str(Path(go).parent)
    facts.version = _run(go, ["version"], run_env, cwd)
    if facts.version.ok:
        facts.env_json = _run(go, ["env", "-json", *PLACES], run_env, cwd)
        try:
            facts.settings, facts.settings_error = checklist._settings(Path(go), env, run_env)
        except (OSError, subprocess.SubprocessError) as exc:
            facts.settings_error = str(exc)
    if not facts.settings and current:
        _settings_elsewhere(facts, go, env)
    for root in {facts.values.get("GOROOT", ""), facts.go_root_of_binary or ""} - {""}:
        facts.version_file[root] = _read_first_line(os.path.join(root, "VERSION"))
        facts.sdk[root] = (os.path.isdir(os.path.join(root, "src", "runtime"))
                           and os.path.isdir(os.path.join(root, "pkg", "tool")))
    if facts.version.ok:
        facts.go_checks = doctor_go.gather(
            facts.project, env, {**facts.values, **facts.settings}, current,
            installed_ids(layout), _version_word(facts.version.stdout),
            facts.values.get("GOROOT") or facts.go_root_of_binary or "")
    if facts.project and facts.version.ok:
        facts.listed = _run(go, ["list", "-m", "all"], run_env, cwd)
    return facts
