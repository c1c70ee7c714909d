"""The SBOM of rescue.pyz: the wheels it carries, by name, version, sha256 and declared license."""

from __future__ import annotations

import email.parser
import os
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict

from manifests import __version__, sbom
from manifests.files import sha256_file, write_atomic

# An SPDX license expression as a wheel's METADATA declares it (PEP 639), nothing else.
_EXPRESSION = re.compile(r"\A[A-Za-z0-9.+\-() ]{1,200}\Z")
# The zip's own timestamp (zipapp.FIXED_TIME) unless SOURCE_DATE_EPOCH says otherwise: the
# same pyz, the same SBOM bytes.
_FIXED = "1980-01-01T00:00:00Z"


def _created() -> str:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not raw.isdigit():
        return _FIXED
    return datetime.fromtimestamp(int(raw), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wheel(path: Path, project: str) -> sbom.Wheel:
    version = path.name.split("-")[1]
    declared = ""
    with zipfile.ZipFile(path) as zf:
        meta = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        if len(meta) == 1:
            headers = email.parser.BytesHeaderParser().parsebytes(zf.read(meta[0]))
            text = (headers.get("License-Expression") or "").strip()
            declared = text if _EXPRESSION.match(text) else ""
    return sbom.Wheel(project, version, path.name, sha256_file(path), declared)


def files(build_id: str, used: Dict[str, str]) -> Dict[str, bytes]:
    """format -> the SBOM bytes of a pyz carrying the wheels `used` (path -> project). It
    names the pyz `rescue.pyz` whatever the file is called: the same inputs, the same pyz."""
    wheels = [_wheel(Path(p), project) for p, project in sorted(used.items())]
    return sbom.pyz_files("rescue.pyz", __version__, build_id, _created(), wheels)


def write_beside(pyz: Path, fmt: str, data: bytes) -> Path:
    path = pyz.with_name(pyz.name + sbom.SUFFIXES[fmt])
    write_atomic(path, data)
    return path
