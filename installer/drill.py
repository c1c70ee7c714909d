"""Fault drills: inject a failure into a throw-away copy of the prefix, time how long rescue
takes to detect it and to recover, and prove recovery with a real `go build`."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from installer import checklist, doctor, modcache, prefix, repair, state, verify, versions, wiring
from installer.host import host_target
from installer.install import install
from installer.prefix import Layout
from keys.allowed_signers import AllowedSigner
from manifests.drillreport import Drill
from manifests.errors import NotReadyError, RescueError
from manifests.files import write_atomic
from manifests.model import Module
from manifests.modpath import escape_path, escape_version
from manifests.pycompat import CAPTURE_TEXT
from manifests.text import first_line

DRILLS = ("goroot-corruption", "modcache-poisoning", "truncated-bundle")
CONNECTED_SIDE = "proxy-cert"  # `rescue drill proxy-cert` on the build host
# Drills whose steps run the emergency checklist with the user's own Go settings: a rollback
# or an install to recover, the checklist to detect.
USE_CHECKLIST = ("goroot-corruption", "truncated-bundle")


@dataclass
class Context:
    live: Layout
    signers: List[AllowedSigner]
    trust_source: str
    bundle: Optional[Path]
    work: Path  # throw-away: the copies, GOCACHE, the drill's projects
    in_place: bool = False  # --live: the drill works on the live prefix itself
    say: Callable[[str], None] = lambda msg: None


def settings_first(layout: Layout, names: List[str]) -> List[checklist.Check]:
    """The user's Go settings, judged before any drill when one of them will run the checklist
    with them: settings that fail it would fail that drill only after minutes of work."""
    tc_id = versions.current_id(layout)
    if tc_id is None or not set(names) & set(USE_CHECKLIST):
        return []  # no current toolchain: each drill says so
    return checklist.user_settings(layout.versions / tc_id, tc_id.rsplit(".", 1)[0], layout)


def run(names: List[str], ctx: Context) -> List[Drill]:
    out = []
    for name in names:
        if name == CONNECTED_SIDE:
            out.append(Drill(name, skipped="runs on the connected side: `rescue drill "
                                           "proxy-cert` on the build host"))
            continue
        ctx.say(f"drill {name}: ...")
        drill = Drill(name)
        try:
            {"goroot-corruption": goroot_corruption, "modcache-poisoning": modcache_poisoning,
             "truncated-bundle": truncated_bundle}[name](ctx, drill)
        except WorkDirError:
            raise  # every other drill needs the same room: stop, and say where to find it
        except OSError as exc:
            if not _in_work(ctx, exc):
                raise
            raise work_dir_error(ctx, exc) from None
        except RescueError as exc:  # a step the drill could not take: said, not a traceback
            drill.step("check", "drill", False, 0.0, exc.message)
            drill.ok = False
        out.append(drill)
    return out


# --- the copy, and real go ------------------------------------------------------------------

@contextmanager
def _target(ctx: Context, name: str) -> Iterator[Layout]:
    """The prefix to break: a fresh copy (its go.env rewired to the copy), or the live one."""
    if ctx.in_place:
        yield ctx.live
        return
    copy = ctx.work / name / "prefix"
    copy.parent.mkdir(parents=True, exist_ok=True)
    failed: List[OSError] = []

    def copy_file(src: str, dst: str) -> None:
        try:
            shutil.copy2(src, dst)
        except OSError as exc:
            failed.append(exc)  # copytree keeps only the text, for every file: keep the error
            raise

    # Under the live prefix's lock: nothing else changes it while it is copied.
    with prefix.locked(ctx.live, 60.0):
        try:
            shutil.copytree(ctx.live.root, copy, symlinks=True, copy_function=copy_file,
                            ignore=shutil.ignore_patterns(".staging-*", ".trash-*", ".repair-*"))
        except shutil.Error as exc:
            raise work_dir_error(ctx, failed[0] if failed else exc) from None
    layout = Layout(copy)
    for tc_id in versions.installed_ids(layout):
        goroot = layout.versions / tc_id
        os.chmod(goroot, 0o755)
        wired = goroot / "go.env"
        write_atomic(wired, verify.expected_go_env(wiring.read_go_env(wired), layout), 0o444)
        os.chmod(goroot, 0o555)
    try:
        yield layout
    finally:
        prefix.remove_tree(copy)


def _go_env(ctx: Context, layout: Layout, name: str) -> Dict[str, str]:
    """A hermetic environment: the drill judges the prefix, not this user's Go settings."""
    home = ctx.work / name / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{layout.current / 'bin'}:/usr/bin:/bin", "HOME": str(home),
            "GOCACHE": str(ctx.work / "gocache"), "GOPATH": str(home / "go"),
            "GOMODCACHE": str(ctx.work / name / "modcache"), "GOENV": "off",
            "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOSUMDB": "off", "GOFLAGS": "-mod=mod",
            "CGO_ENABLED": "0", "LANG": "C.UTF-8"}


