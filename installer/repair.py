"""Restore exactly what `verify` found damaged: GOROOT files from a bundle, module cache entries
from P/goproxy, a GOROOT rebuilt beside the live one and swapped in at once."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from installer import crashpoints, go_commands, modcache, prefix, toolchain_proxy, versions, wiring
from installer.bundle_reader import BundleReader
from installer.goproxy_merge import PROXY_FILE_MODE
from installer.prefix import Layout
from installer.stage import Selected, stage
from installer.verify import (
    Bundle,
    Expect,
    Report,
    goroot_expectations,
    load_bundles,
    proxy_expectations,
    verify,
)
from installer.versions import REPAIR_NEW, REPAIR_OLD
from keys.allowed_signers import AllowedSigner
from keys.trust_core import Verified
from manifests.errors import NotReadyError, RescueError, TrustError
from manifests.files import write_atomic
from manifests.model import Module
from manifests.modpath import escape_path, escape_version, is_valid_semver, sort_versions
from manifests.text import shown


@dataclass
class RepairResult:
    prefix: str
    bundle: Optional[Dict[str, Any]] = None  # the bundle given, once its header checked out
    found: Dict[str, int] = field(default_factory=dict)  # changed, missing, added before
    restored: List[Dict[str, str]] = field(default_factory=list)  # path, from
    removed: List[str] = field(default_factory=list)  # added paths taken away
    rebuilt: List[str] = field(default_factory=list)  # toolchain ids swapped for a repaired tree
    modules: List[str] = field(default_factory=list)  # module@version rebuilt in the cache
    needs_bundle: List[Dict[str, Any]] = field(default_factory=list)  # what only a bundle restores
    verified_after: Optional[bool] = None
    remaining: int = 0  # paths verify still finds different
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.verified_after)

    def to_dict(self) -> Dict[str, Any]:
        return {"repair": {**self.__dict__, "ok": self.ok}}


def _under(path: str, top: str) -> Optional[str]:
    """`path` relative to `top` ("" for top itself), or None when it is elsewhere."""
    if path == top:
        return ""
    return path[len(top) + 1:] if path.startswith(top + "/") else None


@dataclass
class _Damage:
    """verify's findings, sorted by where they are and what can restore them."""

    goroots: Dict[str, Set[str]] = field(default_factory=dict)  # id -> damaged rel paths
    mode_only: Dict[str, Set[str]] = field(default_factory=dict)  # id -> rels, content intact
    goroot_added: Dict[str, List[str]] = field(default_factory=dict)  # id -> added rels
    proxy: Set[str] = field(default_factory=set)  # rel paths under P/goproxy
    proxy_added: List[str] = field(default_factory=list)
    cache_paths: List[str] = field(default_factory=list)  # module cache paths


def _sort(report: Report, ids: Iterable[str], cache: Optional[Path]) -> _Damage:
    d = _Damage()
    tops = {f"versions/{i}": i for i in ids}
    for entry, kind in ([(c, "changed") for c in report.changed]
                        + [(m, "missing") for m in report.missing]
                        + [(a, "added") for a in report.added]):
        path = str(entry["path"])
        if cache is not None and _under(path, str(cache)) is not None:
            d.cache_paths.append(path)
            continue
        rel = _under(path, "goproxy")
        if rel is not None:
            (d.proxy_added.append(rel) if kind == "added" else d.proxy.add(rel))
            continue
        for top, tc_id in tops.items():
            rel = _under(path, top)
            if rel is None:
                continue
            if kind == "added":
                d.goroot_added.setdefault(tc_id, []).append(rel)
            elif kind == "changed" and set(entry) <= {"path", "bundle", "mode"}:
                d.mode_only.setdefault(tc_id, set()).add(rel)
            else:
                d.goroots.setdefault(tc_id, set()).add(rel)
            break
    return d


