"""Install a bundle: verify, stage, check, switch; any failure leaves the previous state active."""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional

from installer import (
    checklist,
    crashpoints,
    go_commands,
    goproxy_merge,
    guard_pending,
    history,
    modcache,
    prefix,
    state,
    sumdb_merge,
    toolchain_choice,
    toolchain_proxy,
    trust_policy,
    versions,
    wiring,
)
from installer import guard as guard_mod
from installer import verify as verify_mod
from installer.bundle_reader import BundleReader
from installer.checklist import Check
from installer.host import host_target
from installer.machine import machine_error
from installer.prefix import Layout
from installer.stage import Directory, stage
from keys.allowed_signers import AllowedSigner
from keys.trust_core import Verified, check_replay
from manifests.errors import ChecklistError, NotReadyError
from manifests.goversion import version_key
from manifests.limits import DEFAULT_LIMITS
from manifests.model import Manifest, Toolchain
from manifests.text import shown


@dataclass
class InstallResult:
    bundle: str
    name: str
    channel: str
    sequence: int
    signer: Dict[str, object]  # {key_id, principals, comment}, as every command reports it
    prefix: str
    installed: List[str] = field(default_factory=list)
    reused: List[str] = field(default_factory=list)  # already installed, verified intact
    # Already installed but damaged: replaced by this bundle's copy; what verify found.
    repaired: List[Dict[str, object]] = field(default_factory=list)
    current: Optional[str] = None
    previous: Optional[str] = None
    checks: List[Check] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0
    modules_added: List[str] = field(default_factory=list)  # module@version new in P/goproxy
    modules_kept: List[str] = field(default_factory=list)  # already there, identical
    modcache: Optional[Dict[str, object]] = None  # what --modcache wrote, see installer/modcache
    guard: Optional[Dict[str, object]] = None  # what --guard-project found, see installer/guard
    # golang.org/toolchain modules rebuilt into P/goproxy: version, seconds, kept
    toolchain_modules: List[Dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def no_toolchain_for_host(toolchains: List[Toolchain]) -> Optional[str]:
    """Why a bundle that carries toolchains is of no use on this machine, or None."""
    host = host_target()
    if not toolchains or any(f"{t.os}-{t.arch}" == host for t in toolchains):
        return None
    return (f"this bundle has no toolchain for {host} (it carries "
            f"{', '.join(t.id for t in toolchains)}); build one with {host} in the spec's "
            "toolchains.targets")


def choose_current(toolchains: List[Toolchain], use: Optional[str]) -> Optional[Toolchain]:
    host = host_target()
    mine = [t for t in toolchains if f"{t.os}-{t.arch}" == host]
    if use:
        want = use if use.startswith("go") else "go" + use
        picked = [t for t in mine if t.version == want]
        if not picked:
            raise NotReadyError(f"--use {use}: the bundle has no {want} for {host}; it has "
                                f"{', '.join(t.id for t in toolchains) or 'no toolchains'}")
        return picked[0]
    return max(mine, key=lambda t: version_key(t.version)) if mine else None


def install(bundle: Path, root: Path, signers: List[AllowedSigner], trust_source: str,
            use: Optional[str] = None, on_bytes: Callable[[int], None] = lambda n: None,
            now: Optional[datetime] = None,
            modcache_dir: Optional[Path] = None,
            on_total: Callable[[int], None] = lambda n: None,
            on_wait: Callable[[str], None] = lambda msg: None,
            lock_timeout: float = 300.0,
            guard: Optional[guard_mod.Guard] = None,
            auto_prune: bool = False,
            on_module: Callable[[int], None] = lambda n: None) -> InstallResult:
    started = time.monotonic()
    layout = Layout(root.absolute())
    wiring.check_prefix(layout.root)  # a usage error: before the bundle is even opened
    with BundleReader(bundle) as reader:
        verified = reader.header(signers, trust_source, now or datetime.now(timezone.utc))
        m = verified.manifest
        wrong = no_toolchain_for_host(list(m.toolchains))
        if wrong:
            raise NotReadyError(f"installing {bundle}: {wrong}")
        current = choose_current(list(m.toolchains), use)
        prefix.check_writable(layout.root)
        prefix.check_free_space(layout.root, m.content_bytes, DEFAULT_LIMITS.free_space_margin,
                                can_prune=auto_prune)
        on_total(m.content_bytes)
        result = InstallResult(str(bundle), m.name, m.channel, m.sequence,
                               verified.signer.to_dict(), str(layout.root))
        try:
            # Nothing is decided about the prefix before the lock: what this process created,
            # what it may remove, what is stale, all after it holds the lock.
            with prefix.locked(layout, lock_timeout, on_wait) as lock:
                result.notes += lock.notes
                result.notes += versions.recover(layout)
                result.notes += versions.make_room(
                    layout, m.content_bytes + DEFAULT_LIMITS.free_space_margin, auto_prune)
                before = guard_mod.baseline(guard, layout) if guard else {}
                run_id = ""
                if guard and current:  # journaled first: a kill from here on is undone next
                    run_id = guard_pending.write(layout, "install", current.id,
                                                 versions.current_id(layout))
                try:
                    with toolchain_choice.pending(m.gotoolchain):
                        _install_locked(reader, verified, layout, current, result, on_bytes,
                                        modcache_dir, signers, on_module)
                except Exception:
                    if guard and current and versions.current_id(layout) != current.id:
                        guard_pending.clear(layout)  # nothing switched: nothing to verify
                    raise
                if guard and result.current:
                    done = versions.Switched(
                        result.previous.rsplit("/", 1)[-1] if result.previous else None,
                        result.current, result.checks)
                    try:
                        versions.run_guard(layout, done, guard, before, "install", run_id)
                    finally:
                        result.guard = done.guard.to_dict() if done.guard else None
                elif guard:
                    guard_pending.clear(layout)
        except OSError as exc:
            raise machine_error(f"installing into {layout.root}", exc) from None
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _way_back(layout: Layout, wanted: Optional[Toolchain]) -> str:
    """An older bundle is refused, but what it carries may still be installed: then `rollback`
    is what the operator wanted, with no bundle at all."""
    if wanted is None or wanted.id not in versions.installed_ids(layout):
        return ""
    if wanted.id == versions.current_id(layout):
        return f"{wanted.id}, which this bundle carries, is the current toolchain already."
    return (f"{wanted.id}, which this bundle carries, is still installed here: `rollback --to "
            f"{wanted.version[2:]}` makes it current again, no bundle needed.")


def _install_locked(reader: BundleReader, verified: Verified, layout: Layout,
                    current: Optional[Toolchain], result: InstallResult,
                    on_bytes: Callable[[int], None],
                    modcache_dir: Optional[Path] = None,
                    signers: Optional[List[AllowedSigner]] = None,
                    on_module: Callable[[int], None] = lambda n: None) -> None:
    m = verified.manifest
    st = state.load(layout)
    check_replay(st, m.channel, m.sequence, m.name, verified.manifest_sha256,
                 _way_back(layout, current))
    staging = Path(tempfile.mkdtemp(dir=layout.root, prefix=f".staging-{os.getpid()}-"))
    made: List[Path] = []  # directories and version trees this install added: undone on failure
    journal: Optional[goproxy_merge.MergeJournal] = None
    try:
        stage(reader, m, Directory(staging, read_only="toolchains/"), on_bytes)
        reader.close()  # its decompression window is the install's largest buffer: free it now
        carried_db = _check_sumdb(m, staging, layout)
        # Before the wiring rewrites go.env: the module's h1 covers the upstream bytes.
        rebuilt = toolchain_proxy.stage_modules(m, staging, layout, host_target())
        result.toolchain_modules = [{"module": f"golang.org/toolchain@{r.version}",
                                     "seconds": r.seconds, "kept": r.kept} for r in rebuilt]
        for tc in m.toolchains:  # its top stays writable: go.env is written after the merge
            prefix.make_read_only(staging / tc.root, keep_top=True, files=False)
        crashpoints.reached("install-staged")
        # The staged files reach the disk while the checklist runs; they must be there before
        # the install is recorded and `current` points at them. A power cut in between leaves
        # an unrecorded version dir, which the next install of it verifies and repairs, as
        # after a kill. Module files are flushed before the merge: `go` reads P/goproxy itself.
        flushed = prefix.flush_in_background(layout.root)
        for d in (layout.versions, layout.goproxy):
            if not d.exists():
                d.mkdir()
                made.append(d)
        if (staging / "goproxy").is_dir():  # refused before anything moves if bundles disagree
            flushed.join()
            journal = goproxy_merge.merge(staging / "goproxy", layout.goproxy)
            result.modules_added, result.modules_kept = journal.added, journal.kept
            result.notes += journal.notes
            if carried_db is not None and m.sumdb is not None:
                result.notes += sumdb_merge.merge(carried_db, layout, m.sumdb, journal)
            if modcache_dir is None or not m.modules:  # else --modcache's one sync does
                prefix.sync_filesystem(layout.goproxy)  # the merged lists, in one flush
        crashpoints.reached("install-merged")
        for tc in m.toolchains:  # after the merge: the wiring names the database it carries
            wiring.write_go_env(staging / tc.root, layout)
        for tc in m.toolchains:
            dest = layout.version_dir(tc.id)
            if dest.exists():  # already installed: checked, and replaced if it was damaged
                flushed.join()  # a replacement takes the live path at once
                _check_installed(layout, verified, tc, staging / tc.root, result)
                continue
            os.rename(staging / tc.root, dest)
            made.append(dest)
            os.chmod(dest, 0o555)
            result.installed.append(tc.id)
        crashpoints.reached("install-renamed")
        result.previous = prefix.current_target(layout)
        if current is None:
            result.notes.append(f"no toolchain for this machine ({host_target()}); "
                                "`current` left unchanged")
        else:
            goroot = layout.version_dir(current.id)
            result.checks = checklist.run(goroot, current.version, current.os, current.arch,
                                          layout)
            if not result.ok:
                failed = ", ".join(c.name for c in result.checks if not c.ok)
                err = ChecklistError(f"installing {current.id}: the emergency checklist failed "
                                     f"({failed}); the previous toolchain stays active")
                err.result = result  # type: ignore[attr-defined]
                raise err
        flushed.join()
        crashpoints.reached("install-checked")
        if modcache_dir is not None and m.modules:
            result.modcache = modcache.populate(layout.goproxy, m.modules, modcache_dir,
                                                on_module=on_module,
                                                also_sync=[layout.goproxy]).to_dict()
        wiring.write_shell_snippets(layout)
        # Record and switch as one journaled step: a kill in between is finished by the next
        # command, so the recorded state always matches `current`.
        target = f"versions/{current.id}" if current is not None else None
        entry = {
            "name": m.name, "channel": m.channel, "sequence": m.sequence,
            "manifest_sha256": verified.manifest_sha256,
            "signer": verified.signer.public_key.key_id,
            "toolchains": [t.id for t in m.toolchains],
            "modules": [f"{x.path}@{x.version}" for x in m.modules],
            "installed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if m.gotoolchain:  # the prefix's GOTOOLCHAIN from now on (installer/toolchain_choice)
            entry["gotoolchain"] = m.gotoolchain
        before = copy.deepcopy(st)
        switch = (history.new_record("install", result.previous, target,
                                     f"installed bundle {m.name} #{m.sequence}")
                  if target is not None and target != result.previous else None)
        state.begin(layout, "install", target, switch, entry, verified.manifest_bytes,
                    verified.kept_signatures())
        try:
            crashpoints.reached("install-journaled")
            state.record(layout, st, entry, verified.manifest_bytes,
                         verified.kept_signatures())
            if verified.adopt_policy:
                result.notes.append(trust_policy.adopt(layout, verified, signers or []))
            crashpoints.reached("install-recorded")
            if target is not None:
                prefix.switch_symlink(layout.current, target)
                crashpoints.reached("install-switched-unlogged")
                if switch is not None:
                    history.append(layout, switch)
        except BaseException:
            state.save(layout, before)
            state.finish(layout)
            raise
        # Committed: from here on nothing is undone.
        made, journal = [], None
        # The wiring may have changed for every installed GOROOT: a bundle brought checksum
        # database data, or GOROOTs installed before GOTOOLCHAIN=auto was the wiring.
        result.notes += wiring.rewire_installed(layout, skip=result.installed)
        toolchain_proxy.record(layout, rebuilt)
        result.notes += go_commands.sync(layout)
        if current is not None:
            result.current = current.id
        crashpoints.reached("install-switched")
        with contextlib.suppress(OSError):  # left behind, the next command re-does it harmlessly
            state.finish(layout)
    except BaseException:
        if journal is not None:
            journal.rollback()
        for dest in reversed(made):
            if dest.is_dir() and dest.parent == layout.versions:
                prefix.remove_tree(dest)
            else:
                with contextlib.suppress(OSError):
                    dest.rmdir()  # versions/ or goproxy/, if this install left them empty
        raise
    finally:
        prefix.remove_tree(staging)


def _check_sumdb(m: Manifest, staging: Path, layout: Layout) -> Optional[Path]:
    """The bundle's checksum database data, verified against the signed manifest and moved
    out of the staged goproxy/ (it merges on its own terms); None when it carries none."""
    if m.sumdb is None:
        return None
    staged = staging / "goproxy" / "sumdb" / m.sumdb.name
    sumdb_merge.verify_staged(m, staged)
    sumdb_merge.check_prefix(layout, m.sumdb)
    aside = staging / "sumdb"
    if (staging / "goproxy" / "sumdb").is_dir():
        os.rename(staging / "goproxy" / "sumdb", aside)
    else:  # a record and no data: only private modules, nothing for the database to vouch
        (aside / m.sumdb.name).mkdir(parents=True)
    return aside / m.sumdb.name


def _check_installed(layout: Layout, verified: Verified, tc: Toolchain, staged: Path,
                     result: InstallResult) -> None:
    """A version already there is verified against this bundle, not trusted for being there;
    a damaged one is swapped for the staged copy, which every check has just passed."""
    found = verify_mod.check_toolchain(layout, verify_mod.Bundle.of(verified), tc.id)
    if found.ok and not found.unreadable:
        result.reused.append(tc.id)
        return
    dest = layout.version_dir(tc.id)
    new = layout.versions / f"{versions.REPAIR_NEW}{tc.id}-{os.getpid()}"
    aside = layout.versions / f"{versions.REPAIR_OLD}{tc.id}-{os.getpid()}"
    os.rename(staged, new)
    os.chmod(new, 0o555)
    prefix.replace_tree(new, dest, aside)
    prefix.remove_tree(aside)
    paths = [x["path"] for x in found.changed + found.missing + found.added + found.unreadable]
    result.repaired.append({"toolchain": tc.id, "changed": len(found.changed),
                            "missing": len(found.missing), "added": len(found.added),
                            "unreadable": len(found.unreadable), "paths": paths[:20]})
    result.notes.append(
        f"{tc.id} was already installed but damaged ({len(found.changed)} changed, "
        f"{len(found.missing)} missing, {len(found.added)} added; first: {shown(paths[0])}): "
        "replaced by this bundle's copy")


def result_dict(result: InstallResult) -> Dict[str, object]:
    d = dict(result.__dict__)
    d["checks"] = [c.to_dict() for c in result.checks]
    d["ok"] = result.ok
    return d
