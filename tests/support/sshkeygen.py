"""Stock `ssh-keygen -Y` for interop tests: what an operator would run by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

NAMESPACE = "rescue-manifest"


def sign(key: Path, data_file: Path) -> Path:
    """`ssh-keygen -Y sign`: writes and returns `<data_file>.sig`."""
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(data_file)],
                   check=True, capture_output=True, timeout=60)
    return data_file.with_name(data_file.name + ".sig")


def verify(store: Path, principal: str, signature: Path, data: bytes
           ) -> subprocess.CompletedProcess:
    """`ssh-keygen -Y verify` of `data` (on stdin) against the allowed_signers `store`."""
    return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(store), "-I", principal,
                           "-n", NAMESPACE, "-s", str(signature)],
                          input=data, capture_output=True, timeout=60)
