"""The attack corpus: every hostile bundle we know of in one table, each proven with the same
four assertions. A real `install` (the CLI, in a child process) exits 3 with the message the
operator needs; the prefix, installed or not yet there, is byte for byte as it was; nothing
beside it changed (a canary tree holding the child's HOME and TMPDIR, the bundle's directory,
the trust store); and the child's peak memory, measured from outside, stayed under a cap.

Most bundles here are signed by the TRUSTED key: a stolen key or a compromised build host must
still not write outside the prefix, create devices or setuid files, or exhaust memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import zstandard

from keys import allowed_signers, sshkey
from tests.support import bundles, corpus, craft, tamper, users
from tests.support.corpus import World

GOROOT = "toolchains/go1.21.13.linux-amd64/go"
RSS_CAP_MB = 100  # a refused install peaks near 40 MB; every bomb below must stay that small
SECONDS_CAP = 20


MODULE = "goproxy/example.com/m/@v"


def with_module(c: craft.Craft, mod: bytes) -> craft.Craft:
    """Module example.com/m v1.0.0 in the bundle's module proxy, with `mod` as its go.mod."""
    for d in ("goproxy", "goproxy/example.com", "goproxy/example.com/m", MODULE):
        c.dir(d)
    c.file(f"{MODULE}/list", b"v1.0.0\n")
    c.file(f"{MODULE}/v1.0.0.mod", mod)
    c.file(f"{MODULE}/v1.0.0.info", b'{"Version":"v1.0.0"}\n')
    return c


class Kit:
    """What an attacker works with: the trusted key (stolen), a key of their own, the place
    where the bundle is written."""

    def __init__(self, world: World, signing: bundles.Signing, mallory: bundles.Signing) -> None:
        self.world = world
        self.signing = signing
        self.mallory = mallory

    def out(self, name: str) -> Path:
        return self.world.bundles / name

    def craft(self, sequence: int = 2) -> craft.Craft:
        """A valid bundle one sequence above the installed one, ready to be made hostile."""
        c = craft.Craft(name="corpus", sequence=sequence)
        c.toolchain()
        return c

    def signed(self, c: craft.Craft, name: str = "attack.tar.zst", **kw: Any) -> Path:
        return c.write(self.out(name), self.signing.key, **kw)

    def good(self, name: str = "good.tar.zst") -> Path:
        return self.signed(self.craft(), name)

    def stream(self, name: str, body: bytes, c: Optional[craft.Craft] = None,
               manifest: Optional[bytes] = None) -> Path:
        """A bundle whose signed header is `c`'s and whose content is the raw tar `body`."""
        c = c or self.craft()
        doc = c.doc()
        manifest = manifest if manifest is not None else tamper.canonical(doc)
        head = corpus.items_bytes(corpus.head_items(
            manifest, tamper.resign(manifest, self.signing.key), tamper.sums(doc)))
        return corpus.write_zstd(self.out(name), [head, body, corpus.END])

    def trust_file(self, options: str) -> Path:
        """A trust store with the trusted key under `options` (namespaces=, valid-before=)."""
        pub = sshkey.public_key_of(sshkey.load_private_key(self.signing.key), "release")
        path = self.world.base / "trust" / "allowed_signers"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"release@rescue {options} {pub.openssh_line()}\n")
        allowed_signers.load(path)  # the store itself must be valid: only the key's use is not
        return path


@dataclass(frozen=True)
class Attack:
    id: str
    build: Callable[[Kit], Path]
    message: str  # a distinctive fragment of what the operator reads
    prefixes: Tuple[str, ...] = ("installed", "empty")
    trust: Optional[Callable[[Kit], Path]] = None  # default: the store trusting the stolen key
    rss_mb: float = RSS_CAP_MB
    seconds: float = SECONDS_CAP
    tmpfs: bool = False  # many small files: on tmpfs where there is one (disk speed aside)


def cases(*attacks: Attack) -> Any:
    return pytest.mark.parametrize("attack", attacks, ids=[a.id for a in attacks])


# --- the four assertions -----------------------------------------------------------------

@pytest.fixture(scope="module")
def mallory(tmp_path_factory: pytest.TempPathFactory) -> bundles.Signing:
    return bundles.make_signing(tmp_path_factory.mktemp("mallory"), name="mallory")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing) -> Path:
    """A prefix where bundle `corpus` #1 (channel stable) is installed and current."""
    world = World(tmp_path_factory.mktemp("installed-world"))
    c = craft.Craft(name="corpus", sequence=1)
    c.toolchain()
    with_module(c, b"module example.com/m\n")
    prefix = world.base / "prefix"
    done = world.install(c.write(world.bundles / "first.tar.zst", signing.key), prefix,
                         signing.signers)
    assert done.code == 0, done.err
    assert (prefix / "current").is_symlink()
    return prefix


@pytest.fixture
def kit(attack: Attack, tmp_path: Path, signing: bundles.Signing,
        mallory: bundles.Signing) -> Iterator[Kit]:
    if attack.tmpfs and os.path.isdir("/dev/shm"):
        base = Path(tempfile.mkdtemp(prefix="rescue-corpus-", dir="/dev/shm"))
        yield Kit(World(base / "world"), signing, mallory)
        corpus.remove(base)
    else:
        yield Kit(World(tmp_path / "world"), signing, mallory)