def _go(layout: Layout, env: Dict[str, str], args: List[str], cwd: Path
        ) -> Tuple[bool, str]:
    try:
        done = subprocess.run([str(layout.current / "bin" / "go"), *args], cwd=cwd, env=env,
                              **CAPTURE_TEXT, timeout=600)
    except OSError as exc:
        return False, f"go {' '.join(args)}: {exc.strerror}"
    words = (done.stderr or done.stdout).strip()
    return done.returncode == 0, words or f"go {' '.join(args)}: exit {done.returncode}"


def _go_line(layout: Layout) -> str:
    """The oldest installed Go's language version: the project still builds after a rollback."""
    oldest = (versions.installed_ids(layout) or ["go1.21"])[0]  # in Go's version order
    return ".".join(oldest[2:].split(".")[:2])


def _project(ctx: Context, layout: Layout, name: str, imports: str = "",
             require: str = "", gosum: str = "") -> Path:
    proj = ctx.work / name / "project"
    if proj.exists():
        shutil.rmtree(proj)
    proj.mkdir(parents=True)
    (proj / "go.mod").write_text(f"module drill\n\ngo {_go_line(layout)}\n{require}")
    (proj / "go.sum").write_text(gosum)
    (proj / "main.go").write_text(f'package main\n\nimport (\n\t"fmt"\n{imports})\n\n'
                                  'func main() { fmt.Println("drill ok") }\n')
    return proj


def _build(ctx: Context, layout: Layout, name: str, proj: Path, drill: Drill,
           phase: str) -> bool:
    started = time.monotonic()
    ok, words = _go(layout, _go_env(ctx, layout, name), ["build", "-o", os.devnull, "."], proj)
    drill.step(phase, "go build", ok if phase == "check" else not ok,
               time.monotonic() - started, "" if ok else words)
    return ok


def _verify_step(ctx: Context, layout: Layout, drill: Drill, phase: str,
                 modcache_dir: Optional[Path] = None, every: bool = False) -> bool:
    """True when verify finds the prefix as signed."""
    started = time.monotonic()
    report = verify.verify(layout, ctx.signers, ctx.trust_source, every=every,
                           modcache_dir=modcache_dir)
    clean = report.ok and not report.unreadable
    words = "" if clean else verify.failure(report).message
    action = "verify" + (" --all" if every else "") + (" --modcache" if modcache_dir else "")
    drill.step(phase, action, clean if phase == "check" else not clean,
               time.monotonic() - started, words)
    return clean


def _baseline(ctx: Context, layout: Layout, drill: Drill, proj: Path,
              modcache_dir: Optional[Path] = None) -> None:
    """The copy is sound before the fault: verify passes, and (untimed, which also warms the
    build cache as a working machine's is) the drill's project builds."""
    report = verify.verify(layout, ctx.signers, ctx.trust_source, modcache_dir=modcache_dir)
    if not report.ok or report.unreadable:
        raise NotReadyError(f"drill {drill.name}: the prefix is already damaged before any "
                            f"fault was injected: {verify.failure(report).message}; run "
                            "`verify --all` and `repair` first", operation="drilling",
                            subject=str(ctx.live.root))
    ok, words = _go(layout, _go_env(ctx, layout, drill.name), ["build", "-o", os.devnull, "."],
                    proj)
    if not ok:
        raise NotReadyError(f"drill {drill.name}: the drill's project does not build before "
                            f"any fault was injected: {first_line(words)}; run `doctor`",
                            operation="drilling", subject=str(proj))


def _current(layout: Layout, drill: Drill) -> str:
    tc_id = versions.checked_current(layout)
    if tc_id is None:
        raise NotReadyError(f"drill {drill.name}: no current toolchain in {layout.root}; "
                            "install a bundle first", operation="drilling",
                            subject=str(layout.root))
    return tc_id


@contextmanager
def _writable(*paths: Path) -> Iterator[None]:
    """chmod u+w for the fault, modes put back after: only the content differs."""
    modes = [(p, os.stat(p).st_mode) for p in paths]
    for p, mode in modes:
        os.chmod(p, mode | 0o200)
    yield
    for p, mode in reversed(modes):
        if os.path.lexists(p):
            os.chmod(p, mode)


