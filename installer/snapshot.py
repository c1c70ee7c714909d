"""Snapshots of the environment that builds the software: record, compare, verify (the store:
snapshot_store; what a file must hold: snapshot_check)."""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import stat
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from installer import checklist, state, versions
from installer.prefix import Layout
from installer.snapshot_check import CREATED, FORMAT, root_hash
from manifests.errors import NotReadyError, TrustError
from manifests.files import sha256_file
from manifests.model import parse_manifest
from manifests.modpath import ModulePathError, is_valid_semver, parse_proxy_file
from manifests.pycompat import CAPTURE_TEXT
from manifests.text import plain, shown

GO_TIMEOUT = 60
TAG_MAX = 64
# A variable whose name says it holds a credential is never read, let alone recorded.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
STAMP = "%Y%m%dT%H%M%SZ"
UNSTABLE_ENV = ("GOGCCFLAGS",)
TEMP_BUILD_DIR = re.compile(r"go-build[0-9]+")

# (provider, slug, the variable telling it is present, {field: variable}); the first match wins.
CI_PROVIDERS: Tuple[Tuple[str, str, str, Dict[str, str]], ...] = (
    ("github-actions", "gha", "GITHUB_ACTIONS", {
        "job": "GITHUB_JOB", "run": "GITHUB_RUN_ID", "attempt": "GITHUB_RUN_ATTEMPT",
        "commit": "GITHUB_SHA", "ref": "GITHUB_REF", "repository": "GITHUB_REPOSITORY",
        "workflow": "GITHUB_WORKFLOW"}),
    ("gitlab-ci", "gl", "GITLAB_CI", {
        "job": "CI_JOB_NAME", "job_id": "CI_JOB_ID", "run": "CI_PIPELINE_ID",
        "commit": "CI_COMMIT_SHA", "ref": "CI_COMMIT_REF_NAME", "repository": "CI_PROJECT_PATH"}),
    ("buildkite", "bk", "BUILDKITE", {
        "job": "BUILDKITE_LABEL", "job_id": "BUILDKITE_JOB_ID", "run": "BUILDKITE_BUILD_NUMBER",
        "commit": "BUILDKITE_COMMIT", "ref": "BUILDKITE_BRANCH",
        "repository": "BUILDKITE_PIPELINE_SLUG"}),
    ("jenkins", "jenkins", "JENKINS_URL", {
        "job": "JOB_NAME", "run": "BUILD_NUMBER", "commit": "GIT_COMMIT", "ref": "GIT_BRANCH"}),
    ("ci", "ci", "CI", {}),
)


# --- who, where, when (pure: they take the environment as a mapping) -----------------------

