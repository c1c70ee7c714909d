"""The download store: an edited blob is not served, and nothing half-written gets a name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bundler.blobstore import BlobStore


def test_added_file_is_found_by_its_sha256(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.staged() as tmp:
        tmp.write_bytes(b"go1.21.13")
        sha, path = store.add(tmp)
    assert sha == hashlib.sha256(b"go1.21.13").hexdigest()
    assert store.lookup(sha) == path == tmp_path / "sha256" / sha[:2] / sha
    assert not list((tmp_path / "tmp").iterdir())


def test_edited_blob_is_not_served(tmp_path: Path) -> None:
    # The cache is a directory anyone on the build host could write to.
    store = BlobStore(tmp_path)
    with store.staged() as tmp:
        tmp.write_bytes(b"original")
        sha, path = store.add(tmp)
    path.write_bytes(b"edited")
    assert store.lookup(sha) is None


def test_abandoned_staged_file_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    try:
        with store.staged() as tmp:
            tmp.write_bytes(b"half a downl")
            raise ConnectionError("dropped")
    except ConnectionError:
        pass
    assert not list((tmp_path / "tmp").iterdir())
    assert not (tmp_path / "sha256").exists()
