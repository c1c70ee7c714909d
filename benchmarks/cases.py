"""The comparisons: each rescue command as a user types it, its baseline, and the target."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from benchmarks.inputs import GO, NEWER, OLDER, STOCK_PYTHON, ZSTD_ARGS, Inputs, user_env
from benchmarks.measure import Side
from bundler.spec import DEFAULT_LEVEL
from tests.support import gobin

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Trial:
    """Sides measured together in alternating rounds; `rounds` caps the suite's count."""

    name: str
    sides: List[Side]
    prepare: Callable[[], object]  # makes the inputs the sides read, before any timing
    rounds: Optional[int] = None


@dataclass
class Case:
    """One row of the table: rescue's number against a baseline's, or against a limit."""

    name: str
    kind: str  # "time" (median ratio), "size" (bytes ratio), "rss" (peak MB against a limit)
    target: Optional[float]  # ratio or MB at most; None: reported, not judged
    rescue: Callable[[], float]
    baseline: Callable[[], float] = lambda: 0.0
    rescue_side: Optional[Side] = None
    baseline_side: Optional[Side] = None

    def value(self) -> float:
        if self.kind == "rss":
            return self.rescue()
        return self.rescue() / self.baseline()

    def passed(self) -> Optional[bool]:
        return None if self.target is None else self.value() <= self.target


def _pyz(i: Inputs, *args: str) -> List[str]:
    return [STOCK_PYTHON, "-I", str(i.pyz), *args]


def _size(path: Callable[[], Path]) -> Callable[[], float]:
    return lambda: float(path().stat().st_size)


def toolchain(i: Inputs) -> Tuple[Trial, List[Case]]:
    """Install of one toolchain against unpacking the same tree with tar, and sizes."""
    targz = Side("tar -xzf go1.21.13.tar.gz",
                 lambda d: ["tar", "-xzf", str(i.archive()), "-C", str(d)])
    tarzst = Side("tar -I zstd -xf tree.tar.zst",
                  lambda d: ["tar", "-I", "zstd", "-xf", str(i.tar_zst), "-C", str(d)])
    install = Side("rescue.pyz install (1 toolchain)",
                   lambda d: _pyz(i, "install", str(i.bundle), "--prefix", str(d / "prefix")),
                   env=lambda d: user_env(d / "home"))
    trial = Trial("toolchain", [targz, tarzst, install],
                  lambda: (i.pyz, i.bundle, i.tar_zst, i.bundle_default_level))
    return trial, [
        Case("install vs tar -xzf .tar.gz", "time", 0.8, install.median, targz.median,
             install, targz),
        Case("install vs tar -I zstd -xf .tar.zst", "time", 1.5, install.median, tarzst.median,
             install, tarzst),
        Case("installer peak RSS, one toolchain", "rss", 150, install.peak_mb,
             rescue_side=install),
        Case(f"bundle size (level {DEFAULT_LEVEL}) vs go{GO} .tar.gz", "size", 0.58,
             _size(lambda: i.bundle_default_level), _size(i.archive)),
    ]


def two_releases(i: Inputs) -> Tuple[Trial, List[Case]]:
    """A bundle of two neighbouring releases against one of the newer alone."""
    install = Side(f"rescue.pyz install (go{OLDER}+go{NEWER})",
                   lambda d: _pyz(i, "install", str(i.bundle_both), "--prefix",
                                  str(d / "prefix")),
                   env=lambda d: user_env(d / "home"))
    # One round: this side is here for its peak RSS; its time has no baseline.
    trial = Trial("two-releases", [install], lambda: (i.pyz, i.bundle_both, i.bundle_newer),
                  rounds=1)
    return trial, [
        Case(f"bundle go{OLDER}+go{NEWER} vs go{NEWER} alone", "size", 1.1,
             _size(lambda: i.bundle_both), _size(lambda: i.bundle_newer)),
        Case("installer peak RSS, two releases", "rss", 150, install.peak_mb,
             rescue_side=install),
    ]


def modcache(i: Inputs) -> Tuple[Trial, List[Case]]:
    """A modules-only bundle into an empty module cache against `go mod download`."""
    go = gobin.go_binary(GO)
    outside = i.work / "outside"  # no go.mod: `go mod download m@v ...` needs no project
    outside.mkdir(exist_ok=True)
    download = Side(
        f"go mod download ({i.n_modules}, file://)",
        lambda d: [str(go), "mod", "download", *(m.key for m in i.modules)],
        # GOFLAGS cleared: go_env's -modcacherw would skip the read-only pass rescue does.
        env=lambda d: gobin.go_env(i.work / "gohome", GOPROXY=f"file://{i.proxy_dir}",
                                   GOSUMDB="off", GOMODCACHE=str(d / "modcache"), GOFLAGS=""),
        cwd=outside)
    install = Side(f"rescue.pyz install --modcache ({i.n_modules})",
                   lambda d: _pyz(i, "install", str(i.modules_bundle), "--prefix",
                                  str(d / "prefix"), "--modcache"),
                   env=lambda d: user_env(d / "home", GOMODCACHE=str(d / "modcache")))
    trial = Trial("modcache", [download, install], lambda: (i.pyz, i.modules_bundle))
    return trial, [
        Case(f"install --modcache vs go mod download ({i.n_modules} modules)", "time", 1.0,
             install.median, download.median, install, download),
    ]


def build(i: Inputs) -> Tuple[Trial, List[Case]]:
    """`rescue build` of one toolchain from a warm download cache against zstd of its tar."""
    zstd = Side("zstd -12 -T0 --long=27 tree.tar",
                lambda d: [*ZSTD_ARGS, str(i.tar), "-o", str(d / "tree.tar.zst")])
    rescue = Side("rescue build (1 toolchain, level 12)",
                  lambda d: [sys.executable, "-m", "bundler.cli", "build", str(i.bundle_spec),
                             "-o", str(d), "--cache", str(i.download_cache)],
                  cwd=ROOT)  # this tree's bundler, as .venv/bin/rescue runs it
    # Building the bundle once first warms the download cache the timed builds read.
    trial = Trial("build", [zstd, rescue], lambda: (i.bundle, i.tar))
    return trial, [
        Case("rescue build vs zstd -12 -T0 --long=27", "time", 1.2, rescue.median, zstd.median,
             rescue, zstd),
    ]


def verify(i: Inputs) -> Tuple[Trial, List[Case]]:
    """`verify` of one installed GOROOT against `sha256sum -c` of the same files."""
    sums = Side("sha256sum -c (GOROOT files)",
                lambda d: ["sha256sum", "-c", "--quiet", str(i.installed_sums)])
    check = Side("rescue.pyz verify (1 toolchain)",
                 lambda d: _pyz(i, "verify", "--prefix", str(i.installed)),
                 env=lambda d: user_env(d / "home"))
    trial = Trial("verify", [sums, check], lambda: (i.pyz, i.installed_sums))
    return trial, [
        Case("verify vs sha256sum -c", "time", None, check.median, sums.median, check, sums),
    ]


GROUPS: Dict[str, Callable[[Inputs], Tuple[Trial, List[Case]]]] = {
    "toolchain": toolchain, "two-releases": two_releases, "modcache": modcache,
    "build": build, "verify": verify,
}
