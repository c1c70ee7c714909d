"""The download store: files named by their sha256, so a rebuild never fetches bytes twice."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple

from manifests.files import sha256_file


class BlobStore:
    """`root/sha256/<hex[:2]>/<hex>` files (toolchain archives, module files), staged under
    `root/tmp` and renamed into place only once complete and fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def lookup(self, sha256: str) -> Optional[Path]:
        """The stored file, when its bytes still hash to its name: a cache is just a directory
        anyone on this host could edit."""
        path = self.path_for(sha256)
        if path.is_file() and sha256_file(path) == sha256:
            return path
        return None

    @contextmanager
    def staged(self) -> Iterator[Path]:
        """An empty temp file to download into; gone on exit unless `add` took it in."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir)
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def add(self, staged: Path, sha256: Optional[str] = None) -> Tuple[str, Path]:
        """Move a complete staged file in under its sha256 (given when the caller hashed it
        while writing); its sha256 and stored path."""
        sha256 = sha256 or sha256_file(staged)
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(staged, 0o644)
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        return sha256, final
