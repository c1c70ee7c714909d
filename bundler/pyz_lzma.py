"""The pyz's LZMA members, compressed once per content and kept beside the wheel cache.

LZMA is most of a pyz build's time (about 40 of 45 s) and the native parts change only when a
pin does, so each member's compressed bytes are kept under the sha256 of what they hold. A kept
copy is input like any cached file: it is used only when it decompresses to exactly that content,
else it is made again. The member written from a kept copy is byte for byte the one
`ZipFile.writestr` writes (tests/test_pyz_lzma.py holds that against the running Python).
"""

from __future__ import annotations

import hashlib
import lzma
import zipfile
import zlib
from pathlib import Path

from manifests.files import write_atomic

_FORMAT = "zip-lzma1-v1"  # bump when the bytes written for a content could change
_EOS_MARKER = 0x02  # general purpose bit 1: the LZMA stream ends with its end marker


def payload(data: bytes, cache: Path) -> bytes:
    """The zip LZMA payload of `data` (properties header, then the raw LZMA1 stream)."""
    key = hashlib.sha256(data).hexdigest()
    kept = cache / _FORMAT / key[:2] / key
    try:
        packed = kept.read_bytes()
    except OSError:
        packed = None
    if packed is not None and _holds(packed, data):
        return packed
    compressor = zipfile.LZMACompressor()  # the very encoder ZipFile.writestr uses
    packed = compressor.compress(data) + compressor.flush()
    kept.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(kept, packed)
    return packed


def _holds(packed: bytes, data: bytes) -> bool:
    try:
        return zipfile.LZMADecompressor().decompress(packed) == data
    except (lzma.LZMAError, EOFError, ValueError, IndexError):
        return False


def write_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data: bytes, cache: Path) -> None:
    """Append `data` as an LZMA member from its kept payload: what `zf.writestr(info, data)`
    writes for an LZMA `info`, without compressing it again."""
    packed = payload(data, cache)
    info.compress_type = zipfile.ZIP_LZMA
    info.flag_bits = _EOS_MARKER  # as writestr sets them for LZMA on a seekable file
    info.file_size, info.compress_size = len(data), len(packed)
    info.CRC = zlib.crc32(data) & 0xFFFFFFFF
    fp = zf.fp
    assert fp is not None and zf.mode == "w", "a zip open for writing"
    fp.seek(zf.start_dir)
    info.header_offset = fp.tell()
    fp.write(info.FileHeader(zip64=False))
    fp.write(packed)
    zf.filelist.append(info)
    zf.NameToInfo[info.filename] = info
    zf.start_dir = fp.tell()  # where the central directory goes when the zip closes
    zf._didModify = True
