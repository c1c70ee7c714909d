"""Write a bundle: a deterministic POSIX tar stream compressed with zstd, header members first."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Sequence, Tuple

import zstandard

from bundler import tarblocks
from bundler.part import Part
from manifests.errors import TrustError
from manifests.model import Member

# The decoder's buffer is the window: 2**26 keeps the installer's peak memory near 64 MiB
# for it (2**27 cost 64 MiB more for 1-2% in size), and stock `zstd -d` / `tar --zstd` opens
# windows up to 2**27 without --long.
WINDOW_LOG = 26
CHUNK = 1 << 20
# zstd's worker threads; -1: one per core. Any count >= 1 gives the same bytes (zstd's
# multi-threaded format does not depend on it), but 0 (no workers) would differ.
ALL_CORES = -1


class _HashingFile:
    """The bundle file as zstd writes it, hashed on the way: the sha256 the build prints."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class BundleWriter:
    """Appends members to `<out>.partial`; `finish()` fsyncs it (readable, e.g. to rehearse)
    and gives its sha256, `commit()` renames it to `out`, and `abort()` removes it: a bundle
    exists under its name only once it is complete. zstd compresses on `workers` threads
    (never fewer than one: the bytes must not depend on the machine that packed them)."""

    def __init__(self, out: Path, level: int, mtime: int, workers: int = ALL_CORES) -> None:
        self.out = out
        self.tmp = out.with_name(out.name + ".partial")
        self.mtime = mtime
        self.level = level
        self.sha256: Optional[str] = None  # set by finish()
        if workers == 0 or workers < ALL_CORES:
            raise ValueError(f"zstd workers: {workers} (want -1 for one per core, or >= 1)")
        self._raw = open(self.tmp, "wb")
        self._hashing = _HashingFile(self._raw)
        params = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=WINDOW_LOG, enable_ldm=1, threads=workers)
        self._zst = zstandard.ZstdCompressor(compression_params=params).stream_writer(
            self._hashing, closefd=False)
        self._offset = 0  # tar bytes written after the header frame

    def _write(self, data: bytes) -> None:
        self._zst.write(data)
        self._offset += len(data)

    def add_header(self, members: Sequence[Tuple[str, bytes]]) -> None:
        """The header members in a zstd frame of their own, before anything else: `rescue
        sign` can then add a co-signature by rewriting this small frame and copying the rest
        of the file byte for byte."""
        self._hashing.write(header_frame(members, self.mtime, self.level))

    def add_member(self, m: Member, data: Optional[BinaryIO] = None) -> None:
        if m.type == "dir":
            self._write(tarblocks.header(m.path, tarfile.DIRTYPE, m.mode, self.mtime))
        elif m.type == "symlink":
            self._write(tarblocks.header(m.path, tarfile.SYMTYPE, 0o777, self.mtime,
                                         linkname=m.target))
        elif m.type == "hardlink":
            self._write(tarblocks.header(m.path, tarfile.LNKTYPE, m.mode, self.mtime,
                                         linkname=m.target))
        else:
            assert data is not None, m.path
            self._write(tarblocks.header(m.path, tarfile.REGTYPE, m.mode, self.mtime, m.size))
            checked = _Checked(data, m)
            left = m.size
            while left:  # never past the size the header gave, whatever the source holds
                chunk = checked.read(min(CHUNK, left))
                if not chunk:
                    break
                self._write(chunk)
                left -= len(chunk)
            checked.finish()
            self._write(tarblocks.padding(m.size))

    def write_part(self, part: Part, advance: Callable[[int], None] = lambda n: None) -> None:
        """The part's members in their order, each file's bytes from `part.open`; `advance`
        hears each file's size as it is packed."""
        for m in part.members:
            if m.type != "file":
                self.add_member(m)
                continue
            with part.open(m) as data:
                self.add_member(m, data)
            advance(m.size)

    def finish(self) -> str:
        """Close the stream and fsync `<out>.partial`; the sha256 of its bytes."""
        if self.sha256 is None:
            self._zst.write(tarblocks.end(self._offset))
            self._zst.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self.sha256 = self._hashing.digest.hexdigest()
        return self.sha256

    def commit(self) -> None:
        self.finish()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self._raw.close()
        if self.tmp.exists():
            self.tmp.unlink()


def header_frame(members: Sequence[Tuple[str, bytes]], mtime: int, level: int) -> bytes:
    """The header members' own zstd frame, compressed in one shot: the frame then records its
    size, and a decoder sizes its buffer by that instead of by the window. Through the content's
    stream writer it declared the full window, and the decoder kept that buffer for the content
    frame whatever window that frame asked for."""
    return zstandard.ZstdCompressor(level=level).compress(header_frame_tar(members, mtime))


def header_frame_tar(members: Sequence[Tuple[str, bytes]], mtime: int) -> bytes:
    """The tar blocks of small regular files, as tarfile writes them (PAX), with no end marker:
    the content members follow in the next frame of the same tar stream."""
    out = bytearray()
    for name, data in members:
        out += tarblocks.header(name, tarfile.REGTYPE, 0o644, mtime, len(data))
        out += data + tarblocks.padding(len(data))
    return bytes(out)


class _Checked:
    """Hashes what is packed, so the bytes packed are the bytes the manifest names."""

    def __init__(self, src: BinaryIO, member: Member) -> None:
        self.src = src
        self.member = member
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.digest.update(data)
        self.count += len(data)
        return data

    def finish(self) -> None:
        if self.count != self.member.size or self.digest.hexdigest() != self.member.sha256:
            # The upstream file changed between the hashing pass and the packing pass.
            raise TrustError(f"packing {self.member.path}: content changed while building "
                             "(a cache file was modified?); build again")