def prove_refused(attack: Attack, kit: Kit, installed: Path) -> None:
    world = kit.world
    bundle = attack.build(kit)
    trust = attack.trust(kit) if attack.trust else kit.signing.signers
    for where in attack.prefixes:
        if where == "installed":
            prefix = corpus.copy_prefix(installed, world.base / "installed")
        else:
            (world.base / "empty").mkdir(exist_ok=True)
            prefix = world.base / "empty" / "deeper" / "prefix"
        before = {part: corpus.tree(world.base / part) for part in os.listdir(world.base)}
        done = world.install(bundle, prefix, trust)
        what = f"{attack.id} into the {where} prefix"
        assert done.code == 3, f"{what}: exit {done.code}\n{done.err}"
        assert attack.message in done.err, f"{what}: {done.err}"
        assert "Traceback" not in done.err and "internal error" not in done.err, done.err
        after = {part: corpus.tree(world.base / part) for part in os.listdir(world.base)}
        for part in sorted(set(before) | set(after)):
            assert after.get(part) == before.get(part), f"{what}: {part}/ changed"
        assert done.peak_mb < attack.rss_mb, f"{what}: peak RSS {done.peak_mb:.0f} MB"
        assert done.seconds < attack.seconds, f"{what}: took {done.seconds:.1f}s"
        if where == "installed":
            corpus.remove(prefix)


# --- 1. damaged bytes: transport, truncation, not a bundle at all ------------------------

