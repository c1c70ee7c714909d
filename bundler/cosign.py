"""`rescue sign`: add a co-signature to a built bundle (the two-person rule) without rebuilding
or recompressing it: only the header's own zstd frame is rewritten."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, List, Optional, Tuple

import zstandard

from bundler.build import sums_path
from bundler.pack import header_frame
from keys import sshsig
from keys.trust_core import parse_time, signed_by
from manifests.errors import NotReadyError, TrustError
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS
from manifests.model import (
    HEADER_NAMES,
    MANIFEST_NAME,
    MAX_SIGNATURES,
    SIGNATURE_NAME,
    cosignature_name,
    parse_manifest,
)

CHUNK = 1 << 20
# The header frame holds a manifest, up to 16 signatures and SHA256SUMS, with tar headers.
_HEADER_CAP = (DEFAULT_LIMITS.manifest_bytes + MAX_SIGNATURES * DEFAULT_LIMITS.signature_bytes
               + DEFAULT_LIMITS.sums_bytes + (MAX_SIGNATURES + 3) * 3 * tarfile.BLOCKSIZE)


@dataclass
class Signed:
    bundle: str
    key_id: str
    signatures: int  # now carried
    sha256: str  # of the new bundle file
    name: str = ""
    sequence: int = 0


def read_header(raw: BinaryIO, path: Path) -> Tuple[List[Tuple[str, bytes]], bytes]:
    """The header members of the bundle's first zstd frame, and the bytes after that frame."""
    window = 1 << DEFAULT_LIMITS.zstd_window_log_max  # bundles from before 2**26, too
    dobj = zstandard.ZstdDecompressor(max_window_size=window).decompressobj()
    out = bytearray()
    try:
        while not dobj.eof:
            chunk = raw.read(CHUNK)
            if not chunk:
                raise NotReadyError(f"signing {path}: the file ends inside its first zstd "
                                    "frame; it is truncated: copy it again")
            out += dobj.decompress(chunk)
            if len(out) > _HEADER_CAP:
                raise NotReadyError(
                    f"signing {path}: its header is not a zstd frame of its own (bundles "
                    "built by rescue before co-signing existed); build it again to co-sign it",
                    operation="signing", subject=str(path))
    except zstandard.ZstdError as exc:
        raise NotReadyError(f"signing {path}: not a rescue bundle (zstd-compressed tar): "
                            f"{exc}", operation="signing", subject=str(path)) from None
    members: List[Tuple[str, bytes]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(out)), mode="r:") as tar:
            for info in tar:
                f = tar.extractfile(info) if info.isreg() else None
                # A directory or link among them: named below, as not a header.
                members.append((info.name if f else f"{info.name} ({info.type!r})",
                                f.read() if f else b""))
    except tarfile.TarError as exc:
        raise NotReadyError(f"signing {path}: its first frame is not a bundle header ({exc})",
                            operation="signing", subject=str(path)) from None
    names = [n for n, _ in members]
    want = list(HEADER_NAMES) + [cosignature_name(i) for i in range(2, len(names) - 1)]
    if names != want:
        raise NotReadyError(
            f"signing {path}: its first frame holds {', '.join(names) or 'nothing'}, not a "
            "bundle header; was it built by rescue before co-signing existed? Build it again",
            operation="signing", subject=str(path))
    return members, dobj.unused_data


def cosign(bundle: Path, private_key: object, key_id: str, out: Optional[Path] = None,
           signers: Optional[list] = None, trust_source: str = "") -> Signed:
    """Sign the bundle's manifest with `private_key` and write the bundle again with that
    signature added; every signature already there must check out against `signers` (when
    given) so nobody co-signs a bundle that was changed."""
    dest = out or bundle
    try:
        raw = open(bundle, "rb")
    except OSError as exc:
        raise NotReadyError(f"signing {bundle}: {exc.strerror}", operation="signing",
                            subject=str(bundle)) from None
    with raw:
        members, rest = read_header(raw, bundle)
        header = dict(members)
        manifest_bytes = header[MANIFEST_NAME]
        manifest = parse_manifest(manifest_bytes)
        sigs = [data for name, data in members if name.startswith(SIGNATURE_NAME)]
        for sig in sigs:
            if sshsig.parse(sig).public_key.key_id == key_id:
                raise NotReadyError(f"signing {bundle}: key {key_id} has signed it already; "
                                    "a co-signature must come from another key",
                                    operation="signing", subject=key_id)
        if signers is not None:
            _, problems = signed_by(sigs, manifest_bytes, signers,
                                        datetime.now(timezone.utc), trust_source)
            if problems:
                raise TrustError(f"signing {bundle}: a signature it carries does not check "
                                 f"out ({problems[0].message.splitlines()[0]}); do not co-sign "
                                 "a bundle you cannot trust", tampering=True)
        if len(sigs) >= MAX_SIGNATURES:
            raise NotReadyError(f"signing {bundle}: it carries {len(sigs)} signatures, the "
                                "most a bundle may", operation="signing", subject=str(bundle))
        new_sig = sshsig.sign(private_key, manifest_bytes).encode()  # type: ignore[arg-type]
        members.append((cosignature_name(len(sigs) + 1), new_sig))
        mtime = int(parse_time(manifest.created).timestamp())  # as the builder wrote them
        frame = header_frame(members, mtime, level=19)
        tmp = dest.with_name(dest.name + ".partial")
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                for data in _stream(frame, rest, raw):
                    digest.update(data)
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise
    sha = digest.hexdigest()
    side = sums_path(dest)
    if side.exists() or sums_path(bundle).exists():  # BUNDLE.sha256 stays true
        write_atomic(side, f"{sha}  {dest.name}\n")
    return Signed(str(dest), key_id, len(sigs) + 1, sha, manifest.name, manifest.sequence)


def _stream(frame: bytes, rest: bytes, raw: BinaryIO):  # type: ignore[no-untyped-def]
    yield frame
    yield rest
    while True:
        chunk = raw.read(CHUNK)
        if not chunk:
            return
        yield chunk
