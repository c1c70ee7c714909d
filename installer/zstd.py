"""A zstd-decompressing reader: the `zstandard` wheel carried in the pyz, or Python 3.14's own."""

from __future__ import annotations

from typing import BinaryIO

from manifests.limits import DEFAULT_LIMITS, Limits


def open_reader(raw: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> BinaryIO:
    """A reader that refuses frames asking for a larger window than bundles are written with:
    the window is memory the decompressor allocates before it checks anything."""
    try:
        import zstandard
    except ImportError:  # pragma: no cover - only on a 3.14 build without the wheel
        from compression import zstd  # type: ignore[import-not-found]

        return zstd.ZstdFile(  # type: ignore[no-any-return]
            raw, "rb", options={zstd.DecompressionParameter.window_log_max:
                                limits.zstd_window_log_max})
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << limits.zstd_window_log_max)
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
