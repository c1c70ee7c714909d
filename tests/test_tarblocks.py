"""The bundle's tar headers: byte for byte what tarfile's PAX format writes."""

from __future__ import annotations

import io
import tarfile

import pytest

from bundler import tarblocks

CASES = [
    ("toolchains/go1.21.13.linux-amd64/go/bin/go", tarfile.REGTYPE, 0o755, 15_000_000, ""),
    ("toolchains/go1.21.13.linux-amd64/go/src", tarfile.DIRTYPE, 0o755, 0, ""),
    ("goproxy/", tarfile.DIRTYPE, 0o755, 0, ""),
    ("toolchains/x/go/bin/gofmt", tarfile.LNKTYPE, 0o755, 0, "toolchains/y/go/bin/gofmt"),
    ("toolchains/x/go/lib/link", tarfile.SYMTYPE, 0o777, 0, "../a/b"),
    ("x" * 100, tarfile.REGTYPE, 0o644, 1, ""),  # exactly fits
    ("x" * 100, tarfile.DIRTYPE, 0o755, 0, ""),  # its slash does not: PAX
    ("toolchains/" + "deep/" * 30 + "f.go", tarfile.REGTYPE, 0o644, 12, ""),
    ("toolchains/x/go/link", tarfile.SYMTYPE, 0o777, 0, "../" * 40),
    ("toolchains/x/go/caf\u00e9.go", tarfile.REGTYPE, 0o644, 3, ""),
    ("manifest.json", tarfile.REGTYPE, 0o644, 0, ""),
]


def _tarfiles(name: str, kind: bytes, mode: int, size: int, linkname: str) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname, ti.mtime = kind, mode, size, linkname, 1_700_000_000
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0][:30]}-{c[1]!r}" for c in CASES])
def test_header_is_what_tarfile_writes(case: tuple) -> None:
    name, kind, mode, size, linkname = case
    assert tarblocks.header(name, kind, mode, 1_700_000_000, size, linkname) == \
        _tarfiles(name, kind, mode, size, linkname)


@pytest.mark.parametrize("written", [0, 512, 10240 - 1024, 10240 - 512, 123 * 512])
def test_end_blocks_are_what_tarfile_close_writes(written: int) -> None:
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
    tar.offset = written  # as if `written` bytes of members had gone before
    tar.close()
    assert tarblocks.end(written) == out.getvalue()
