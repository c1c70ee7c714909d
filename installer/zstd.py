"""A zstd-decompressing reader: the `zstandard` wheel carried in the pyz, or Python 3.14's own."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import BinaryIO

from manifests.limits import DEFAULT_LIMITS, Limits


def open_reader(raw: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> BinaryIO:
    """A reader that refuses frames asking for a larger window than bundles are written with
    (the window is memory the decompressor allocates before it checks anything), decompressing
    ahead on a thread of its own: zstd and file reads release the GIL, so they overlap with the
    hashing and writing the caller does."""
    return _Ahead(_reader(raw, limits))  # type: ignore[return-value]


class _Ahead:
    """Reads `source` on a thread into a few 1 MiB chunks ahead of the consumer (bounded
    memory); errors travel with the data and are raised where the consumer reads."""

    _CHUNK = 1 << 20
    _DEPTH = 4

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(self._DEPTH)
        self._chunk = b""  # the chunk being handed out, from self._pos on
        self._pos = 0
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="rescue-zstd", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._source.read(self._CHUNK)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the consumer, raised where it reads
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1) -> bytes:
        want = n if n is not None and n >= 0 else 1 << 62
        pieces = []
        while want > 0:
            if self._pos >= len(self._chunk):
                if self._done:
                    break
                item = self._queue.get()
                if isinstance(item, BaseException):
                    self._done = True
                    raise item
                if not item:
                    self._done = True
                    break
                self._chunk, self._pos = item, 0  # type: ignore[assignment]
            piece = self._chunk[self._pos:self._pos + want]
            self._pos += len(piece)
            want -= len(piece)
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        """Stop reading ahead (the thread is gone when this returns), then close the source."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # room, so a waiting thread sees the stop
                self._queue.get_nowait()
            self._thread.join(0.05)
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


def _reader(raw: BinaryIO, limits: Limits) -> BinaryIO:
    try:
        import zstandard
    except ImportError:  # a 3.14 without the wheel (tests/test_stdlib_zstd.py)
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
    except ImportError:  # 3.14's own decoder: its ZstdError is no OSError
        from compression import zstd  # type: ignore[import-not-found]

        found.append(zstd.ZstdError)
    return tuple(found)
