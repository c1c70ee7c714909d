"""Check a Go module zip against x/mod's rules, and extract one safely into a module cache."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from manifests.dirhash import zip_entry_name
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import ModulePathError, check_file_path, check_module_version

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
    return s if s.isascii() and s == s.lower() else "".join(_fold_char(c) for c in s)


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
    try:
        check_module_version(module, version)
    except ModulePathError as e:
        return [str(e)]
    size = os.path.getsize(zip_path)
    if size > limits.module_zip_bytes:
        return [f"module zip file is too large ({size} bytes; limit is "
                f"{limits.module_zip_bytes} bytes)"]
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return _scan(zf, f"{module}@{version}/", limits)[0]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        return [f"not a valid zip file: {e}"]


def _problem_error(zip_path: PathLike, module: str, version: str,
                   problems: List[str]) -> TrustError:
    lines = "\n\t".join(problems)
    return TrustError(
        f"unzip {zip_path}: module zip for {module}@{version} is not valid:\n\t{lines}")


def extract_module_zip(zip_path: PathLike, module: str, version: str, dest: PathLike, *,
                       read_only: bool = True, limits: Limits = DEFAULT_LIMITS) -> None:
    """Extract module@version's zip into `dest` (absent or empty), as Go's module cache does.

    Files are created 0444 and, unless `read_only` is false (Go's -modcacherw), directories
    lose their write bits afterwards, so a build cannot edit a dependency in place. The zip is
    checked first and nothing is written if check_module_zip finds any problem.
    """
    dest = Path(dest)
    problems = check_module_zip(zip_path, module, version, limits)
    if problems:
        raise _problem_error(zip_path, module, version, problems)
    if dest.exists() and any(dest.iterdir()):
        raise NotReadyError(f"unzip {zip_path}: target directory {dest} exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    dirs = {dest}
    try:
        with zipfile.ZipFile(zip_path) as zf:
            problems, files = _scan(zf, f"{module}@{version}/", limits)
            if problems:  # the file changed under us since the check
                raise _problem_error(zip_path, module, version, problems)
            for info, name in files:
                target = dest.joinpath(*name.split("/"))
                parent = target.parent
                parent.mkdir(parents=True, exist_ok=True)
                while parent != dest and parent not in dirs:
                    dirs.add(parent)
                    parent = parent.parent
                # O_EXCL: never follow or overwrite something already there.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    # zipfile stops at the declared size and checks the CRC at the end.
                    shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, EOFError) as e:
        raise TrustError(f"unzip {zip_path}: module zip for {module}@{version} is corrupt: {e}"
                         ) from e
    if read_only:
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            d.chmod(stat.S_IMODE(d.stat().st_mode) & ~0o222)
