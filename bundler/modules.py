"""Decide which module files a bundle carries, fetch them concurrently, verify them by go.sum."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from bundler.blobstore import BlobStore
from bundler.goproxy import GoProxy
from bundler.gosum import SumLine, parse_gomod, parse_gosum
from manifests.dirhash import hash_gomod, hash_zip
from manifests.errors import NotReadyError, TrustError
from manifests.files import sha256_file, write_atomic
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import (
    ModulePathError,
    check_module_version,
    escape_path,
    escape_version,
    max_version,
    semver_key,
)
from manifests.modzip import check_module_zip

Key = tuple[str, str]  # (module path, version)


@dataclass(frozen=True)
class FetchedModule:
    path: str
    version: str
    info: bytes | None
    mod: bytes | None
    zip_path: Path | None  # in the content-addressed cache; never rebuilt, byte-for-byte upstream
    zip_hash: str | None  # h1: of the zip (go.sum's `M V h1:`)
    mod_hash: str | None  # h1: of the .mod (go.sum's `M V/go.mod h1:`)


@dataclass(frozen=True)
class FetchEvent:
    path: str
    version: str
    kind: str  # "info", "mod" or "zip"
    cached: bool  # True when the cache already held verified bytes
    size: int


@dataclass(frozen=True)
class _Item:
    sha256: str
    h1: str | None
    blob: Path


def parse_explicit(entry: str) -> Key:
    """`module@version` as given in a bundle spec; the version must be exact and canonical."""
    path, sep, version = entry.strip().rpartition("@")
    if not sep or not path:
        raise NotReadyError(f"module entry {entry!r}: want module@version, e.g. "
                            "golang.org/x/text@v0.14.0")
    try:
        check_module_version(path, version)
    except ModulePathError as e:
        raise NotReadyError(f"module entry {entry!r}: {e} (rescue needs exact versions, "
                            "not queries like @latest)") from None
    return path, version


def load_gosums(files: Iterable[str | os.PathLike[str]]) -> dict[tuple[str, str, str], SumLine]:
    """Merge go.sum files; two different hashes for one module file means one was tampered."""
    merged: dict[tuple[str, str, str], SumLine] = {}
    for f in files:
        try:
            data = Path(f).read_bytes()
        except OSError as e:
            raise NotReadyError(f"reading go.sum: {e}") from None
        for line in parse_gosum(data, str(f)).lines:
            key = (line.path, line.version, line.kind)
            other = merged.setdefault(key, line)
            if other.hash != line.hash:
                what = f"{line.path}@{line.version}" + ("/go.mod" if line.kind == "mod" else "")
                raise TrustError(f"go.sum files disagree about {what}:\n\t{other.where}: "
                                 f"{other.hash}\n\t{line.where}: {line.hash}", tampering=True)
    return merged


class _Records:
    """`root/modules/<esc m>/@v/<esc v>.<kind>.json` records beside the download store's blobs.

    A record names the blob and the h1 it had when first verified, which also pins modules
    that no go.sum covers: a later download must match the first.
    """

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def record_path(self, m: str, v: str, kind: str) -> Path:
        root = self.store.root
        return root / "modules" / escape_path(m) / "@v" / f"{escape_version(v)}.{kind}.json"

    def lookup(self, m: str, v: str, kind: str) -> _Item | None:
        try:
            rec = json.loads(self.record_path(m, v, kind).read_text())
            return _Item(rec["sha256"], rec.get("h1"), self.store.path_for(rec["sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store_verified(self, m: str, v: str, kind: str, staged: Path, h1: str | None) -> _Item:
        sha, blob = self.store.add(staged)
        rec = self.record_path(m, v, kind)
        rec.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(rec, json.dumps({"sha256": sha, "h1": h1}))
        return _Item(sha, h1, blob)


def _h1(kind: str, path: Path) -> str | None:
    if kind == "zip":
        return hash_zip(path)
    return hash_gomod(path.read_bytes()) if kind == "mod" else None


def _mismatch(m: str, v: str, kind: str, got: str, want: str, label: str, note: str) -> TrustError:
    what = f"{m}@{v}" + ("/go.mod" if kind == "mod" else "")
    return TrustError(f"verifying {what}: checksum mismatch\n\tdownloaded: {got}\n\t{label:<11} "
                      f"{want}\n\t({note})", tampering=True)


class _Fetcher:
    def __init__(self, proxy: GoProxy, cache_dir: Path, sums: dict[tuple[str, str, str], SumLine],
                 limits: Limits, progress: Callable[[FetchEvent], None] | None) -> None:
        self.proxy, self.records, self.sums = proxy, _Records(BlobStore(cache_dir)), sums
        self.limits, self.progress = limits, progress

    def obtain(self, m: str, v: str, kind: str) -> _Item:
        pin = self.sums.get((m, v, kind))
        rec = self.records.lookup(m, v, kind)
        if rec is not None and rec.blob.is_file():
            # Re-verify on reuse: a cache is just a directory anyone on this host could edit.
            ok = (sha256_file(rec.blob) == rec.sha256 if kind == "info"
                  else _safe_h1(kind, rec.blob) == rec.h1)
            if ok and (pin is None or pin.hash == rec.h1):
                self._report(m, v, kind, True, rec.blob)
                return rec
        try:
            with self.records.store.staged() as tmp:
                item = self._download(m, v, kind, tmp, pin, rec)
        except NotReadyError as e:
            line = pin or self.sums.get((m, v, "zip")) or self.sums.get((m, v, "mod"))
            if line is None:
                raise
            project = Path(line.where.rpartition(":")[0]).parent
            raise NotReadyError(f"{e}\n\tneeded by project {project} (go.sum line "
                                f"{line.where}); the bundle cannot carry it") from None
        self._report(m, v, kind, False, item.blob)
        return item

    def _download(self, m: str, v: str, kind: str, tmp: Path, pin: SumLine | None,
                  rec: _Item | None) -> _Item:
        """Fetch into `tmp`, verify against go.sum or the first download's record, store."""
        if kind == "zip":
            url = self.proxy.zip_to(m, v, tmp)
            problems = check_module_zip(tmp, m, v, self.limits)
            if problems:
                lines = "\n\t".join(problems)
                raise TrustError(f"verifying {m}@{v}: module zip from {url} is not valid:"
                                 f"\n\t{lines}", tampering=True)
        else:
            url = f"GOPROXY={self.proxy.config.goproxy}"
            tmp.write_bytes(self.proxy.info(m, v) if kind == "info" else self.proxy.mod(m, v))
        got = _safe_h1(kind, tmp, url=url, m=m, v=v)
        if pin is not None and got != pin.hash:
            raise _mismatch(m, v, kind, got or "", pin.hash, "go.sum:",
                            f"go.sum line {pin.where}; downloaded from {url}")
        if pin is None and rec is not None and rec.h1 and got != rec.h1:
            raise _mismatch(m, v, kind, got or "", rec.h1, "pinned:",
                            f"pinned at first download in "
                            f"{self.records.record_path(m, v, kind)}; downloaded from {url}")
        return self.records.store_verified(m, v, kind, tmp, got)

    def _report(self, m: str, v: str, kind: str, cached: bool, blob: Path) -> None:
        if self.progress:
            self.progress(FetchEvent(m, v, kind, cached, blob.stat().st_size))