def repair(layout: Layout, signers: List[AllowedSigner], trust_source: str,
           bundle_path: Optional[Path] = None, modcache_dir: Optional[Path] = None,
           lock_timeout: float = 300.0, on_wait: Callable[[str], None] = lambda m: None,
           now: Optional[datetime] = None) -> RepairResult:
    started = time.monotonic()
    if not layout.root.is_dir():
        raise NotReadyError(f"repairing {layout.root}: no such prefix; pass the --prefix you "
                            "installed into", operation="repairing", subject=str(layout.root))
    result = RepairResult(str(layout.root))
    with prefix.locked(layout, lock_timeout, on_wait) as lock:
        result.notes += lock.notes + versions.recover(layout)
        versions.checked_current(layout)  # repair restores trees, not a link someone replaced
        ids = versions.installed_ids(layout)
        before = verify(layout, signers, trust_source, every=True, modcache_dir=modcache_dir)
        result.found = {"changed": len(before.changed), "missing": len(before.missing),
                        "added": len(before.added)}
        if before.unreadable:
            first = before.unreadable[0]
            raise NotReadyError(f"repairing {layout.root}: {len(before.unreadable)} path(s) "
                                f"could not be read (first: {shown(first['path'])}: "
                                f"{first['error']}); run repair as the prefix's owner or root",
                                operation="repairing", subject=str(layout.root))
        bundles = load_bundles(layout, signers, trust_source)
        damage = _sort(before, ids, modcache_dir)
        if not before.ok:
            _repair(layout, bundles, damage, result, signers, trust_source, bundle_path,
                    modcache_dir, now)
        result.notes += go_commands.sync(layout)
        after = verify(layout, signers, trust_source, every=True, modcache_dir=modcache_dir)
        result.verified_after = after.ok
        result.remaining = len(after.changed) + len(after.missing) + len(after.added)
    result.seconds = round(time.monotonic() - started, 2)
    return result


@dataclass
class _Tree:
    """One GOROOT to rebuild: what it must be, and which of its paths are not that."""

    carrier: Bundle  # the recorded bundle it came from
    expect: Dict[str, Expect]
    damaged: Set[str]  # changed or missing; all of it when the tree itself is gone
    mode_only: Set[str]  # content intact, mode changed
    added: List[str]

    @property
    def needs_bundle(self) -> bool:
        return any(self.expect.get(r, _DIR).type == "file" for r in self.damaged)


_DIR = Expect("dir")


def _trees(bundles: List[Bundle], damage: _Damage) -> Dict[str, _Tree]:
    out = {}
    for tc_id in sorted(set(damage.goroots) | set(damage.mode_only) | set(damage.goroot_added)):
        carrier = _carrier(bundles, tc_id)
        expect = goroot_expectations(carrier, tc_id)
        damaged = damage.goroots.get(tc_id, set())
        out[tc_id] = _Tree(carrier, expect, set(expect) if "" in damaged else damaged,
                           damage.mode_only.get(tc_id, set()),
                           damage.goroot_added.get(tc_id, []))
    return out


def _repair(layout: Layout, bundles: List[Bundle], damage: _Damage, result: RepairResult,
            signers: List[AllowedSigner], trust_source: str, bundle_path: Optional[Path],
            modcache_dir: Optional[Path], now: Optional[datetime]) -> None:
    rebuilt = toolchain_proxy.recorded(layout)
    proxy_expect = proxy_expectations(bundles, rebuilt)
    _remove_added(layout, damage, result)
    _drop_rebuilt(layout, damage, proxy_expect, rebuilt, result)
    _fix_lists(layout, damage, proxy_expect, result)
    trees = _trees(bundles, damage)
    need_files = [tc_id for tc_id, tree in trees.items() if tree.needs_bundle]
    proxy_files = sorted(r for r in damage.proxy if not proxy_expect[r].listing
                         and proxy_expect[r].type == "file")
    if (need_files or proxy_files) and bundle_path is None:
        for tc_id in need_files:
            tree = trees[tc_id]
            # What no bundle installed goes now: it must not wait for the bundle, since a
            # planted tool runs as go's own (the rest of the tree stays as it is until then).
            _remove_from_goroot(layout, tc_id, tree.added, result)
            left = sorted(tree.damaged | tree.mode_only)
            for path in ([""] if "" in tree.damaged else left):
                _needs(result, tree.carrier, f"versions/{tc_id}/{path}".rstrip("/"))
        for rel in proxy_files:
            _needs(result, _proxy_carrier(bundles, proxy_expect[rel]), f"goproxy/{rel}")
        trees = {i: t for i, t in trees.items() if i not in need_files}
        proxy_files = []
    if trees or proxy_files:
        _from_bundle(layout, trees, proxy_files, proxy_expect, result, signers,
                     trust_source, bundle_path, now)
    if modcache_dir is not None and damage.cache_paths:
        _repair_modcache(layout, bundles, damage, modcache_dir, result)


