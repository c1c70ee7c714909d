"""Check a Go module zip against x/mod's rules, and extract one safely into a module cache."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple, Union

from manifests.dirhash import hash1_sums, zip_entry_name
from manifests.errors import NotReadyError, TrustError
from manifests.files import NEW_FILE, write_all
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import ModulePathError, check_file_path, check_module_version
from manifests.pycompat import isascii

PathLike = Union[str, "os.PathLike[str]"]


def _clean(p: str) -> str:
    """Go's path.Clean (posixpath.normpath keeps a leading `//`, Go does not)."""
    rooted = p.startswith("/")
    out: List[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = ("/" if rooted else "") + "/".join(out)
    return s or ("/" if rooted else ".")


def _fold_char(c: str) -> str:
    # Stand-in for Go's SimpleFold orbit minimum: the smallest single-rune case variant.
    variants = {c, c.lower(), c.upper(), c.lower().upper(), c.upper().lower()}
    low = min(v for v in variants if len(v) == 1)
    return low.lower() if "A" <= low <= "Z" else low


def _fold(s: str) -> str:
    return s if isascii(s) and s == s.lower() else "".join(_fold_char(c) for c in s)


class _Collisions:
    """Names equal under case-folding, or both a file and a directory, would clash on disk."""

    def __init__(self) -> None:
        self.seen: Dict[str, Tuple[str, bool]] = {}

    def check(self, p: str, is_dir: bool) -> Optional[str]:
        while True:
            fold = _fold(p)
            other = self.seen.get(fold)
            if other is not None:
                if p != other[0]:
                    return f"case-insensitive file name collision: \"{other[0]}\" and \"{p}\""
                if is_dir != other[1]:
                    return f"entry \"{p}\" is both a file and a directory"
                if not is_dir:
                    return f"multiple entries for file \"{p}\""
            else:
                self.seen[fold] = (p, is_dir)
            if "/" not in p:
                return None
            p, is_dir = p.rsplit("/", 1)[0], True


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16) if info.create_system == 3 else False


_Files = List[Tuple[zipfile.ZipInfo, str]]


def _scan(zf: zipfile.ZipFile, prefix: str, limits: Limits) -> Tuple[List[str], _Files]:
    """All problems, and the (entry, relative name) pairs of the regular files."""
    problems: List[str] = []
    files: List[Tuple[zipfile.ZipInfo, str]] = []
    collisions = _Collisions()
    total = 0
    size_reported = False
    for info in zf.infolist():
        full = zip_entry_name(info)

        def bad(msg: str, full: str = full) -> None:
            problems.append(f"{full}: {msg}")

        if not full.startswith(prefix):
            bad(f"path does not have prefix \"{prefix}\"")
            continue
        name = full[len(prefix):]
        if name == "":
            continue
        is_dir = name.endswith("/")
        if is_dir:
            name = name[:-1]
        if _clean(name) != name:
            bad("file path is not clean")
            continue
        err = check_file_path(name)  # refuses "..", backslashes, absolute and odd names
        if err:
            bad(err)
            continue
        err = collisions.check(name, is_dir)
        if err:
            bad(err)
            continue
        if is_dir:
            continue
        if _is_symlink(info):
            bad("file is a symbolic link")
            continue
        base = name.rsplit("/", 1)[-1]
        if base.lower() == "go.mod":
            if base != name:
                bad("go.mod file not in module root directory")
                continue
            if name != "go.mod":
                bad("go.mod files must have lowercase names")
                continue
        size = info.file_size
        if total + size <= limits.module_unzipped_bytes:
            total += size
        elif not size_reported:
            size_reported = True
            problems.append("total uncompressed size of module contents too large "
                            f"(max size is {limits.module_unzipped_bytes} bytes)")
        if name == "go.mod" and size > limits.module_gomod_bytes:
            bad(f"go.mod file too large (max size is {limits.module_gomod_bytes} bytes)")
            continue
        if name == "LICENSE" and size > limits.module_license_bytes:
            bad(f"LICENSE file too large (max size is {limits.module_license_bytes} bytes)")
            continue
        files.append((info, name))
    return problems, files


def check_module_zip(zip_path: PathLike, module: str, version: str,
                     limits: Limits = DEFAULT_LIMITS) -> List[str]:
    """Every reason Go would refuse this zip as module@version; an empty list means valid."""
    problems = _outer_problems(zip_path, module, version, limits)
    if problems:
        return problems
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return _scan(zf, f"{module}@{version}/", limits)[0]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        return [f"not a valid zip file: {e}"]