def _safe_h1(kind: str, path: Path, url: str = "", m: str = "", v: str = "") -> str | None:
    try:
        return _h1(kind, path)
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        if not url:
            return None  # a damaged cache entry: fetch it again
        raise TrustError(f"verifying {m}@{v}: {url}: not a readable module zip: {e}",
                         tampering=True) from None


def _run(pool: ThreadPoolExecutor, jobs: dict[Future, object],
         on_done: Callable[[object, object], None]) -> None:
    """Wait for jobs (which on_done may add to); the first failure cancels the rest."""
    while jobs:
        done, _ = wait(list(jobs), return_when=FIRST_COMPLETED)
        for fut in done:
            tag = jobs.pop(fut)
            try:
                result = fut.result()
            except BaseException:
                for other in jobs:
                    other.cancel()
                raise
            on_done(tag, result)


def resolve_and_fetch(proxy: GoProxy, cache_dir: str | os.PathLike[str], *,
                      gosum_files: Iterable[str | os.PathLike[str]] = (),
                      explicit: Iterable[str] = (), transitive: bool = True, workers: int = 8,
                      progress: Callable[[FetchEvent], None] | None = None,
                      limits: Limits = DEFAULT_LIMITS) -> list[FetchedModule]:
    """Fetch and verify every module file the go.sum files and explicit entries call for.

    go.sum `M V h1:` lines carry M@V's .zip and .info, `M V/go.mod h1:` lines its .mod and
    .info; modules at the pruned edge of a project's graph (`_pruned_edge`) their .info.
    Explicit module@version entries carry all three and, when `transitive`, the module graph
    their go.mod files require: the .mod of every module version in it and the .zip/.info of
    the versions minimal version selection picks (the highest required).
    """
    gosum_files = list(gosum_files)
    sums = load_gosums(gosum_files)
    roots = [parse_explicit(e) for e in explicit]
    wanted: dict[Key, set[str]] = {}
    for (m, v, kind) in sums:
        # `go list -m all` reads the .info of every module in the build list, and a module
        # go.sum pins only by its go.mod can be in it (selected but providing no package).
        wanted.setdefault((m, v), set()).update({"zip", "info"} if kind == "zip"
                                                else {"mod", "info"})
    for key in roots:
        wanted.setdefault(key, set()).update({"mod", "info", "zip"})
    fetcher = _Fetcher(proxy, Path(cache_dir), sums, limits, progress)
    items: dict[tuple[str, str, str], _Item] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        if transitive and roots:
            graph: set[Key] = set(roots)

            def walked(tag: object, item: object) -> None:
                m, v = tag  # type: ignore[misc]
                items[(m, v, "mod")] = item  # type: ignore[assignment]
                for req in _requirements(m, v, item.blob.read_bytes()):  # type: ignore[attr-defined]
                    if req not in graph:
                        graph.add(req)
                        jobs[pool.submit(fetcher.obtain, *req, "mod")] = req

            jobs: dict[Future, object] = {pool.submit(fetcher.obtain, m, v, "mod"): (m, v)
                                          for m, v in roots}
            _run(pool, jobs, walked)
            by_path: dict[str, list[str]] = {}
            for m, v in graph:
                wanted.setdefault((m, v), set()).add("mod")
                by_path.setdefault(m, []).append(v)
            for m, versions in by_path.items():
                wanted[(m, max_version(versions))].update({"zip", "info"})
        todo = {pool.submit(fetcher.obtain, m, v, kind): (m, v, kind)
                for (m, v), kinds in wanted.items() for kind in sorted(kinds)
                if (m, v, kind) not in items}
        _run(pool, todo, lambda tag, item: items.__setitem__(tag, item))  # type: ignore[arg-type]
        edges: dict[Key, Path] = {}
        for f in gosum_files:
            for key in _pruned_edge(Path(f), items):
                if key not in wanted:
                    edges.setdefault(key, Path(f).parent)
        for key in edges:
            wanted[key] = {"info"}

        def edge_info(m: str, v: str) -> _Item:
            try:
                return fetcher.obtain(m, v, "info")
            except NotReadyError as e:
                raise NotReadyError(f"{e}\n\tneeded by project {edges[(m, v)]} (in its build "
                                    "list, required by a go.mod of its module graph); the "
                                    "bundle cannot carry it") from None

        more = {pool.submit(edge_info, m, v): (m, v, "info") for m, v in edges}
        _run(pool, more, lambda tag, item: items.__setitem__(tag, item))  # type: ignore[arg-type]
    out = []
    for (m, v), kinds in sorted(wanted.items(), key=lambda kv: (kv[0][0], semver_key(kv[0][1]))):
        info, mod, z = (items.get((m, v, k)) if k in kinds else None
                        for k in ("info", "mod", "zip"))
        out.append(FetchedModule(
            m, v, info.blob.read_bytes() if info else None, mod.blob.read_bytes() if mod else None,
            z.blob if z else None, z.h1 if z else None, mod.h1 if mod else None))
    return out


