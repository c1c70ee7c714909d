"""A bundle of two releases: interleaved in the stream, yet stock tar and the installer open it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from installer import cli
from manifests.model import MANIFEST_NAME, check_members, parse_manifest
from tests.support import bundles, gobin, upstream

OLD, NEW = gobin.GO_VERSION, gobin.NEWER_GO_VERSION
ROOTS = [f"toolchains/go{v}.linux-amd64/go" for v in (OLD, NEW)]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing) -> Path:
    archives = [gobin.godl_archive(v) for v in (OLD, NEW)]
    work = tmp_path_factory.mktemp("two-releases")
    with upstream.serve(upstream.godl_routes({a.name: a for a in archives})) as url:
        spec = bundles.write_spec(work / "spec.toml", signing.key, url, level=1,
                                  versions=f'["{OLD}", "{NEW}"]')
        return bundles.build_bundle(spec, work / "out", work / "cache").path


@pytest.fixture(scope="module")
def listing(both: Path) -> List[str]:
    done = subprocess.run(["tar", "--zstd", "-tf", str(both)], capture_output=True, text=True,
                          check=True)
    return [line.rstrip("/") for line in done.stdout.splitlines()][3:]  # after the header


@pytest.fixture(scope="module")
def manifest(both: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    out = tmp_path_factory.mktemp("two-extracted")
    subprocess.run(["tar", "--zstd", "-xf", str(both), "-C", str(out)], check=True)
    raw = (out / MANIFEST_NAME).read_bytes()
    return {"dir": out, "raw": raw, "doc": json.loads(raw)}


def test_same_goroot_path_of_both_releases_are_neighbours_in_the_stream(
        listing: List[str]) -> None:
    go = [listing.index(f"{root}/bin/go") for root in ROOTS]
    assert go[1] == go[0] + 1
    first_file = min(i for i, p in enumerate(listing) if p.startswith(ROOTS[0] + "/bin/"))
    dirs = [i for i, p in enumerate(listing) if p in ROOTS or p.endswith("/src")]
    assert max(dirs) < first_file  # every directory of both releases comes first


def test_two_release_members_pass_the_manifest_checks_in_stream_order(
        listing: List[str], manifest: Dict[str, Any]) -> None:
    members = manifest["doc"]["members"]
    assert listing == [m["path"] for m in members]
    assert check_members(parse_manifest(manifest["raw"])) == []
    seen = set()
    for m in members:  # a hard link's target is written before the link, as stage() needs
        assert m["type"] != "hardlink" or m["target"] in seen
        seen.add(m["path"])


def test_stock_tar_extracts_both_releases_that_run(manifest: Dict[str, Any],
                                                  tmp_path: Path) -> None:
    for version, root in zip((OLD, NEW), ROOTS):
        goroot = manifest["dir"] / root
        done = subprocess.run([str(goroot / "bin" / "go"), "version"], capture_output=True,
                              text=True, env=gobin.go_env(tmp_path, GOROOT=str(goroot)))
        assert done.returncode == 0, done.stderr
        assert f"go{version} linux/amd64" in done.stdout


def test_installer_installs_both_releases_from_one_interleaved_bundle(
        both: Path, signing: bundles.Signing, tmp_path: Path) -> None:
    prefix = tmp_path / "P"
    code = cli.main(["install", str(both), "--prefix", str(prefix), "--trust",
                     str(signing.signers)])
    assert code == 0
    for version in (OLD, NEW):
        assert os.access(prefix / "versions" / f"go{version}.linux-amd64" / "bin" / "go",
                         os.X_OK)