def _flip_compressed(kit: Kit) -> Path:
    good = kit.good()
    data = bytearray(good.read_bytes())
    data[len(data) * 3 // 4] ^= 0x55  # inside the content, past the signed header
    good.unlink()
    out = kit.out("flipped-zstd.tar.zst")
    out.write_bytes(bytes(data))
    return out


def _flip_decompressed(kit: Kit) -> Path:
    c = kit.craft()
    items = [(i, tamper.flip_byte(d) if i.name == f"{GOROOT}/bin/go" else d)
             for i, d in c.items()]
    return kit.signed(c, items=items)


def _flip_manifest(kit: Kit) -> Path:
    c = kit.craft()
    manifest = tamper.canonical(c.doc())
    sig = tamper.resign(manifest, kit.signing.key)
    flipped = manifest.replace(b'"sequence":2', b'"sequence":3')
    body = corpus.items_bytes(corpus.head_items(flipped, sig, tamper.sums(c.doc()))
                              + c.items())
    return corpus.write_zstd(kit.out("flipped-manifest.tar.zst"), [body, corpus.END])


def _flip_signature(kit: Kit) -> Path:
    c = kit.craft()
    manifest = tamper.canonical(c.doc())
    blob = bytearray(corpus.dearmor(tamper.resign(manifest, kit.signing.key)))
    blob[-10] ^= 0x01  # inside the 64-byte ed25519 signature at the blob's end
    body = corpus.items_bytes(corpus.head_items(manifest, corpus.armor(bytes(blob)),
                                                tamper.sums(c.doc())) + c.items())
    return corpus.write_zstd(kit.out("flipped-sig.tar.zst"), [body, corpus.END])


def _cut(where: str) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        good = kit.good()
        size = good.stat().st_size
        at = {"empty": 0, "in-magic": 2, "in-header": 300, "half": size // 2,
              "last-bytes": size - 3}[where]
        out = tamper.cut(good, kit.out(f"cut-{where}.tar.zst"), at)
        good.unlink()
        return out
    return build


def _plain_tar(kit: Kit) -> Path:
    c = kit.craft()
    manifest = tamper.canonical(c.doc())
    body = corpus.items_bytes(corpus.head_items(
        manifest, tamper.resign(manifest, kit.signing.key), tamper.sums(c.doc())) + c.items())
    out = kit.out("plain.tar")
    out.write_bytes(body + corpus.END)
    return out


def _zstd_not_tar(kit: Kit) -> Path:
    return corpus.write_zstd(kit.out("json.zst"), [json.dumps({"not": "a tar"}).encode() * 50])


def _zstd_magic_flipped(kit: Kit) -> Path:
    good = kit.good()
    out = kit.out("magic.tar.zst")
    out.write_bytes(tamper.flip_byte(good.read_bytes(), 0))
    good.unlink()
    return out


DAMAGED = [
    Attack("flipped_byte_in_compressed_stream", _flip_compressed, "SECURITY ERROR"),
    Attack("flipped_byte_in_decompressed_member", _flip_decompressed,
           f"verifying member {GOROOT}/bin/go: sha256 mismatch"),
    Attack("flipped_byte_in_manifest", _flip_manifest, "does not match the manifest"),
    Attack("flipped_byte_in_signature", _flip_signature, "does not match the manifest"),
    Attack("flipped_zstd_magic", _zstd_magic_flipped, "not a rescue bundle"),
    Attack("truncated_to_nothing", _cut("empty"), "not a rescue bundle"),
    Attack("truncated_in_zstd_magic", _cut("in-magic"), "truncated or damaged"),
    Attack("truncated_in_signed_header", _cut("in-header"), "truncated or damaged"),
    Attack("truncated_half_way", _cut("half"), "truncated or damaged"),
    Attack("truncated_three_bytes_short", _cut("last-bytes"), "truncated or damaged"),
    Attack("not_zstd_but_plain_tar", _plain_tar, "not a rescue bundle (zstd-compressed tar)"),
    Attack("zstd_of_something_not_tar", _zstd_not_tar, "truncated or damaged"),
]


@cases(*DAMAGED)
def test_damaged_or_truncated_bundle_is_refused(attack: Attack, kit: Kit,
                                                installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 2. a stream that is not what the signed manifest lists ------------------------------

def _content_first(kit: Kit) -> Path:
    c = kit.craft()
    manifest = tamper.canonical(c.doc())
    items = c.items()
    body = corpus.items_bytes(items[:1] + corpus.head_items(
        manifest, tamper.resign(manifest, kit.signing.key), tamper.sums(c.doc())) + items[1:])
    return corpus.write_zstd(kit.out("content-first.tar.zst"), [body, corpus.END])


def _duplicate(kit: Kit) -> Path:
    c = kit.craft()
    items = c.items()
    return kit.signed(c, items=items + [items[-1]])


def _duplicate_overwrite(kit: Kit) -> Path:
    """The second copy of `bin/go` carries other bytes: last-one-wins extractors run them."""
    c = kit.craft()
    items = c.items()
    evil = tamper.file_info(f"{GOROOT}/bin/go", b"#!/bin/sh\necho pwned\n", 0o755)
    return kit.signed(c, items=items + [(evil, b"#!/bin/sh\necho pwned\n")])


def _unlisted(kit: Kit) -> Path:
    c = kit.craft()
    data = b"#!/bin/sh\necho pwned\n"
    return kit.signed(c, items=c.items() + [
        (tamper.file_info(f"{GOROOT}/bin/backdoor", data, 0o755), data)])


def _missing(kit: Kit) -> Path:
    c = kit.craft()
    return kit.signed(c, items=c.items()[:-1])


def _mix_and_match(kit: Kit) -> Path:
    """Bundle A's manifest and signature, bundle B's content (another VERSION, same size)."""
    a = kit.craft()
    b = kit.craft()
    b.contents[f"{GOROOT}/VERSION"] = b"go1.21.66\n"
    return kit.signed(a, items=b.items())


def _symlinked_dir_in_tar(kit: Kit) -> Path:
    """The manifest lists a directory and a file in it; the tar makes the directory a symlink
    out of the tree, so the file would be written through it."""
    c = kit.craft()
    c.dir(f"{GOROOT}/pkg").file(f"{GOROOT}/pkg/payload", b"x")
    items = []
    for info, data in c.items():
        if info.name == f"{GOROOT}/pkg":
            info = tarfile.TarInfo(info.name)
            info.type = tarfile.SYMTYPE
            info.linkname = "../../../../canary"
        items.append((info, data))
    return kit.signed(c, items=items)


def _hardlink_target_swapped_in_tar(kit: Kit) -> Path:
    c = kit.craft()
    c.hardlink(f"{GOROOT}/bin/gofmt", f"{GOROOT}/bin/go", 0o755)
    items = []
    for info, data in c.items():
        if info.name == f"{GOROOT}/bin/gofmt":
            info.linkname = "/etc/passwd"
        items.append((info, data))
    return kit.signed(c, items=items)


def _pax_path(kit: Kit) -> Path:
    """A PAX record renames the member after the ustar header named a listed path."""
    c = kit.craft()
    data = b"escaped\n"
    body = (corpus.pax_header(corpus.pax_records(path="../../../../canary/file"))
            + corpus.raw_header(f"{GOROOT}/VERSION".encode(), b"0", len(data))
            + corpus.block(data))
    return kit.stream("pax-path.tar.zst", corpus.items_bytes(c.items()[:-1]) + body, c)


def _pax_size(kit: Kit) -> Path:
    c = kit.craft()
    data = b"go1.21.13\n"
    body = (corpus.pax_header(corpus.pax_records(size=str(10 ** 12)))
            + corpus.raw_header(f"{GOROOT}/VERSION".encode(), b"0", len(data))
            + corpus.block(data))
    return kit.stream("pax-size.tar.zst", corpus.items_bytes(c.items()[:-1]) + body, c)


def _non_utf8_in_tar(kit: Kit) -> Path:
    c = kit.craft()
    body = corpus.raw_header(f"{GOROOT}/bin/\xff\xfe".encode("latin-1"), b"0", 1) + \
        corpus.block(b"x")
    return kit.stream("non-utf8-tar.tar.zst", corpus.items_bytes(c.items()) + body, c)


def _header_member_again(kit: Kit) -> Path:
    c = kit.craft()
    other = b'{"format":1}\n'
    return kit.signed(c, items=c.items() + [(tamper.file_info("manifest.json", other), other)])


def _after_the_end(second_frame: bool) -> Callable[[Kit], Path]:
    """A valid bundle, then past its end-of-archive marker another archive that every tar
    reader skips: bytes no manifest lists, for whoever looks there."""
    def build(kit: Kit) -> Path:
        c = kit.craft()
        good = kit.good("good.tar.zst")
        hidden = corpus.items_bytes([(tamper.file_info("payload.sh", b"id\n"), b"id\n")])
        if second_frame:
            out = kit.out("after-end.tar.zst")
            out.write_bytes(good.read_bytes()
                            + zstandard.ZstdCompressor().compress(hidden + corpus.END))
        else:
            manifest = tamper.canonical(c.doc())
            body = corpus.items_bytes(corpus.head_items(
                manifest, tamper.resign(manifest, kit.signing.key), tamper.sums(c.doc()))
                + c.items())
            out = corpus.write_zstd(kit.out("after-end.tar.zst"),
                                    [body, corpus.END, hidden, corpus.END])
        good.unlink()
        return out
    return build


STREAM = [
    Attack("content_before_the_signed_header", _content_first,
           "expected member manifest.json first, found 'toolchains'"),
    Attack("duplicate_member", _duplicate, "VERSION: appears twice in the bundle"),
    Attack("duplicate_member_with_other_bytes", _duplicate_overwrite,
           "verifying member " + GOROOT + "/bin/go: size mismatch"),
    Attack("unlisted_member", _unlisted,
           "'" + GOROOT + "/bin/backdoor': the bundle carries it but the signed manifest "
           "does not list it"),
    Attack("missing_member", _missing, "1 member(s) the manifest lists are not in the bundle"),
    Attack("header_member_again_after_content", _header_member_again,
           "'manifest.json': the bundle carries it but the signed manifest does not list it"),
    Attack("mix_and_match_header_of_a_content_of_b", _mix_and_match,
           f"verifying member {GOROOT}/VERSION: sha256 mismatch"),
    Attack("file_written_through_a_symlinked_directory_in_tar", _symlinked_dir_in_tar,
           f"verifying member {GOROOT}/pkg: type mismatch"),
    Attack("hard_link_target_swapped_in_tar", _hardlink_target_swapped_in_tar,
           f"verifying member {GOROOT}/bin/gofmt: link target mismatch"),
    Attack("pax_header_overriding_the_path", _pax_path,
           "'../../../../canary/file': the bundle carries it but the signed manifest"),
    Attack("pax_header_overriding_the_size", _pax_size,
           "size mismatch\n\tbundle:   1000000000000"),
    Attack("archive_hidden_after_the_end_marker", _after_the_end(False),
           "data follows the tar's end-of-archive marker"),
    Attack("zstd_frame_hidden_after_the_archive", _after_the_end(True),
           "data follows the tar's end-of-archive marker"),
    Attack("non_utf8_name_in_tar", _non_utf8_in_tar,
           f"{GOROOT}/bin/\\udcff\\udcfe': the bundle carries it but"),
]


@cases(*STREAM)
def test_stream_not_matching_the_signed_manifest_is_refused(attack: Attack, kit: Kit,
                                                            installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 3. member paths in a manifest signed by the trusted key -----------------------------

def _with_file(path: str) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        c.file(path, b"escaped\n")
        return kit.signed(c)
    return build


def _with_files(*paths: str) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        for p in paths:
            c.file(p, b"x\n")
        return kit.signed(c)
    return build


def _raw_manifest_name(name: bytes) -> Callable[[Kit], Path]:
    """A member name written straight into the signed manifest bytes (JSON could not say it)."""
    def build(kit: Kit) -> Path:
        c = kit.craft()
        c.file(f"{GOROOT}/PLACEHOLDER", b"x\n")
        manifest = tamper.canonical(c.doc()).replace(b"PLACEHOLDER", name)
        return kit.stream("raw-name.tar.zst", corpus.items_bytes(c.items()), c, manifest)
    return build


PATHS = [
    Attack("absolute_path", _with_file("/tmp/rescue-escaped"),
           "reading manifest: '/tmp/rescue-escaped': absolute path"),
    Attack("dot_dot_path", _with_file(f"{GOROOT}/../../../../../canary/file"),
           "path element '..' is not allowed"),
    Attack("dot_then_dot_dot_path", _with_file(f"{GOROOT}/a/./../../../../../../canary/file"),
           "path element '.' is not allowed"),
    Attack("nul_in_name", _with_file(f"{GOROOT}/bin/go\x00.evil"),
           "contains forbidden character '\\x00'"),
    Attack("newline_in_name", _with_file(f"{GOROOT}/bin/go\nrescue: ok"),
           "contains forbidden character '\\n'"),
    Attack("non_utf8_name_in_manifest_bytes", _raw_manifest_name(b"\xff\xfe"),
           "reading manifest: not valid JSON"),
    Attack("lone_surrogate_name_in_manifest", _raw_manifest_name(b"\\udcff"),
           "a string is not valid Unicode (a lone surrogate)"),
    Attack("bidi_override_in_name", _with_file(f"{GOROOT}/bin/og\u202e.exe"),
           "contains forbidden character '\\u202e'"),
    Attack("case_insensitive_collision", _with_files(f"{GOROOT}/bin/gofmt",
                                                     f"{GOROOT}/bin/GOFMT"),
           "bin/GOFMT: collides with " + GOROOT + "/bin/gofmt ignoring case"),
    Attack("nfc_nfd_collision", _with_files(f"{GOROOT}/caf\u00e9", f"{GOROOT}/cafe\u0301"),
           "ignoring case and Unicode normalization"),
    Attack("path_outside_any_listed_tree", _with_file("sitecustomize.py"),
           "sitecustomize.py: not under toolchains/, goproxy/ or sbom/"),
]


@cases(*PATHS)
def test_signed_member_path_that_escapes_or_collides_is_refused(attack: Attack, kit: Kit,
                                                                installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 4. links in a manifest signed by the trusted key ------------------------------------

def _links(*steps: Tuple[str, str, str]) -> Callable[[Kit], Path]:
    """Each step: ("symlink"|"hardlink"|"file"|"dir", path under GOROOT, target or data)."""
    def build(kit: Kit) -> Path:
        c = kit.craft()
        for kind, path, arg in steps:
            p = f"{GOROOT}/{path}"
            if kind == "symlink":
                c.symlink(p, arg)
            elif kind == "hardlink":
                c.hardlink(p, arg if arg.startswith(("toolchains/", "../", "/")) else
                           f"{GOROOT}/{arg}")
            elif kind == "dir":
                c.dir(p)
            else:
                c.file(p, arg.encode())
        return kit.signed(c)
    return build


def _go_env_link(kit: Kit) -> Path:
    c = kit.craft()
    c.members = [m for m in c.members if m["path"] != f"{GOROOT}/go.env"]
    c.symlink(f"{GOROOT}/go.env", "../../../../canary/go/go.env")
    return kit.signed(c)


LINKS = [
    Attack("symlink_out_of_the_tree", _links(("symlink", "out", "../../../../../canary")),
           "symlink target '../../../../../canary' leaves the bundle tree"),
    Attack("symlink_to_an_absolute_path", _links(("symlink", "etc", "/etc")),
           "symlink target '/etc' must be a relative path"),
    Attack("symlink_into_another_tree", _links(("symlink", "up", "../../../goproxy")),
           f"leaves its own tree {GOROOT}"),
    Attack("file_written_through_a_symlinked_directory",
           _links(("symlink", "lib", "bin"), ("file", "lib/payload", "x")),
           "payload: parent " + GOROOT + "/lib is not a directory"),
    Attack("symlink_chain_through_another_symlink",
           _links(("dir", "a", ""), ("dir", "a/b", ""), ("symlink", "a/b/s", "../.."),
                  ("symlink", "x", "a/b/s/../../../../canary")),
           "another symlink; only directories may lie on the way"),
    Attack("hard_link_to_outside", _links(("hardlink", "hl", "../../../../canary/file")),
           "hard link to '../../../../canary/file', which is not an earlier file member"),
    Attack("hard_link_to_an_absolute_path", _links(("hardlink", "hl", "/etc/shadow")),
           "hard link to '/etc/shadow', which is not an earlier file member"),
    Attack("hard_link_to_a_symlink", _links(("symlink", "s", "bin/go"), ("hardlink", "hl", "s")),
           "which is not an earlier file member"),
    Attack("hard_link_to_a_later_member",
           _links(("hardlink", "hl", "late"), ("file", "late", "x")),
           f"hard link to '{GOROOT}/late', which is not an earlier file member"),
    Attack("go_env_as_a_symlink_out", _go_env_link,
           "the installer rewrites go.env; it must be a regular file"),
]


@cases(*LINKS)
def test_signed_link_leaving_the_tree_is_refused(attack: Attack, kit: Kit,
                                                 installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 5. devices, FIFOs, sockets, privileged modes ----------------------------------------

def _tar_record_of_type(kind: bytes) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        body = corpus.raw_header(f"{GOROOT}/bin/dev".encode(), kind, 0, 0o666)
        return kit.stream("special.tar.zst", corpus.items_bytes(c.items()) + body, c)
    return build


def _manifest_type(kind: str) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        items = c.items()
        c.members.append({"path": f"{GOROOT}/bin/dev", "type": kind, "mode": 0o644, "size": 0,
                          "sha256": "", "target": ""})
        return kit.signed(c, items=items)
    return build


def _mode(kind: str, mode: int) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        if kind == "dir":
            c.dir(f"{GOROOT}/shared", mode)
        else:
            c.file(f"{GOROOT}/bin/tool", b"#!/bin/sh\nid\n", mode)
        return kit.signed(c)
    return build


def _setuid_in_tar_only(kit: Kit) -> Path:
    c = kit.craft()
    items = []
    for info, data in c.items():
        if info.name == f"{GOROOT}/bin/go":
            info.mode = 0o4755
        items.append((info, data))
    return kit.signed(c, items=items)


SPECIAL = [
    Attack("character_device_in_tar", _tar_record_of_type(b"3"),
           "is a character device record, which rescue bundles never contain"),
    Attack("block_device_in_tar", _tar_record_of_type(b"4"),
           "is a block device record, which rescue bundles never contain"),
    Attack("fifo_in_tar", _tar_record_of_type(b"6"),
           "is a FIFO record, which rescue bundles never contain"),
    Attack("device_in_manifest", _manifest_type("chardev"), "unknown type 'chardev'"),
    Attack("fifo_in_manifest", _manifest_type("fifo"), "unknown type 'fifo'"),
    Attack("socket_in_manifest", _manifest_type("socket"), "unknown type 'socket'"),
    Attack("setuid_file", _mode("file", 0o4755), "mode 4755 has bits beyond 0777"),
    Attack("setgid_directory", _mode("dir", 0o2755), "mode 2755 has bits beyond 0777"),
    Attack("sticky_directory", _mode("dir", 0o1777), "mode 1777 has bits beyond 0777"),
    Attack("world_writable_file", _mode("file", 0o666), "bin/tool: mode 666 is world-writable"),
    Attack("world_writable_directory", _mode("dir", 0o777), "shared: mode 777 is world-writable"),
    Attack("setuid_bit_in_tar_only", _setuid_in_tar_only,
           "bin/go' has mode 4755 in the tar; rescue bundles never carry modes beyond 0777"),
]


@cases(*SPECIAL)
def test_signed_device_or_privileged_mode_is_refused(attack: Attack, kit: Kit,
                                                     installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 6. memory and time: bombs, huge declarations, huge windows ---------------------------

ZEROS = b"\0" * (1 << 20)


def _longer_than_declared(kit: Kit) -> Path:
    """The manifest lists a 16-byte file; its tar header announces a GiB of zeros."""
    c = kit.craft()
    data = b"\0" * 16
    c.file(f"{GOROOT}/bomb", data)
    head = corpus.raw_header(f"{GOROOT}/bomb".encode(), b"0", 1 << 30)

    def chunks() -> Any:
        c2 = kit.craft()
        manifest = tamper.canonical(c.doc())
        yield corpus.items_bytes(corpus.head_items(
            manifest, tamper.resign(manifest, kit.signing.key), tamper.sums(c.doc())))
        yield corpus.items_bytes(c2.items())
        yield head
        for _ in range(1 << 10):
            yield ZEROS
        yield corpus.END
    return corpus.write_zstd(kit.out("bomb.tar.zst"), chunks())


def _declared(change: Callable[[craft.Craft], None]) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        change(c)
        return kit.signed(c, items=kit.craft().items())
    return build


def _member_of_a_terabyte(c: craft.Craft) -> None:
    c.members.append({"path": f"{GOROOT}/huge", "type": "file", "mode": 0o644,
                      "size": 10 ** 12, "sha256": "0" * 64, "target": ""})


def _terabyte_in_parts(c: craft.Craft) -> None:
    for i in range(250):
        c.members.append({"path": f"{GOROOT}/part{i}", "type": "file", "mode": 0o644,
                          "size": 4 * 10 ** 9, "sha256": "0" * 64, "target": ""})


def _ten_million_members(kit: Kit) -> Path:
    """A manifest listing 10^7 members (about 1.4 GB of JSON), compressed to a few MB."""
    entry = json.dumps({"mode": 420, "path": f"{GOROOT}/f", "sha256": "0" * 64, "size": 1,
                        "target": "", "type": "file"}, separators=(",", ":")).encode() + b","
    per_chunk = (1 << 20) // len(entry)
    chunk = entry * per_chunk
    chunks_needed = 10 ** 7 // per_chunk
    size = len(chunk) * chunks_needed

    def chunks() -> Any:
        yield corpus.raw_header(b"manifest.json", b"0", size)
        for _ in range(chunks_needed):
            yield chunk
        yield b"\0" * (-size % 512)
        yield corpus.END
    return corpus.write_zstd(kit.out("members.tar.zst"), chunks())


def _huge_pax_record(kit: Kit) -> Path:
    def chunks() -> Any:
        yield corpus.raw_header(b"././@PaxHeader", b"x", 256 << 20)
        for _ in range(256):
            yield ZEROS
    return corpus.write_zstd(kit.out("pax-bomb.tar.zst"), chunks())


def _record_first(kind: bytes, name: bytes = b"././@LongLink") -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        data = b"A" * 200 + b"\0"
        rec = corpus.raw_header(name, kind, len(data)) + corpus.block(data)
        return kit.stream("record.tar.zst", rec + corpus.items_bytes(c.items()), c)
    return build


def _gnu_long_name(kit: Kit) -> Path:
    c = kit.craft()
    long = f"{GOROOT}/" + "d" * 150
    c.file(long, b"x\n")
    items = c.items()
    body = corpus.items_bytes(items[:-1]) + corpus.record(items[-1][0], b"x\n",
                                                          tarfile.GNU_FORMAT)
    return kit.stream("gnu-long.tar.zst", body, c)


def _huge_window(kit: Kit) -> Path:
    out = kit.out("window.tar.zst")
    out.write_bytes(corpus.huge_window_frame())
    return out


def _hundred_thousand_members(kit: Kit) -> Path:
    """100 000 one-byte files, all listed and signed; the very last one's bytes are wrong, so
    the installer streams every member before it refuses, and must clean up after itself."""
    c = kit.craft()
    c.dir(f"{GOROOT}/many")
    for i in range(0, 100_000, 1000):
        c.dir(f"{GOROOT}/many/{i // 1000:03d}")
    digest = hashlib.sha256(b"x").hexdigest()
    for i in range(100_000):
        c.members.append({"path": f"{GOROOT}/many/{i // 1000:03d}/{i % 1000:03d}",
                          "type": "file", "mode": 0o644, "size": 1, "sha256": digest,
                          "target": ""})
    doc = c.doc()
    manifest = tamper.canonical(doc)
    last = doc["members"][-1]["path"]

    def chunks() -> Any:
        yield corpus.items_bytes(corpus.head_items(
            manifest, tamper.resign(manifest, kit.signing.key), tamper.sums(doc)))
        fixed = [m for m in doc["members"] if m["type"] != "file" or
                 not m["path"].startswith(f"{GOROOT}/many/")]
        yield corpus.items_bytes((i, d) for i, d in c.items()
                                 if i.name in {m["path"] for m in fixed})
        template = tarfile.TarInfo("x")
        template.mode = 0o644
        batch = []
        for m in doc["members"]:
            if m["type"] == "file" and m["path"].startswith(f"{GOROOT}/many/"):
                template.name = m["path"]
                batch.append(corpus.record(template, b"y" if m["path"] == last else b"x",
                                           tarfile.USTAR_FORMAT))
                if len(batch) == 5000:
                    yield b"".join(batch)
                    batch = []
        yield b"".join(batch)
        yield corpus.END
    return corpus.write_zstd(kit.out("many.tar.zst"), chunks())


BOMBS = [
    Attack("member_longer_than_declared", _longer_than_declared,
           f"verifying member {GOROOT}/bomb: size mismatch\n\tbundle:   1073741824"),
    Attack("manifest_declaring_a_terabyte_member", _declared(_member_of_a_terabyte),
           "huge: size 1000000000000 outside 0..4294967296"),
    Attack("manifest_declaring_a_terabyte_in_parts", _declared(_terabyte_in_parts),
           "bytes, beyond the 274877906944 limit"),
    Attack("manifest_of_ten_million_members", _ten_million_members,
           "header member 'manifest.json' is not a regular file of at most 67108864 bytes"),
    Attack("pax_record_of_256_mib", _huge_pax_record, "a PAX header of 268435456 bytes"),
    Attack("gnu_long_name_record", _gnu_long_name, "is a GNU long name record"),
    Attack("gnu_long_link_record", _record_first(b"K"), "is a GNU long link record"),
    Attack("global_pax_record", _record_first(b"g", b"pax_global_header"),
           "is a global PAX header record"),
    Attack("gnu_sparse_record", _record_first(b"S", b"sparse"), "is a GNU sparse file record"),
    Attack("zstd_frame_asking_for_a_2_gib_window", _huge_window,
           "Frame requires too much memory"),
    Attack("hundred_thousand_tiny_members", _hundred_thousand_members,
           "many/099/999: sha256 mismatch", prefixes=("installed",), rss_mb=250, seconds=60,
           tmpfs=True),
]


@cases(*BOMBS)
def test_memory_or_time_bomb_is_refused_within_bounds(attack: Attack, kit: Kit,
                                                      installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 7. manifests that two parsers could read two ways, or this one cannot read ----------

def _manifest_text(edit: Callable[[bytes], bytes]) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        return kit.signed(c, manifest=edit(tamper.canonical(c.doc())))
    return build


def _doc_change(change: Callable[[Dict[str, Any]], None]) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        doc = c.doc()
        change(doc)
        return kit.signed(c, doc=doc)
    return build


def _sums_differ(kit: Kit) -> Path:
    c = kit.craft()
    doc = c.doc()
    manifest = tamper.canonical(doc)
    sums = tamper.sums(doc).replace(b"VERSION", b"VERSION.evil")
    body = corpus.items_bytes(corpus.head_items(manifest, tamper.resign(manifest,
                                                                        kit.signing.key), sums))
    return corpus.write_zstd(kit.out("sums.tar.zst"),
                             [body, corpus.items_bytes(c.items()), corpus.END])


MANIFESTS = [
    Attack("duplicate_keys_in_manifest_json",
           _manifest_text(lambda t: t.replace(b'"sequence":2', b'"sequence":2,"sequence":1')),
           "reading manifest: not in canonical form"),
    Attack("unknown_field_in_manifest", _doc_change(lambda d: d.update(hooks=["sh -c id"])),
           "reading manifest: not in canonical form"),
    Attack("unknown_format_version", _doc_change(lambda d: d.update(format=2)),
           "reading manifest: format 2 is not supported"),
    Attack("manifest_not_json", _manifest_text(lambda t: b"#!/bin/sh\nid\n"),
           "reading manifest: not valid JSON"),
    Attack("sequence_as_a_string", _doc_change(lambda d: d.update(sequence="2")),
           "field 'sequence' must be an integer"),
    Attack("sha256sums_not_matching_the_manifest", _sums_differ,
           "SHA256SUMS does not match the signed manifest"),
]


@cases(*MANIFESTS)
def test_ambiguous_or_unknown_manifest_is_refused(attack: Attack, kit: Kit,
                                                  installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 8. signatures: whose key, for what, with which hash ---------------------------------

def _signed_by(sign: Callable[[Kit, bytes], bytes]) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft()
        manifest = tamper.canonical(c.doc())
        body = corpus.items_bytes(corpus.head_items(manifest, sign(kit, manifest),
                                                    tamper.sums(c.doc())) + c.items())
        return corpus.write_zstd(kit.out("signed.tar.zst"), [body, corpus.END])
    return build


def _signature_of_another_manifest(kit: Kit, manifest: bytes) -> bytes:
    other = manifest.replace(b'"sequence":2', b'"sequence":9')
    return tamper.resign(other, kit.signing.key)


def _untrusted_at_the_limits(kit: Kit) -> Path:
    """Before the signature is checked the header is read whole: an untrusted bundle may ask
    for the most the limits allow (a 64 MiB manifest and a 64 MiB SHA256SUMS), no more."""
    manifest = b"{" + b" " * (64 * 2 ** 20 - 3) + b"}\n"
    sums = b"0" * (64 * 2 ** 20)

    def chunks() -> Any:
        yield corpus.raw_header(b"manifest.json", b"0", len(manifest)) + manifest
        sig = tamper.resign(manifest, kit.mallory.key)
        yield corpus.record(tamper.file_info("manifest.sig"), sig)
        yield corpus.raw_header(b"SHA256SUMS", b"0", len(sums)) + sums
        yield corpus.END
    return corpus.write_zstd(kit.out("limits.tar.zst"), chunks())


SIGNATURES = [
    Attack("untrusted_key", _signed_by(lambda k, m: tamper.resign(m, k.mallory.key)),
           "which is not in the trust store"),
    Attack("trusted_key_other_namespace",
           _signed_by(lambda k, m: corpus.sign_as(k.signing.key, m, namespace="file")),
           "was made for namespace 'file', not 'rescue-manifest'"),
    Attack("trusted_key_other_hash_algorithm",
           _signed_by(lambda k, m: corpus.sign_as(k.signing.key, m, hash_name="sha1")),
           "hash algorithm 'sha1' is not one of sha512, sha256"),
    Attack("trusted_key_signature_of_another_manifest",
           _signed_by(_signature_of_another_manifest), "does not match the manifest"),
    Attack("trusted_key_not_allowed_this_namespace", lambda kit: kit.good(),
           "may not sign namespace 'rescue-manifest'",
           trust=lambda kit: kit.trust_file('namespaces="file,git"')),
    Attack("trusted_key_past_its_valid_before", lambda kit: kit.good(),
           "expired at 2020-01-01",
           trust=lambda kit: kit.trust_file('valid-before="20200101"')),
    Attack("untrusted_key_with_header_members_at_their_limits", _untrusted_at_the_limits,
           "which is not in the trust store", rss_mb=300),  # 128 MiB read: ~230 MB peak
    Attack("no_signature_at_all", _signed_by(lambda k, m: b""),
           "parsing SSH signature: does not start with -----BEGIN SSH SIGNATURE-----"),
]


@cases(*SIGNATURES)
def test_untrusted_or_misused_signature_is_refused(attack: Attack, kit: Kit,
                                                   installed: Path) -> None:
    prove_refused(attack, kit, installed)


# --- 9. stale and replayed bundles --------------------------------------------------------

def _expired(kit: Kit) -> Path:
    c = kit.craft()
    c.expires = "2020-03-31T00:00:00Z"
    return kit.signed(c)


def _sequence(n: int, other_content: bool = False) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        c = kit.craft(sequence=n)
        if other_content:
            c.file(f"{GOROOT}/extra", b"not in bundle #1\n")
        return kit.signed(c)
    return build


def _module_rewritten(kit: Kit) -> Path:
    """The installed example.com/m v1.0.0 with another go.mod: every project that pinned the
    first one's hash would fail, or one that did not would build the new one."""
    return kit.signed(with_module(kit.craft(), b"module example.com/m\n\nrequire evil v1\n"))


REPLAYS = [
    Attack("expired", _expired, "it expired on 2020-03-31T00:00:00Z; stale bundles are refused"),
    Attack("lower_sequence", _sequence(0), "installing an older bundle over a newer one is "
           "refused", prefixes=("installed",)),
    Attack("equal_sequence_other_content", _sequence(1, other_content=True),
           "already installed another bundle with sequence 1 here (its manifest differs)",
           prefixes=("installed",)),
    Attack("installed_module_version_rewritten", _module_rewritten,
           "v1.0.0.mod differs from the copy an earlier bundle installed",
           prefixes=("installed",)),
]


@cases(*REPLAYS)
def test_stale_or_replayed_bundle_is_refused(attack: Attack, kit: Kit, installed: Path) -> None:
    prove_refused(attack, kit, installed)


ALL = DAMAGED + STREAM + PATHS + LINKS + SPECIAL + BOMBS + MANIFESTS + SIGNATURES + REPLAYS


def test_the_corpus_covers_at_least_forty_distinct_attacks() -> None:
    ids = [a.id for a in ALL]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


# --- 10. the same refusals for an operator who is not root --------------------------------

REPRESENTATIVE = {a.id: a for a in ALL if a.id in (
    "truncated_half_way", "unlisted_member", "symlink_out_of_the_tree", "hard_link_to_outside",
    "setuid_file", "untrusted_key", "member_longer_than_declared")}


@pytest.mark.parametrize("attack_id", sorted(REPRESENTATIVE))
def test_representative_attacks_are_refused_for_every_user(
        attack_id: str, user: users.User, rescue: List[str], signing: bundles.Signing,
        mallory: bundles.Signing, installed: Path) -> None:
    attack = REPRESENTATIVE[attack_id]
    world = World(user.work / "world")
    kit = Kit(world, signing, mallory)
    bundle = attack.build(kit)
    trust = world.base / "trust" / "allowed_signers"
    trust.parent.mkdir()
    trust.write_bytes(signing.signers.read_bytes())
    prefix = corpus.copy_prefix(installed, world.base / "installed")
    users.chown_tree(world.base, user.uid)
    before = corpus.tree(world.base)
    done = corpus.run_measured(
        user.argv([*rescue, "install", str(bundle), "--prefix", str(prefix), "--trust",
                   str(trust)]),
        {**user.env(), "TMPDIR": str(world.canary / "tmp")})
    assert done.code == 3, done.err
    assert attack.message in done.err
    assert "Traceback" not in done.err
    assert corpus.tree(world.base) == before
    assert done.peak_mb < attack.rss_mb
