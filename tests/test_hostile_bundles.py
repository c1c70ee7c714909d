"""Hostile bundles signed by a TRUSTED key (a stolen key, a compromised or buggy build host):
whatever the manifest says, nothing is written or read outside the prefix, memory stays bounded,
and every refusal is a clean message, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import zstandard

from installer import cli, wiring
from manifests.errors import TrustError
from tests.support import bundles, craft, tamper

ROOT = Path(__file__).resolve().parents[1]
GOROOT = "toolchains/go1.21.13.linux-amd64/go"


class World:
    """A directory holding the prefix and, beside it, things an attacker would like to reach:
    a Go tree with its own go.env, and a canary file."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.prefix = base / "P"
        victim = base / "x" / "victim"
        victim.mkdir(parents=True)
        (victim / "go.env").write_text("GOPROXY=https://proxy.golang.org,direct\n")
        (base / "canary").write_text("untouched\n")
        self.before = tamper.snapshot(base)

    def outside(self) -> Dict[str, Tuple[str, ...]]:
        """Everything under the world except the prefix itself."""
        return {k: v for k, v in tamper.snapshot(self.base).items()
                if k != "P" and not k.startswith("P/")}

    def untouched(self) -> bool:
        return self.outside() == {k: v for k, v in self.before.items()
                                  if k != "P" and not k.startswith("P/")}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "world")


