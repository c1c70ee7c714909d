"""Open a bundle: read and verify its signed header, then stream its content members."""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Tuple

from installer import zstd
from keys import trust
from keys.allowed_signers import AllowedSigner
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.model import (
    HEADER_NAMES,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    Manifest,
    parse_manifest,
    sums_text,
)
from manifests.text import shown

# A PAX record set carries a long path and link target (each <= Limits.path_chars) and nothing
# else the builder writes: a far larger one is an attack on memory, refused before it is read.
# Member types the builder writes: files, dirs, symlinks, hard links, and per-member PAX records.
_ALLOWED_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                  tarfile.LNKTYPE, tarfile.XHDTYPE)
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


@dataclass(frozen=True)
class Verified:
    """A bundle header whose signature, expiry and consistency checked out."""

    manifest: Manifest
    manifest_bytes: bytes
    manifest_sha256: str
    signer: AllowedSigner
    signature: bytes = b""  # manifest.sig as carried: kept so `verify` can check it again


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise TrustError(f"reading manifest: time {text!r} is not RFC 3339 UTC") from None


def _truncated(path: Path, exc: BaseException) -> TrustError:
    return TrustError(f"reading bundle {path}: the file is truncated or damaged "
                      f"({shown(exc)}); copy "
                      f"it again from the build host and compare its sha256", tampering=True)


class BundleReader:
    """One pass over a bundle file: `header()` first, then `content()`. Use as a context."""

    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        try:
            self._raw: BinaryIO = open(path, "rb")
        except FileNotFoundError:
            raise NotReadyError(f"opening bundle {path}: no such file") from None
        except OSError as exc:
            raise NotReadyError(f"opening bundle {path}: {exc.strerror}") from None
        self._tar = None  # type: Optional[tarfile.TarFile]
        self._header: Optional[Verified] = None

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._raw.close()

    def _next(self) -> Optional[tarfile.TarInfo]:
        assert self._tar is not None
        try:
            return self._tar.next()
        except (tarfile.TarError,) + zstd.errors() as exc:
            raise _truncated(self.path, exc) from None

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
            raise _truncated(self.path, exc) from None
        if len(data) != info.size:
            raise _truncated(self.path, EOFError("header member cut short"))
        return data

    def header(self, signers: List[AllowedSigner], trust_source: str,
               now: Optional[datetime] = None) -> Verified:
        """Read the three header members and settle trust before any content is read."""
        now = now or datetime.now(timezone.utc)
        try:
            self._tar = tarfile.open(fileobj=zstd.open_reader(self._raw, self.limits),
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
        manifest_bytes = got[MANIFEST_NAME]
        signer = trust.verify_manifest_signature(got[SIGNATURE_NAME], manifest_bytes, signers,
                                                 now, trust_source=trust_source)
        manifest = parse_manifest(manifest_bytes, self.limits)
        if got[SUMS_NAME] != sums_text(manifest):
            raise TrustError(f"reading bundle {self.path}: SHA256SUMS does not match the signed "
                             f"manifest", tampering=True)
        expires = parse_time(manifest.expires)
        if now > expires:
            raise TrustError(
                f"checking bundle {manifest.name} #{manifest.sequence}: it expired on "
                f"{manifest.expires}; stale bundles are refused. Build a fresh bundle on the "
                "connected host (bundle.expires / bundle.valid_days in the spec)")
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        self._header = Verified(manifest, manifest_bytes, digest, signer, got[SIGNATURE_NAME])
        return self._header

    def content(self) -> Iterator[Tuple[tarfile.TarInfo, Optional[BinaryIO]]]:
        """Every content member in stream order with a reader for regular files."""
        if self._header is None:
            raise RuntimeError("BundleReader.content() called before header()")
        assert self._tar is not None
        while True:
            info = self._next()
            if info is None:
                self._check_end()
                return
            yield info, (self._tar.extractfile(info) if info.isreg() else None)

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

    def read_errors(self) -> tuple:
        return (tarfile.TarError,) + zstd.errors()

    def truncated(self, exc: BaseException) -> TrustError:
        return _truncated(self.path, exc)
