"""A small signed GOROOT (and one module) to damage, and the in-process CLI to judge it:
shared by the verify and repair tests."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from installer import cli
from manifests.dirhash import hash_gomod, hash_zip
from tests.support import craft

TC = "go1.21.13.linux-amd64"
MOD_PATH, MOD_VERSION = "example.com/m", "v1.0.0"
MOD_FILE = f"module {MOD_PATH}\n\ngo 1.21\n".encode()
MOD_SOURCE = b"package m\n\nfunc M() int { return 1 }\n"


def module_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{MOD_PATH}@{MOD_VERSION}/go.mod", MOD_FILE)
        zf.writestr(f"{MOD_PATH}@{MOD_VERSION}/m.go", MOD_SOURCE)
    return buf.getvalue()


def with_module(c: craft.Craft) -> Dict[str, Any]:
    at = f"goproxy/{MOD_PATH}/@v"
    parts = at.split("/")
    for i in range(1, len(parts) + 1):
        c.dir("/".join(parts[:i]))
    data = module_zip()
    c.file(f"{at}/{MOD_VERSION}.mod", MOD_FILE).file(f"{at}/{MOD_VERSION}.zip", data)
    c.file(f"{at}/{MOD_VERSION}.info", f'{{"Version":"{MOD_VERSION}"}}\n'.encode())
    c.file(f"{at}/list", f"{MOD_VERSION}\n".encode())
    return {"path": MOD_PATH, "version": MOD_VERSION, "mod_hash": hash_gomod(MOD_FILE),
            "zip_hash": hash_zip(io.BytesIO(data))}


def toolchain_bundle(dest: Path, key: Path, version: str = "go1.21.13", sequence: int = 1,
                     modules: bool = True) -> Path:
    """A fake GOROOT with a source file, a tool, a hard link and a symlink, plus one module."""
    c = craft.Craft(name="dc", sequence=sequence)
    root = c.toolchain(version=version)
    c.dir(f"{root}/src").dir(f"{root}/src/fmt")
    c.file(f"{root}/src/fmt/print.go", b"package fmt\n\nfunc Println() {}\n")
    c.dir(f"{root}/pkg").dir(f"{root}/pkg/tool").dir(f"{root}/pkg/tool/linux_amd64")
    c.file(f"{root}/pkg/tool/linux_amd64/vet", b"\x7fELF vet\n", 0o755)
    c.hardlink(f"{root}/bin/gofmt", f"{root}/pkg/tool/linux_amd64/vet", 0o755)
    c.symlink(f"{root}/src/fmt/latest", "print.go")
    mods = [with_module(c)] if modules else []
    return c.write(dest, key, doc={**c.doc(), "modules": mods})


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[Path]:
    """A prefix to install into; made writable again afterwards so pytest can remove it."""
    p = tmp_path / "P"
    yield p
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], capture_output=True)


def rescue(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, Dict[str, Any], str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if "--json" in args else {"text": out}, err


def edit(path: Path, data: Any = None) -> None:
    """Write `data` into `path` (None: delete it) as someone editing an installed tree would:
    chmod u+w first, then the modes put back, so that only the content differs."""
    parent_mode = stat.S_IMODE(path.parent.stat().st_mode)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o444
    path.parent.chmod(parent_mode | stat.S_IWUSR)
    if data is None:
        path.unlink()
    else:
        if path.exists():
            path.chmod(mode | stat.S_IWUSR)
        (path.write_text if isinstance(data, str) else path.write_bytes)(data)
        path.chmod(mode)
    path.parent.chmod(parent_mode)
