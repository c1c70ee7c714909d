"""The pyz's LZMA members come from a kept copy only when it holds exactly their content, and
are then the bytes ZipFile.writestr would have written."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from bundler import pyz_lzma

MEMBERS = {
    "_native/a/lib.so": os.urandom(5000) + b"\0" * 70000,
    "_native/b/empty": b"",
    "_native/c/text.py": b"print('hello')\n" * 400,
}


def _zip(write) -> bytes:
    raw = io.BytesIO()
    raw.write(b"#!/usr/bin/env python3\n")  # the pyz's shebang comes first
    with zipfile.ZipFile(raw, "w", allowZip64=False) as zf:
        zf.writestr(zipfile.ZipInfo("__main__.py", (1980, 1, 1, 0, 0, 0)), b"pass\n")
        for name, data in MEMBERS.items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            write(zf, info, data)
    return raw.getvalue()


def _stdlib(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data: bytes) -> None:
    info.compress_type = zipfile.ZIP_LZMA
    zf.writestr(info, data)


def test_kept_lzma_members_are_the_bytes_writestr_writes(tmp_path: Path) -> None:
    expected = _zip(_stdlib)
    cold = _zip(lambda zf, i, d: pyz_lzma.write_member(zf, i, d, tmp_path))
    warm = _zip(lambda zf, i, d: pyz_lzma.write_member(zf, i, d, tmp_path))
    assert cold == expected and warm == expected
    with zipfile.ZipFile(io.BytesIO(warm)) as zf:
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in MEMBERS} == MEMBERS


def test_a_kept_copy_that_no_longer_holds_its_content_is_made_again(tmp_path: Path) -> None:
    data = MEMBERS["_native/a/lib.so"]
    good = pyz_lzma.payload(data, tmp_path)
    (kept,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    for damage in (good[:-9], good[:20] + bytes(len(good) - 20), b"", b"not lzma at all"):
        kept.write_bytes(damage)
        assert pyz_lzma.payload(data, tmp_path) == good
        assert kept.read_bytes() == good