def is_secret_name(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def ci_context(env: Mapping[str, str]) -> Optional[Dict[str, str]]:
    """The CI job this runs in, from the provider's documented variables only; None outside CI."""
    for provider, slug, marker, fields in CI_PROVIDERS:
        if env.get(marker, "").strip().lower() in ("", "false", "0"):
            continue
        ctx = {"provider": provider, "slug": slug}
        for key, var in fields.items():
            assert not is_secret_name(var), var  # the table itself may never name one
            value = env.get(var, "")
            if value:
                ctx[key] = value[:200]
        return ctx
    return None


def check_tag(tag: Optional[str]) -> Tuple[str, str]:
    """(tag, kind): kind is "semver", "text", or "" without a tag. Refuses what cannot be shown
    or named safely."""
    if tag is None:
        return "", ""
    bad = ("it is empty" if not tag.strip() else
           f"it is longer than {TAG_MAX} characters" if len(tag) > TAG_MAX else
           "it holds control or bidi characters" if any(
               ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E
               or 0x2066 <= ord(c) <= 0x2069 for c in tag) else
           "it has no letter or digit" if not any(c.isalnum() for c in tag) else "")
    if bad:
        raise NotReadyError(
            f"checking tag {shown(tag)}: {bad}; pass --tag with a semantic version (v1.2.0) or "
            f"up to {TAG_MAX} characters of plain text (release 7, before-upgrade)",
            operation="checking tag", subject=shown(tag))
    semver = is_valid_semver(tag) or is_valid_semver("v" + tag)
    return tag, "semver" if semver else "text"


def _slug(text: str) -> str:
    """Text as part of a file name: runs of anything but `A-Za-z0-9._+` become one `-`."""
    return re.sub(r"[^A-Za-z0-9._+]+", "-", text).strip("-.")[:TAG_MAX]


def make_id(tag: str, when: datetime, ci: Optional[Dict[str, str]]) -> str:
    """`<tag>-<UTC stamp>-<ci slug>-<run>`, e.g. `v1.2.0-20261128T142307Z-gha-4242`."""
    parts = [_slug(tag), when.strftime(STAMP)]
    if ci:
        parts.append("-".join(filter(None, (ci["slug"], _slug(ci.get("run", ""))))))
    return "-".join(p for p in parts if p)


def redact(value: str) -> str:
    """A URL's `user:password@` never reaches a snapshot (GOPROXY, GOPRIVATE may carry one)."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", value)


# --- the GOROOT, go, the proxy and the bundle (I/O) ----------------------------------------

def goroot_files(goroot: Path) -> List[Dict[str, Any]]:
    """Every entry of the tree, sorted by path: dirs (mode), files (mode, size, sha256),
    symlinks (target). Links are recorded, never followed."""
    out: List[Dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(goroot):
        dirnames.sort()
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, goroot).replace(os.sep, "/")
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out.append({"path": rel, "type": "symlink", "target": os.readlink(full)})
            elif stat.S_ISDIR(st.st_mode):
                out.append({"path": rel, "type": "dir", "mode": f"{mode:04o}"})
            elif stat.S_ISREG(st.st_mode):
                out.append({"path": rel, "type": "file", "mode": f"{mode:04o}",
                            "size": st.st_size, "sha256": sha256_file(full)})
            else:
                out.append({"path": rel, "type": "other", "mode": f"{mode:04o}"})
    return sorted(out, key=lambda e: e["path"])


def read_goroot(goroot: Path) -> List[Dict[str, Any]]:
    try:
        return goroot_files(goroot)
    except OSError as exc:
        raise NotReadyError(
            f"reading GOROOT {goroot}: {exc.strerror or exc} ({exc.filename}); run as a user "
            "who can read the whole toolchain", operation="reading GOROOT",
            subject=str(goroot)) from None


def go_env_for(layout: Layout, environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The caller's environment, as the checklist uses it, plus GOTOOLCHAIN=local (a snapshot
    never downloads or switches toolchains) and without GOFLAGS (`-mod=...` has no say here)."""
    env = dict(environ) if environ is not None else checklist.check_env(layout)
    env["GOTOOLCHAIN"] = "local"
    env.pop("GOFLAGS", None)
    return env


def run_go(goroot: Path, layout: Layout, environ: Optional[Mapping[str, str]] = None
           ) -> Dict[str, Any]:
    """`go version` and `go env -json` of this GOROOT's own go; an error is recorded, not
    raised: the files still say what is installed."""
    go = goroot / "bin" / "go"
    env = go_env_for(layout, environ)
    info: Dict[str, Any] = {"version": None, "env": {}, "error": None}
    try:
        out = subprocess.run([str(go), "version"], env=env, **CAPTURE_TEXT,
                             timeout=GO_TIMEOUT, cwd=str(goroot))
        if out.returncode != 0:
            info["error"] = f"go version: exit {out.returncode}: {out.stderr.strip()[-300:]}"
            return info
        info["version"] = out.stdout.strip()
        out = subprocess.run([str(go), "env", "-json"], env=env, **CAPTURE_TEXT,
                             timeout=GO_TIMEOUT, cwd=str(goroot))
        values = json.loads(out.stdout) if out.returncode == 0 else None
        if not isinstance(values, dict):
            info["error"] = f"go env -json: exit {out.returncode}: {out.stderr.strip()[-300:]}"
            return info
        info["env"] = {str(k): redact(str(v)) for k, v in sorted(values.items())
                       if not is_secret_name(str(k))}
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["error"] = f"running {go}: {getattr(exc, 'strerror', None) or exc}"
    except ValueError:
        info["error"] = "go env -json: unreadable output"
    return info


def proxy_modules(layout: Layout, manifests: List[Any]) -> List[Dict[str, Any]]:
    """module@version served by P/goproxy, with the `h1:` hashes the installing bundle(s)
    signed; a module no installed manifest lists is recorded with empty hashes."""
    signed: Dict[Tuple[str, str], Dict[str, str]] = {}
    for m in manifests:
        for mod in m.modules:
            signed.setdefault((mod.path, mod.version), {
                "zip_hash": mod.zip_hash, "mod_hash": mod.mod_hash, "bundle": m.name})
    found = set()
    for dirpath, _dirs, filenames in os.walk(layout.goproxy):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), layout.goproxy).replace(os.sep, "/")
            try:
                module, version, _ = parse_proxy_file(rel)
            except ModulePathError:
                continue
            if version is not None and name.endswith((".mod", ".zip")):
                found.add((module, version))
    out = []
    for module, version in sorted(found):
        entry = {"module": f"{module}@{version}", "zip_hash": "", "mod_hash": "", "bundle": None}
        entry.update(signed.get((module, version), {}))
        out.append(entry)
    return out


