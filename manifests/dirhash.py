"""Go's `h1:` dirhash (x/mod sumdb/dirhash Hash1) over file lists, module zips and go.mod files."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from typing import IO, BinaryIO, Callable, Iterable, Tuple, Union

Opener = Union[bytes, Callable[[], BinaryIO]]
_CHUNK = 1 << 20


def _encode(name: str) -> bytes:
    # Names taken from zips may carry undecodable bytes as surrogates; Go hashes raw bytes.
    return name.encode("utf-8", "surrogateescape")


def hash1(files: Iterable[Tuple[str, Opener]]) -> str:
    """`h1:` + base64(sha256 of "<sha256 hex>  <name>\\n" lines, sorted by name bytes)."""
    return hash1_sums((name, _sha256_hex(content)) for name, content in files)


def _sha256_hex(content: Opener) -> str:
    h = hashlib.sha256()
    if isinstance(content, (bytes, bytearray, memoryview)):
        h.update(content)
    else:
        with content() as f:
            for chunk in iter(lambda f=f: f.read(_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def hash1_sums(sums: Iterable[Tuple[str, str]]) -> str:
    """Hash1 from each file's name and sha256 hex: for a caller that hashed every file while
    writing it, so no byte is read twice."""
    summary = hashlib.sha256()
    for name, hexdigest in sorted(sums, key=lambda f: _encode(f[0])):
        if "\n" in name:
            raise ValueError("dirhash: filenames with newlines are not supported")
        summary.update(hexdigest.encode() + b"  " + _encode(name) + b"\n")
    return "h1:" + base64.b64encode(summary.digest()).decode()


def hash_gomod(data: bytes) -> str:
    """The go.sum `/go.mod` hash: Hash1 over one file named literally `go.mod`."""
    return hash1([("go.mod", bytes(data))])


def zip_entry_name(info: zipfile.ZipInfo) -> str:
    """The entry name exactly as Go's archive/zip sees it.

    Python truncates names at NUL and decodes non-UTF-8-flagged names as cp437; Go does
    neither. Hashing or checking Python's view would let a crafted zip look different to us
    than to `go`, so we recover the raw bytes from `orig_filename`.
    """
    name = info.orig_filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:  # pragma: no cover - zipfile decoded it as cp437 itself
        return name
    return raw.decode("utf-8", "surrogateescape")


def hash_zip(zip_file: Union[str, object, IO[bytes]]) -> str:
    """Go's HashZip: Hash1 over the entry names (with their `M@V/` prefix) and contents.

    Raises zipfile.BadZipFile (or ValueError) for an unreadable zip; callers that take zips
    from upstream turn that into a TrustError.
    """
    with zipfile.ZipFile(zip_file) as zf:  # type: ignore[arg-type]
        infos = zf.infolist()
        return hash1([(zip_entry_name(i), (lambda i=i: zf.open(i))) for i in infos])
