"""Write a bundle's content into a staging directory, checking every member against the manifest."""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional, Set

from installer import crashpoints
from installer.bundle_reader import BundleReader
from installer.machine import machine_error
from manifests.errors import TrustError
from manifests.model import Manifest, Member
from manifests.text import shown

CHUNK = 1 << 20
_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}


def _refuse(path: str, why: str) -> TrustError:
    return TrustError(f"verifying member {path}: {why}", tampering=True)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An error writing into staging is this machine's (disk full, no inodes), not the bundle's."""
    try:
        yield
    except OSError as exc:
        raise machine_error("staging the bundle", exc, path) from None


def _check_header(info: tarfile.TarInfo, m: Optional[Member]) -> Member:
    if m is None:
        # Not in the signed manifest: the name is the attacker's text, shown quoted.
        raise _refuse(shown(info.name),
                      "the bundle carries it but the signed manifest does not list it")
    kind = _TYPES.get(info.type)
    if kind != m.type:
        raise _refuse(m.path, f"type mismatch\n\tbundle:   {kind or repr(info.type)}\n"
                      f"\tmanifest: {m.type}")
    if kind == "file" and info.size != m.size:
        raise _refuse(m.path, f"size mismatch\n\tbundle:   {info.size}\n\tmanifest: {m.size}")
    if kind in ("symlink", "hardlink") and info.linkname != m.target:
        raise _refuse(m.path, f"link target mismatch\n\tbundle:   {info.linkname}\n"
                      f"\tmanifest: {m.target}")
    if kind in ("file", "dir") and (info.mode & 0o777) != m.mode:
        raise _refuse(m.path, f"mode mismatch\n\tbundle:   {info.mode & 0o777:o}\n"
                      f"\tmanifest: {m.mode:o}")
    return m


def _write_file(dest: Optional[Path], data: BinaryIO, m: Member) -> None:
    """Copy while hashing; a mismatch is caught before the staging dir is ever renamed."""
    digest = hashlib.sha256()
    size = 0
    out = None
    if dest is not None:
        with _writing(dest):
            out = os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW,
                                    0o600), "wb")
    try:
        while True:
            chunk = data.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > m.size:
                break
            digest.update(chunk)
            if out is not None:
                with _writing(dest):  # type: ignore[arg-type]
                    out.write(chunk)
    finally:
        if out is not None:
            with _writing(dest):  # type: ignore[arg-type]
                out.close()
    if size != m.size:
        raise EOFError(f"{m.path} cut short")
    got = digest.hexdigest()
    if got != m.sha256:
        raise _refuse(m.path, f"sha256 mismatch\n\tbundle:   {got}\n\tmanifest: {m.sha256}")
    if dest is not None:
        with _writing(dest):
            os.chmod(dest, m.mode)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def stage(reader: BundleReader, manifest: Manifest, staging: Optional[Path],
          on_bytes: Callable[[int], None] = lambda n: None) -> None:
    """Stream every content member into `staging`; refuse anything unlisted, missing or altered.

    With `staging=None` every check runs but nothing is written (inspect).
    """
    seen: Set[str] = set()
    try:
        for info, data in reader.content():
            m = _check_header(info, manifest.member(info.name))
            if m.path in seen:
                raise _refuse(m.path, "appears twice in the bundle")
            # Paths and link targets were checked with the whole manifest (no `..`, no absolute
            # paths, links only through real directories), and parents are listed dirs created
            # before their children, so no write can escape.
            parent = posixpath.dirname(m.path)
            if parent and parent not in seen:
                raise _refuse(m.path, f"arrives before its directory {parent}")
            if m.type == "hardlink" and m.target not in seen:
                raise _refuse(m.path, f"hard link to {m.target}, which was not written yet")
            if m.type == "file":
                assert data is not None
                _write_file(staging / m.path if staging else None, data, m)
                on_bytes(m.size)
            elif staging is None:
                pass
            else:
                with _writing(staging / m.path):
                    if m.type == "dir":
                        os.mkdir(staging / m.path, 0o700)
                    elif m.type == "symlink":
                        os.symlink(m.target, staging / m.path)
                    else:
                        os.link(staging / m.target, staging / m.path, follow_symlinks=False)
            seen.add(m.path)
            crashpoints.reached(f"stage-member-{len(seen)}")
    except reader.read_errors() as exc:
        raise reader.truncated(exc) from None
    except EOFError as exc:
        raise reader.truncated(exc) from None
    missing = [m.path for m in manifest.members if m.path not in seen]
    if missing:
        raise TrustError(
            f"reading bundle {reader.path}: {len(missing)} member(s) the manifest lists are not "
            f"in the bundle (first: {missing[0]}); the file is truncated or was altered. Copy it "
            f"again from the build host.", tampering=True)
    # Directories were created owner-only so nothing else could write into them while staging.
    for m in manifest.members if staging else ():
        if m.type == "dir":
            with _writing(staging / m.path):
                os.chmod(staging / m.path, m.mode)
