"""Rebuild a Go module cache (GOMODCACHE) from the prefix's verified GOPROXY, for GOPROXY=off."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from installer import prefix
from manifests.dirhash import hash_gomod
from manifests.errors import NotReadyError, TrustError
from manifests.files import NEW_FILE, atomic_writer, write_all, write_atomic
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
    for name in os.listdir(dl):
        if name.endswith(".mod") and not name.startswith("."):
            try:
                v = unescape_version(name[:-4])
            except ModulePathError:
                continue
            if canonical_version(v) == v:
                versions.append(v)
    text = "".join(v + "\n" for v in sort_versions(versions)).encode()
    if not _same(dl / "list", text):
        _write(dl / "list", text)


def _write(dest: Path, data: bytes) -> None:
    """A new file is created in place, with no temp name to make and rename: a `.ziphash` is
    written before its tree appears (go trusts neither alone) and a torn `list` only lists
    fewer versions. An existing file is replaced whole, through a temp name."""
    try:
        fd = os.open(dest, NEW_FILE, 0o644)
    except FileExistsError:
        write_atomic(dest, data, durable=False)
        return
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _place(src: Path, dest: Path) -> None:
    """`dest` gets `src`'s bytes: a hard link when `src` is read-only (P/goproxy's files are
    0444 and go replaces cache files by rename, never writes them in place), else a copy.
    A link makes no new inode, which is most of what a small file costs; it fails across
    file systems or where links are not allowed, and then the bytes are copied."""
    try:
        if os.stat(src).st_mode & 0o222 == 0:
            try:
                os.link(src, dest)
                return
            except FileExistsError:
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # left by a killed process that had our pid and thread
                os.link(src, tmp)
                os.replace(tmp, dest)
                return
    except OSError:
        pass  # another file system, no links allowed here: copy
    with atomic_writer(dest, durable=False) as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)


def _extracted_ok(dl: Path, ev: str, mod: Module, extracted: Path) -> bool:
    """Go's DownloadDir test (dir present, no .partial, .ziphash present), and our hash."""
    try:
        ziphash = (dl / (ev + ".ziphash")).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return (ziphash == mod.zip_hash and extracted.is_dir()
            and not os.path.lexists(_partial(extracted)))


def _partial(extracted: Path) -> Path:
    return extracted.with_name(extracted.name + ".partial")


