"""Upstream .tar.gz archives: read once, entry by entry; a damaged one is named, not guessed at."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from bundler import archives
from manifests.errors import TrustError


def _targz(path: Path, files: Dict[str, bytes], extra: Tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in ("go", "go/bin", *extra):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            tar.addfile(ti)
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o755 if name.startswith("go/bin/") else 0o644
            tar.addfile(ti, io.BytesIO(data))
        link = tarfile.TarInfo("go/bin/gofmt-link")
        link.type, link.linkname = tarfile.SYMTYPE, "gofmt"
        tar.addfile(link)
    return path


FILES = {"go/VERSION": b"go1.99.0\n", "go/bin/go": b"\x7fELF" * 5000,
         "go/src/" + "long/" * 40 + "name.go": b"package long\n"}  # a PAX path record


def _read(path: Path) -> List[Tuple[archives.Entry, bytes]]:
    return [(e, d.read() if d is not None else b"")
            for e, d in archives.open_archive(path, "archive", "go1.99.0 linux/amd64 archive")]


@pytest.mark.parametrize("isal", [True, False], ids=["isal", "stdlib-gzip"])
def test_tar_gz_entries_come_with_their_bytes(tmp_path: Path, isal: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if not isal:
        monkeypatch.setattr(archives, "igzip_threaded", None)
    got = _read(_targz(tmp_path / "go.tar.gz", FILES))
    files = {e.name: (e.mode, data) for e, data in got if e.type == "file"}
    assert files == {name[3:]: (0o755 if "/bin/" in name else 0o644, data)
                     for name, data in FILES.items()}
    assert [e.name for e, _ in got if e.type == "dir"] == ["bin"]
    assert [(e.name, e.target) for e, _ in got if e.type == "symlink"] == [
        ("bin/gofmt-link", "gofmt")]


@pytest.mark.parametrize("isal", [True, False], ids=["isal", "stdlib-gzip"])
def test_truncated_tar_gz_is_named_not_valid(tmp_path: Path, isal: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if not isal:
        monkeypatch.setattr(archives, "igzip_threaded", None)
    whole = _targz(tmp_path / "whole.tar.gz", FILES).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TrustError, match=r"cut.tar.gz: not a valid .tar.gz"):
        _read(cut)


def test_entry_outside_the_go_directory_is_refused(tmp_path: Path) -> None:
    bad = _targz(tmp_path / "bad.tar.gz", {"etc/passwd": b"root::0:0\n"})
    with pytest.raises(TrustError, match="is outside the top-level go/ directory"):
        _read(bad)


def test_hard_link_or_device_in_an_upstream_archive_is_refused_by_name(tmp_path: Path) -> None:
    """go.dev archives hold files, dirs and symlinks only: anything else is named, not carried."""
    path = _targz(tmp_path / "odd.tar.gz", {"go/VERSION": b"go1.99.0\n"})
    with tarfile.open(path, "r:gz") as src:
        kept = [(ti, src.extractfile(ti).read() if ti.isreg() else None)  # type: ignore[union-attr]
                for ti in src]
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in kept:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        link = tarfile.TarInfo("go/bin/go-again")
        link.type, link.linkname = tarfile.LNKTYPE, "go/VERSION"
        tar.addfile(link)
    with pytest.raises(TrustError, match=r"reading go1.99.0 linux/amd64 archive: go/bin/go-again: "
                       r"unsupported entry type b'1' \(only files, dirs and symlinks are "
                       r"carried\)"):
        _read(path)
