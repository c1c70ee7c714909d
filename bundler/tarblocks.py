"""A bundle member's tar header, byte for byte as tarfile's PAX format writes it, built fast."""

from __future__ import annotations

import tarfile

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_NAME = 100  # ustar name and linkname fields; longer ones need a PAX record
_OCTAL_11 = 8 ** 11  # the largest size or mtime a 12-byte ustar field holds
_TAIL = b"ustar\x0000" + b"\0" * (32 + 32 + 8 + 8 + 155 + 12)  # no users, devices, prefix


def header(name: str, kind: bytes, mode: int, mtime: int, size: int = 0,
           linkname: str = "") -> bytes:
    """The header block(s) of one member owned by 0:0 with no user names. tarfile spends
    ~30 us on each (10,000 per Go release); this builds the plain ustar block itself and
    leaves the rare member that needs PAX records (a name or link over 100 bytes, a
    non-ASCII one) to tarfile."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"  # as TarInfo.get_info does
    if (len(name) > _NAME or len(linkname) > _NAME or not name.isascii()
            or not linkname.isascii() or size >= _OCTAL_11 or not 0 <= mtime < _OCTAL_11):
        return _tarinfo(name, kind, mode, mtime, size, linkname).tobuf(
            tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    block = b"".join((
        name.encode("ascii").ljust(_NAME, b"\0"), b"%07o\0" % (mode & 0o7777),
        b"0000000\0", b"0000000\0", b"%011o\0" % size, b"%011o\0" % mtime,
        b"        ", kind, linkname.encode("ascii").ljust(_NAME, b"\0"), _TAIL))
    # The checksum counts its own field as eight spaces, as written above.
    return block[:148] + b"%06o\0" % sum(block) + block[155:]


def _tarinfo(name: str, kind: bytes, mode: int, mtime: int, size: int,
             linkname: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname, ti.mtime = kind, mode, size, linkname, mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def padding(size: int) -> bytes:
    """NULs that fill a member's last block."""
    return b"\0" * (-size % BLOCK)


def end(offset: int) -> bytes:
    """The end-of-archive blocks, then NULs to a whole record, as TarFile.close() writes
    them; `offset`: the bytes of tar written so far."""
    offset += 2 * BLOCK
    return b"\0" * (2 * BLOCK + (-offset % RECORD))
