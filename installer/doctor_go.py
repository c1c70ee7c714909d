"""Doctor's Go checks: the go version a project asks for; settings that skip Go's checks."""

from __future__ import annotations

import os
import shutil
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from installer import statefile, usersettings
from installer.wiring import source_line
from manifests.goversion import compare, is_toolchain_version, split_toolchain_id, version_key
from manifests.limits import DEFAULT_LIMITS
from manifests.modpath import match_prefix_patterns

ERROR, WARNING, INFO = "error", "warning", "info"
# Public module paths of every shape people write GOPRIVATE patterns for: a pattern that
# matches them all leaves no module to the checksum database (`*`, `*/*`, `*.*`, ...).
EVERY_MODULE = ("github.com/a/b", "golang.org/x/mod", "gopkg.in/yaml.v3", "k8s.io/api",
                "go.uber.org/zap", "rsc.io/quote/v3")


@dataclass(frozen=True)
class ModFile:
    """The go.work or go.mod go would read for a project, and its `go`/`toolchain` lines."""

    path: str  # absolute
    shown: str  # as go prints it from the project directory (base.ShortPath)
    go: str = ""
    go_line: int = 0
    toolchain: str = ""
    toolchain_line: int = 0
    unread: str = ""  # why doctor did not read it


@dataclass
class GoFacts:
    """What these checks need beyond doctor's Facts; gathered by `gather`."""

    modfile: Optional[ModFile] = None
    running: str = ""  # the diagnosed go's own version, e.g. go1.21.13
    platform: str = ""  # linux-amd64, from P/current's id
    installed: List[str] = field(default_factory=list)  # versions in P/versions, this platform
    on_path: Dict[str, str] = field(default_factory=dict)  # go1.X.Y command -> its path
    proxy: str = ""  # the directory of a GOPROXY that is one file:// URL
    in_proxy: Dict[str, str] = field(default_factory=dict)  # go1.X.Y -> its toolchain module zip
    sumdb: str = ""  # GOSUMDB as go sees it
    sumdb_in_proxy: bool = False  # the proxy answers /sumdb/<name>/supported
    nosumdb: str = ""  # GONOSUMDB as go sees it (GOPRIVATE when unset)
    go_env: Dict[str, Tuple[int, str]] = field(default_factory=dict)  # GOROOT/go.env lines
    go_env_path: str = ""


# --- reading go.mod / go.work: bounded, never through a link --------------------------------