def _pruned_edge(gosum: Path, items: dict[tuple[str, str, str], _Item]) -> set[Key]:
    """Module versions a project's build list holds that its go.sum does not name.

    With graph pruning (go 1.17+) the requirements of a pruned dependency join the module
    graph without their go.mod being read, so go.sum has no line for them; `go list -m all`
    still lists the selected ones and reads their .info. Approximated without running go:
    a version some go.mod of the project's graph requires, the highest of its path that the
    project's go.mod, go.sum and those go.mod files name.
    """
    lines = parse_gosum(gosum.read_bytes(), str(gosum)).lines
    pinned = {(x.path, x.version) for x in lines}
    gomod = gosum.with_name("go.mod")
    named = set(pinned)
    # The project's own requirements only rank versions: one missing from go.sum is replaced
    # by a directory (or go.sum is stale), and no proxy has it. No go.mod: go.sum lines only.
    with contextlib.suppress(OSError):
        named.update((r.path, r.version)
                     for r in parse_gomod(gomod.read_bytes(), str(gomod)).requires)
    required: set[Key] = set()
    for m, v in pinned:
        item = items.get((m, v, "mod"))
        if item is not None:
            required.update(_requirements(m, v, item.blob.read_bytes()))
    highest: dict[str, str] = {}
    for m, v in named | required:
        highest[m] = max_version([highest[m], v]) if m in highest else v
    return {(m, v) for m, v in required - named if highest[m] == v}


def _requirements(m: str, v: str, data: bytes) -> list[Key]:
    where = f"{m}@{v}/go.mod"
    try:
        gomod = parse_gomod(data, where)
    except NotReadyError as e:
        raise TrustError(f"parsing {where}: {e}") from None
    if gomod.module is not None and gomod.module != m:
        raise TrustError(f"parsing {where}: module declares its path as: {gomod.module}\n"
                         f"\tbut was required as: {m}")
    reqs = []
    for r in gomod.requires:
        try:
            check_module_version(r.path, r.version)
        except ModulePathError as e:
            raise TrustError(f"parsing {where}: require {r.path} {r.version}: {e}") from None
        if r.path != m:
            reqs.append((r.path, r.version))
    return reqs