def _drop_rebuilt(layout: Layout, damage: _Damage, expect: Dict[str, Expect],
                  rebuilt: Dict[str, Dict[str, str]], result: RepairResult) -> None:
    """A damaged toolchain module the installer rebuilt is in no bundle: it is removed (go
    then switches through P/bin/go<V>), and installing its bundle again rebuilds it."""
    for rel in sorted(damage.proxy):
        e = expect.get(rel)
        if e is None or e.bundle != toolchain_proxy.REBUILT or e.listing or e.type != "file":
            continue
        version = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for ext in (".zip", ".info", ".mod"):
            with contextlib.suppress(FileNotFoundError):
                (layout.goproxy / toolchain_proxy.MODULE_DIR / f"{version}{ext}").unlink()
        rebuilt.pop(version, None)
        damage.proxy.discard(rel)
        result.removed.append(f"goproxy/{rel}")
        result.notes.append(f"goproxy/{rel}: the rebuilt toolchain module was damaged and is "
                            "removed; install its bundle again to rebuild it")
        toolchain_proxy.record(layout, [], rebuilt)


def _carrier(bundles: List[Bundle], tc_id: str) -> Bundle:
    return next(b for b in reversed(bundles) if any(t.id == tc_id for t in b.manifest.toolchains))


def _proxy_carrier(bundles: List[Bundle], e: Expect) -> Bundle:
    return next((b for b in bundles if b.label == e.bundle), bundles[-1])


def _needs(result: RepairResult, b: Bundle, path: str) -> None:
    for entry in result.needs_bundle:
        if entry["manifest_sha256"] == b.manifest_sha256:
            entry["paths"].append(path)
            return
    result.needs_bundle.append({**b.to_dict(), "paths": [path]})


def _remove_added(layout: Layout, damage: _Damage, result: RepairResult) -> None:
    """What no bundle installed, in P/goproxy (a GOROOT is rebuilt without it)."""
    _remove(layout, layout.goproxy, "goproxy", damage.proxy_added, result)


def _remove_from_goroot(layout: Layout, tc_id: str, added: List[str],
                        result: RepairResult) -> None:
    """What no bundle installed, taken out of a GOROOT that is not rebuilt (no bundle given);
    its read-only directories are opened for the unlink and closed again."""
    _remove(layout, layout.version_dir(tc_id), f"versions/{tc_id}", added, result)


def _remove(layout: Layout, top: Path, shown_top: str, added: Iterable[str],
            result: RepairResult) -> None:
    done: List[str] = []
    for rel in sorted(added):
        if any(rel.startswith(d + "/") for d in done):
            continue
        path = prefix.inside(layout, top / rel)
        parent_mode = stat.S_IMODE(os.lstat(path.parent).st_mode)
        os.chmod(path.parent, parent_mode | 0o700)
        try:
            if path.is_dir() and not path.is_symlink():
                prefix.remove_tree(path)
            else:
                path.unlink()
        finally:
            os.chmod(path.parent, parent_mode)
        done.append(rel)
        result.removed.append(f"{shown_top}/{rel}")


def _fix_lists(layout: Layout, damage: _Damage, expect: Dict[str, Expect],
               result: RepairResult) -> None:
    """A merged `@v/list` is rewritten from what it must list and what it still lists."""
    for rel in sorted(damage.proxy):
        e = expect.get(rel)
        if e is None or not e.listing:
            continue
        path = prefix.inside(layout, layout.goproxy / rel)
        try:
            kept = {line.split()[0] for line in path.read_text("utf-8", "replace").splitlines()
                    if line.split() and is_valid_semver(line.split()[0])}
        except OSError:
            kept = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(v + "\n" for v in sort_versions(sorted(e.versions | kept)))
        write_atomic(path, text, PROXY_FILE_MODE)
        result.restored.append({"path": f"goproxy/{rel}", "from": "the signed manifests"})
    damage.proxy = {r for r in damage.proxy if not (expect.get(r) and expect[r].listing)}


def _open_bundle(bundle_path: Path, signers: List[AllowedSigner], trust_source: str,
                 now: Optional[datetime]) -> Tuple[BundleReader, Verified]:
    reader = BundleReader(bundle_path)
    try:
        verified = reader.header(signers, trust_source, now or datetime.now(timezone.utc))
    except BaseException:
        reader.close()
        raise
    return reader, verified


def _same_tree(a: Dict[str, Expect], b: Dict[str, Expect]) -> bool:
    def key(e: Expect) -> Tuple[Any, ...]:
        return (e.type, e.mode, tuple(sorted(e.sha256)), e.size, e.target)
    return a.keys() == b.keys() and all(key(a[k]) == key(b[k]) for k in a)