def _detected(drill: Drill) -> None:
    caught = [s for s in drill.steps if s.phase == "detect" and s.ok]
    if caught:
        drill.detected_by = caught[0].action
        first = drill.steps.index(caught[0])
        drill.detect_seconds = round(sum(s.seconds for s in drill.steps[:first + 1]
                                         if s.phase == "detect"), 2)


# --- the drills -------------------------------------------------------------------------------

def goroot_corruption(ctx: Context, drill: Drill) -> None:
    if ctx.in_place and ctx.bundle is None:
        raise NotReadyError("drill goroot-corruption --live: pass --bundle FILE (the bundle "
                            "that installed the current toolchain) so the live GOROOT can be "
                            "repaired", operation="drilling", subject="--bundle")
    with _target(ctx, drill.name) as layout:
        tc_id = _current(layout, drill)
        proj = _project(ctx, layout, drill.name)
        _baseline(ctx, layout, drill, proj)
        goroot = layout.versions / tc_id
        started = time.monotonic()
        go_bin, source = goroot / "bin" / "go", goroot / "src" / "fmt" / "print.go"
        tools = goroot / "pkg" / "tool" / host_target().replace("-", "_")
        planted = tools / "go-drill-planted"
        with _writable(go_bin, source.parent, tools):
            go_bin.write_bytes(b"#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n")
            source.unlink()
            planted.write_bytes(b"#!/bin/sh\necho planted\n")
            os.chmod(planted, 0o755)
        drill.fault = (f"overwrote versions/{tc_id}/bin/go, deleted src/fmt/print.go, planted "
                       f"the executable {planted.relative_to(goroot)}")
        drill.step("inject", drill.fault, True, time.monotonic() - started)
        _verify_step(ctx, layout, drill, "detect")
        _doctor_step(ctx, layout, drill, _go_env(ctx, layout, drill.name))
        _checklist_step(layout, drill, tc_id)
        _build(ctx, layout, drill.name, proj, drill, "detect")
        _detected(drill)
        recovered = time.monotonic()
        if ctx.bundle is not None:
            drill.recovered_by = f"repair {ctx.bundle.name}"
            done = repair.repair(layout, ctx.signers, ctx.trust_source, ctx.bundle)
            drill.step("recover", drill.recovered_by, done.ok, time.monotonic() - recovered,
                       "" if done.ok else repair.failure(done).message)
        else:
            _rollback(layout, drill, tc_id, recovered)
        built = _build(ctx, layout, drill.name, proj, drill, "check")
        clean = _verify_step(ctx, layout, drill, "check")
        drill.recover_seconds = round(time.monotonic() - recovered, 2)
        drill.ok = bool(drill.detected_by) and built and clean and all(
            s.ok for s in drill.steps if s.phase == "recover")


def _rollback(layout: Layout, drill: Drill, tc_id: str, started: float) -> None:
    others = [i for i in versions.installed_ids(layout)
              if i != tc_id and i.endswith("." + host_target())]
    prev = versions.previous_id(layout)
    target = prev.rsplit("/", 1)[-1] if prev else (others[-1] if others else None)
    if target is None:
        bundles = state.load(layout).get("bundles", [])
        came = next((f"{b.get('name')} #{b.get('sequence')} (manifest sha256 "
                     f"{b.get('manifest_sha256')})" for b in reversed(bundles)
                     if tc_id in b.get("toolchains", [])), "the bundle that installed it")
        drill.recovered_by = "none"
        drill.step("recover", "repair or rollback", False, time.monotonic() - started,
                   f"no bundle given and no other toolchain to roll back to: pass --bundle "
                   f"FILE with {came}")
        return
    drill.recovered_by = f"rollback to {target}"
    try:
        versions.switch(layout, target, "rollback", f"drill {drill.name}",
                        versions.checks_for(layout))
        drill.step("recover", drill.recovered_by, True, time.monotonic() - started)
    except RescueError as exc:
        drill.step("recover", drill.recovered_by, False, time.monotonic() - started,
                   exc.message)


def _doctor_step(ctx: Context, layout: Layout, drill: Drill, env: Dict[str, str]) -> None:
    started = time.monotonic()
    facts = doctor.gather(layout, env=env, etc=str(Path(env["HOME"]) / "etc"),
                          signers=ctx.signers, trust_source=ctx.trust_source)
    # The drill's own hermetic settings (GOFLAGS=-mod=mod, GOSUMDB=off) are not the fault it
    # injected: doctor judges them when no go answers `go env`, and they are left out here.
    errors = [f for f in doctor.findings(facts)
              if f.severity == doctor.ERROR and not f.check.startswith("setting ")]
    drill.step("detect", "doctor", bool(errors), time.monotonic() - started,
               errors[0].message if errors else "")