def _outer_problems(zip_path: PathLike, module: str, version: str,
                    limits: Limits) -> List[str]:
    """What is wrong before the zip is even opened: its name and version, its size."""
    try:
        check_module_version(module, version)
    except ModulePathError as e:
        return [str(e)]
    size = os.path.getsize(zip_path)
    if size > limits.module_zip_bytes:
        return [f"module zip file is too large ({size} bytes; limit is "
                f"{limits.module_zip_bytes} bytes)"]
    return []


def _problem_error(zip_path: PathLike, module: str, version: str,
                   problems: List[str]) -> TrustError:
    lines = "\n\t".join(problems)
    return TrustError(
        f"unzip {zip_path}: module zip for {module}@{version} is not valid:\n\t{lines}")


_CHUNK = 1 << 20


def _write_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: str) -> str:
    """Create `target` 0444 with the entry's bytes; their sha256 hex, hashed as written."""
    digest = hashlib.sha256()
    # O_EXCL: never follow or overwrite something already there. Created 0444 at once, as
    # x/mod's Unzip does, so no chmod pass over the files follows.
    fd = os.open(target, NEW_FILE, 0o444)
    try:
        # zipfile stops at the declared size and checks the CRC at the end of each read.
        with zf.open(info) as src:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                write_all(fd, chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def extract_module_zip(zip_path: PathLike, module: str, version: str, dest: PathLike, *,
                       read_only: bool = True, limits: Limits = DEFAULT_LIMITS,
                       want_h1: Optional[str] = None) -> str:
    """Extract module@version's zip into `dest` (absent or empty), as Go's module cache does;
    return the zip's go.sum `h1:` (Go's HashZip), computed from the bytes as they are written.

    The zip is opened once: checked first (nothing is written if check_module_zip would find
    any problem), then extracted. Files are created 0444 and, unless `read_only` is false
    (Go's -modcacherw), directories lose their write bits afterwards, so a build cannot edit a
    dependency in place. With `want_h1`, a zip whose h1 differs is refused (TrustError) after
    extraction; the caller, which extracts beside the final place, throws `dest` away.
    """
    dest = Path(dest)
    problems = _outer_problems(zip_path, module, version, limits)
    if problems:
        raise _problem_error(zip_path, module, version, problems)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            problems, files = _scan(zf, f"{module}@{version}/", limits)
            if problems:
                raise _problem_error(zip_path, module, version, problems)
            if dest.exists() and any(dest.iterdir()):
                raise NotReadyError(f"unzip {zip_path}: target directory {dest} exists and is "
                                    "not empty")
            dest.mkdir(parents=True, exist_ok=True)
            root = str(dest)
            dirs = {""}  # relative directories that exist under dest
            sums: Dict[str, str] = {}  # full entry name -> sha256 hex
            for info, name in files:
                parent, _, _ = name.rpartition("/")
                if parent not in dirs:
                    _make_parents(root, parent, dirs)
                sums[zip_entry_name(info)] = _write_member(
                    zf, info, os.path.join(root, *name.split("/")))
            # Go's HashZip counts every entry, directories too (read: their content is empty).
            for info in zf.infolist():
                full = zip_entry_name(info)
                if full not in sums:
                    sums[full] = hashlib.sha256(zf.read(info)).hexdigest()
            got = hash1_sums(sums.items())
    except (zipfile.BadZipFile, EOFError) as e:
        raise TrustError(f"unzip {zip_path}: module zip for {module}@{version} is corrupt: {e}"
                         ) from e
    if want_h1 is not None and got != want_h1:
        raise TrustError(
            f"verifying {module}@{version}: checksum mismatch\n\tzip:      {got}\n"
            f"\tmanifest: {want_h1}\nThe module zip in the prefix's GOPROXY does not hash to "
            "the h1 the signed manifest records; it was not put into the module cache.",
            expected=want_h1, got=got, tampering=True)
    if read_only:  # children first: a parent made read-only first would refuse the rest
        for rel in sorted(dirs, key=lambda d: d.count("/") + bool(d), reverse=True):
            path = os.path.join(root, *rel.split("/")) if rel else root
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o222)
    return got


def _make_parents(root: str, rel: str, dirs: Set[str]) -> None:
    missing = []
    while rel not in dirs:
        missing.append(rel)
        rel = rel.rpartition("/")[0]
    for d in reversed(missing):
        os.mkdir(os.path.join(root, *d.split("/")))
        dirs.add(d)