def installed_bundles(layout: Layout) -> List[Tuple[Dict[str, Any], Any]]:
    """(installed.json entry, parsed manifest) of each recorded bundle, oldest first."""
    out = []
    for entry in state.load(layout).get("bundles", []):
        path = layout.bundles / f"{entry.get('manifest_sha256', '')}.json"
        try:
            manifest = parse_manifest(path.read_bytes())
        except (OSError, TrustError):
            manifest = None
        out.append((entry, manifest))
    return out


def installing_bundle(bundles: List[Tuple[Dict[str, Any], Any]], toolchain: str
                      ) -> Optional[Dict[str, Any]]:
    """The newest recorded bundle that carried `toolchain`, with the types a snapshot file must
    have (snapshot_check): a field of another type in installed.json is recorded as null."""
    for entry, _ in reversed(bundles):
        carried = entry.get("toolchains")
        if isinstance(carried, list) and toolchain in carried:
            out = {k: entry.get(k) if isinstance(entry.get(k), str) else None
                   for k in ("name", "channel", "manifest_sha256", "signer", "installed_at")}
            seq = entry.get("sequence")
            out["sequence"] = seq if isinstance(seq, int) and not isinstance(seq, bool) \
                and seq >= 0 else None
            return out
    return None


def current_goroot(layout: Layout, operation: str) -> Tuple[str, Path]:
    """(toolchain id, GOROOT) that `P/current` names, or the error a user can act on. A
    `current` that leads anywhere but an installed toolchain is refused before its go runs."""
    toolchain = versions.checked_current(layout)
    if toolchain is None:
        raise NotReadyError(
            f"{operation} {layout.root}: no current toolchain (`{layout.current}` is missing); "
            f"install one first with `rescue.pyz install BUNDLE --prefix {layout.root}`, or "
            "pass the --prefix that has it", operation=operation, subject=str(layout.root))
    return toolchain, layout.versions / toolchain


