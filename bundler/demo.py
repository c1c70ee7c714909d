"""The whole round trip on one machine: key, bundle, pyz, offline install, checklist."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import click
import tomli_w

from bundler import build, fetch, spec, zipapp
from bundler.blobstore import BlobStore
from installer import state
from installer.host import host_target
from installer.prefix import Layout
from installer.wiring import source_line
from keys import allowed_signers, sshkey

DEMO_GO = "1.21.13"
CHANNEL = "demo"


def _offline_prefix() -> list:
    """`unshare -n` when this user may make a network namespace: install with no network."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"],
                                                  capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"],
                                                  capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def _next_sequence(prefix: Path) -> int:
    """One above what the demo prefix has installed from the demo channel: a second run is
    then an upgrade, where the same sequence again would be refused as a replay (exit 3)."""
    if not prefix.is_dir():
        return 1
    try:
        seen = state.load(Layout(prefix.absolute())).get("channels", {}).get(CHANNEL, 0)
    except (OSError, ValueError, AttributeError):
        return 1  # a state the installer cannot read either: it says so, with the way out
    return seen + 1 if isinstance(seen, int) else 1


def run_demo(work: Path, pyz_out: Path, go_version: str, source: str,
             pypi_index: Optional[str] = None, level: int = 12) -> int:
    work.mkdir(parents=True, exist_ok=True)
    key = work / "keys" / "demo-release"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        pub = sshkey.generate_keypair(key, comment="demo-release")
        allowed_signers.add_signer(work / "keys" / "allowed_signers", "demo-release@rescue",
                                   pub.openssh_line())
    prefix = work / "prefix"
    sequence = _next_sequence(prefix)
    spec_path = work / "demo.toml"
    spec_path.write_text(
        "# Written by `rescue demo`: one pinned Go toolchain for this machine's platform.\n"
        + tomli_w.dumps({
            "bundle": {"name": "demo", "channel": CHANNEL, "sequence": sequence,
                       "signing_key": "keys/demo-release", "compression_level": level},
            "toolchains": {"versions": [go_version], "targets": [host_target()],
                           "source": source},
            "upstream": {"pypi_index": pypi_index} if pypi_index else {},
        }))
    click.echo(f"1/4 building bundle #{sequence} from {spec_path} (source: {source})", err=True)
    # force: the demo's bundle is a rehearsal nobody carries; each run may rebuild it.
    result = build.build(spec.load(spec_path), work / "bundles",
                         BlobStore(fetch.default_cache_dir()), force=True)
    click.echo(f"    {result.path} ({result.size / 1e6:.1f} MB, from "
               f"{result.upstream_bytes / 1e6:.1f} MB upstream), signed by {result.key_id}",
               err=True)
    click.echo(f"2/4 building the installer {pyz_out}", err=True)
    report = zipapp.build_zipapp(pyz_out, trust_file=work / "keys" / "allowed_signers",
                                 wheel_cache=fetch.default_cache_dir() / "wheels")
    click.echo(f"    {report.output} ({report.size / 1e6:.1f} MB)", err=True)
    wrap = _offline_prefix()
    how = " ".join(wrap) or "no network namespace available; network left on"
    click.echo(f"3/4 installing offline into {prefix} ({how})", err=True)
    # The base interpreter, not this venv's: the pyz must need nothing installed.
    python = Path(sys.base_prefix) / "bin" / "python3"
    cmd = [*wrap, str(python if python.exists() else sys.executable), "-I", str(pyz_out),
           "install", str(result.path), "--prefix", str(prefix)]
    click.echo("    $ " + shlex.join(cmd), err=True)
    code = subprocess.run(cmd).returncode
    click.echo(f"4/4 {'done' if code == 0 else 'FAILED'}: `{source_line(prefix)}` puts this Go "
               "first on PATH", err=True)
    return code