def lookup(data: bytes, key: str) -> Tuple[str, int]:
    """The first `key VALUE` line, as cmd/go/internal/gover.GoModLookup reads it (no full
    parse: a comment after `//` is dropped), with its line number; ("", 0) if none."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.decode("utf-8", "replace").strip()
        rest = line[len(key):]
        if line.startswith(key) and rest[:1] in (" ", "\t"):
            return rest.split("//", 1)[0].strip(), number
    return "", 0


def _find_upward(start: Path, name: str) -> Optional[Path]:
    for d in (start, *start.parents):
        if os.path.lexists(d / name):
            return d / name
    return None


def _shown(path: Path, project: Path) -> str:
    rel = os.path.relpath(path, project)
    return rel if len(rel) < len(str(path)) else str(path)


def read_modfile(project: Path, gowork: str = "") -> Optional[ModFile]:
    """go.work (GOWORK, else the nearest one above) before go.mod, as toolchain.Select does."""
    found = None
    if gowork != "off":
        found = Path(gowork) if gowork else _find_upward(project, "go.work")
        if found is not None and not os.path.lexists(found):
            found = None
    found = found or _find_upward(project, "go.mod")
    if found is None:
        return None
    shown = _shown(found, project)
    try:
        fd = os.open(found, statefile.READ)
    except OSError as exc:
        why = ("it is a symbolic link (doctor never reads through one)" if os.path.islink(found)
               else exc.strerror or str(exc))
        return ModFile(str(found), shown, unread=why)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return ModFile(str(found), shown, unread="it is not a regular file")
        limit = DEFAULT_LIMITS.module_gomod_bytes
        data = fh.read(limit + 1)
    if len(data) > limit:
        return ModFile(str(found), shown, unread=f"it is larger than {limit} bytes")
    go, go_line = lookup(data, "go")
    tc, tc_line = lookup(data, "toolchain")
    return ModFile(str(found), shown, go, go_line, tc, tc_line)


def gather(project: Optional[str], env: Mapping[str, str], values: Mapping[str, str],
           current: Optional[str], installed_ids: Sequence[str], running: str, goroot: str
           ) -> GoFacts:
    """Reads the project's go.mod/go.work, the GOROOT's go.env and the GOENV file."""
    g = GoFacts(running=running)
    split = split_toolchain_id(current or "")
    g.platform = split[1] if split else ""
    g.installed = [split_toolchain_id(i)[0] for i in installed_ids  # type: ignore[index]
                   if split_toolchain_id(i) and split_toolchain_id(i)[1] == g.platform]
    if goroot:
        g.go_env_path = os.path.join(goroot, "go.env")
        g.go_env = usersettings.env_file_lines(Path(g.go_env_path))
    if project and os.path.isdir(project):
        g.modfile = read_modfile(Path(project), env.get("GOWORK", ""))
    if g.modfile is not None:
        for name in (g.modfile.toolchain, _go_line_toolchain(g.modfile.go)):
            if name:
                where = shutil.which(name, path=env.get("PATH", ""))
                if where:
                    g.on_path[name] = where
    _gather_proxy(g, values)
    return g


def _gather_proxy(g: GoFacts, values: Mapping[str, str]) -> None:
    """GOTOOLCHAIN=auto fetches `golang.org/toolchain` through GOPROXY; offline, only a file://
    proxy can hold it, and only a lone one skips the checksum database when told to
    (modfetch/sumdb.go; tests/test_toolchain_switch_offline.py proves both with the real go)."""
    g.sumdb = values.get("GOSUMDB", "")
    g.nosumdb = values.get("GONOSUMDB", "") or values.get("GOPRIVATE", "")
    proxy = values.get("GOPROXY", "").strip()
    if not proxy.startswith("file://") or "," in proxy or "|" in proxy or not g.modfile:
        return
    g.proxy = urllib.parse.unquote(urllib.parse.urlsplit(proxy).path)
    name = g.sumdb.split()[0].split("+")[0] if g.sumdb else ""
    g.sumdb_in_proxy = bool(name) and os.path.isfile(
        os.path.join(g.proxy, "sumdb", name, "supported"))
    for tc in (g.modfile.toolchain, _go_line_toolchain(g.modfile.go)):
        zipped = os.path.join(g.proxy, "golang.org", "toolchain", "@v",
                              f"v0.0.1-{tc}.{g.platform}.zip")
        if tc and os.path.isfile(zipped):
            g.in_proxy[tc] = zipped


# --- the go version a project asks for (cmd/go/internal/toolchain Select) -------------------


def _go_line_toolchain(go: str) -> str:
    """A `go 1.22` line names toolchain go1.22.0: from 1.21 on the first release has `.0`."""
    if not go or not is_toolchain_version("go" + go):
        return ""
    lang = go.count(".") == 1 and go.replace(".", "").isdigit()
    return "go" + go + (".0" if lang and compare(go, "1.21") >= 0 else "")


def _version_of(name: str) -> str:
    """`go1.22.10` or `go1.22.10-custom` -> `go1.22.10`; "" for anything else."""
    head = name.split("-", 1)[0]
    return head if is_toolchain_version(head) else ""


def chosen_toolchain(gotoolchain: str, running: str, mod: ModFile) -> Tuple[str, bool]:
    """(toolchain go would run, whether it switched per the file), as Select decides it."""
    value = {"auto": "local+auto", "path": "local+path"}.get(gotoolchain, gotoolchain)
    base, _, mode = value.partition("+")
    chosen = running if base == "local" else base
    if mode not in ("auto", "path"):
        return chosen, False
    least = _version_of(chosen) or running
    switched = False
    tc = _version_of(mod.toolchain)
    if tc and compare(tc, least) > 0:
        chosen, least, switched = mod.toolchain, tc, True
    if mod.go and is_toolchain_version("go" + mod.go) and compare(mod.go, least) > 0:
        chosen, switched = _go_line_toolchain(mod.go), True
    return chosen, switched


def find_requires(g: GoFacts, gotoolchain: str, prefix: str, wired: str = "auto"
                  ) -> List[Tuple[str, str, str, str]]:
    """(severity, message, evidence, fix) when go would stop before building the project.
    `wired`: the prefix's own GOTOOLCHAIN (a bundle may have chosen "local")."""
    mod = g.modfile
    if mod is None or not g.running:
        return []
    if mod.unread:
        return [(WARNING, f"{mod.shown} not read: {mod.unread}; doctor cannot say which go "
                 "version the project needs", mod.path, "")]
    if mod.go and not is_toolchain_version("go" + mod.go):
        return []  # go itself reports a malformed go line, in `go list -m all` below
    value = gotoolchain or "local"
    chosen, switched = chosen_toolchain(value, g.running, mod)
    evidence = "; ".join(f"{mod.path}:{n}: {k} {v}" for k, v, n in
                         (("go", mod.go, mod.go_line),
                          ("toolchain", mod.toolchain, mod.toolchain_line)) if n)
    here = f"python3 rescue.pyz use {{}} --prefix {prefix}"
    if chosen != g.running:
        version = _version_of(chosen)
        if chosen in g.on_path:
            return [(INFO, f"go switches to {chosen} (GOTOOLCHAIN={value}), found on PATH at "
                     f"{g.on_path[chosen]}", evidence, "")]
        why = (f"{mod.shown} asks for {chosen}, so GOTOOLCHAIN={value} makes go switch to it"
               if switched else f"GOTOOLCHAIN={value} names {chosen}")
        auto = value == "auto" or value.endswith("+auto")
        if auto and chosen in g.in_proxy:
            held = (f"the file proxy {g.proxy} holds golang.org/toolchain "
                    f"v0.0.1-{chosen}.{g.platform}")
            if (g.sumdb == "off" or g.sumdb_in_proxy
                    or match_prefix_patterns(g.nosumdb, "golang.org/toolchain")):
                return [(INFO, f"go switches to {chosen} (GOTOOLCHAIN={value}): {held}",
                         evidence, "")]
            return [(ERROR, f"{why}; {held}, but go checks that module with the checksum "
                     f"database {g.sumdb}, which it cannot reach offline"
                     + _serving(g, version), evidence,
                     _fix(g, version, here, exact=chosen, wired=wired))]
        stop = (f"go stops with: cannot find \"{chosen}\" in PATH" if value.endswith("path")
                else f"offline, go stops with: download {chosen} for "
                f"{g.platform.replace('-', '/')}: toolchain not available")
        message = f"{why}, but no {chosen} is on PATH; {stop}"
        if not version:
            return [(ERROR, message, evidence, "unset GOTOOLCHAIN, or go env -u GOTOOLCHAIN")]
        return [(ERROR, message + _serving(g, version), evidence,
                 _fix(g, version, here, exact=chosen, wired=wired))]
    need = mod.go
    if need and compare(need, g.running) > 0:
        said = (f"{mod.shown} requires go >= {need} (running go {g.running[2:]}; "
                f"GOTOOLCHAIN={value})")
        return [(ERROR, f"{said}: the project's `go {need}` line asks for a newer go than "
                 f"{g.running}, and GOTOOLCHAIN={value} keeps go from switching"
                 + _serving(g, need, mod.toolchain), evidence,
                 _fix(g, need, here, mod.toolchain, wired=wired))]
    return []


