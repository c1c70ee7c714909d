"""Open a bundle: read and verify its signed header, then stream its content members."""

from __future__ import annotations

import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, List, Optional, Tuple

from installer import volumes, zstd
from keys.allowed_signers import AllowedSigner
from keys.trust_core import Verified, verify_header
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.member_check import MemberHeader
from manifests.model import (
    HEADER_NAMES,
    MANIFEST_NAME,
    MAX_SIGNATURES,
    SIGNATURE_NAME,
    SUMS_NAME,
    cosignature_name,
)
from manifests.text import shown

# A PAX record set carries a long path and link target (each <= Limits.path_chars) and nothing
# else the builder writes: a far larger one is an attack on memory, refused before it is read.
# Member types the builder writes: files, dirs, symlinks, hard links, and per-member PAX records.
_ALLOWED_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                  tarfile.LNKTYPE, tarfile.XHDTYPE)
_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
_TYPE_NAMES = {tarfile.GNUTYPE_LONGNAME: "GNU long name", tarfile.GNUTYPE_LONGLINK:
               "GNU long link", tarfile.XGLTYPE: "global PAX header", tarfile.GNUTYPE_SPARSE:
               "GNU sparse file", tarfile.CHRTYPE: "character device", tarfile.BLKTYPE:
               "block device", tarfile.FIFOTYPE: "FIFO", tarfile.CONTTYPE: "contiguous file",
               tarfile.SOLARIS_XHDTYPE: "Solaris extended header"}


# Tar pads its stream to a 10 KiB record; a little more is allowed, nothing else.
_END_PADDING = 64 * 1024


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a PAX or GNU long-name record whole: refuse oversized and unknown ones
    from the 512-byte header alone, before a byte of the record is read."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        if self.type not in _ALLOWED_TYPES:
            what = _TYPE_NAMES.get(self.type, f"type {self.type!r}")
            raise TrustError(f"reading bundle: member {shown(self.name)} is a {what} record, "
                             f"which rescue bundles never contain", tampering=True)
        if self.mode & ~0o777:
            # Staging applies the manifest's mode, but `tar -xpf` of the same file would not.
            raise TrustError(f"reading bundle: member {shown(self.name)} has mode {self.mode:o} "
                             "in the tar; rescue bundles never carry modes beyond 0777 (setuid, "
                             "setgid, sticky)", tampering=True)
        if self.type == tarfile.XHDTYPE and self.size > DEFAULT_LIMITS.pax_header_bytes:
            raise TrustError(f"reading bundle: a PAX header of {self.size} bytes (at most "
                             f"{DEFAULT_LIMITS.pax_header_bytes} are ever written)", tampering=True)
        return super()._proc_member(tarfile_)  # type: ignore[misc,no-any-return]


SUMS_SUFFIX = ".sha256"  # BUNDLE.sha256, what `rescue build` writes beside BUNDLE


def truncated(path: Path, exc: BaseException) -> TrustError:
    return TrustError(f"reading bundle {path}: the file is truncated or damaged "
                      f"({shown(exc)}); copy "
                      f"it again from the build host and compare its sha256", tampering=True)


