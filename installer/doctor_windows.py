"""Doctor on Windows: PATH entries, registry settings and PowerShell profiles that change `go`."""

from __future__ import annotations

import ntpath
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from installer.doctor import ERROR, INFO, WARNING, Finding

# Where Windows keeps environment variables every new process gets, per user and per machine.
USER_ENV = "HKCU\\Environment"
MACHINE_ENV = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment"
# An App Paths key makes `start go`, the Run box and ShellExecute open its file, PATH or not.
APP_PATHS = ("HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\App Paths\\go.exe",
             "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\App Paths\\go.exe")
# Variables whose persistent value overrides the offline wiring outside a shell that sourced
# env.ps1/env.cmd (an IDE, a service, a new window).
WIRED = ("GOPROXY", "GOSUMDB", "GONOSUMDB", "GOTOOLCHAIN", "GOFLAGS", "GOPRIVATE", "GONOPROXY",
         "GOINSECURE", "GOENV")
PROFILE_MAX_BYTES = 1 << 20
# PowerShell lines that change PATH or a GO* variable: `$env:X = ...`, `$env:X += ...`,
# `Set-Item env:X`, `[Environment]::SetEnvironmentVariable('X', ...)`.
_PROFILE_SETS = re.compile(
    r"\$env:(?P<a>path|go\w*)\s*[+]?=(?!=)"
    r"|set-item\s+(?:-path\s+)?['\"]?env:(?:\\)?(?P<b>path|go\w*)"
    r"|setenvironmentvariable\(\s*['\"](?P<c>path|go\w*)['\"]", re.IGNORECASE)


@dataclass
class WinFacts:
    """What doctor reads on Windows, gathered once; the findings are computed from this alone
    (tests feed it what a real Windows host gives)."""

    path: List[str]  # PATH entries, in order
    mine: str  # rescue's bin directory (the current toolchain's)
    writable: Dict[str, bool] = field(default_factory=dict)  # entry -> this user can add a file
    has_go: Dict[str, bool] = field(default_factory=dict)  # entry -> holds go.exe
    registry: Dict[str, Dict[str, str]] = field(default_factory=dict)  # key -> {name: value}
    app_paths: Dict[str, str] = field(default_factory=dict)  # App Paths key -> its file
    profiles: Dict[str, str] = field(default_factory=dict)  # PowerShell profile -> its text


def _norm(path: str) -> str:
    return ntpath.normcase(ntpath.normpath(path)) if path else ""


def find_path(w: WinFacts) -> List[Finding]:
    """Entries that decide which go.exe runs before rescue's does."""
    out = []
    mine = _norm(w.mine)
    found = [_norm(e) for e in w.path]
    # Not on PATH at all: sourcing env.ps1 puts rescue's first, so nothing comes before it.
    first_mine = found.index(mine) if mine in found else -1
    for i, entry in enumerate(w.path):
        where = f"PATH entry {i + 1}: {entry!r}"
        if not entry:
            out.append(Finding("path-entry", WARNING, "empty PATH entry", where,
                               "remove the empty entry (`;;` or a trailing `;`)"))
            continue
        if not ntpath.isabs(entry):
            out.append(Finding("path-entry", WARNING, f"relative PATH entry {entry!r}: it names "
                               "a different directory in every working directory", where,
                               f"remove {entry!r} from PATH"))
        early = i < first_mine and found[i] != mine
        if " " in entry and w.has_go.get(entry):
            out.append(Finding("path-entry", WARNING, f"PATH entry {entry!r} contains a space "
                               "and holds go.exe: a script that splits PATH unquoted, or an "
                               "unquoted `C:\\Program Files\\...` command line, runs "
                               "something else", where,
                               "use a directory without spaces for Go tools"))
        elif " " in entry:
            out.append(Finding("path-entry", INFO, f"PATH entry {entry!r} contains a space",
                               where))
        if early and w.writable.get(entry):
            out.append(Finding("path-entry", WARNING, f"PATH entry {entry} comes before "
                               "rescue's and is writable by this user: any program running "
                               "as you can put a go.exe there that runs instead (hijack risk)",
                               where, f"move {entry!r} after {w.mine!r} on PATH, or remove it"))
    return out


def find_registry(w: WinFacts) -> List[Finding]:
    """Persistent variables that every new process gets, and App Paths entries for go.exe."""
    out = []
    for key, values in sorted(w.registry.items()):
        machine = key.startswith("HKLM")
        how = ("as an administrator: " if machine else "") + "reg delete \"{key}\" /v {name} /f"
        for name, value in sorted(values.items()):
            upper = name.upper()
            evidence = f"{key}\\{name} = {value!r}"
            fix = how.format(key=key, name=name)
            if upper == "GOROOT":
                out.append(Finding("registry", ERROR, f"GOROOT={value!r} is set in {key}: every "
                                   "new process gets it, and go then uses that tree's standard "
                                   "library and tools instead of its own", evidence, fix))
            elif upper in WIRED:
                out.append(Finding("registry", WARNING, f"{name}={value!r} is set in {key}: "
                                   "programs started outside a shell that sourced env.ps1 or "
                                   "env.cmd (an IDE, a service) use it instead of the offline "
                                   "wiring", evidence, fix))
            elif upper == "PATH":
                for entry in value.split(";"):
                    if entry and w.has_go.get(entry) and _norm(entry) != _norm(w.mine):
                        out.append(Finding("registry", WARNING, f"{key} puts {entry} on PATH, "
                                           "which holds another go.exe: new processes may run "
                                           "it instead of rescue's", evidence,
                                           f"remove {entry!r} from the Path value of {key}"))
    for key, target in sorted(w.app_paths.items()):
        out.append(Finding("registry", WARNING, f"an App Paths entry registers go.exe as "
                           f"{target!r}: `start go`, the Run box and ShellExecute open it "
                           "whatever PATH says", f"{key} = {target!r}",
                           ("as an administrator: " if key.startswith("HKLM") else "")
                           + f"reg delete \"{key}\" /f"))
    return out


