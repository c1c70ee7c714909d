"""verify's module checks: P/goproxy's `.zip` and `.mod` by go.sum `h1:`, and a module cache."""

from __future__ import annotations

import hashlib
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, List, Set, Tuple

from manifests.dirhash import hash1, hash_gomod, hash_zip, zip_entry_name
from manifests.errors import NotReadyError
from manifests.model import Module
from manifests.modpath import escape_path, escape_version

if TYPE_CHECKING:
    from installer.verify import Bundle, Verifier


def check_module_hashes(v: Verifier, goproxy: Path, bundles: List[Bundle]) -> None:
    """Each `.zip` and `.mod` in P/goproxy against its go.sum `h1:`, as go itself checks."""
    jobs = []
    for b, mod in _modules(bundles):
        base = goproxy / escape_path(mod.path) / "@v" / escape_version(mod.version)
        shown_base = f"goproxy/{escape_path(mod.path)}/@v/{escape_version(mod.version)}"
        if mod.zip_hash:
            jobs.append((f"{shown_base}.zip", Path(f"{base}.zip"), mod.zip_hash, "zip", b))
        if mod.mod_hash:
            jobs.append((f"{shown_base}.mod", Path(f"{base}.mod"), mod.mod_hash, "mod", b))
    _h1_jobs(v, jobs)


def _h1_jobs(v: Verifier, jobs: List[Tuple[str, Path, str, str, Bundle]]) -> None:
    def one(job: Tuple[str, Path, str, str, Bundle]) -> Any:
        shown_path, path, _want, kind, _b = job
        try:
            if kind == "zip":
                return hash_zip(str(path))
            if kind == "mod":
                return hash_gomod(path.read_bytes())
            if kind == "ziphash":
                return path.read_text(encoding="utf-8").strip()
            if not path.is_dir():
                return None
            return hash_dir(path, kind[len("dir:"):])
        except FileNotFoundError:
            return None
        except OSError as exc:
            return exc
        except (zipfile.BadZipFile, ValueError, UnicodeDecodeError):
            return "not a readable zip" if kind == "zip" else "unreadable"

    with ThreadPoolExecutor(max_workers=v.workers) as pool:
        for job, got in zip(jobs, pool.map(one, jobs)):
            shown_path, _path, want, _kind, b = job
            if got is None:
                if not any(m["path"] == shown_path for m in v.report.missing):
                    v.report.missing.append({"path": shown_path, "type": "file",
                                             "bundle": b.label})
            elif isinstance(got, OSError):
                v._unreadable(shown_path, got)
            elif got != want:
                v.change(shown_path, b.label, h1=[want, got])


def hash_dir(path: Path, prefix: str) -> str:
    """Go's dirhash.HashDir(dir, "M@V", Hash1): every file under `path`, named `M@V/rel`."""
    files = []
    for dirpath, _dirs, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            files.append((f"{prefix}/{rel}", (lambda full=full: open(full, "rb"))))
    return hash1(files)


def _modules(bundles: List[Bundle]) -> Iterable[Tuple[Bundle, Module]]:
    seen: Set[Tuple[str, str]] = set()
    for b in bundles:
        for mod in b.manifest.modules:
            if (mod.path, mod.version) not in seen:
                seen.add((mod.path, mod.version))
                yield b, mod


def check_modcache(v: Verifier, cache: Path, goproxy: Path, bundles: List[Bundle]) -> None:
    """A module cache `install --modcache` rebuilt: `.ziphash`, `.zip`, `.mod`, extracted trees."""
    if not cache.is_dir():
        raise NotReadyError(f"verifying module cache {cache}: no such directory; pass the "
                            "--modcache DIR that install filled", operation="verifying",
                            subject=str(cache))
    jobs = []
    for b, mod in _modules(bundles):
        em, ev = escape_path(mod.path), escape_version(mod.version)
        dl = cache / "cache" / "download" / em / "@v"
        if mod.mod_hash:
            jobs.append((str(dl / f"{ev}.mod"), dl / f"{ev}.mod", mod.mod_hash, "mod", b))
        if mod.zip_hash:
            for ext, kind in ((".ziphash", "ziphash"), (".zip", "zip")):
                jobs.append((str(dl / (ev + ext)), dl / (ev + ext), mod.zip_hash, kind, b))
            tree = cache / f"{em}@{ev}"
            jobs.append((str(tree), tree, mod.zip_hash, f"dir:{mod.path}@{mod.version}", b))
    _h1_jobs(v, jobs)
    # An extracted tree that differs: name its files, against the zip P/goproxy holds.
    for b, mod in _modules(bundles):
        if not mod.zip_hash:
            continue
        em, ev = escape_path(mod.path), escape_version(mod.version)
        tree = cache / f"{em}@{ev}"
        if any(c["path"] == str(tree) for c in v.report.changed):
            _name_tree_changes(v, tree, goproxy / em / "@v" / f"{ev}.zip", mod, b)


def _name_tree_changes(v: Verifier, tree: Path, zip_path: Path, mod: Module,
                       b: Bundle) -> None:
    prefix = f"{mod.path}@{mod.version}/"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            want = {zip_entry_name(i)[len(prefix):]: hashlib.sha256(zf.read(i)).hexdigest()
                    for i in zf.infolist() if not i.is_dir()}
    except (OSError, zipfile.BadZipFile):
        return  # the proxy's zip is itself reported; the tree's h1 finding stands
    have = {}
    for dirpath, _dirs, filenames in os.walk(tree):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, tree).replace(os.sep, "/")
            try:
                with open(full, "rb") as f:
                    have[rel] = hashlib.sha256(f.read()).hexdigest()
            except OSError as exc:
                v._unreadable(full, exc)
    for rel in sorted(set(want) | set(have)):
        full = str(tree / rel)
        if rel not in have:
            v.report.missing.append({"path": full, "type": "file", "bundle": b.label})
        elif rel not in want:
            v.report.added.append({"path": full, "type": "file"})
        elif want[rel] != have[rel]:
            v.change(full, b.label, sha256=[want[rel], have[rel]])
