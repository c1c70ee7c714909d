"""`--modcache`: a module cache rebuilt from the verified GOPROXY, as real `go` would have it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bundler.gosum import parse_gosum
from installer import prefix
from installer.modcache import default_gomodcache, populate
from manifests.errors import NotReadyError, TrustError
from manifests.model import Module
from manifests.modpath import escape_path, escape_version, sort_versions
from tests.support import gobin

DEP = "example.com/dep"


@pytest.fixture(scope="module")
def modules(real):
    """The manifest records a bundle of the project would carry (from its go.sum)."""
    sums = {}
    for s in parse_gosum(real.gosum.read_bytes()).lines:
        sums.setdefault((s.path, s.version), {})[s.kind] = s.hash
    return [Module(p, v, h.get("zip", ""), h.get("mod", "")) for (p, v), h in sorted(sums.items())]


@pytest.fixture()
def cache(tmp_path):
    path = tmp_path / "modcache"
    yield path
    prefix.remove_tree(path)  # extracted trees are read-only, as Go leaves them


def _download_files(root: Path) -> dict:
    dl = root / "cache" / "download"
    return {p.relative_to(dl).as_posix(): p.read_bytes() for p in sorted(dl.rglob("*"))
            if p.is_file() and p.suffix in (".info", ".mod", ".zip", ".ziphash", "")
            and "sumdb" not in p.parts and p.name != "lock"}


def test_cache_matches_what_go_mod_download_writes(real, modules, cache):
    result = populate(real.proxy_dir, modules, cache)
    assert sorted(result.written) == sorted(f"{m.path}@{m.version}" for m in modules)
    ours, gos = _download_files(cache), _download_files(real.modcache)
    assert sorted(ours) == sorted(gos)
    for name in ours:
        if name == "example.com/!upper/!mod/@v/list":
            # Go's rewriteVersionList tests the *escaped* file name for canonical semver, so
            # it drops `v1.0.0-!beta`; the proxy protocol lists versions unescaped, as here.
            assert (gos[name], ours[name]) == (b"", b"v1.0.0-Beta\n")
            continue
        if name.endswith(".info"):  # go re-encodes what the proxy served; the proxy's bytes here
            assert json.loads(ours[name]) == json.loads(gos[name]), name
            continue
        assert ours[name] == gos[name], name
    for m in modules:
        if not m.zip_hash:
            continue
        tree = cache / f"{escape_path(m.path)}@{escape_version(m.version)}"
        theirs = real.modcache / tree.relative_to(cache)
        assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == \
            sorted(p.relative_to(theirs) for p in theirs.rglob("*"))
        assert not tree.with_name(tree.name + ".partial").exists()


def test_ziphash_is_the_manifest_h1_without_newline_and_trees_are_read_only(real, modules,
                                                                            cache):
    populate(real.proxy_dir, modules, cache)
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    vdir = cache / "cache" / "download" / DEP / "@v"
    assert (vdir / f"{dep.version}.ziphash").read_bytes() == dep.zip_hash.encode()
    tree = cache / f"{DEP}@{dep.version}"
    assert (tree / "fixture.go").stat().st_mode & 0o777 == 0o444
    assert tree.stat().st_mode & 0o222 == 0
    upper = cache / "example.com" / "!upper" / "!mod@v1.0.0-!beta"
    assert (upper / "fixture.go").is_file()


def test_go_builds_with_goproxy_off_from_the_rebuilt_cache(real, modules, cache, go_bin,
                                                          tmp_path):
    populate(real.proxy_dir, modules, cache)
    project = shutil.copytree(real.project, tmp_path / "project")
    env = gobin.go_env(tmp_path / "home", GOPROXY="off", GOMODCACHE=str(cache), GOFLAGS="",
                       GOSUMDB="off")
    for args in (["build", "./..."], ["mod", "verify"], ["list", "-m", "all"]):
        done = subprocess.run([str(go_bin), *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"go {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_second_run_keeps_complete_versions_and_redoes_an_interrupted_one(real, modules, cache):
    populate(real.proxy_dir, modules, cache)
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    tree = cache / f"{DEP}@{dep.version}"
    (tree.with_name(tree.name + ".partial")).touch()  # as if killed mid-extraction
    again = populate(real.proxy_dir, modules, cache)
    assert again.written == [f"{DEP}@{dep.version}"]
    assert len(again.kept) == len(modules) - 1
    assert not tree.with_name(tree.name + ".partial").exists()
    assert (tree / "fixture.go").is_file()


def test_poisoned_gomod_in_the_cache_is_replaced_by_the_signed_one(real, modules, cache):
    populate(real.proxy_dir, modules, cache)
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    mod = cache / "cache" / "download" / DEP / "@v" / f"{dep.version}.mod"
    good = mod.read_bytes()
    mod.write_bytes(b"module example.com/dep\nrequire evil.example/x v1.0.0\n")
    again = populate(real.proxy_dir, modules, cache)
    assert f"{DEP}@{dep.version}" in again.written
    assert mod.read_bytes() == good


def test_list_keeps_versions_go_downloaded_before(real, modules, cache):
    vdir = cache / "cache" / "download" / DEP / "@v"
    vdir.mkdir(parents=True)
    (vdir / "v0.9.0.mod").write_bytes(b"module example.com/dep\n")
    (vdir / "list").write_text("v0.9.0\n")
    populate(real.proxy_dir, modules, cache)
    carried = sort_versions(m.version for m in modules if m.path == DEP)
    assert (vdir / "list").read_text() == "".join(v + "\n" for v in ["v0.9.0", *carried])


def test_unwritable_cache_dir_is_a_not_ready_error(real, modules, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotReadyError, match=r"writing module cache .*pass --modcache-dir DIR"):
        populate(real.proxy_dir, modules, blocker / "modcache")


@pytest.mark.parametrize("env, want", [
    ({"GOMODCACHE": "/m", "GOPATH": "/g", "HOME": "/h"}, "/m"),
    ({"GOPATH": f"/g1{os.pathsep}/g2", "HOME": "/h"}, "/g1/pkg/mod"),
    ({"GOPATH": f"{os.pathsep}/g2", "HOME": "/h"}, "/g2/pkg/mod"),
    ({"HOME": "/h", "GOENV": "off"}, "/h/go/pkg/mod"),
])
def test_default_modcache_follows_gos_rules(env, want):
    assert default_gomodcache(env) == Path(want)


def test_default_modcache_reads_the_users_go_env_file(tmp_path):
    (tmp_path / "cfg" / "go").mkdir(parents=True)
    (tmp_path / "cfg" / "go" / "env").write_text("GOPATH=/from/goenv\n")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert default_gomodcache(env) == Path("/from/goenv/pkg/mod")
    assert default_gomodcache(dict(env, GOMODCACHE="/env/wins")) == Path("/env/wins")


def test_default_modcache_refuses_a_relative_path():
    with pytest.raises(NotReadyError, match="is not an absolute path"):
        default_gomodcache({"GOMODCACHE": "rel/mod", "GOENV": "off"})


def _read_only_proxy(real, tmp_path: Path) -> Path:
    """A copy of the fixture proxy with 0444 files, as the merge leaves P/goproxy."""
    proxy = shutil.copytree(real.proxy_dir, tmp_path / "goproxy")
    for p in proxy.rglob("*"):
        if p.is_file():
            p.chmod(0o444)
    return proxy


def test_cache_files_are_hard_links_to_the_read_only_proxy_copies(real, modules, cache,
                                                                   tmp_path):
    proxy = _read_only_proxy(real, tmp_path)
    populate(proxy, modules, cache)
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    for ext in (".info", ".mod", ".zip"):
        ours = cache / "cache" / "download" / DEP / "@v" / f"{dep.version}{ext}"
        theirs = proxy / DEP / "@v" / f"{dep.version}{ext}"
        assert ours.stat().st_ino == theirs.stat().st_ino, ext


def test_writable_proxy_files_are_copied_so_a_write_into_the_cache_cannot_reach_them(
        real, modules, cache):
    populate(real.proxy_dir, modules, cache)
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    ours = cache / "cache" / "download" / DEP / "@v" / f"{dep.version}.zip"
    assert ours.stat().st_ino != (real.proxy_dir / DEP / "@v" / ours.name).stat().st_ino


def test_zip_that_does_not_hash_to_the_signed_h1_never_reaches_the_cache(real, modules, cache):
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    other = next(m for m in modules if m.zip_hash and m.zip_hash != dep.zip_hash)
    forged = dataclasses.replace(dep, zip_hash=other.zip_hash)
    with pytest.raises(TrustError, match=rf"verifying {DEP}@{dep.version}: checksum mismatch"):
        populate(real.proxy_dir, [forged], cache)
    parent = cache / "example.com"
    assert not (parent / f"dep@{dep.version}").exists()
    assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == []  # no temp tree
    assert not (cache / "cache" / "download" / DEP / "@v" / f"{dep.version}.ziphash").exists()


def test_mod_that_does_not_hash_to_the_signed_h1_never_reaches_the_cache(real, modules, cache):
    dep = next(m for m in modules if m.path == DEP and m.zip_hash)
    forged = dataclasses.replace(dep, mod_hash="h1:" + "A" * 43 + "=")
    with pytest.raises(TrustError, match=rf"verifying {DEP}@{dep.version}/go.mod: checksum "):
        populate(real.proxy_dir, [forged], cache)
    assert not (cache / "cache" / "download" / DEP / "@v" / f"{dep.version}.mod").exists()