def _serves(g: GoFacts, need: str, toolchain: str = "") -> List[str]:
    """Installed versions go would accept for `need`; a toolchain line's own version first."""
    ok = sorted((v for v in g.installed if compare(v, need) >= 0), key=version_key, reverse=True)
    exact = _version_of(toolchain)
    return sorted(ok, key=lambda v: v != exact)


def _bare(version: str) -> str:
    return version[2:] if version.startswith("go") else version


def _serving(g: GoFacts, need: str, toolchain: str = "") -> str:
    ok = _serves(g, need, toolchain)
    if ok:
        return f"; installed here and new enough: {', '.join(ok)}"
    return (f"; no installed toolchain is go {_bare(need)} or newer (installed: "
            f"{', '.join(g.installed) or 'none'})")


def _fix(g: GoFacts, need: str, here: str, toolchain: str = "", exact: str = "",
         wired: str = "auto") -> str:
    """`exact`: the toolchain go looks for (it switches to that name only, never to a newer
    patch release). `wired`: the prefix's GOTOOLCHAIN; with "local" go never switches."""
    ok = _serves(g, need, toolchain)
    # Installed versions have a P/bin/go<V>, which GOTOOLCHAIN=auto (the wiring) finds on
    # PATH before anything else; `use` makes one current for every shell.
    source = source_line(Path(here.rsplit(" --prefix ", 1)[1]))
    local = ("; this prefix keeps GOTOOLCHAIN=local (its bundle's spec chose "
             "toolchains.gotoolchain = \"local\"), so go never switches by itself"
             if wired == "local" else "")
    if ok:
        use = f"make it current: {here.format(ok[0])}"
        if local:
            return f"{use}; or run {ok[0]} itself (in P/bin, on PATH after {source}){local}"
        if ok[0] == exact:
            return (f"{source} (puts P/bin/{ok[0]} on PATH with GOTOOLCHAIN=auto, so go "
                    f"switches to it), or {use}")
        return (f"{use}; or name it in go.mod (`toolchain {ok[0]}`): GOTOOLCHAIN=auto then "
                f"switches to P/bin/{ok[0]} after {source}")
    want = _go_line_toolchain(_bare(need)) or need
    bring = f"bring a bundle with {want} or newer{f' for {g.platform}' if g.platform else ''}"
    if local:
        return (f"{bring} (a spec listing it in versions), install it and make it current: "
                f"{here.format(want)}{local}")
    return (f"{bring} (a spec listing it in versions) and install it: then go switches to it "
            f"by itself after {source} (GOTOOLCHAIN=auto, P/bin on PATH), or make it current: "
            f"{here.format(want)}")


