"""The `sbom` command: print or write a bundle's SBOM (or rescue.pyz's own), verified first."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from installer.output import progress
from manifests.files import write_atomic
from manifests.sbom import FORMATS


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path), required=False)
@click.option("--self", "of_self", is_flag=True,
              help="The SBOM of this rescue.pyz (its code and the wheels it carries).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="spdx",
              show_default=True, help="SPDX 2.3 JSON or CycloneDX 1.6 JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Write it to FILE instead of printing it.")
@click.option("--trust", type=str, default=None, metavar="FILE",
              help="OpenSSH allowed_signers file (default: the one built into rescue.pyz).")
def sbom(bundle: Optional[Path], of_self: bool, fmt: str, output: Optional[Path],
         trust: Optional[str]) -> None:
    """Print BUNDLE's SBOM once its signature and every member's hash check out.

    The SBOM lists each Go toolchain (and its stdlib as pkg:golang/stdlib), every module with
    its purl, go.sum h1:, the sha256 of its .zip and the license read from its files, the
    projects they are for, and the key that signed the bundle. `rescue build` writes the same
    files beside the bundle (BUNDLE.spdx.json, BUNDLE.cdx.json).

    \b
    Examples:
      python3 rescue.pyz sbom dc-emergency-stable-7.rescue.tar.zst
      python3 rescue.pyz sbom BUNDLE --format cyclonedx -o bundle.cdx.json
      python3 rescue.pyz sbom --self
      rescue sbom BUNDLE --trust keys/allowed_signers
    """
    from installer import sbom_reader

    if of_self == (bundle is not None):
        raise click.UsageError("give BUNDLE, or --self for rescue.pyz's own SBOM (not both)")
    source = ""
    if of_self:
        data = sbom_reader.pyz_sbom(fmt)
    else:
        from installer.cli import load_signers

        assert bundle is not None
        signers, trust_source = load_signers(trust)
        with progress("checking every member", False) as bar:
            data, verified = sbom_reader.bundle_sbom(bundle, signers, trust_source, fmt,
                                                     bar.start, bar.advance)
        source = f" from {bundle}, signed by {verified.signer.public_key.key_id}"
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    write_atomic(output, data)
    click.echo(f"wrote {output} ({fmt}, {len(data)} bytes){source}")