def install(bundle: Path, world: World, signing: bundles.Signing,
            capsys: pytest.CaptureFixture, *extra: str) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["install", str(bundle), "--prefix", str(world.prefix), "--trust",
                     str(signing.signers), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def refused(bundle: Path, world: World, signing: bundles.Signing,
            capsys: pytest.CaptureFixture) -> str:
    code, out, err = install(bundle, world, signing, capsys)
    assert code == 3, out + err
    assert "Traceback" not in err
    assert world.untouched(), "a refused bundle changed something outside the prefix"
    assert not world.prefix.exists(), "a refused bundle left a prefix behind"
    return err


# --- 1. toolchain fields that become paths -------------------------------------------------

def test_signed_toolchain_version_that_is_an_absolute_path_is_refused(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    target = world.base / "escaped"
    c = craft.Craft()
    c.toolchain()
    c.toolchains[0].update(version=str(target), arch="arm64")  # another platform: no checklist
    err = refused(c.write(tmp_path / "abs.tar.zst", signing.key), world, signing, capsys)
    assert f"toolchain version {str(target)!r} is not a Go release like go1.21.13" in err
    assert not target.exists()


def test_second_toolchain_id_through_the_first_ones_directory_is_refused(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain(goarch="arm64")
    c.toolchain(version="go1.21.13.linux-arm64/go/../../../../sitecustomize", goarch="arm64",
                tree=False)
    err = refused(c.write(tmp_path / "nested.tar.zst", signing.key), world, signing, capsys)
    assert "is not a Go release like go1.21.13" in err
    assert not list(world.base.rglob("sitecustomize*"))


def test_signed_arch_climbing_to_a_go_tree_beside_the_prefix_is_refused(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    c.toolchains[0]["arch"] = "amd64/../../../../x/victim"
    err = refused(c.write(tmp_path / "arch.tar.zst", signing.key), world, signing, capsys)
    assert "GOARCH 'amd64/../../../../x/victim' is not one Go knows" in err
    # The Go tree beside the prefix keeps its go.env and its modes (World.untouched).


def test_member_of_a_toolchain_the_manifest_does_not_list_is_refused(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    c.dir("toolchains/go1.99.0.linux-amd64").file("toolchains/go1.99.0.linux-amd64/payload",
                                                  b"x")
    err = refused(c.write(tmp_path / "stray.tar.zst", signing.key), world, signing, capsys)
    assert "toolchains/go1.99.0.linux-amd64: not inside a listed toolchain" in err


def test_toolchain_listed_without_any_members_is_refused_cleanly(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain(tree=False)
    err = refused(c.write(tmp_path / "empty.tar.zst", signing.key), world, signing, capsys)
    assert ("toolchain go1.21.13.linux-amd64: its GOROOT toolchains/go1.21.13.linux-amd64/go "
            "is not a listed directory") in err


@pytest.mark.parametrize("version", ["go1.²", "go1.21.13\n", "go1.21rc2/.."])
def test_signed_version_with_non_ascii_digits_or_control_characters_is_refused(
        version: str, world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    c.toolchains[0]["version"] = version
    err = refused(c.write(tmp_path / "v.tar.zst", signing.key), world, signing, capsys)
    assert f"toolchain version {version!r} is not a Go release" in err


def test_member_path_with_a_lone_surrogate_is_refused_cleanly(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    root = c.toolchain()
    c.file(f"{root}/bad\udcff", b"x")
    manifest = json.dumps(c.doc(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True).encode() + b"\n"  # `\udcff` escaped in the JSON
    doc = c.doc()
    doc["members"] = doc["members"][:-1]  # the stream need not carry it: parsing refuses first
    c.members.pop()
    bundle = c.write(tmp_path / "surrogate.tar.zst", signing.key, manifest=manifest, doc=doc)
    err = refused(bundle, world, signing, capsys)
    assert "reading manifest: a string is not valid Unicode (a lone surrogate)" in err


def test_manifest_with_duplicate_keys_is_refused_as_non_canonical(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    text = tamper.canonical(c.doc())
    twice = text.replace(b'"sequence":1', b'"sequence":1,"sequence":7')
    err = refused(c.write(tmp_path / "dup.tar.zst", signing.key, manifest=twice), world,
                  signing, capsys)
    assert "reading manifest: not in canonical form" in err


# --- 2. symlinks ---------------------------------------------------------------------------

def test_symlink_chain_through_another_link_cannot_leave_the_tree(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    # `s` on its own stays inside (it points at `a`); `x` counted lexically stays inside too,
    # but through `s` it climbs four levels from `a`: out of the GOROOT and the prefix.
    c = craft.Craft()
    root = c.toolchain()
    for d in ("a", "a/b", "a/b/c", "a/b/c/d"):
        c.dir(f"{root}/{d}")
    c.symlink(f"{root}/a/b/c/d/s", "../../..")
    c.symlink(f"{root}/x", "a/b/c/d/s/../../../../canary")
    err = refused(c.write(tmp_path / "chain.tar.zst", signing.key), world, signing, capsys)
    assert (f"{root + '/x'!r}: symlink target 'a/b/c/d/s/../../../../canary' passes through "
            f"{root + '/a/b/c/d/s'!r}, another symlink; only directories may lie on the way"
            ) in err


def test_symlink_leaving_its_own_goroot_for_another_tree_is_refused(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    root = c.toolchain()
    c.symlink(f"{root}/up", "../../../goproxy")
    err = refused(c.write(tmp_path / "up.tar.zst", signing.key), world, signing, capsys)
    assert f"symlink target '../../../goproxy' leaves its own tree {root}" in err


@pytest.mark.parametrize("target", ["../../../../canary", "/dev/zero"])
def test_go_env_that_is_a_symlink_is_refused_before_it_is_read(
        target: str, world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    root = c.toolchain()
    c.members = [m for m in c.members if m["path"] != f"{root}/go.env"]
    c.symlink(f"{root}/go.env", target)
    err = refused(c.write(tmp_path / "goenv.tar.zst", signing.key), world, signing, capsys)
    assert "reading manifest:" in err and f"{root}/go.env" in err


def test_go_env_is_read_without_following_links_and_within_bounds(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("GOPROXY=stolen\n")
    (tmp_path / "go.env").symlink_to(tmp_path / "secret")
    with pytest.raises(TrustError, match="go.env is a symlink; refused"):
        wiring.read_go_env(tmp_path / "go.env")
    fifo = tmp_path / "fifo" / "go.env"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # must not hang
    with pytest.raises(TrustError, match="go.env is not a regular file of at most 65536 bytes"):
        wiring.read_go_env(fifo)
    big = tmp_path / "big" / "go.env"
    big.parent.mkdir()
    big.write_bytes(b"#" * (64 * 1024 + 1))
    with pytest.raises(TrustError, match="not a regular file of at most"):
        wiring.read_go_env(big)


# --- 4. memory before the signature -------------------------------------------------------

def _raw_tar_header(name: bytes, kind: bytes, size: int) -> bytes:
    head = bytearray(512)
    head[0:len(name)] = name
    head[100:108] = b"0000644\0"
    head[108:116] = head[116:124] = b"0000000\0"
    head[124:136] = f"{size:011o}\0".encode()
    head[136:148] = b"00000000000\0"
    head[156:157] = kind
    head[257:265] = b"ustar\x0000"
    head[148:156] = b" " * 8
    head[148:156] = f"{sum(head):06o}\0 ".encode()
    return bytes(head)


def _bomb(dest: Path, kind: bytes, size: int) -> Path:
    """A tiny zstd file whose first tar header announces a `size`-byte record of `kind`."""
    cctx = zstandard.ZstdCompressor(level=3)
    with open(dest, "wb") as raw, cctx.stream_writer(raw) as w:
        w.write(_raw_tar_header(b"././@PaxHeader", kind, size))
        zeros = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            w.write(zeros)
    return dest


def _peak_rss_mb(cmd: List[str]) -> Tuple[subprocess.CompletedProcess, float]:
    """Run `cmd` from a fresh wrapper process, so the peak RSS is this command's alone."""
    wrapper = ("import resource, subprocess, sys, json\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "print(json.dumps([p.returncode, p.stdout, p.stderr, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    code, out, err, kb = json.loads(done.stdout)
    return subprocess.CompletedProcess(cmd, code, out, err), kb / 1024


@pytest.mark.parametrize("kind,what", [(b"x", "a PAX header of 268435456 bytes"),
                                       (b"L", "is a GNU long name record"),
                                       (b"g", "is a global PAX header record")])
def test_huge_header_record_is_refused_before_it_is_read(kind: bytes, what: str,
                                                         signing: bundles.Signing,
                                                         tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.tar.zst", kind, 256 << 20)
    assert bomb.stat().st_size < 100_000
    done, peak = _peak_rss_mb([sys.executable, "-m", "installer.cli", "install", str(bomb),
                               "--prefix", str(tmp_path / "P"), "--trust",
                               str(signing.signers)])
    assert done.returncode == 3, done.stderr
    assert what in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr) < 2000
    assert peak < 150, f"peak RSS {peak:.0f} MB for a {bomb.stat().st_size}-byte file"
    assert not (tmp_path / "P").exists()


def test_zstd_frame_asking_for_a_larger_window_than_bundles_use_is_refused(
        signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # 2^28 is one step above what the builder writes; every byte of it would be allocated.
    params = zstandard.ZstdCompressionParameters(window_log=28, enable_ldm=1)
    cctx = zstandard.ZstdCompressor(compression_params=params)
    bomb = tmp_path / "window.tar.zst"
    with open(bomb, "wb") as raw, cctx.stream_writer(raw, size=(300 << 20) + 512) as w:
        w.write(_raw_tar_header(b"manifest.json", b"0", 300 << 20))
        for _ in range(300):
            w.write(os.urandom(1 << 10) * 1024)
    capsys.readouterr()
    code = cli.main(["install", str(bomb), "--prefix", str(tmp_path / "P"), "--trust",
                     str(signing.signers)])
    err = capsys.readouterr().err
    assert code == 3
    assert "Frame requires too much memory" in err, err
    assert not (tmp_path / "P").exists()


# --- 5. attacker text on the terminal -----------------------------------------------------

def test_unverified_member_name_cannot_forge_lines_or_escape_sequences(
        signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name = "x\nrescue: ok, installed and verified\x1b[2J" + "A" * 300
    bad = tamper.write(tmp_path / "forged.tar.zst", [(tamper.file_info(name, b"hi"), b"hi")])
    capsys.readouterr()
    code = cli.main(["install", str(bad), "--prefix", str(tmp_path / "P"), "--trust",
                     str(signing.signers)])
    err = capsys.readouterr().err
    assert code == 3
    assert "\x1b" not in err
    assert not any(line.startswith("rescue: ok") for line in err.splitlines())
    assert "found 'x\\nrescue: ok, installed and verified\\x1b[2J" in err
    assert "... (340 characters)" in err  # cut short


# --- 8. one sequence number, one bundle ---------------------------------------------------

def test_other_bundle_under_the_installed_sequence_is_refused_as_a_replay(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    first = craft.Craft()
    first.toolchain()
    code, out, err = install(first.write(tmp_path / "a.tar.zst", signing.key), world, signing,
                             capsys)
    assert code == 0, err
    again, _, err = install(first.write(tmp_path / "a2.tar.zst", signing.key), world, signing,
                            capsys)
    assert again == 0, "the identical bundle may be installed again"
    other = craft.Craft()
    other.toolchain(version="go1.21.12")
    before = tamper.snapshot(world.prefix)
    code, _, err = install(other.write(tmp_path / "b.tar.zst", signing.key), world, signing,
                           capsys)
    assert code == 3
    assert ("checking bundle hostile #1: channel 'stable' already installed another bundle with "
            "sequence 1 here (its manifest differs)") in err
    assert "Build the bundle again with a sequence above 1." in err
    assert tamper.snapshot(world.prefix) == before


# --- 9. the shared module proxy is read-only -----------------------------------------------

def test_module_proxy_files_are_installed_read_only_whatever_the_manifest_says(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    for d in ("goproxy", "goproxy/example.com", "goproxy/example.com/m",
              "goproxy/example.com/m/@v"):
        c.dir(d)
    c.file("goproxy/example.com/m/@v/v1.0.0.mod", b"module example.com/m\n", 0o664)
    c.file("goproxy/example.com/m/@v/v1.0.0.info", b'{"Version":"v1.0.0"}\n', 0o664)
    c.file("goproxy/example.com/m/@v/list", b"v1.0.0\n", 0o664)
    code, _, err = install(c.write(tmp_path / "mods.tar.zst", signing.key), world, signing,
                           capsys)
    assert code == 0, err
    at = world.prefix / "goproxy/example.com/m/@v"
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in at.iterdir()} == {
        "v1.0.0.mod": "0o444", "v1.0.0.info": "0o444", "list": "0o444"}


def test_goproxy_member_that_is_not_a_module_file_is_refused_before_anything_is_written(
        world: World, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    c.toolchain()
    c.dir("goproxy").file("goproxy/sitecustomize.py", b"import os\n")
    err = refused(c.write(tmp_path / "proxy.tar.zst", signing.key), world, signing, capsys)
    assert "goproxy/sitecustomize.py: not a GOPROXY module file" in err


def test_raw_tar_member_types_the_builder_never_writes_are_refused(
        signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    c = craft.Craft()
    root = c.toolchain()
    items = c.items()
    fifo = tarfile.TarInfo(f"{root}/fifo")
    fifo.type = tarfile.FIFOTYPE
    bundle = c.write(tmp_path / "fifo.tar.zst", signing.key, items=items[:3] + [(fifo, None)])
    capsys.readouterr()
    code = cli.main(["install", str(bundle), "--prefix", str(tmp_path / "P"), "--trust",
                     str(signing.signers)])
    err = capsys.readouterr().err
    assert code == 3
    assert f"member {root + '/fifo'!r} is a FIFO record, which rescue bundles never contain" \
        in err
    assert not (tmp_path / "P").exists()


def _doc(bundle: Path) -> Dict[str, Any]:
    return json.loads(tamper.header(bundle)["manifest.json"])  # type: ignore[no-any-return]
