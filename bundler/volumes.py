"""`rescue split` (and `build --volume-size`): cut a bundle into parts no larger than a
volume, plus a signed index, for media that cannot hold the whole file (FAT32: < 4 GiB)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, List

from keys import sshsig
from manifests.errors import NotReadyError
from manifests.files import write_atomic
from manifests.volumes import (
    INDEX_SUFFIX,
    MAX_PARTS,
    SIGNATURE_SUFFIX,
    Index,
    Part,
    part_name,
)

CHUNK = 1 << 20


def split(bundle: Path, volume_size: int, private_key: Any, out_dir: Path) -> Index:
    """Write `<bundle>.part001...` into `out_dir`, each at most `volume_size` bytes, then the
    index and its signature: readers find the index last, so a half-written set is never
    taken for a whole one."""
    try:
        total = bundle.stat().st_size
    except OSError as exc:
        raise NotReadyError(f"splitting {bundle}: {exc.strerror}", operation="splitting",
                            subject=str(bundle)) from None
    count = max(1, -(-total // volume_size))
    if count > MAX_PARTS:
        raise NotReadyError(f"splitting {bundle}: {count} parts of {volume_size} bytes; at "
                            f"most {MAX_PARTS}: give a larger --volume-size",
                            operation="splitting", subject="--volume-size")
    out_dir.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    parts: List[Part] = []
    with open(bundle, "rb") as src:
        for n in range(1, count + 1):
            name = part_name(bundle.name, n)
            digest, size = hashlib.sha256(), 0
            tmp = out_dir / f".{name}.partial"
            with open(tmp, "wb") as out:
                while size < volume_size:
                    chunk = src.read(min(CHUNK, volume_size - size))
                    if not chunk:
                        break
                    digest.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, out_dir / name)
            parts.append(Part(name, size, digest.hexdigest()))
    index = Index(bundle.name, total, whole.hexdigest(), tuple(parts))
    data = index.to_json()
    write_atomic(out_dir / (bundle.name + SIGNATURE_SUFFIX),
                 sshsig.sign(private_key, data).encode())
    write_atomic(out_dir / (bundle.name + INDEX_SUFFIX), data)
    return index
