"""A zstd-decompressing reader: the `zstandard` wheel carried in the pyz, or Python 3.14's own."""

from __future__ import annotations

from typing import BinaryIO

MAX_WINDOW = 1 << 31


def open_reader(raw: BinaryIO) -> BinaryIO:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - only on a 3.14 build without the wheel
        from compression import zstd  # type: ignore[import-not-found]

        return zstd.ZstdFile(raw, "rb")  # type: ignore[no-any-return]
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    return dctx.stream_reader(raw, read_across_frames=True, closefd=False)  # type: ignore


def errors() -> tuple:
    """Exceptions a damaged zstd stream raises, whichever backend is in use."""
    found: list = [EOFError, OSError]
    try:
        import zstandard

        found.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)