# --- settings that turn Go's own checks off -------------------------------------------------


def where_set(key: str, env: Mapping[str, str], goenv: str, g: GoFacts,
              go_env_too: bool = True) -> List[usersettings.Source]:
    """Every place `key` is set, the winning one first: environment, GOENV file, go.env."""
    out = usersettings.sources(key, env, goenv)
    if go_env_too and key in g.go_env:
        number, value = g.go_env[key]
        out.append(usersettings.Source(f"set in the GOROOT's {g.go_env_path} line {number} "
                                       f"({key}={value})", f"delete line {number} of "
                                       f"{g.go_env_path} (or set {key} in your GOENV file)"))
    return out


def global_patterns(value: str) -> List[str]:
    """The comma-separated patterns of `value` that match every public module path."""
    return [p.strip() for p in value.split(",") if p.strip()
            and all(match_prefix_patterns(p.strip(), m) for m in EVERY_MODULE)]


def find_check_settings(g: GoFacts, values: Mapping[str, str], env: Mapping[str, str]
                        ) -> List[Tuple[str, str, str, str, str]]:
    """(check, severity, message, evidence, fix) for GOSUMDB=off set by the user, a GONOSUMDB
    or GOPRIVATE that matches every module, and GONOSUMCHECK, which go does not read."""
    goenv = values.get("GOENV", "")
    out = []

    def add(check: str, message: str, srcs: List[usersettings.Source], fix: str = "") -> None:
        fixes = [s.fix for s in srcs] + ([fix] if fix else [])
        out.append((check, WARNING, message, "; ".join(s.where for s in srcs),
                    " or ".join(fixes)))

    if values.get("GOSUMDB") == "off":
        mine = usersettings.sources("GOSUMDB", env, goenv)
        if mine:
            add("sumdb-off", "GOSUMDB=off: go checks no module that go.sum lacks against the "
                "checksum database (golang/go#40358 calls this the wrong fix); the prefix's "
                "go.env sets GOSUMDB for offline use, and yours overrides whatever it sets",
                mine)
    private = ("GONOSUMDB" if where_set("GONOSUMDB", env, goenv, g) else "GOPRIVATE")
    wide = global_patterns(g.nosumdb)
    srcs = where_set(private, env, goenv, g)
    if wide and srcs:
        also = (" and fetches every module straight from version control, never through a "
                "proxy" if private == "GOPRIVATE" and not where_set("GONOPROXY", env, goenv, g)
                else "")
        add("sumdb-skipped", f"{private}={values.get(private) or g.nosumdb}: the pattern "
            f"{', '.join(repr(p) for p in wide)} matches every module path, so go checks no "
            f"module against the checksum database{also}", srcs,
            f"name only your own modules, e.g. go env -w {private}=corp.example.com")
    srcs = where_set("GONOSUMCHECK", env, goenv, g)
    if srcs:
        add("gonosumcheck", "GONOSUMCHECK is set, but go does not read it: it is no go "
            "setting (`go env -w` refuses it: \"unknown go command variable GONOSUMCHECK\"), so "
            "it turns no check off; to skip the checksum database for private modules, go "
            "reads GONOSUMDB or GOPRIVATE", srcs)
    return out