def _checklist_step(layout: Layout, drill: Drill, tc_id: str) -> None:
    started = time.monotonic()
    version, target = tc_id.rsplit(".", 1)
    goos, goarch = target.split("-", 1)
    checks = checklist.run(layout.versions / tc_id, version, goos, goarch, layout)
    failed = [c for c in checks if not c.ok]
    drill.step("detect", "checklist", bool(failed), time.monotonic() - started,
               f"{failed[0].name}: {failed[0].got}" if failed else "")


def _poison_target(mods: List[Module], cache: Path) -> Optional[Tuple[Module, Path, str]]:
    """A cached module with a Go file to poison, and the package a program can import."""
    for mod in mods:
        tree = cache / f"{escape_path(mod.path)}@{escape_version(mod.version)}"
        for gofile in sorted(tree.rglob("*.go")) if mod.zip_hash and tree.is_dir() else []:
            rel = gofile.parent.relative_to(tree).parts
            if gofile.name.endswith("_test.go") or {"testdata", "internal", "vendor"} & set(rel):
                continue
            if "package main" in gofile.read_text(encoding="utf-8", errors="replace"):
                continue
            return mod, gofile, "/".join((mod.path, *rel))
    return None


def _installed_modules(ctx: Context, layout: Layout) -> List[Module]:
    """Every module the recorded bundles carry, from their kept manifests (signatures checked)."""
    seen: Dict[Tuple[str, str], Module] = {}
    for b in verify.load_bundles(layout, ctx.signers, ctx.trust_source):
        for mod in b.manifest.modules:
            seen.setdefault((mod.path, mod.version), mod)
    return list(seen.values())


def modcache_poisoning(ctx: Context, drill: Drill) -> None:
    with _target(ctx, drill.name) as layout:
        _current(layout, drill)
        mods = _installed_modules(ctx, layout)
        if not mods:
            drill.skipped = "no modules are installed in this prefix (a bundle with modules)"
            return
        cache = ctx.work / drill.name / "modcache"
        if cache.exists():
            prefix.remove_tree(cache)
        modcache.populate(layout.goproxy, mods, cache)
        found = _poison_target(mods, cache)
        if found is None:
            drill.skipped = "no installed module has a Go file to poison"
            return
        mod, gofile, imp = found
        gosum = (f"{mod.path} {mod.version} {mod.zip_hash}\n"
                 f"{mod.path} {mod.version}/go.mod {mod.mod_hash}\n")
        proj = _project(ctx, layout, drill.name, f'\t_ "{imp}"\n',
                        f"\nrequire {mod.path} {mod.version}\n", gosum)
        _baseline(ctx, layout, drill, proj, cache)
        started = time.monotonic()
        dl = cache / "cache" / "download" / escape_path(mod.path) / "@v"
        zpath = dl / f"{escape_version(mod.version)}.zip"
        _poison_zip(zpath, gofile.name)
        with _writable(gofile), open(gofile, "a", encoding="utf-8") as f:
            f.write("\nfunc init() { println(\"poisoned\") }\n")
        drill.fault = (f"changed {mod.path}@{mod.version}'s cached zip and its extracted "
                       f"{gofile.relative_to(cache)}")
        drill.step("inject", drill.fault, True, time.monotonic() - started)
        _verify_step(ctx, layout, drill, "detect", cache)
        env = _go_env(ctx, layout, drill.name)  # its GOMODCACHE is `cache`
        t = time.monotonic()
        ok, words = _go(layout, env, ["mod", "verify"], proj)
        drill.step("detect", "go mod verify", not ok, time.monotonic() - t, words)
        _detected(drill)
        recovered = time.monotonic()
        drill.recovered_by = "repair --modcache"
        done = repair.repair(layout, ctx.signers, ctx.trust_source, None, cache)
        drill.step("recover", drill.recovered_by, done.ok, time.monotonic() - recovered,
                   "" if done.ok else repair.failure(done).message)
        t = time.monotonic()
        ok, words = _go(layout, env, ["mod", "verify"], proj)
        drill.step("check", "go mod verify", ok, time.monotonic() - t, "" if ok else words)
        t = time.monotonic()
        built, words = _go(layout, env, ["build", "-o", os.devnull, "."], proj)
        drill.step("check", "go build", built, time.monotonic() - t, "" if built else words)
        drill.recover_seconds = round(time.monotonic() - recovered, 2)
        drill.ok = bool(drill.detected_by) and done.ok and ok and built


