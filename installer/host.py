"""Which Go platform this machine is, in Go's own GOOS-GOARCH spelling."""

from __future__ import annotations

import platform
import sys

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "i386": "386", "i686": "386", "x86": "386"}


def host_target() -> str:
    goos = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform,
                                                                         sys.platform)
    return f"{goos}-{_ARCH.get(platform.machine().lower(), platform.machine().lower())}"
