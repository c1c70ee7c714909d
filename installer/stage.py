"""Write a bundle's content into a staging directory, checking every member against the manifest."""

from __future__ import annotations

import hashlib
import os
import posixpath
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Set, Union

from installer import crashpoints, hostos
from installer.bundle_reader import BundleReader, truncated
from installer.machine import machine_error
from installer.prefix import read_only_mode
from manifests.errors import TrustError
from manifests.files import NEW_FILE, write_all
from manifests.member_check import check_member, refuse
from manifests.model import Manifest, Member

CHUNK = 1 << 20
StrPath = Union[str, Path]


@contextmanager
def _writing(path: StrPath) -> Iterator[None]:
    """An error writing into staging is this machine's (disk full, no inodes), not the bundle's."""
    try:
        yield
    except OSError as exc:
        raise machine_error("staging the bundle", exc, path) from None


def _write_file(dest: Optional[StrPath], data: BinaryIO, m: Member, mode: int) -> None:
    """Copy while hashing (each byte read once, written with no buffer copy in between); a
    mismatch is caught before the staging dir is ever renamed. The tar reader stops at the
    member's size, which the manifest check made equal to the signed one."""
    digest = hashlib.sha256()
    size = 0
    fd = -1
    try:
        if dest is not None:
            fd = os.open(dest, NEW_FILE, 0o600)
        while size < m.size:
            chunk = data.read(min(CHUNK, m.size - size))
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
            if fd >= 0:
                write_all(fd, chunk)
        if size != m.size:
            raise EOFError(f"{m.path} cut short")
        got = digest.hexdigest()
        if got != m.sha256:
            raise refuse(m.path, f"sha256 mismatch\n\tbundle:   {got}\n\tmanifest: {m.sha256}")
        if fd >= 0:
            hostos.fchmod(fd, dest, mode)
    except OSError as exc:  # writing into staging: this machine's (disk full, no inodes)
        raise machine_error("staging the bundle", exc, dest) from None
    finally:
        if fd >= 0:
            os.close(fd)


class Directory:
    """Every member written under `root`: install's staging directory. Files whose path starts
    with `read_only` get their installed read-only mode as they are created, which spares a
    second pass over every file."""

    def __init__(self, root: Path, read_only: str = "") -> None:
        self.root = root
        self.read_only = read_only
        self._base = str(root) + "/"  # joined as text: a Path per member costs more than its write

    def file_mode(self, m: Member) -> int:
        return read_only_mode(m.mode) if self.read_only and m.path.startswith(
            self.read_only) else m.mode

    def path(self, m: Member) -> Optional[str]:
        return self._base + m.path

    def place(self, member_path: str) -> str:
        return self._base + member_path


class Discard:
    """Every check, nothing written: inspect."""

    def path(self, m: Member) -> Optional[StrPath]:
        return None

    def place(self, member_path: str) -> StrPath:
        raise AssertionError("Discard writes nothing")

    def file_mode(self, m: Member) -> int:
        return m.mode


class Selected:
    """Only the regular files in `wanted`, each where `place` puts it: repair, which needs a
    few damaged files out of a whole bundle."""

    def __init__(self, wanted: Dict[str, Path]) -> None:
        self.wanted = wanted

    def path(self, m: Member) -> Optional[StrPath]:
        return self.wanted.get(m.path) if m.type == "file" else None

    def place(self, member_path: str) -> StrPath:
        return self.wanted[member_path]

    def file_mode(self, m: Member) -> int:
        return m.mode


Destination = Union[Directory, Discard, Selected]


def stage(reader: BundleReader, manifest: Manifest, dest: Destination,
          on_bytes: Callable[[int], None] = lambda n: None) -> None:
    """Stream every content member, checking each against the signed manifest; write the ones
    `dest` wants. Anything unlisted, missing or altered is refused.
    """
    seen: Set[str] = set()
    written_dirs: List[Member] = []
    try:
        for header, data in reader.content():
            m = check_member(header, manifest)
            if m.path in seen:
                raise refuse(m.path, "appears twice in the bundle")
            # Paths and link targets were checked with the whole manifest (no `..`, no absolute
            # paths, links only through real directories), and parents are listed dirs created
            # before their children, so no write can escape.
            parent = posixpath.dirname(m.path)
            if parent and parent not in seen:
                raise refuse(m.path, f"arrives before its directory {parent}")
            if m.type == "hardlink" and m.target not in seen:
                raise refuse(m.path, f"hard link to {m.target}, which was not written yet")
            out = dest.path(m)
            if m.type == "file":
                assert data is not None
                _write_file(out, data, m, dest.file_mode(m))
                on_bytes(m.size)
            elif out is not None:
                with _writing(out):
                    if m.type == "dir":
                        os.mkdir(out, 0o700)
                        written_dirs.append(m)
                    elif m.type == "symlink":
                        os.symlink(m.target, out)
                    else:
                        os.link(dest.place(m.target), out, follow_symlinks=False)
            seen.add(m.path)
            crashpoints.reached(f"stage-member-{len(seen)}")
    except EOFError as exc:  # a member shorter than its header said
        raise truncated(reader.path, exc) from None
    missing = [m.path for m in manifest.members if m.path not in seen]
    if missing:
        raise TrustError(
            f"reading bundle {reader.path}: {len(missing)} member(s) the manifest lists are not "
            f"in the bundle (first: {missing[0]}); the file is truncated or damaged, or was "
            "altered. Copy it again from the build host.", tampering=True)
    # Directories were created owner-only so nothing else could write into them while staging.
    for m in written_dirs:
        with _writing(dest.place(m.path)):
            os.chmod(dest.place(m.path), m.mode)
