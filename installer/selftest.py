"""Prove the pyz's native parts load and work on this interpreter (`rescue selftest`)."""

from __future__ import annotations

import platform
import sys
from typing import Any, Dict, Optional


def _native_dir() -> Optional[str]:
    # The pyz bootstrap runs as __main__ and records where it unpacked the native parts.
    main = sys.modules.get("__main__")
    return getattr(main, "NATIVE_DIR", None)


def _has_stdlib_zstd() -> bool:
    try:
        import compression.zstd  # noqa: F401  (Python 3.14+, when built with libzstd)
    except ImportError:
        return False
    return True


def run() -> Dict[str, Any]:
    """Round-trip zstd and an Ed25519 signature; report versions and where natives came from."""
    import cryptography
    import zstandard
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    payload = b"rescue selftest " * 4096
    frame = zstandard.ZstdCompressor(level=19).compress(payload)
    zstd_ok = zstandard.ZstdDecompressor().decompress(frame) == payload

    key = Ed25519PrivateKey.generate()
    signature = key.sign(payload)
    key.public_key().verify(signature, payload)  # raises InvalidSignature when broken
    try:
        key.public_key().verify(signature, payload + b"!")
        tamper_caught = False
    except InvalidSignature:
        tamper_caught = True

    return {
        "ok": zstd_ok and tamper_caught,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "zstandard": zstandard.__version__,
        "zstandard_backend": zstandard.backend,
        "cryptography": cryptography.__version__,
        "click": _click_version(),
        "stdlib_zstd": _has_stdlib_zstd(),
        "native_dir": _native_dir(),
        "build_id": getattr(sys.modules.get("__main__"), "BUILD_ID", None),
        "isolated": bool(sys.flags.isolated),
    }


def _click_version() -> str:
    """Click 8.2 deprecates `click.__version__`; the pyz may carry no dist-info to ask."""
    try:
        from importlib import metadata  # 3.8+
    except ImportError:
        return "bundled"
    try:
        return metadata.version("click")
    except metadata.PackageNotFoundError:
        return "bundled"
