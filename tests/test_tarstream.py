"""The fast upstream tar reader: what tarfile reads, it reads; a damaged stream is refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from typing import List, Tuple

import pytest

from bundler import tarstream
from tests.support import gobin

Row = Tuple[str, str, int, int, str, str]


def _ours(raw: io.IOBase) -> List[Row]:
    return [(h.name, h.type, h.mode, h.size, h.linkname,
             hashlib.sha256(data.read()).hexdigest() if data else "")
            for h, data in tarstream.entries(raw)]  # type: ignore[arg-type]


def _tarfiles(tar: tarfile.TarFile) -> List[Row]:
    kind = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}
    return [(ti.name, kind[ti.type], ti.mode, ti.size if ti.isreg() else 0, ti.linkname,
             hashlib.sha256(tar.extractfile(ti).read()).hexdigest()  # type: ignore[union-attr]
             if ti.isreg() else "")
            for ti in tar]


def _archive(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in [("go/" + "deep/" * 30 + "file.go", b"package deep\n"),
                           ("go/empty", b""), ("go/bin/go", b"\x7fELF" * 3000)]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o755
            tar.addfile(ti, io.BytesIO(data))
        d = tarfile.TarInfo("go/" + "dir/" * 30)
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        link = tarfile.TarInfo("go/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../" + "far/" * 30 + "target"
        tar.addfile(link)
    return out.getvalue()


def test_go_release_archive_reads_as_tarfile_reads_it() -> None:
    with tarfile.open(gobin.godl_archive(), "r|gz") as tar:
        want = _tarfiles(tar)
    with gzip.open(gobin.godl_archive()) as raw:
        assert _ours(raw) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT],
                         ids=["pax", "gnu", "ustar"])
def test_long_names_read_as_tarfile_reads_them(fmt: int) -> None:
    # ustar splits a long name into prefix + name
    data = _archive_ustar() if fmt == tarfile.USTAR_FORMAT else _archive(fmt)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        assert _ours(io.BytesIO(data)) == _tarfiles(tar)


def _archive_ustar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        ti = tarfile.TarInfo("go/" + "d" * 90 + "/" + "f" * 90)
        ti.size = 3
        tar.addfile(ti, io.BytesIO(b"abc"))
    return out.getvalue()


def test_flipped_header_byte_fails_the_checksum() -> None:
    data = bytearray(_archive(tarfile.PAX_FORMAT))
    data[20] ^= 0x20  # the name field of the first header
    with pytest.raises(tarstream.TarFormatError, match="bad header checksum"):
        _ours(io.BytesIO(bytes(data)))


def test_member_cut_short_is_unexpected_end_of_data() -> None:
    data = _archive(tarfile.PAX_FORMAT)
    cut = data[: data.index(b"\x7fELF") + 100]
    with pytest.raises(tarstream.TarFormatError, match="unexpected end of data"):
        _ours(io.BytesIO(cut))


def test_hard_link_comes_out_as_another_type_for_the_caller_to_refuse() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("go/hard")
        ti.type, ti.linkname = tarfile.LNKTYPE, "go/VERSION"
        tar.addfile(ti)
    ((h, data),) = list(tarstream.entries(io.BytesIO(out.getvalue())))
    assert (h.name, h.type, data) == ("go/hard", "type b'1'", None)
