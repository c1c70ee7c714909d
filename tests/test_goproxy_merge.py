"""Several bundles share P/goproxy: identical copies merge, conflicting ones are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from installer import install as inst
from installer import wiring
from installer.goproxy_merge import merge
from keys import allowed_signers
from manifests.errors import SECURITY_NOTE, NotReadyError, TrustError
from tests.support import bundles
from tests.support.goproxy_server import (
    FixtureModule,
    ProxyServer,
    fixture_modules,
    write_module,
    write_modules,
)
from tests.support.modbundles import modules_table, snapshot

DEP = "example.com/dep"


def _module_files(root: Path, m: str, v: str, zip_data: bytes = b"zip",
                  info: bytes = b'{"Version":"%s"}') -> None:
    vdir = root / m / "@v"
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / f"{v}.info").write_bytes(info.replace(b"%s", v.encode()))
    (vdir / f"{v}.mod").write_bytes(f"module {m}\n".encode())
    (vdir / f"{v}.zip").write_bytes(zip_data)
    listing = vdir / "list"
    old = listing.read_text() if listing.exists() else ""
    listing.write_text(old + v + "\n")


def test_new_versions_move_in_and_lists_become_the_union_in_semver_order(tmp_path):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    for v in ("v1.10.0", "v1.2.0"):
        _module_files(dest, "example.com/dep", v)
    for v in ("v1.2.0", "v1.9.0", "v1.2.0-rc.1"):
        _module_files(staged, "example.com/dep", v)
    _module_files(staged, "example.com/new", "v0.1.0")
    journal = merge(staged, dest)
    assert (dest / "example.com/dep/@v/list").read_text() == \
        "v1.2.0-rc.1\nv1.2.0\nv1.9.0\nv1.10.0\n"
    assert (dest / "example.com/new/@v/list").read_text() == "v0.1.0\n"
    assert journal.added == ["example.com/dep@v1.2.0-rc.1", "example.com/dep@v1.9.0",
                             "example.com/new@v0.1.0"]
    assert journal.kept == ["example.com/dep@v1.2.0"]
    assert (dest / "example.com/new/@v/v0.1.0.zip").read_bytes() == b"zip"


def test_same_module_version_with_other_zip_bytes_is_refused_and_nothing_changes(tmp_path):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    _module_files(dest, DEP, "v1.2.0", b"original")
    _module_files(staged, "example.com/aaa", "v1.0.0")  # sorts first: would move in first
    _module_files(staged, DEP, "v1.2.0", b"tampered")
    before = snapshot(dest)
    with pytest.raises(TrustError) as e:
        merge(staged, dest)
    have = hashlib.sha256(b"original").hexdigest()
    got = hashlib.sha256(b"tampered").hexdigest()
    assert str(e.value).startswith(
        f"merging {DEP}@v1.2.0 into {dest}: v1.2.0.zip differs from the copy an earlier bundle "
        f"installed\n\tinstalled: sha256 {have}\n\tbundle:    sha256 {got}\n")
    assert str(e.value).endswith(SECURITY_NOTE)
    assert snapshot(dest) == before


def test_differing_info_keeps_the_installed_one_with_a_note(tmp_path):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    _module_files(dest, DEP, "v1.2.0", info=b'{"Version":"%s","Time":"2024-01-01T00:00:00Z"}')
    _module_files(staged, DEP, "v1.2.0", info=b'{"Version":"%s"}')
    before = snapshot(dest)
    journal = merge(staged, dest)
    assert snapshot(dest) == before
    assert journal.kept == [f"{DEP}@v1.2.0"]
    assert journal.notes == [f"{DEP}@v1.2.0: kept the installed v1.2.0.info (the bundle's "
                             "differs; .info files carry no checked content)"]


def test_rollback_takes_back_every_file_dir_and_list_the_merge_touched(tmp_path):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    _module_files(dest, DEP, "v1.0.0")
    _module_files(staged, DEP, "v1.2.0")
    _module_files(staged, "example.com/!upper/x", "v1.0.0")  # escaped on disk
    before = snapshot(dest)
    journal = merge(staged, dest)
    assert snapshot(dest) != before
    journal.rollback()
    assert snapshot(dest) == before


@pytest.mark.parametrize("rel", ["evil.sh", "example.com/dep/@v/v1.0.0.exe",
                                 "example.com/dep/@v/sub/v1.0.0.zip",
                                 "example.com/Dep/@v/v1.0.0.zip"])
def test_files_that_are_not_goproxy_module_files_are_refused(tmp_path, rel):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    dest.mkdir()
    (staged / rel).parent.mkdir(parents=True)
    (staged / rel).write_bytes(b"#!/bin/sh\n")
    with pytest.raises(TrustError, match=r"merging goproxy/"):
        merge(staged, dest)
    assert snapshot(dest) == {}


# --- whole installs: two signed bundles into one prefix -----------------------------------


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    """Two proxies that agree on everything except the bytes of example.com/dep@v1.2.0."""
    base = tmp_path_factory.mktemp("proxies")
    good = write_modules(base / "good", fixture_modules())
    evil = write_modules(base / "evil", fixture_modules())
    dep = FixtureModule(DEP, "v1.2.0", {"fixture.go": "package fixture // other bytes\n"})
    write_module(evil, dep)
    with ProxyServer(good) as g, ProxyServer(evil) as e:
        yield g.url, e.url


def _bundle(work: Path, signing, goproxy: str, require, sequence: int) -> Path:
    work.mkdir()
    spec = bundles.write_spec(work / "spec.toml", signing.key, "http://127.0.0.1:9",
                              versions="[]", sequence=sequence,
                              extra=modules_table(goproxy, require=require, transitive=False))
    return bundles.build_bundle(spec, work / "out", work / "cache").path


def _install(bundle: Path, root: Path, signing) -> inst.InstallResult:
    signers = allowed_signers.parse(signing.signers.read_text())
    return inst.install(bundle, root, signers, "test")


def test_second_bundle_adds_versions_and_merges_the_list(proxies, signing, tmp_path):
    good, _ = proxies
    one = _bundle(tmp_path / "one", signing, good, [f"{DEP}@v1.0.0"], 1)
    two = _bundle(tmp_path / "two", signing, good, [f"{DEP}@v1.0.0", f"{DEP}@v1.2.0"], 2)
    root = tmp_path / "P"
    first = _install(one, root, signing)
    assert first.modules_added == [f"{DEP}@v1.0.0"] and first.current is None
    second = _install(two, root, signing)
    assert second.modules_added == [f"{DEP}@v1.2.0"]
    assert second.modules_kept == [f"{DEP}@v1.0.0"]
    assert (root / "goproxy" / DEP / "@v" / "list").read_text() == "v1.0.0\nv1.2.0\n"
    state = json.loads((root / "state" / "installed.json").read_text())
    assert state["bundles"][-1]["modules"] == [f"{DEP}@v1.0.0", f"{DEP}@v1.2.0"]


def test_bundle_with_other_bytes_for_an_installed_module_version_is_refused(proxies, signing,
                                                                            tmp_path):
    good, evil = proxies
    one = _bundle(tmp_path / "one", signing, good, [f"{DEP}@v1.2.0"], 1)
    two = _bundle(tmp_path / "two", signing, evil, [f"{DEP}@v1.2.0", "example.com/pseudo@"
                                                     "v0.0.0-20240101000000-abcdefabcdef"], 2)
    root = tmp_path / "P"
    _install(one, root, signing)
    before = snapshot(root)
    with pytest.raises(TrustError) as e:
        _install(two, root, signing)
    assert str(e.value).startswith(f"merging {DEP}@v1.2.0 into {root / 'goproxy'}: v1.2.0.zip "
                                   "differs from the copy an earlier bundle installed")
    assert snapshot(root) == before


def test_failed_install_takes_back_the_modules_it_added(proxies, signing, tmp_path, monkeypatch):
    good, _ = proxies
    one = _bundle(tmp_path / "one", signing, good, [f"{DEP}@v1.0.0"], 1)
    two = _bundle(tmp_path / "two", signing, good, [f"{DEP}@v1.2.0", "example.com/old@"
                                                     "v2.0.0+incompatible"], 2)
    root = tmp_path / "P"
    _install(one, root, signing)
    before = snapshot(root)

    def disk_full(layout):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wiring, "write_shell_snippets", disk_full)
    with pytest.raises(NotReadyError) as e:
        _install(two, root, signing)
    # A full disk is this machine's problem (exit 2, what to free), never "tampering".
    assert "No space left on device" in str(e.value)
    assert "the filesystem is full" in str(e.value)
    assert "SECURITY" not in str(e.value)
    assert snapshot(root) == before


def test_module_path_new_to_the_proxy_moves_in_whole_and_rollback_takes_it_back(tmp_path):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    _module_files(dest, DEP, "v1.0.0")
    _module_files(staged, DEP, "v1.2.0")
    _module_files(staged, "example.com/new", "v0.1.0")
    moved = (staged / "example.com" / "new").stat().st_ino
    before = snapshot(dest)
    journal = merge(staged, dest)
    new = dest / "example.com" / "new"
    assert new.stat().st_ino == moved  # one rename, not a directory made again
    assert (new / "@v" / "v0.1.0.zip").stat().st_mode & 0o777 == 0o444
    assert (new / "@v").stat().st_mode & 0o777 == 0o755
    assert journal.added == [f"{DEP}@v1.2.0", "example.com/new@v0.1.0"]
    journal.rollback()
    assert snapshot(dest) == before
    assert (staged / "example.com" / "new" / "@v" / "v0.1.0.zip").is_file()


def test_list_of_a_new_module_path_is_written_as_a_merged_one_would_be(tmp_path):
    dest, staged = tmp_path / "goproxy", tmp_path / "staged"
    dest.mkdir()
    for v in ("v1.10.0", "v1.9.0"):
        _module_files(staged, DEP, v)
    (staged / DEP / "@v" / "list").write_text("v1.10.0 2024-01-01T00:00:00Z\nv1.9.0\n")
    merge(staged, dest)
    assert (dest / DEP / "@v" / "list").read_text() == "v1.9.0\nv1.10.0\n"
    assert (dest / DEP / "@v" / "list").stat().st_mode & 0o777 == 0o444
