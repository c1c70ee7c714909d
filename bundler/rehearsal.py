"""Prove a packed bundle complete: build each spec project offline with only what it carries."""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from installer import zstd
from manifests import goversion
from manifests.errors import SECURITY_NOTE, NotReadyError, TrustError
from manifests.model import Manifest, Toolchain

# What the rehearsal runs in each project, in order; the first failure stops it.
COMMANDS = (("build", "-o", os.devnull, "./..."), ("list", "-m", "all"), ("mod", "verify"))
_PASSED_ENV = ("PATH", "TMPDIR", "CGO_ENABLED", "CC", "CXX")  # nothing that steers go's modules
_TIMEOUT = 900


@dataclass
class ProjectRun:
    project: str
    seconds: float


@dataclass
class Rehearsal:
    """What the rehearsal did; `skipped` says why it did not run, `note` what it could not do."""

    toolchain: str = ""
    isolated: bool = False  # inside `unshare -rn` (no network, not even loopback)
    note: str = ""
    skipped: str = ""
    projects: List[ProjectRun] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, object]:
        return {"ran": not self.skipped, "skipped": self.skipped, "toolchain": self.toolchain,
                "isolated": self.isolated, "note": self.note, "seconds": round(self.seconds, 2),
                "projects": [{"project": p.project, "seconds": round(p.seconds, 2)}
                             for p in self.projects]}

    def summary(self) -> str:
        if self.skipped:
            return f"rehearsal skipped: {self.skipped}"
        where = "inside unshare -rn (no network)" if self.isolated else self.note
        return (f"rehearsal passed: {len(self.projects)} project(s) built, listed and verified "
                f"with {self.toolchain} and only the bundle's modules, {where}, "
                f"in {self.seconds:.1f}s")


def host_target() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "i386": "386", "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64"}.get(machine, machine)
    return f"{sys.platform.rstrip('0123456789')}-{arch}"


def pick_toolchain(manifest: Manifest, target: str) -> Optional[Toolchain]:
    """The newest toolchain the bundle carries for `target`, or None."""
    found = [tc for tc in manifest.toolchains if f"{tc.os}-{tc.arch}" == target]
    if not found:
        return None
    return max(found, key=functools.cmp_to_key(lambda a, b: goversion.compare(a.version,
                                                                               b.version)))


@functools.lru_cache(maxsize=1)
def probe_unshare() -> str:
    """"" when `unshare -rn` works here, else why not (probed once per process)."""
    try:
        done = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare -rn is not available ({e})"
    if done.returncode != 0:
        return f"unshare -rn is not permitted here ({done.stderr.strip() or done.returncode})"
    return ""


def _unpack(bundle: Path, manifest: Manifest, tc: Toolchain, dest: Path) -> None:
    """Extract the toolchain, `goproxy/` and the hard-link targets they need from the bundle."""
    root = tc.root + "/"
    wanted: Set[str] = set()
    for m in manifest.members:
        if m.path.startswith((root, "goproxy/")) or m.path in (tc.root, "goproxy"):
            wanted.add(m.path)
            if m.type == "hardlink" and m.target:
                wanted.add(m.target)  # may live in another toolchain: stored once
    # This process just wrote and hashed every member; 3.11.4+ would warn without a filter.
    kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
    with open(bundle, "rb") as raw, tarfile.open(fileobj=zstd.open_reader(raw), mode="r|") as tar:
        for ti in tar:
            if ti.name in wanted:
                tar.extract(ti, dest, **kw)  # type: ignore[arg-type]


def _env(work: Path, goproxy: Path, manifest: Manifest) -> Dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update({
        "HOME": str(work / "home"), "GOENV": "off", "GOTOOLCHAIN": "local",
        # As the installer's go.env wires it: the carried checksum database, if any.
        "GOPROXY": goproxy.as_uri(), "GOSUMDB": _gosumdb(manifest),
        "GONOSUMDB": manifest.sumdb.nosumdb if manifest.sumdb else "",
        # -modcacherw only so that the temporary module cache can be removed afterwards.
        "GOFLAGS": "-mod=readonly -modcacherw",
        "GOMODCACHE": str(work / "modcache"), "GOPATH": str(work / "gopath"),
        "GOCACHE": str(work / "gocache"),
        # The bundle covers each project's own go.mod + go.sum, not a go.work around it.
        "GOWORK": "off",
    })
    (work / "home").mkdir(exist_ok=True)
    return env


