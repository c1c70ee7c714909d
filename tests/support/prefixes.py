"""Prefixes with tiny fake toolchains installed in-process, for tests of the day-two commands."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from installer import cli
from tests.support import bundles, craft


def install_fakes(tmp_path: Path, signing: bundles.Signing, versions: Sequence[str],
                  sdk: bool = False) -> Path:
    """`tmp_path/P` with a crafted bundle of each version installed in turn (sequences 1, 2,
    ...), so the last one is current. `sdk` gives each GOROOT the src/ and pkg/tool/
    directories that make it look like a Go SDK to doctor."""
    prefix = tmp_path / "P"
    for seq, version in enumerate(versions, start=1):
        c = craft.Craft(sequence=seq)
        root = c.toolchain(version=version)
        for d in ("src", "src/runtime", "pkg", "pkg/tool") if sdk else ():
            c.dir(f"{root}/{d}")
        bundle = c.write(tmp_path / f"{seq}.tar.zst", signing.key)
        code = cli.main(["install", str(bundle), "--prefix", str(prefix), "--trust",
                         str(signing.signers)])
        assert code == 0, f"installing the fake {version} failed (exit {code})"
    return prefix