def _poison_zip(zpath: Path, name: str) -> None:
    """The same zip with one Go file's bytes changed, as a tampered cache would hold it."""
    with zipfile.ZipFile(zpath) as zf:
        items = [(i, zf.read(i)) for i in zf.infolist()]
    tmp = zpath.with_name(zpath.name + ".drill")
    with zipfile.ZipFile(tmp, "w") as out:
        poisoned = False
        for info, data in items:
            if not poisoned and info.filename.endswith("/" + name):
                data += b"\nfunc init() { println(\"poisoned\") }\n"
                poisoned = True
            out.writestr(info, data)
    os.replace(tmp, zpath)


def truncated_bundle(ctx: Context, drill: Drill) -> None:
    if ctx.bundle is None:
        drill.skipped = "needs the bundle file: pass --bundle FILE"
        return
    with _target(ctx, drill.name) as layout:
        _current(layout, drill)
        proj = _project(ctx, layout, drill.name)
        _baseline(ctx, layout, drill, proj)
        before = versions.current_id(layout)
        copy = ctx.work / drill.name / ctx.bundle.name
        started = time.monotonic()
        size = ctx.bundle.stat().st_size
        with open(ctx.bundle, "rb") as src, open(copy, "wb") as out:
            out.write(src.read(size * 6 // 10))
        drill.fault = f"cut {ctx.bundle.name} short at 60% ({size * 6 // 10} of {size} bytes)"
        drill.step("inject", drill.fault, True, time.monotonic() - started)
        t = time.monotonic()
        try:
            install(copy, layout.root, ctx.signers, ctx.trust_source)
            drill.step("detect", "install", False, time.monotonic() - t,
                       "the cut bundle was accepted")
        except RescueError as exc:
            drill.step("detect", "install", exc.exit_code == 3, time.monotonic() - t,
                       exc.message)
        _detected(drill)
        unchanged = versions.current_id(layout) == before
        drill.step("check", "current unchanged", unchanged, 0.0,
                   "" if unchanged else f"current is now {versions.current_id(layout)}")
        _verify_step(ctx, layout, drill, "check", every=True)
        recovered = time.monotonic()
        drill.recovered_by = "copy again, install"
        shutil.copyfile(ctx.bundle, copy)
        try:
            install(copy, layout.root, ctx.signers, ctx.trust_source)
            drill.step("recover", drill.recovered_by, True, time.monotonic() - recovered)
        except RescueError as exc:
            drill.step("recover", drill.recovered_by, False, time.monotonic() - recovered,
                       exc.message)
        _build(ctx, layout, drill.name, proj, drill, "check")
        drill.recover_seconds = round(time.monotonic() - recovered, 2)
        drill.ok = bool(drill.detected_by) and all(
            s.ok for s in drill.steps if s.phase in ("recover", "check"))


class WorkDirError(NotReadyError):
    """The work dir cannot take what a drill writes there: every drill would fail the same way."""


def _in_work(ctx: Context, exc: OSError) -> bool:
    """The failed write was into the work dir (not the live prefix, which --live writes)."""
    written = exc.filename2 if exc.filename2 is not None else exc.filename  # a copy's dst
    if written is None:
        return False
    path = os.path.abspath(os.fsdecode(written))
    return path == str(ctx.work) or path.startswith(f"{ctx.work}{os.sep}")


def _megabytes(tree: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return round(total / 1e6)


def work_dir_error(ctx: Context, exc: OSError) -> WorkDirError:
    """One line naming the way out (--work), however many files failed to copy."""
    base = ctx.work.parent  # what --work named, or the temp dir
    try:
        free = f"{shutil.disk_usage(base).free / 1e6:.0f} MB free"
    except OSError:
        free = "free space unknown"
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    what = exc.strerror or first_line(exc, 120)
    room = "with room for it" if full else "you can write to"
    return WorkDirError(
        f"drilling {ctx.live.root}: the work dir {base} cannot take a copy of the prefix "
        f"({what}; the prefix holds {_megabytes(ctx.live.root)} MB, {free} there): pass "
        f"--work DIR on a file system {room}", operation="drilling", subject=str(base))


def work_dir(live: Layout, given: Optional[Path]) -> Path:
    base = given or Path(tempfile.gettempdir())
    try:
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="rescue-drill-", dir=base))
    except OSError as exc:
        raise WorkDirError(f"drilling {live.root}: cannot make a work dir in {base} "
                           f"({exc.strerror or first_line(exc, 120)}): pass --work DIR on a "
                           "file system you can write to, with room for a copy of the prefix",
                           operation="drilling", subject=str(base)) from None