def _from_bundle(layout: Layout, trees: Dict[str, _Tree],
                 proxy_files: List[str], proxy_expect: Dict[str, Expect],
                 result: RepairResult, signers: List[AllowedSigner], trust_source: str,
                 bundle_path: Optional[Path], now: Optional[datetime]) -> None:
    """Rebuild each damaged GOROOT beside the live one, fill its damaged files (and P/goproxy's)
    from the bundle, whose every member is checked as it streams; swap only when all passed."""
    reader: Optional[BundleReader] = None
    verified: Optional[Verified] = None
    if bundle_path is not None and (proxy_files or any(t.needs_bundle for t in trees.values())):
        reader, verified = _open_bundle(bundle_path, signers, trust_source, now)
        given = Bundle.of(verified)
        result.bundle = {"path": str(bundle_path), **given.to_dict()}
    wanted: Dict[str, Path] = {}
    links: List[Tuple[Path, Path]] = []  # (new path, path it shares its content with)
    built: Dict[str, Path] = {}
    temps: List[Tuple[Path, Path]] = []  # proxy file written beside its place -> its place
    try:
        for tc_id, tree in trees.items():
            if tree.needs_bundle:
                assert verified is not None
                _check_carries(bundle_path, verified, tc_id, tree)
            new = layout.versions / f"{REPAIR_NEW}{tc_id}-{os.getpid()}"
            built[tc_id] = new
            _skeleton(layout, tc_id, tree, new, wanted, links)
        for rel in proxy_files:
            assert verified is not None
            e = proxy_expect[rel]
            mem = verified.manifest.member(f"goproxy/{rel}")
            if mem is None or mem.type != "file" or mem.sha256 not in e.sha256:
                carrier = _proxy_carrier([Bundle.of(verified)], e)
                raise NotReadyError(
                    f"repairing goproxy/{rel}: bundle {bundle_path} ({carrier.label}) does not "
                    f"carry it as installed; it came from {e.bundle}", operation="repairing",
                    subject=f"goproxy/{rel}")
            place = prefix.inside(layout, layout.goproxy / rel)
            place.parent.mkdir(parents=True, exist_ok=True)
            tmp = place.with_name(f".{place.name}.repair-{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            wanted[f"goproxy/{rel}"] = tmp
            temps.append((tmp, place))
        if reader is not None and verified is not None:
            stage(reader, verified.manifest, Selected(wanted))
        for dest, src in links:
            os.link(src, dest, follow_symlinks=False)
        for tc_id, new in built.items():
            _finish(layout, tc_id, trees[tc_id], new, result, str(bundle_path))
        for tmp, place in temps:
            os.chmod(tmp, PROXY_FILE_MODE)
            os.replace(tmp, place)
            result.restored.append({"path": str(place.relative_to(layout.root)),
                                    "from": str(bundle_path)})
        temps = []
        crashpoints.reached("repair-built")
        for tc_id, new in list(built.items()):
            live = layout.version_dir(tc_id)
            aside = layout.versions / f"{REPAIR_OLD}{tc_id}-{os.getpid()}"
            prefix.replace_tree(new, live, aside)
            del built[tc_id]
            crashpoints.reached("repair-swapped")
            prefix.remove_tree(aside)
            result.rebuilt.append(tc_id)
    finally:
        if reader is not None:
            reader.close()
        for new in built.values():
            prefix.remove_tree(new)
        for tmp, _place in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _check_carries(bundle_path: Optional[Path], verified: Verified, tc_id: str,
                   tree: _Tree) -> None:
    given, carrier = Bundle.of(verified), tree.carrier
    if not any(t.id == tc_id for t in verified.manifest.toolchains):
        raise NotReadyError(
            f"repairing versions/{tc_id}: bundle {bundle_path} ({given.label}) does not carry "
            f"{tc_id}; it came from bundle {carrier.label}: repair with that bundle",
            operation="repairing", subject=f"versions/{tc_id}")
    if not _same_tree(goroot_expectations(given, tc_id), tree.expect):
        raise NotReadyError(
            f"repairing versions/{tc_id}: bundle {bundle_path} ({given.label}) carries other "
            f"files for {tc_id} than the installed tree, which came from bundle "
            f"{carrier.label}: repair with that bundle, or install this one after `remove "
            f"{tc_id}`", operation="repairing", subject=f"versions/{tc_id}")


def _skeleton(layout: Layout, tc_id: str, tree: _Tree, new: Path, wanted: Dict[str, Path],
              links: List[Tuple[Path, Path]]) -> None:
    """The repaired tree with every intact file hard-linked from the live one (no copy, and the
    live tree is never written); adds the bundle members still to fill to `wanted`, by member
    path, and to `links` the damaged paths that share one member's content with another."""
    live = layout.version_dir(tc_id)
    carrier = tree.carrier
    root = next(t.root for t in carrier.manifest.toolchains if t.id == tc_id)
    os.mkdir(new, 0o700)
    for rel in sorted(tree.expect):
        e, dest, src = tree.expect[rel], new / rel, live / rel
        if rel == "" or e.type == "dir":
            if rel:
                os.mkdir(dest, 0o700)
        elif e.type == "symlink":
            os.symlink(e.target, dest)
        elif rel in tree.damaged:
            mem = carrier.manifest.member(f"{root}/{rel}")
            assert mem is not None  # expectations come from these members
            # A hard link's content is its target's, which may live in another toolchain.
            content = mem if mem.type == "file" else carrier.manifest.member(mem.target)
            assert content is not None
            if content.path in wanted:
                links.append((dest, wanted[content.path]))
            else:
                wanted[content.path] = dest
        elif rel in tree.mode_only:
            shutil.copyfile(src, dest, follow_symlinks=False)  # content checked: mode only
        else:
            try:
                os.link(src, dest, follow_symlinks=False)
            except OSError:  # another file system or owner: a copy does as well
                shutil.copyfile(src, dest, follow_symlinks=False)


def _finish(layout: Layout, tc_id: str, tree: _Tree, new: Path, result: RepairResult,
            bundle: str) -> None:
    """go.env and modes, then record what was restored."""
    if "go.env" in tree.damaged:
        wiring.write_go_env(new, layout)
    for rel in sorted(tree.expect, reverse=True):  # children before their (read-only) parents
        e = tree.expect[rel]
        if e.mode is not None and (rel in tree.damaged or rel in tree.mode_only
                                   or e.type == "dir"):
            os.chmod(new / rel if rel else new, e.mode)
    for rel in sorted(tree.damaged | tree.mode_only):
        how = ("the signed manifest" if tree.expect.get(rel, _DIR).type != "file"
               else "the live tree (mode only)" if rel in tree.mode_only else bundle)
        result.restored.append({"path": f"versions/{tc_id}/{rel}".rstrip("/"), "from": how})
    result.removed += [f"versions/{tc_id}/{rel}" for rel in tree.added]


def _repair_modcache(layout: Layout, bundles: List[Bundle], damage: _Damage, cache: Path,
                     result: RepairResult) -> None:
    """Module cache entries come back from P/goproxy (already checked, or just repaired)."""
    mods: List[Module] = []
    seen: Set[Tuple[str, str]] = set()
    for b in bundles:
        for mod in b.manifest.modules:
            em, ev = escape_path(mod.path), escape_version(mod.version)
            tops = (str(cache / "cache" / "download" / em / "@v" / ev) + ".",
                    str(cache / f"{em}@{ev}"))
            hit = any(p.startswith(tops[0]) or _under(p, tops[1]) is not None
                      for p in damage.cache_paths)
            if hit and (mod.path, mod.version) not in seen:
                seen.add((mod.path, mod.version))
                mods.append(mod)
    if not mods:
        return
    done = modcache.populate(layout.goproxy, mods, cache, force=True)
    result.modules += done.written
    for mod in mods:
        result.restored.append({"path": f"{cache}/{escape_path(mod.path)}@"
                                        f"{escape_version(mod.version)}",
                                "from": str(layout.goproxy)})



def failure(result: RepairResult) -> RescueError:
    """Why the prefix is still not as signed: a bundle to bring (2), or damage left (3)."""
    if result.needs_bundle:
        wants = "; ".join(f"{b['name']} #{b['sequence']} (manifest sha256 "
                          f"{b['manifest_sha256']}) for {', '.join(b['paths'][:3])}"
                          + (f" and {len(b['paths']) - 3} more" if len(b['paths']) > 3 else "")
                          for b in result.needs_bundle)
        done = f"{len(result.restored) + len(result.removed)} path(s) repaired from local " \
               "copies" if result.restored or result.removed else ""
        if result.removed:
            done += (f" (removed what no bundle installed: {result.removed[0]}"
                     + (f" and {len(result.removed) - 1} more" if len(result.removed) > 1
                        else "") + ")")
        done += "; " if done else ""
        return NotReadyError(
            f"repairing {result.prefix}: {done}still missing or changed, and only the bundle "
            f"it came from restores it: {wants}. Bring that bundle file and run `repair "
            "BUNDLE`", operation="repairing",
            subject=result.prefix, expected="the bundle that installed the damaged files",
            got="no bundle given")
    return TrustError(
        f"repairing {result.prefix}: verify still finds {result.remaining} path(s) different "
        "after the repair; something is changing the prefix while rescue works on it (see "
        "`verify --all`), or run `repair` again", operation="repairing", subject=result.prefix,
        expected="every path as signed", got=f"{result.remaining} path(s) differ")
