"""The bundle format, checked with stock tools: tar --zstd, sha256sum, ssh-keygen -Y verify."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
import zstandard

from installer import cli
from manifests.model import HEADER_NAMES, MANIFEST_NAME, SIGNATURE_NAME
from tests.support import bundles, craft, gobin, sshkeygen

ROOT = "toolchains/go1.21.13.linux-amd64/go"


@pytest.fixture(scope="module")
def listing(toolchain_bundle: Path) -> List[str]:
    """Member names in stream order, as stock GNU tar lists them."""
    done = subprocess.run(["tar", "--zstd", "-tf", str(toolchain_bundle)], capture_output=True,
                          text=True, check=True)
    return [line.rstrip("/") for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def extracted(toolchain_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extracted")
    subprocess.run(["tar", "--zstd", "-xf", str(toolchain_bundle), "-C", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def manifest(extracted: Path) -> Dict[str, Any]:
    return json.loads((extracted / MANIFEST_NAME).read_text())  # type: ignore[no-any-return]


def test_stock_tar_lists_header_members_first(listing: List[str]) -> None:
    assert tuple(listing[:3]) == HEADER_NAMES == ("manifest.json", "manifest.sig", "SHA256SUMS")


def test_stock_sha256sum_checks_every_file(extracted: Path, manifest: Dict[str, Any]) -> None:
    done = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=extracted,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    files = [m["path"] for m in manifest["members"] if m["type"] == "file"]
    assert done.stdout.count(": OK\n") == len(files)


def test_stock_ssh_keygen_verifies_the_manifest_signature(extracted: Path,
                                                          signing: bundles.Signing,
                                                          tmp_path: Path) -> None:
    def verify(manifest: Path) -> subprocess.CompletedProcess:
        return sshkeygen.verify(signing.signers, "release@rescue", extracted / SIGNATURE_NAME,
                                manifest.read_bytes())

    good = verify(extracted / MANIFEST_NAME)
    assert good.returncode == 0, good.stderr
    assert b'Good "rescue-manifest" signature for release@rescue' in good.stdout
    edited = tmp_path / "manifest.json"
    edited.write_bytes((extracted / MANIFEST_NAME).read_bytes().replace(b'"stable"', b'"evil"'))
    assert verify(edited).returncode != 0


def test_every_manifest_member_is_in_the_tar_and_nothing_else(listing: List[str],
                                                              manifest: Dict[str, Any]) -> None:
    content = listing[3:]
    dupes = [n for n, c in collections.Counter(listing).items() if c > 1]
    assert dupes == []
    assert set(content) == {m["path"] for m in manifest["members"]}
    assert len(content) == len(manifest["members"])
    # In manifest order, so a reader meets each directory before its children.
    assert content == [m["path"] for m in manifest["members"]]


def test_stock_tar_extracts_a_goroot_that_runs(extracted: Path, tmp_path: Path) -> None:
    go = extracted / ROOT / "bin" / "go"
    done = subprocess.run([str(go), "version"], capture_output=True, text=True,
                          env=gobin.go_env(tmp_path, GOROOT=str(extracted / ROOT)))
    assert done.returncode == 0, done.stderr
    assert "go1.21.13 linux/amd64" in done.stdout


def test_identical_files_are_stored_once(toolchain_bundle: Path, extracted: Path,
                                         manifest: Dict[str, Any], goroot: Path) -> None:
    members = {m["path"]: m for m in manifest["members"]}
    links = [m for m in manifest["members"] if m["type"] == "hardlink"]
    # The upstream GOROOT has duplicate files (same content, same mode): each is one hard link.
    seen: Dict[tuple, str] = {}
    duplicates = 0
    for dirpath, _dirs, files in os.walk(goroot):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                key = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mode & 0o111)
            duplicates += key in seen
            seen.setdefault(key, path)
    assert duplicates > 0 and len(links) == duplicates
    for link in links:
        first = members[link["target"]]
        assert first["type"] == "file" and first["mode"] == link["mode"]
        a, b = extracted / link["path"], extracted / link["target"]
        assert os.stat(a).st_ino == os.stat(b).st_ino  # stock tar restored the link
    verbose = subprocess.run(["tar", "--zstd", "-tvf", str(toolchain_bundle)],
                             capture_output=True, text=True, check=True).stdout
    assert verbose.count(" link to ") == len(links)


def test_inspect_json_reports_signer_targets_and_toolchain(toolchain_bundle: Path,
                                                           signing: bundles.Signing,
                                                           manifest: Dict[str, Any],
                                                           capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    code = cli.main(["inspect", str(toolchain_bundle), "--trust", str(signing.signers),
                     "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True
    assert doc["signer"]["key_id"] == signing.key_id
    assert doc["signer"]["principals"] == ["release@rescue"]
    assert doc["targets"] == ["linux-amd64"]
    (tc,) = doc["toolchains"]
    assert (tc["id"], tc["version"], tc["os"], tc["arch"], tc["source"]) == \
        ("go1.21.13.linux-amd64", "go1.21.13", "linux", "amd64", "godl")
    assert tc["sha256"] == upstream_sha()
    assert doc["members"] == len(manifest["members"])
    assert (doc["name"], doc["channel"], doc["sequence"]) == ("rescue-test", "stable", 1)


def test_inspect_names_an_untrusted_signer(toolchain_bundle: Path, signing: bundles.Signing,
                                           tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = bundles.make_signing(tmp_path / "other", name="other")
    capsys.readouterr()
    code = cli.main(["inspect", str(toolchain_bundle), "--trust", str(other.signers)])
    _out, err = capsys.readouterr()
    assert code == 3
    assert f"signed by key {signing.key_id}, which is not in the trust store {other.signers}" \
        in err
    assert "--trust FILE" in err and "rescue keys trust" not in err  # what works offline


def upstream_sha() -> str:
    from tests.support.upstream import sha256_file

    return sha256_file(gobin.godl_archive())


def test_installer_memory_is_bounded_by_a_64_mib_window(toolchain_bundle: Path) -> None:
    """A decoder sizes its buffer by the window the first frame declares and keeps it: the
    header frame records its own size, and the content frame asks for 2**26 bytes at most."""
    data = toolchain_bundle.read_bytes()
    header = zstandard.get_frame_parameters(data)
    assert header.content_size < 1 << 24 and header.window_size < 1 << 24
    dobj = zstandard.ZstdDecompressor().decompressobj()
    dobj.decompress(data[:1 << 20])
    assert dobj.eof
    content = zstandard.get_frame_parameters(dobj.unused_data)
    assert content.window_size <= 1 << 26


def test_inspect_json_names_the_toolchain_install_makes_current_on_each_target(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    """Go's order, not the text's (go1.9 < go1.21.0 < go1.21.13), kept in the pyz for the
    fleet module and scripts that must say what an install will do."""
    c = craft.Craft()
    for version, arch in (("go1.21.13", "amd64"), ("go1.9", "amd64"), ("go1.21.0", "amd64"),
                          ("go1.21rc2", "arm64"), ("go1.21.0", "arm64")):
        c.toolchain(version=version, goarch=arch)
    capsys.readouterr()
    code = cli.main(["inspect", str(c.write(tmp_path / "b.tar.zst", signing.key)), "--trust",
                     str(signing.signers), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["current_by_target"] == {"linux-amd64": "go1.21.13.linux-amd64",
                                                    "linux-arm64": "go1.21.0.linux-arm64"}