def populate(goproxy: Path, modules: Iterable[Module], cache_dir: Path,
             read_only: bool = True, workers: int = 4, force: bool = False,
             on_module: Callable[[int], None] = lambda n: None,
             also_sync: Sequence[Path] = ()) -> ModcacheResult:
    """Write each module version of `modules` from `goproxy` (verified, merged) into the cache.

    `cache/download/<m>/@v/` gets `.info`, `.mod`, `.zip` (hard links to P/goproxy's read-only
    copies where the file system allows), `.ziphash` (the manifest's h1, no newline) and
    `list`; the zip is extracted to `<m>@<v>/` read-only, as Go does. Each `.mod` and each
    extracted zip is hashed against the signed h1 before it is put in place. Versions already
    complete are kept. A `.mod` that differs from the signed one is replaced; an `.info`
    already there is kept (proxies differ in its timestamps and go checks no hash of it).
    Module paths are written concurrently (file system calls release the GIL), the versions
    of one path in order. `force` (repair) writes `.mod`, `.zip` and the extracted tree again
    whatever is there. Nothing is fsynced file by file (`go mod download` does not either):
    the cache can be rebuilt from P/goproxy, a tree only ever appears whole (extracted beside
    it, then renamed), and one sync of its file system at the end makes the whole of it
    durable. `also_sync` names other paths whose writes that sync must cover (the caller's
    merged P/goproxy): each file system is synced once.
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
                if any(out):  # once per module path, not once per version
                    _rewrite_list(_download_dir(cache_dir, group[0]))
                return out

            done = list(pool.map(group_done, groups.values()))
    except OSError as exc:
        raise NotReadyError(f"writing module cache {cache_dir}: {exc}; pass --modcache-dir DIR "
                            "with a directory you can write") from None
    synced = set()
    for path in (cache_dir, *also_sync):
        device = os.stat(path).st_dev
        if device not in synced:  # syncfs flushes a whole file system: once each is enough
            synced.add(device)
            prefix.sync_filesystem(path)
    for group, changed in zip(groups.values(), done):
        for mod, wrote in zip(group, changed):
            (result.written if wrote else result.kept).append(f"{mod.path}@{mod.version}")
    return result


def _download_dir(cache_dir: Path, mod: Module) -> Path:
    return cache_dir / "cache" / "download" / escape_path(mod.path) / "@v"


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
    os.makedirs(dl, exist_ok=True)
    info = dl / (ev + ".info")
    if not os.path.lexists(info) and os.path.exists(src / (ev + ".info")):
        _place(src / (ev + ".info"), info)
        changed = True
    changed |= _put_mod(src / (ev + ".mod"), dl / (ev + ".mod"), mod, force)
    if mod.zip_hash:
        zip_dest = dl / (ev + ".zip")
        if force or not _extracted_ok(dl, ev, mod, extracted):
            _extract(src / (ev + ".zip"), dl, ev, mod, extracted, read_only)
            _place(src / (ev + ".zip"), zip_dest)
            changed = True
        elif not os.path.lexists(zip_dest):
            _place(src / (ev + ".zip"), zip_dest)
            changed = True
    return changed


def _put_mod(src: Path, dest: Path, mod: Module, force: bool) -> bool:
    """The signed `.mod` into the cache, checked against its h1 first; True when written."""
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        return False
    if not force and _same(dest, data):
        return False
    got = hash_gomod(data)
    if mod.mod_hash and got != mod.mod_hash:
        raise TrustError(
            f"verifying {mod.path}@{mod.version}/go.mod: checksum mismatch\n\t.mod:     {got}"
            f"\n\tmanifest: {mod.mod_hash}\nThe .mod in the prefix's GOPROXY does not hash to "
            "the h1 the signed manifest records; it was not put into the module cache.",
            expected=mod.mod_hash, got=got, tampering=True)
    _place(src, dest)
    return True


def _extract(zip_path: Path, dl: Path, ev: str, mod: Module, extracted: Path,
             read_only: bool) -> None:
    # Built beside and swapped in: a build reading the old tree never sees half of one, and a
    # new tree appears whole. The names start with `.` and sit in the module's parent, where
    # go looks for no module.
    parent = extracted.parent
    os.makedirs(parent, exist_ok=True)
    new = parent / f".{extracted.name}.new-{os.getpid()}-{threading.get_ident()}"
    old = parent / f".{extracted.name}.old-{os.getpid()}-{threading.get_ident()}"
    prefix.remove_tree(new)  # left by a killed run that had our pid and thread
    # Replacing a tree go may be using: `.partial` tells go not to trust it meanwhile. For a
    # new tree (most of an install) none is needed: go sees no tree until the rename.
    partial = _partial(extracted)
    replacing = os.path.lexists(extracted)
    if replacing:
        partial.touch()
    try:
        extract_module_zip(zip_path, mod.path, mod.version, new, read_only=read_only,
                           want_h1=mod.zip_hash)
        # The .ziphash first: go takes a tree as complete once it and its .ziphash exist.
        ziphash = dl / (ev + ".ziphash")
        if not _same(ziphash, mod.zip_hash.encode()):
            _write(ziphash, mod.zip_hash.encode())
        prefix.replace_tree(new, extracted, old)
    finally:
        prefix.remove_tree(new)
        prefix.remove_tree(old)
    if replacing or os.path.lexists(partial):  # ours, or one a killed `go` left
        partial.unlink()