def take(layout: Layout, tag: Optional[str] = None, now: Optional[datetime] = None,
         environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """A snapshot of the prefix as it is now (not stored)."""
    tag_text, tag_kind = check_tag(tag)
    env = dict(os.environ) if environ is None else dict(environ)
    toolchain, goroot = current_goroot(layout, "taking a snapshot of")
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    ci = ci_context(env)
    files = read_goroot(goroot)
    go = run_go(goroot, layout, environ)
    bundles = installed_bundles(layout)
    go_env = go["env"]
    return {
        "format": FORMAT,
        "id": make_id(tag_text, when, ci),
        "tag": tag_text or None,
        "tag_kind": tag_kind or None,
        "created": when.strftime(CREATED),
        "host": socket.gethostname(),
        "user": {"name": _user_name(), "uid": os.getuid() if hasattr(os, "getuid") else None},
        "ci": ci,
        "prefix": str(layout.root),
        "toolchain": toolchain,
        "goroot": {"path": str(goroot.resolve()), "root_hash": root_hash(files),
                   "file_count": sum(1 for f in files if f["type"] == "file"),
                   "bytes": sum(f.get("size", 0) for f in files), "files": files},
        "go": {"version": go["version"], "env": go_env, "error": go["error"]},
        "paths": {k: go_env.get(k, str(goroot.resolve()) if k == "GOROOT" else None)
                  for k in ("GOROOT", "GOPATH", "GOMODCACHE")},
        "modules": proxy_modules(layout, [m for _, m in bundles if m is not None]),
        "bundle": installing_bundle(bundles, toolchain),
    }


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


# --- comparing (pure) ------------------------------------------------------------------------

def diff_files(a: List[Dict[str, Any]], b: List[Dict[str, Any]]) -> Dict[str, Any]:
    old, new = {e["path"]: e for e in a}, {e["path"]: e for e in b}
    changed = []
    for path in sorted(old.keys() & new.keys()):
        fields = {k: [old[path].get(k), new[path].get(k)]
                  for k in ("type", "sha256", "mode", "size", "target")
                  if old[path].get(k) != new[path].get(k)}
        if fields:
            changed.append({"path": path, **fields})
    return {"added": sorted(new.keys() - old.keys()), "removed": sorted(old.keys() - new.keys()),
            "changed": changed}


def unstable(name: str, value: str) -> bool:
    """A `go env` setting that differs on every run of the same go: GOGCCFLAGS (go derives it
    from CC and CGO_*, which are compared, and it names a fresh temp build dir each time) and
    any value holding such a dir (`go-build` and digits)."""
    return name in UNSTABLE_ENV or bool(TEMP_BUILD_DIR.search(value))


def diff_env(a: Mapping[str, str], b: Mapping[str, str]) -> Dict[str, Any]:
    """Stable settings only; `ignored` names the others (recorded, never compared)."""
    ignored = sorted({k for k, v in [*a.items(), *b.items()] if unstable(k, v)})
    a = {k: v for k, v in a.items() if k not in ignored}
    b = {k: v for k, v in b.items() if k not in ignored}
    return {"added": {k: b[k] for k in sorted(b.keys() - a.keys())},
            "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
            "changed": {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if a[k] != b[k]},
            "ignored": ignored}


def diff_modules(a: List[Dict[str, Any]], b: List[Dict[str, Any]]) -> Dict[str, Any]:
    old, new = {m["module"]: m for m in a}, {m["module"]: m for m in b}
    return {"added": sorted(new.keys() - old.keys()), "removed": sorted(old.keys() - new.keys()),
            "changed": [{"module": k, "zip_hash": [old[k]["zip_hash"], new[k]["zip_hash"]],
                         "mod_hash": [old[k]["mod_hash"], new[k]["mod_hash"]]}
                        for k in sorted(old.keys() & new.keys())
                        if (old[k]["zip_hash"], old[k]["mod_hash"])
                        != (new[k]["zip_hash"], new[k]["mod_hash"])]}


def diff(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    """What changed from snapshot `a` to snapshot `b`."""
    files = diff_files(a["goroot"]["files"], b["goroot"]["files"])
    env = diff_env(a["go"]["env"], b["go"]["env"])
    modules = diff_modules(a["modules"], b["modules"])
    same = (a["goroot"]["root_hash"] == b["goroot"]["root_hash"]
            and not any(v for k, v in env.items() if k != "ignored")
            and not any(modules.values())
            and a["go"]["version"] == b["go"]["version"])
    return {"from": a["id"], "to": b["id"], "same": same,
            "toolchain": [a["toolchain"], b["toolchain"]],
            "go_version": [a["go"]["version"], b["go"]["version"]],
            "root_hash": [a["goroot"]["root_hash"], b["goroot"]["root_hash"]],
            "files": files, "env": env, "modules": modules}


def verify(snap: Dict[str, Any], layout: Layout) -> Dict[str, Any]:
    """The live GOROOT against the snapshot's; raises TrustError naming what differs."""
    toolchain, goroot = current_goroot(layout, "verifying snapshot against")
    files = read_goroot(goroot)
    live_hash = root_hash(files)
    report = {"id": snap["id"], "toolchain": [snap["toolchain"], toolchain],
              "root_hash": [snap["goroot"]["root_hash"], live_hash], "goroot": str(goroot),
              "files": diff_files(snap["goroot"]["files"], files)}
    if live_hash == snap["goroot"]["root_hash"]:
        return report
    f = report["files"]
    named = {"changed": [c["path"] for c in f["changed"]], "added": f["added"],
             "removed": f["removed"]}
    count = sum(len(v) for v in named.values())
    what = "; ".join(f"{kind} {', '.join(plain(p) for p in paths[:10])}"
                     + (" ..." if len(paths) > 10 else "")
                     for kind, paths in named.items() if paths)
    if toolchain != snap["toolchain"]:
        was = plain(snap["toolchain"])
        why = f" (the snapshot was of {was}, `current` is now {toolchain})"
        todo = (f"the build environment changed since the snapshot; switch back to {was} if "
                "that is the one to build with, or record the new one with `rescue.pyz "
                "snapshot create`")
    else:
        why = ""
        todo = ("if nobody changed it on purpose, treat the toolchain as tampered with: move "
                f"{goroot} aside and install its bundle again")
    err = TrustError(
        f"verifying snapshot {snap['id']}: the GOROOT {goroot} differs from it in "
        f"{count} path(s){why}: {what}; {todo}",
        operation="verifying snapshot", subject=snap["id"],
        expected=snap["goroot"]["root_hash"], got=live_hash)
    err.details = report  # type: ignore[attr-defined]
    raise err
