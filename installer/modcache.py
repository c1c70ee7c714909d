"""Rebuild a Go module cache (GOMODCACHE) from the prefix's verified GOPROXY, for GOPROXY=off."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional

from installer import prefix
from manifests.errors import NotReadyError
from manifests.files import atomic_writer, write_atomic
from manifests.model import Module
from manifests.modpath import (
    ModulePathError,
    canonical_version,
    escape_path,
    escape_version,
    sort_versions,
    unescape_version,
)
from manifests.modzip import extract_module_zip


@dataclass
class ModcacheResult:
    dir: str
    written: List[str] = field(default_factory=list)  # module@version written or repaired
    kept: List[str] = field(default_factory=list)  # module@version already complete

    def to_dict(self) -> Dict[str, object]:
        return {"dir": self.dir, "written": self.written, "kept": self.kept}


def _goenv_file(env: Mapping[str, str]) -> Optional[Path]:
    """The user's `go env -w` file, as os.UserConfigDir()/go/env; None when GOENV=off."""
    goenv = env.get("GOENV")
    if goenv == "off":
        return None
    if goenv:
        return Path(goenv)
    if sys.platform == "win32":
        base = env.get("APPDATA")
    elif sys.platform == "darwin":
        base = str(Path(env.get("HOME", "")) / "Library" / "Application Support")
    else:
        base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "")) / ".config")
    return Path(base) / "go" / "env" if base else None


def _goenv_value(env: Mapping[str, str], key: str) -> str:
    """KEY as `go env` would see it: the process environment, then the user's go env file."""
    if env.get(key):
        return env[key]
    path = _goenv_file(env)
    try:
        text = path.read_text(encoding="utf-8") if path else ""
    except OSError:
        return ""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return ""


def default_gomodcache(env: Optional[Mapping[str, str]] = None) -> Path:
    """`go env GOMODCACHE` without running go: GOMODCACHE, else GOPATH[0]/pkg/mod, else
    $HOME/go/pkg/mod. Go insists the result is absolute, and so does this."""
    env = os.environ if env is None else env
    value = _goenv_value(env, "GOMODCACHE")
    if not value:
        gopath = next((p for p in _goenv_value(env, "GOPATH").split(os.pathsep) if p), "")
        if not gopath:
            home = env.get("USERPROFILE" if sys.platform == "win32" else "HOME")
            if not home:
                raise NotReadyError("finding the module cache: neither GOMODCACHE, GOPATH nor "
                                    "HOME is set; pass --modcache-dir DIR")
            gopath = str(Path(home) / "go")
        value = str(Path(gopath) / "pkg" / "mod")
    if not os.path.isabs(value):
        raise NotReadyError(f"finding the module cache: GOMODCACHE {value!r} is not an absolute "
                            "path (go refuses it too); pass --modcache-dir DIR")
    return Path(value)



def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _rewrite_list(dl: Path) -> None:
    """As Go's rewriteVersionList: every canonical version with a .mod file, semver order."""
    versions = []
    for f in dl.iterdir():
        if f.name.endswith(".mod") and not f.name.startswith("."):
            try:
                v = unescape_version(f.name[:-4])
            except ModulePathError:
                continue
            if canonical_version(v) == v:
                versions.append(v)
    text = "".join(v + "\n" for v in sort_versions(versions)).encode()
    if not _same(dl / "list", text):
        write_atomic(dl / "list", text, durable=False)


def _copy_atomic(src: Path, dest: Path) -> None:
    with atomic_writer(dest, durable=False) as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)


def _extracted_ok(dl: Path, ev: str, mod: Module, extracted: Path) -> bool:
    """Go's DownloadDir test (dir present, no .partial, .ziphash present), and our hash."""
    try:
        ziphash = (dl / (ev + ".ziphash")).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return (ziphash == mod.zip_hash and extracted.is_dir()
            and not extracted.with_name(extracted.name + ".partial").exists())