class BundleReader:
    """One pass over a bundle file: `header()` first, then `content()`. Use as a context."""

    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        if path.name.endswith(SUMS_SUFFIX):  # the file beside the bundle, an easy pick in a list
            bundle = path.with_name(path.name[:-len(SUMS_SUFFIX)])
            raise NotReadyError(f"opening bundle {path}: it is the bundle's checksum file "
                                f"(`sha256sum -c` reads it); pass the bundle {bundle}",
                                operation="opening bundle", subject=str(path))
        for suffix in (".spdx.json", ".cdx.json"):  # the SBOMs `rescue build` writes beside it
            if path.name.endswith(".tar.zst" + suffix):
                bundle = path.with_name(path.name[:-len(suffix)])
                raise NotReadyError(f"opening bundle {path}: it is the bundle's SBOM (a JSON "
                                    f"file to read as it is); pass the bundle {bundle}",
                                    operation="opening bundle", subject=str(path))
        # A bundle cut into parts (a part, or their directory): opened once the index's
        # signature can be checked, in header().
        self._index = volumes.locate(path) if path.exists() else None
        self._raw: Any = None
        if self._index is None:
            try:
                self._raw = open(path, "rb")
            except FileNotFoundError:
                raise NotReadyError(f"opening bundle {path}: no such file") from None
            except OSError as exc:
                raise NotReadyError(f"opening bundle {path}: {exc.strerror}") from None
        self._tar = None  # type: Optional[tarfile.TarFile]
        self._zst: Any = None  # decompressing ahead on its own thread
        self._header: Optional[Verified] = None
        self._pending: Optional[tarfile.TarInfo] = None  # read past the header, not yet yielded

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        # A refusal while reading a bundle of parts (a member's hash, a broken stream): when
        # the part being read is itself damaged, that is the news, with the part's name.
        self._halt()
        named = (self._raw.damaged_part() if isinstance(exc, TrustError)
                 and isinstance(self._raw, volumes.PartsReader) else None)
        self.close()
        if named is not None:
            raise named from None

    def _halt(self) -> None:
        """No more reading ahead: the raw file is this thread's alone again."""
        if self._zst is not None:
            self._zst.close()
            self._zst = None

    def close(self) -> None:
        """Done with the file: the decompressor and its window go with the tar reader."""
        self._halt()
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if self._raw is not None:
            self._raw.close()

    def _damaged(self, exc: BaseException) -> TrustError:
        """A stream error: in a bundle of parts, the damaged part by name when it is one."""
        if isinstance(self._raw, volumes.PartsReader):
            self._halt()
            named = self._raw.damaged_part()
            if named is not None:
                return named
        return truncated(self.path, exc)

    def _next(self) -> Optional[tarfile.TarInfo]:
        assert self._tar is not None
        try:
            return self._tar.next()
        except (tarfile.TarError,) + zstd.errors() as exc:
            raise self._damaged(exc) from None

    def _read_small(self, info: tarfile.TarInfo, limit: int) -> bytes:
        if not info.isreg() or info.size > limit:
            raise TrustError(f"reading bundle {self.path}: header member {shown(info.name)} is "
                             f"not a regular file of at most {limit} bytes")
        assert self._tar is not None
        f = self._tar.extractfile(info)
        assert f is not None
        try:
            data = f.read(limit + 1)
        except (tarfile.TarError,) + zstd.errors() as exc:
            raise self._damaged(exc) from None
        if len(data) != info.size:
            raise self._damaged(EOFError("header member cut short"))
        return data

    def header(self, signers: List[AllowedSigner], trust_source: str,
               now: Optional[datetime] = None) -> Verified:
        """Read the three header members and settle trust before any content is read."""
        now = now or datetime.now(timezone.utc)
        if self._index is not None:
            self._raw = volumes.open_parts(self._index, signers, now, trust_source)
        try:
            self._zst = zstd.open_reader(self._raw, self.limits)
            self._tar = tarfile.open(fileobj=self._zst,
                                     mode="r|", tarinfo=_BoundedTarInfo)
        except (tarfile.TarError,) + zstd.errors() as exc:
            raise TrustError(f"reading bundle {self.path}: not a rescue bundle (zstd-compressed "
                             f"tar), or the file is truncated or damaged ({shown(exc)}); check "
                             "the file "
                             "name, or copy it again from the build host and compare its sha256"
                             ) from None
        limits = {MANIFEST_NAME: self.limits.manifest_bytes,
                  SIGNATURE_NAME: self.limits.signature_bytes, SUMS_NAME: self.limits.sums_bytes}
        got = {}
        for expected in HEADER_NAMES:
            info = self._next()
            if info is None or info.name != expected:
                raise TrustError(f"reading bundle {self.path}: expected member {expected} first, "
                                 f"found {shown(info.name) if info else 'end of bundle'}; is "
                                 "this a rescue bundle?")
            got[expected] = self._read_small(info, limits[expected])
        # Co-signatures follow in order; the first other member is content, kept for content().
        for n in range(2, MAX_SIGNATURES + 1):
            info = self._next()
            if info is None or info.name != cosignature_name(n):
                self._pending = info
                break
            got[info.name] = self._read_small(info, self.limits.signature_bytes)
        self._header = verify_header(got, signers, now, trust_source, limits=self.limits,
                                     where=f"bundle {self.path}")
        return self._header

    def content(self) -> Iterator[Tuple[MemberHeader, Optional[BinaryIO]]]:
        """Every content member in stream order, its header in the manifest's words and a
        reader for regular files; stream errors come out as the bundle's own message."""
        if self._header is None:
            raise RuntimeError("BundleReader.content() called before header()")
        assert self._tar is not None
        while True:
            info, self._pending = (self._pending or self._next()), None
            if info is None:
                self._check_end()
                return
            header = MemberHeader(info.name, _TYPES.get(info.type, repr(info.type)), info.size,
                                  info.mode, info.linkname)
            data = self._tar.extractfile(info) if info.isreg() else None
            # tarfile keeps every TarInfo it read (for getmembers()); a stream read once needs
            # none of them, and 10^4 members held were megabytes of peak memory.
            self._tar.members.clear()
            yield header, (_Checked(data, self._damaged) if data is not None else None)

    def _check_end(self) -> None:
        """Past the end-of-archive marker only tar's zero padding may follow: anything else
        (another archive, another zstd frame) is bytes no manifest lists, which every tar
        reader skips and a second tool might not. Bounded: padding is under one 10 KiB record,
        while a zstd frame of zeros could decompress for hours."""
        assert self._tar is not None
        stream = self._tar.fileobj
        seen = 0
        while True:
            chunk = stream.read(_END_PADDING)
            if not chunk:
                return
            seen += len(chunk)
            if seen > _END_PADDING or chunk.strip(b"\0"):
                raise TrustError(f"reading bundle {self.path}: data follows the tar's "
                                 "end-of-archive marker; rescue bundles end there (only zero "
                                 "padding may follow)", tampering=True)


class _Checked:
    """A member's bytes, with decompression and tar errors turned into the bundle's message."""

    def __init__(self, raw: BinaryIO, damaged: Callable[[BaseException], TrustError]) -> None:
        self.raw, self.damaged = raw, damaged

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except (tarfile.TarError,) + zstd.errors() as exc:
            raise self.damaged(exc) from None
