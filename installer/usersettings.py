"""Judge the user's own Go settings (exported variables, GOENV file) against the offline wiring."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from installer import goenv_file
from manifests.modpath import ModulePathError, match_prefix_patterns, unescape_path

# Settings the GOROOT's go.env wires (installer/wiring.py go_settings) ...
WIRED = ("GOPROXY", "GOSUMDB", "GOTOOLCHAIN")
# ... and settings it leaves empty, which can still send `go` to the network.
UNWIRED = ("GOFLAGS", "GONOSUMDB", "GOINSECURE", "GOPRIVATE", "GONOPROXY")
# `go env -json` of these; GOTOOLCHAIN is asked alone, see checklist.py.
QUERY = ("GOPROXY", "GOSUMDB", *UNWIRED, "GOENV")

FAIL, WARN = "fail", "warn"


@dataclass(frozen=True)
class Source:
    """Where a value comes from, and the command that removes it there."""

    where: str
    fix: str


@dataclass(frozen=True)
class Finding:
    key: str
    level: str  # FAIL or WARN
    got: str
    expected: str
    lines: Tuple[str, ...]  # why, where it is set, how to fix it


def env_file_lines(path: Path) -> Dict[str, Tuple[int, str]]:
    """KEY -> (line number, value) as go reads a GOENV file or go.env ({} for one it cannot
    read, too large, or a FIFO, which is never waited on)."""
    return goenv_file.read(str(path)).lines


def without_go(env: Mapping[str, str], goenv: str, go_env: Path) -> Dict[str, str]:
    """The settings as go would find them, for when no go answers `go env`: exported, then
    the GOENV file, then the GOROOT's go.env (an empty variable does not count)."""
    user, wired = env_file_lines(Path(goenv)) if goenv else {}, env_file_lines(go_env)
    out = {"GOENV": goenv}
    for key in (*QUERY, "GOTOOLCHAIN"):
        if key != "GOENV":
            out[key] = env.get(key) or user.get(key, (0, ""))[1] or wired.get(key, (0, ""))[1]
    return out


def sources(key: str, env: Mapping[str, str], goenv: str) -> List[Source]:
    """Every place the user sets `key`, the winning one first (go: environment, then GOENV
    file, then the GOROOT's go.env; an empty variable does not count)."""
    out = []
    if env.get(key):
        out.append(Source(f"exported in the environment ({key}={env[key]})",
                          f"unset {key}  (and remove the export from your shell profile)"))
    if goenv and goenv != "off":
        line = env_file_lines(Path(goenv)).get(key)
        if line is not None:
            out.append(Source(f"set in your GOENV file {goenv} line {line[0]} "
                              f"({key}={line[1]})", f"go env -u {key}"))
    return out


def carried_modules(goproxy: Path) -> List[str]:
    """The module paths P/goproxy serves (each directory that holds an `@v`); none from a link
    in its place, whose target is not the prefix's."""
    found: List[str] = []
    if os.path.islink(goproxy):
        return found
    for dirpath, dirnames, _ in os.walk(goproxy):
        if "@v" in dirnames:
            dirnames.remove("@v")
            try:
                found.append(unescape_path(Path(dirpath).relative_to(goproxy).as_posix()))
            except (ModulePathError, ValueError):
                continue
    return sorted(found)


def goproxy_list(value: str) -> List[str]:
    """The entries go reads from a GOPROXY value (cmd/go/internal/modfetch proxyList): split at
    every `,` and `|`, trimmed, empty ones dropped, nothing after `off` or `direct`, and a bare
    host (a dot, colon or slash but no `:/`) taken as https://."""
    entries: List[str] = []
    for entry in re.split(r"[,|]", value):
        entry = entry.strip()
        if not entry:
            continue
        if re.search(r"[.:/]", entry) and ":/" not in entry and not entry.startswith("/"):
            entry = "https://" + entry
        entries.append(entry)
        if entry in ("off", "direct"):
            break
    return entries


def _judge_goproxy(value: str, wired: str) -> Tuple[str, str]:
    """Judged on the list go parses, never on the string: every entry must be the bundles'
    proxy (an `off` after it changes nothing), else go would read modules from elsewhere."""
    entries = goproxy_list(value)
    others = [e for e in entries if e.rstrip("/") != wired.rstrip("/")]
    if entries and len(others) < len(entries) and all(e == "off" for e in others):
        return "ok", ""
    network = [e for e in others if e == "direct" or (e != "off" and not e.startswith("file:"))]
    if network:
        return FAIL, (f"go would fetch modules over the network ({', '.join(network)}) "
                      "instead of from the bundles' proxy")
    if entries == ["off"]:
        return WARN, ("no network, but modules come only from your module cache, not from the "
                      "bundles' proxy (install with --modcache to fill it)")
    if not entries:
        return FAIL, "the list names no proxy at all: go refuses to fetch any module"
    files = [e for e in others if e != "off"]
    return FAIL, (f"the GOPROXY list holds {', '.join(files)}"
                  + (" besides the bundles' proxy" if len(others) < len(entries) else "")
                  + ": go would read modules from there, which no signed bundle checked")


