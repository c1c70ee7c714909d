"""Make damaged and forged bundles from a good one: rewrite its tar stream, re-sign, cut short."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import zstandard

from keys import sshkey, sshsig
from manifests.model import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME

Item = Tuple[tarfile.TarInfo, Optional[bytes]]
# Called for each member; returns the members to write in its place (empty: drop it).
Edit = Callable[[tarfile.TarInfo, Optional[bytes]], Iterable[Item]]


def members(bundle: Path) -> Iterator[Item]:
    """Every member of a bundle in stream order, with the bytes of regular files."""
    with open(bundle, "rb") as raw:
        reader = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(
            raw, read_across_frames=True)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for info in tar:
                f = tar.extractfile(info) if info.isreg() else None
                yield info, (f.read() if f is not None else None)


def header(bundle: Path) -> Dict[str, bytes]:
    """The three header members (manifest.json, manifest.sig, SHA256SUMS) by name."""
    found: Dict[str, bytes] = {}
    for info, data in members(bundle):
        if info.name not in (MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME):
            break
        assert data is not None
        found[info.name] = data
    return found


def write(dest: Path, items: Iterable[Item]) -> Path:
    """A pax tar of `items`, zstd level 1 (fast; the installer does not care about the level).

    As the builder does, leading header members (manifest.json, manifest.sig, SHA256SUMS,
    co-signatures) get a zstd frame of their own, so `rescue sign` works on crafted bundles.
    """
    pending = list(items)
    with open(dest, "wb") as raw:
        zst = zstandard.ZstdCompressor(level=1).stream_writer(raw, closefd=False)
        head = 0
        while head < len(pending) and _is_header(pending[head]):
            info, data = pending[head]
            assert data is not None
            info.size = len(data)
            zst.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data
                      + b"\0" * (-len(data) % tarfile.BLOCKSIZE))
            head += 1
        if head:
            zst.flush(zstandard.FLUSH_FRAME)
        with tarfile.open(fileobj=zst, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for info, data in pending[head:]:
                if data is not None:
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        zst.close()
    return dest


def _is_header(item: Item) -> bool:
    info, data = item
    return (data is not None and info.isreg()
            and (info.name in (MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME)
                 or info.name.startswith(SIGNATURE_NAME + ".")))


def rewrite(src: Path, dest: Path, edit: Optional[Edit] = None,
            append: Iterable[Item] = ()) -> Path:
    """Copy `src` to `dest` member by member through `edit`, adding `append` at the end."""
    def stream() -> Iterator[Item]:
        for info, data in members(src):
            yield from (edit(info, data) if edit else [(info, data)])
        yield from append
    return write(dest, stream())


def file_info(name: str, data: bytes = b"", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info


def flip_byte(data: bytes, offset: Optional[int] = None) -> bytes:
    at = len(data) // 2 if offset is None else offset
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def resign(manifest: bytes, key: Path) -> bytes:
    """An armored SSHSIG over `manifest` by the private key file `key`."""
    return sshsig.sign(sshkey.load_private_key(key), manifest).encode()


def canonical(doc: Dict[str, Any]) -> bytes:
    """The manifest's canonical JSON (as manifests.model.Manifest.to_json writes it)."""
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            + "\n").encode()


def sums(doc: Dict[str, Any]) -> bytes:
    return "".join(f"{m['sha256']}  {m['path']}\n" for m in doc["members"]
                   if m["type"] == "file").encode()


def forge(src: Path, dest: Path, change: Callable[[Dict[str, Any]], None],
          key: Optional[Path], *, edit: Optional[Edit] = None,
          append: Iterable[Item] = ()) -> Path:
    """Edit the manifest with `change`; sign it with `key` (None: keep the old signature)."""
    head = header(src)
    doc = json.loads(head[MANIFEST_NAME])
    change(doc)
    manifest = canonical(doc)
    new = {MANIFEST_NAME: manifest, SUMS_NAME: sums(doc),
           SIGNATURE_NAME: resign(manifest, key) if key else head[SIGNATURE_NAME]}

    def swap(info: tarfile.TarInfo, data: Optional[bytes]) -> Iterable[Item]:
        if info.name in new:
            return [(info, new[info.name])]
        return edit(info, data) if edit else [(info, data)]
    return rewrite(src, dest, swap, append)


def cut(src: Path, dest: Path, length: int) -> Path:
    """The first `length` bytes of `src`: a copy that stopped early."""
    with open(src, "rb") as f:
        dest.write_bytes(f.read(length))
    return dest


def snapshot(root: Path) -> Dict[str, Tuple[str, ...]]:
    """Every path under root (root included): type, mode, and content hash or link target."""
    if not os.path.lexists(root):
        return {}
    found: Dict[str, Tuple[str, ...]] = {}
    paths: List[str] = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinks
        paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    for path in paths:
        st = os.lstat(path)
        rel = Path(path).relative_to(root).as_posix()
        mode = f"{stat.S_IMODE(st.st_mode):o}"
        if stat.S_ISLNK(st.st_mode):
            found[rel] = ("symlink", mode, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[rel] = ("dir", mode)
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            found[rel] = ("file", mode, digest, str(st.st_nlink))
        else:
            found[rel] = ("other", mode)
    return found
