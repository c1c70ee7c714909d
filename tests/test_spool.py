"""The build's spool: each upstream file read once, kept once, read back whole."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from bundler.spool import CHUNK, Spool


def test_spool_reads_back_each_file_by_its_sha256(tmp_path: Path) -> None:
    files = [b"", b"small", b"x" * (2 * CHUNK + 7)]
    with Spool(tmp_path / "tmp") as spool:
        got = [spool.add(io.BytesIO(data)) for data in files]
        assert got == [(hashlib.sha256(d).hexdigest(), len(d)) for d in files]
        for data, (sha, _size) in zip(files, got):
            with spool.open(sha) as f:
                assert f.read() == data


def test_spool_keeps_identical_content_once(tmp_path: Path) -> None:
    with Spool(tmp_path / "tmp") as spool:
        a, _ = spool.add(io.BytesIO(b"same bytes"))
        spool.add(io.BytesIO(b"same bytes"))
        b, _ = spool.add(io.BytesIO(b"other"))
        assert spool.open(a).read(4) == b"same"
        assert spool.open(b).read() == b"other"
        assert spool._end == len(b"same bytes") + len(b"other")


def test_spool_leaves_nothing_on_disk(tmp_path: Path) -> None:
    with Spool(tmp_path / "tmp") as spool:
        spool.add(io.BytesIO(b"data"))
    assert list((tmp_path / "tmp").iterdir()) == []