def _gosumdb(manifest: Manifest) -> str:
    db = manifest.sumdb
    if db is None:
        return "off"
    return db.name if db.name == "sum.golang.org" else db.key


_MODULE_AT = re.compile(r"(\S+@v[^\s:]+)")


def _failure(project: Path, tc: Toolchain, args: Sequence[str], output: str) -> Exception:
    cmd = "go " + " ".join(a for a in args if a not in ("-o", os.devnull))
    body = "\n\t".join(output.strip().splitlines()[-20:])
    doing = f"rehearsing {project} offline with {tc.version} {tc.os}/{tc.arch}"
    if args[:2] == ("mod", "verify") and ("mismatch" in output or "modified" in output):
        return TrustError(f"{doing}: `{cmd}` failed:\n\t{body}\n\n{SECURITY_NOTE}")
    missing = sorted({m for line in output.splitlines() if "reading file://" in line
                      for m in _MODULE_AT.findall(line.split("reading file://")[0])})
    what = (f"the bundle lacks {', '.join(missing)}" if missing
            else "the bundle's toolchain and modules cannot build this project")
    return NotReadyError(
        f"{doing}: `{cmd}` failed: {what}:\n\t{body}\n"
        f"No bundle was written. Make go.sum pin every module the project builds with "
        f"(`go mod tidy` there), add module@version to [modules].require, or carry a newer Go; "
        f"`rescue build --no-rehearsal` skips this check.")


def rehearse(bundle: Path, manifest: Manifest, projects: Sequence[Path],
             target: Optional[str] = None) -> Rehearsal:
    """Build each project from the packed `bundle` alone: its toolchain for `target` (the
    build host), its goproxy as GOPROXY, fresh module and build caches, no network.

    Raises NotReadyError (or TrustError for a `go mod verify` mismatch) naming the project,
    the command and go's own words.
    """
    report = Rehearsal()
    target = target or host_target()
    if not projects:
        report.skipped = "the spec names no [modules].projects to build"
        return report
    tc = pick_toolchain(manifest, target)
    if tc is None:
        carried = ", ".join(sorted({f"{t.os}-{t.arch}" for t in manifest.toolchains})) or "none"
        report.skipped = (f"the bundle carries no toolchain for this host ({target}; it "
                          f"carries: {carried}), so nothing here can build with it")
        return report
    started = time.monotonic()
    report.toolchain = tc.id
    why_not = probe_unshare()
    report.isolated = not why_not
    if why_not:
        report.note = f"WITHOUT network isolation: {why_not}"
    work = Path(tempfile.mkdtemp(prefix="rescue-rehearsal-"))
    try:
        _unpack(bundle, manifest, tc, work / "bundle")
        goproxy = work / "bundle" / "goproxy"
        goproxy.mkdir(exist_ok=True)  # a bundle with no modules: an empty proxy
        go = work / "bundle" / tc.root / "bin" / "go"
        env = _env(work, goproxy, manifest)
        wrap = [] if why_not else ["unshare", "-rn"]
        for project in projects:
            t0 = time.monotonic()
            for args in COMMANDS:
                try:
                    done = subprocess.run([*wrap, str(go), *args], cwd=project, env=env,
                                          capture_output=True, text=True, timeout=_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise NotReadyError(f"rehearsing {project}: go {' '.join(args)} took more "
                                        f"than {_TIMEOUT}s") from None
                if done.returncode != 0:
                    raise _failure(project, tc, args, done.stdout + done.stderr)
            report.projects.append(ProjectRun(str(project), time.monotonic() - t0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report