def _code(line: str) -> str:
    """A PowerShell line without its comment (a `#` outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def find_profiles(w: WinFacts, env_ps1: str) -> List[Finding]:
    """PowerShell profile lines that change PATH or a GO* variable in every session."""
    out = []
    for path, text in sorted(w.profiles.items()):
        for number, line in enumerate(text.splitlines(), 1):
            code = _code(line)
            if env_ps1.lower() in code.lower():
                continue  # sourcing rescue's own env.ps1
            for m in _PROFILE_SETS.finditer(code):
                name = (m.group("a") or m.group("b") or m.group("c")).upper()
                what = "PATH" if name == "PATH" else name
                out.append(Finding(
                    "profile", WARNING if what in ("PATH", "GOROOT", *WIRED) else INFO,
                    f"PowerShell profile {path} line {number} changes {what} in every "
                    "PowerShell session: a go or a setting there can win over rescue's",
                    f"{path}:{number}: {line.strip()[:200]}",
                    f"remove the line, or add `. '{env_ps1}'` after it"))
    return out


def findings(w: WinFacts, env_ps1: str) -> List[Finding]:
    return find_path(w) + find_registry(w) + find_profiles(w, env_ps1)


# --- gathering: the only I/O ----------------------------------------------------------------


def profile_paths(env: Mapping[str, str], documents: Optional[str]) -> List[str]:
    """The four documented profile locations (AllUsersAllHosts, AllUsersCurrentHost,
    CurrentUserAllHosts, CurrentUserCurrentHost) of Windows PowerShell 5.1 and PowerShell 7."""
    system_root = env.get("SystemRoot") or env.get("SYSTEMROOT") or "C:\\Windows"
    program_files = env.get("ProgramFiles") or env.get("PROGRAMFILES") or "C:\\Program Files"
    docs = documents or ntpath.join(env.get("USERPROFILE", ""), "Documents")
    out = []
    for pshome, user_dir in (
            (ntpath.join(system_root, "System32", "WindowsPowerShell", "v1.0"),
             "WindowsPowerShell"),
            (ntpath.join(program_files, "PowerShell", "7"), "PowerShell")):
        for base in (pshome, ntpath.join(docs, user_dir)):
            out += [ntpath.join(base, "profile.ps1"),
                    ntpath.join(base, "Microsoft.PowerShell_profile.ps1")]
    return out


def _registry_values(hive: int, subkey: str) -> Dict[str, str]:
    import winreg  # type: ignore[import-not-found]

    values: Dict[str, str] = {}
    try:
        with winreg.OpenKey(hive, subkey) as key:
            i = 0
            while True:
                try:
                    name, value, _kind = winreg.EnumValue(key, i)
                except OSError:
                    break
                values[name] = str(value)
                i += 1
    except OSError:
        pass
    return values


def _documents() -> Optional[str]:
    """The user's Documents folder as Explorer has it (it may be redirected to OneDrive)."""
    import winreg  # type: ignore[import-not-found]

    key = "Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\User Shell Folders"
    value = _registry_values(winreg.HKEY_CURRENT_USER, key).get("Personal")
    return os.path.expandvars(value) if value else None


def _writable(directory: str) -> bool:
    """Whether this user can create a file there: a probe, since Windows ACLs are not in stat."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".rescue-doctor-"):
            return True
    except OSError:
        return False


def gather(env: Mapping[str, str], mine: str,
           writable: Callable[[str], bool] = _writable) -> WinFacts:
    import winreg  # type: ignore[import-not-found]

    entries = env.get("PATH", env.get("Path", "")).split(";")
    w = WinFacts(entries, mine)
    hives: Tuple[Tuple[str, int, str], ...] = (
        (USER_ENV, winreg.HKEY_CURRENT_USER, "Environment"),
        (MACHINE_ENV, winreg.HKEY_LOCAL_MACHINE, MACHINE_ENV.split("\\", 1)[1]))
    for name, hive, subkey in hives:
        values = _registry_values(hive, subkey)
        # Path is a REG_EXPAND_SZ (`%SystemRoot%\system32;...`): judged as processes get it.
        w.registry[name] = {k: os.path.expandvars(v) if k.upper() == "PATH" else v
                            for k, v in values.items() if k.upper() in ("GOROOT", "PATH", *WIRED)}
    for key in APP_PATHS:
        hive = winreg.HKEY_CURRENT_USER if key.startswith("HKCU") else winreg.HKEY_LOCAL_MACHINE
        value = _registry_values(hive, key.split("\\", 1)[1]).get("")
        if value:
            w.app_paths[key] = value
    registry_path = [e for v in w.registry.values() for k, p in v.items() if k.upper() == "PATH"
                     for e in p.split(";")]
    for entry in {*entries, *registry_path} - {""}:
        w.has_go[entry] = os.path.isfile(os.path.join(entry, "go.exe"))
    for entry in entries:
        if entry and os.path.isdir(entry):
            w.writable[entry] = writable(entry)
    for path in profile_paths(env, _documents()):
        try:
            with open(path, "rb") as f:
                w.profiles[path] = f.read(PROFILE_MAX_BYTES).decode("utf-8-sig", "replace")
        except OSError:
            continue
    return w
