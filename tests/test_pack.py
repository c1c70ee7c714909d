"""The bundle writer: the bytes it packs depend on the content, never on the packing machine."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Dict

import pytest

from bundler.pack import BundleWriter
from bundler.part import Part
from manifests.model import Member


def _pack(out: Path, workers: int, files: Dict[str, bytes]) -> bytes:
    members = [Member("goproxy", "dir", 0o755)]
    members += [Member(f"goproxy/{name}", "file", 0o644, len(data),
                       hashlib.sha256(data).hexdigest()) for name, data in files.items()]
    writer = BundleWriter(out, 1, 1_700_000_000, workers)
    writer.add_header([("manifest.json", b"{}")])
    writer.write_part(Part(members, lambda m: io.BytesIO(files[m.path[len("goproxy/"):]])))
    writer.commit()
    return out.read_bytes()


def test_bundle_bytes_do_not_depend_on_the_zstd_worker_count(tmp_path: Path) -> None:
    # Compressible but not trivial, and well past level 1's job size with long-distance
    # matching (2 MiB), so that several workers really share the frame.
    rng = random.Random(7)
    words = [bytes(rng.randrange(97, 123) for _ in range(rng.randrange(3, 12)))
             for _ in range(4000)]
    files = {f"f{i}": b" ".join(rng.choice(words) for _ in range(120_000)) for i in range(10)}
    assert sum(map(len, files.values())) > 4 * (2 << 20)
    one = _pack(tmp_path / "one.tar.zst", 1, files)
    assert _pack(tmp_path / "three.tar.zst", 3, files) == one
    assert _pack(tmp_path / "all.tar.zst", -1, files) == one


def test_bundle_writer_refuses_zero_workers(tmp_path: Path) -> None:
    # zstd's single-threaded format differs: a machine must not be able to pick it.
    with pytest.raises(ValueError, match="zstd workers: 0"):
        BundleWriter(tmp_path / "b.tar.zst", 1, 0, 0)