def _judge_gotoolchain(value: str, version: str, installed: Sequence[str]) -> Tuple[str, str]:
    """The wiring says `auto`: go switches per go.mod/go.work to a P/bin/go<V> or a toolchain
    module in P/goproxy, never over the network (GOPROXY is judged on its own)."""
    base, _, mode = value.partition("+")
    if base in ("local", "path", version) or value == "path":
        if mode == "auto":
            return WARN, (f"go switches only when a go.mod asks for a newer go than {base}, "
                          "from P/bin or the bundles' proxy")
        return WARN, ("go never switches per go.mod: a project that needs a newer go fails "
                      "even when this prefix carries it" + (
                          "" if mode != "path" and base != "path" else
                          " (only a go<V> found on PATH serves it)"))
    if base in installed:
        return WARN, (f"go runs {base} (from P/bin/{base} or the bundles' proxy) for every "
                      "command instead of choosing per go.mod")
    return FAIL, (f"go would run {base} for every command, which no installed bundle carries: "
                  "every go command stops with \"toolchain not available\"")


def _judge_goflags(value: str) -> Tuple[str, str]:
    flags = value.split()
    if any(f.lstrip("-") in ("mod=mod",) for f in flags):
        return FAIL, ("-mod=mod lets go add modules that go.sum does not pin and rewrite go.mod "
                      "instead of stopping; with GOSUMDB=off nothing checks what it adds")
    if any(f.lstrip("-").split("=")[0] == "insecure" for f in flags):
        # Checked with go 1.21.13, 1.22.10 and 1.27.3: the other commands ignore the flag.
        return FAIL, ("-insecure was removed in Go 1.17: every `go get` stops with \"-insecure "
                      "flag is no longer supported; use GOINSECURE instead\"; it turns no TLS "
                      "check off")
    return WARN, "go applies these flags to every command; none of them reaches the network"


def _judge_noproxy(key: str, value: str, carried: Sequence[str]) -> Tuple[str, str]:
    hit = [m for m in carried if match_prefix_patterns(value, m)]
    if hit:
        return FAIL, (f"go would fetch {', '.join(hit[:3])}{' ...' if len(hit) > 3 else ''} "
                      "directly from version control over the network, not from the bundles' "
                      "proxy")
    return WARN, (f"matches no module the bundles carry; a module {key} matches would be "
                  "fetched from version control over the network")


def judge(effective: Mapping[str, str], env: Mapping[str, str], wired: Mapping[str, str],
          version: str, carried: Sequence[str], source_env: str,
          installed: Sequence[str] = ()) -> List[Finding]:
    """One finding per wired setting (always) and per unwired one the user set; a FAIL means
    `go` would reach the network or trust what nothing pins."""
    goenv = effective.get("GOENV", "")
    findings = []

    def add(key: str, level: str, why: str, expected: str, shell_fix: bool) -> None:
        lines = [why]
        srcs = sources(key, env, goenv)
        if not srcs and effective.get(key) != expected:
            lines.append("not set in your environment or GOENV file; the GOROOT's go.env "
                         "was changed?")
        for s in srcs:
            lines += [s.where, f"fix: {s.fix}"]
        if shell_fix:
            lines.append(f"or, for one shell: {source_env}  (exports {key}={wired[key]})")
        findings.append(Finding(key, level, effective.get(key, ""), expected, tuple(lines)))

    for key in WIRED:
        value = effective.get(key, "")
        if key == "GOPROXY":
            level, why = _judge_goproxy(value, wired[key])
        elif value == wired[key]:
            level, why = "ok", ""
        elif key == "GOTOOLCHAIN":
            level, why = _judge_gotoolchain(value, version, installed)
        elif value == "off":
            level, why = WARN, ("no network, but a module missing from go.sum is trusted "
                                "without the checksum database data the bundles carry")
        else:
            level, why = FAIL, (f"go would ask the checksum database {value!r} over the "
                                "network about any module missing from go.sum")
        if level == "ok":
            findings.append(Finding(key, "ok", value, wired[key], ()))
            continue
        add(key, level, why, wired[key], shell_fix=True)

    own = {k: bool(sources(k, env, goenv)) for k in ("GONOPROXY", "GONOSUMDB")}
    for key in UNWIRED:
        value = effective.get(key, "")
        if not value or value == wired.get(key):  # GONOSUMDB: wired for private modules
            continue
        if key in own and not own[key]:
            continue  # derived from GOPRIVATE by go: judged there
        if key == "GOFLAGS":
            level, why = _judge_goflags(value)
        elif key == "GONOPROXY" or (key == "GOPRIVATE" and not own["GONOPROXY"]):
            level, why = _judge_noproxy(key, value, carried)
        elif key == "GOINSECURE":
            level, why = WARN, "affects only direct fetches, which the offline wiring never makes"
        elif wired["GOSUMDB"] == "off":  # GONOSUMDB, or GOPRIVATE with its own GONOPROXY
            level, why = WARN, "no effect on the network while GOSUMDB=off"
        else:
            level, why = WARN, ("the modules it matches are not checked against the checksum "
                                "database data the bundles carry")
        add(key, level, why, "", shell_fix=False)
    return findings


def goroot_sources(env: Mapping[str, str], goenv: str, source_env: str
                   ) -> Optional[List[str]]:
    """Why `go env GOROOT` names another tree, if the user's settings say so."""
    srcs = sources("GOROOT", env, goenv)
    if not srcs:
        return None
    lines = ["a GOROOT setting points this go at another tree"]
    for s in srcs:
        lines += [s.where, f"fix: {s.fix}"]
    lines.append(f"or, for one shell: {source_env}  (unsets GOROOT)")
    return lines