def populate(goproxy: Path, modules: Iterable[Module], cache_dir: Path,
             read_only: bool = True, workers: int = 8, force: bool = False,
             on_module: Callable[[int], None] = lambda n: None) -> ModcacheResult:
    """Write each module version of `modules` from `goproxy` (verified, merged) into the cache.

    `cache/download/<m>/@v/` gets `.info`, `.mod`, `.zip`, `.ziphash` (the manifest's h1, no
    newline) and `list`; the zip is extracted to `<m>@<v>/` read-only, as Go does, behind a
    `.partial` marker so an interrupted run is redone. Versions already complete are kept.
    A `.mod` that differs from the signed one is replaced; an `.info` already there is kept
    (proxies differ in its timestamps and go checks no hash of it). Module paths are written
    concurrently (the work is file system latency), the versions of one path in order.
    `force` (repair) writes `.mod`, `.zip` and the extracted tree again whatever is there.
    Nothing is fsynced file by file (`go mod download` does not either): the cache can be
    rebuilt from P/goproxy, the `.partial` and `.ziphash` markers catch a half-written entry,
    and one sync of its file system at the end makes the whole of it durable.
    """
    result = ModcacheResult(str(cache_dir))
    groups: Dict[str, List[Module]] = {}
    for mod in modules:
        groups.setdefault(mod.path, []).append(mod)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            def group_done(group: List[Module]) -> List[bool]:
                out = []
                for m in group:
                    out.append(_one(goproxy, m, cache_dir, read_only, force))
                    on_module(_zip_size(goproxy, m))
                return out

            done = list(pool.map(group_done, groups.values()))
    except OSError as exc:
        raise NotReadyError(f"writing module cache {cache_dir}: {exc}; pass --modcache-dir DIR "
                            "with a directory you can write") from None
    prefix.sync_filesystem(cache_dir)
    for group, changed in zip(groups.values(), done):
        for mod, wrote in zip(group, changed):
            (result.written if wrote else result.kept).append(f"{mod.path}@{mod.version}")
    return result


def _zip_size(goproxy: Path, mod: Module) -> int:
    try:
        return (goproxy / escape_path(mod.path) / "@v" / f"{escape_version(mod.version)}.zip"
                ).stat().st_size
    except OSError:
        return 0


def _one(goproxy: Path, mod: Module, cache_dir: Path, read_only: bool,
         force: bool = False) -> bool:
    """Bring one module version up to date in the cache; True when anything was written."""
    em, ev = escape_path(mod.path), escape_version(mod.version)
    src = goproxy / em / "@v"
    dl = cache_dir / "cache" / "download" / em / "@v"
    extracted = cache_dir / f"{em}@{ev}"
    changed = False
    dl.mkdir(parents=True, exist_ok=True)
    for ext in (".info", ".mod"):
        have = src / (ev + ext)
        if not have.exists() or (ext == ".info" and (dl / (ev + ext)).exists()):
            continue
        data = have.read_bytes()
        if force or not _same(dl / (ev + ext), data):
            write_atomic(dl / (ev + ext), data, durable=False)
            changed = True
    if mod.zip_hash:
        zip_dest = dl / (ev + ".zip")
        if force or not _extracted_ok(dl, ev, mod, extracted):
            _copy_atomic(src / (ev + ".zip"), zip_dest)
            _extract(zip_dest, dl, ev, mod, extracted, read_only)
            changed = True
        elif not zip_dest.exists():
            _copy_atomic(src / (ev + ".zip"), zip_dest)
            changed = True
    if changed:
        _rewrite_list(dl)
    return changed


def _extract(zip_path: Path, dl: Path, ev: str, mod: Module, extracted: Path,
             read_only: bool) -> None:
    partial = extracted.with_name(extracted.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.touch()
    # Built beside and swapped in: a build reading the old tree never sees half of one. The
    # names start with `.` and sit in the module's parent, where go looks for no module.
    new = extracted.with_name(f".{extracted.name}.new-{os.getpid()}-{threading.get_ident()}")
    old = extracted.with_name(f".{extracted.name}.old-{os.getpid()}-{threading.get_ident()}")
    for stale in (new, old):
        prefix.remove_tree(stale)
    try:
        extract_module_zip(zip_path, mod.path, mod.version, new, read_only=read_only)
        prefix.replace_tree(new, extracted, old)
    finally:
        prefix.remove_tree(new)
        prefix.remove_tree(old)
    write_atomic(dl / (ev + ".ziphash"), mod.zip_hash.encode(), durable=False)
    partial.unlink()
