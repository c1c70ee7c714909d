"""Build real bundles for tests: keys, a spec pointing at loopback upstreams, the bundler."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bundler import build, spec
from bundler.blobstore import BlobStore
from keys import allowed_signers, sshkey


@dataclass(frozen=True)
class Signing:
    key: Path
    signers: Path  # allowed_signers trusting `key`
    key_id: str


def make_signing(directory: Path, name: str = "release") -> Signing:
    directory.mkdir(parents=True, exist_ok=True)
    pub = sshkey.generate_keypair(directory / name, comment=name)
    store = directory / "allowed_signers"
    allowed_signers.add_signer(store, f"{name}@rescue", pub.openssh_line())
    return Signing(directory / name, store, pub.key_id)


def write_spec(path: Path, key: Path, base_url: str, *, name: str = "rescue-test",
               channel: str = "stable", sequence: int = 1, level: int = 3, source: str = "godl",
               versions: str = '["1.21.13"]', targets: str = '["linux-amd64"]',
               extra: str = "") -> Path:
    """A spec for Go 1.21.13 linux-amd64 from a loopback go.dev (or PyPI) look-alike."""
    path.write_text(f"""
[bundle]
name = "{name}"
channel = "{channel}"
sequence = {sequence}
signing_key = "{key}"
compression_level = {level}

[toolchains]
versions = {versions}
targets = {targets}
source = "{source}"

[upstream]
download_index = "{base_url}/dl/?mode=json&include=all"
download_base = "{base_url}/dl/"
pypi_index = "{base_url}/simple/"
{extra}
""")
    return path


def build_bundle(spec_path: Path, out: Path, cache: Path,
                 epoch: Optional[int] = None, workers: int = -1) -> build.BuildResult:
    """Build with SOURCE_DATE_EPOCH pinned (recent, so the bundle has not expired)."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch if epoch is not None else int(time.time()))
    try:
        return build.build(spec.load(spec_path), out, BlobStore(cache), workers=workers)
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old
