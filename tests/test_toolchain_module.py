"""The golang.org/toolchain module built from a toolchain archive, and the two-source check."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import pytest

from bundler import toolchain_module
from bundler.spool import Spool
from bundler.toolchain_part import Tree, read_toolchain
from manifests import toolchainzip
from manifests.dirhash import hash_zip
from manifests.errors import TrustError
from manifests.model import Toolchain

TC = Toolchain("go1.21.13", "linux", "amd64", "godl", "https://go.dev/dl/x", "", 0)
PREFIX = "golang.org/toolchain@v0.0.1-go1.21.13.linux-amd64"
# The go.mod hash every golang.org/toolchain version has in the public checksum database
# (e.g. the sum.golang.org record of v0.0.1-go1.21.9.linux-amd64 and ...go1.23.1...).
PUBLISHED_GOMOD_HASH = "h1:8wlg68NqwW7eMnI1aABk/C2pDYXj8mrMY4TyRfiLeS0="

GOROOT: Dict[str, Tuple[bytes, int]] = {
    "VERSION": (b"go1.21.13\ntime 2024-07-31T19:43:06Z\n", 0o644),
    "go.env": (b"GOTOOLCHAIN=auto\n", 0o644),
    "LICENSE": (b"license\n", 0o644),
    "api/go1.txt": (b"pkg fmt\n", 0o644),
    "doc/go_spec.html": (b"<html>\n", 0o644),
    "misc/go.mod": (b"module misc\n", 0o644),
    "misc/wasm/go_js_wasm_exec": (b"#!/bin/sh\n", 0o755),
    "test/run.go": (b"package main\n", 0o644),
    "bin/go": (b"\x7fELF go", 0o755),
    "pkg/tool/linux_amd64/compile": (b"\x7fELF compile", 0o755),
    "src/go.mod": (b"module std\n", 0o644),
    "src/cmd/go.mod": (b"module cmd\n", 0o644),
    "src/cmd/go/testdata/mod/go.mod.txt": (b"not a go.mod\n", 0o644),
    "src/make.bash": (b"#!/bin/bash\n", 0o755),
    "src/a/b/c.go": (b"package b\n", 0o644),
    "src/a/b.go": (b"package a\n", 0o644),
    "src/a/b-c.go": (b"package a\n", 0o644),
    "src/runtime/go_linux_amd64_exec": (b"#!/bin/sh\n", 0o755),
}


def _archive(path: Path, files: Dict[str, Tuple[bytes, int]]) -> Path:
    """A go.dev-style .tar.gz: every file under a top-level go/."""
    with tarfile.open(path, "w:gz") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo("go/" + name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return path


def _read(tmp_path: Path, spool: Spool, files=GOROOT) -> Tree:
    return read_toolchain(TC, _archive(tmp_path / "go.tar.gz", files), "godl", spool)


def test_module_zip_is_laid_out_as_distpack_lays_it_out(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        module = toolchain_module.from_tree(TC, _read(tmp_path, spool), spool)
        zip_path = toolchain_module.write(module, tmp_path / "goproxy")
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        got = [(i.filename, i.external_attr >> 16, i.date_time) for i in infos]
        contents = {i.filename: zf.read(i) for i in infos}
    when = (2024, 7, 31, 19, 43, 6)
    # Sorted as distpack sorts (a/b/c.go before a/b-c.go and a/b.go: `/` sorts first); api,
    # doc, misc and test left out; every go.mod below the root renamed _go.mod; the mode
    # distpack gives (bin, pkg/tool, *.bash and go_*_*_exec executable); VERSION's time.
    assert got == [(f"{PREFIX}/{name}", mode, when) for name, mode in [
        ("LICENSE", 0o100644), ("VERSION", 0o100644), ("bin/go", 0o100755),
        ("go.env", 0o100644), ("pkg/tool/linux_amd64/compile", 0o100755),
        ("src/_go.mod", 0o100644), ("src/a/b/c.go", 0o100644), ("src/a/b-c.go", 0o100644),
        ("src/a/b.go", 0o100644), ("src/cmd/_go.mod", 0o100644),
        ("src/cmd/go/testdata/mod/go.mod.txt", 0o100644), ("src/make.bash", 0o100755),
        ("src/runtime/go_linux_amd64_exec", 0o100755)]]
    assert contents[f"{PREFIX}/src/cmd/_go.mod"] == b"module cmd\n"
    assert module.omitted == {"api": 1, "doc": 1, "misc": 2, "test": 1}
    assert hash_zip(zip_path) == module.zip_hash
    vdir = tmp_path / "goproxy/golang.org/toolchain/@v"
    assert sorted(p.name for p in vdir.iterdir()) == [
        "list", "v0.0.1-go1.21.13.linux-amd64.info", "v0.0.1-go1.21.13.linux-amd64.mod",
        "v0.0.1-go1.21.13.linux-amd64.zip"]
    assert (vdir / "list").read_bytes() == b"v0.0.1-go1.21.13.linux-amd64\n"
    assert (vdir / "v0.0.1-go1.21.13.linux-amd64.mod").read_bytes() == \
        b"module golang.org/toolchain\n"
    assert (vdir / "v0.0.1-go1.21.13.linux-amd64.info").read_bytes() == \
        b'{"Version":"v0.0.1-go1.21.13.linux-amd64", "Time":"2024-07-31T19:43:06Z"}\n'


def test_module_gomod_hashes_to_the_published_checksum() -> None:
    assert toolchainzip.gomod_hash() == PUBLISHED_GOMOD_HASH


def test_module_zip_bytes_are_deterministic(tmp_path: Path) -> None:
    digests = []
    for n in range(2):
        with Spool(tmp_path / f"spool{n}") as spool:
            module = toolchain_module.from_tree(TC, _read(tmp_path, spool), spool)
            zip_path = toolchain_module.write(module, tmp_path / f"goproxy{n}")
            digests.append(hashlib.sha256(zip_path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_list_keeps_every_version_written(tmp_path: Path) -> None:
    newer = Toolchain("go1.22.10", "linux", "amd64", "godl", "", "", 0)
    files = {**GOROOT, "VERSION": (b"go1.22.10\ntime 2024-11-27T20:27:20Z\n", 0o644)}
    with Spool(tmp_path / "spool") as spool:
        for tc, tree_files in ((TC, GOROOT), (newer, files)):
            tree = read_toolchain(tc, _archive(tmp_path / f"{tc.version}.tar.gz", tree_files),
                                  "godl", spool)
            toolchain_module.write(toolchain_module.from_tree(tc, tree, spool),
                                   tmp_path / "goproxy")
    assert (tmp_path / "goproxy/golang.org/toolchain/@v/list").read_text() == (
        "v0.0.1-go1.21.13.linux-amd64\nv0.0.1-go1.22.10.linux-amd64\n")


def test_module_refuses_an_archive_whose_version_file_names_another_release(
        tmp_path: Path) -> None:
    files = {**GOROOT, "VERSION": (b"go1.22.10\ntime 2024-11-27T20:27:20Z\n", 0o644)}
    with Spool(tmp_path / "spool") as spool, pytest.raises(TrustError) as err:
        toolchain_module.from_tree(TC, _read(tmp_path, spool, files), spool)
    assert str(err.value) == (f"building {PREFIX}: the archive's VERSION says 'go1.22.10', "
                              "expected 'go1.21.13'")


def _rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of the module zip with `change(name, data)` applied; None drops the entry."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
    return dst


def _built(tmp_path: Path, spool: Spool) -> Tuple[Tree, Path]:
    tree = _read(tmp_path, spool)
    return tree, toolchain_module.write(toolchain_module.from_tree(TC, tree, spool),
                                        tmp_path / "goproxy")


def test_two_sources_agree_and_name_what_the_zip_omits(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        tree, zip_path = _built(tmp_path, spool)
        omitted = toolchain_module.check_two_sources(TC, tree, zip_path)
    assert omitted == {"api": 1, "doc": 1, "misc": 2, "test": 1}


def test_two_sources_refuse_a_tampered_file(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        tree, zip_path = _built(tmp_path, spool)
        bad = _rewrite(zip_path, tmp_path / "bad.zip", lambda name, data: (
            b"package b // evil\n" if name.endswith("/src/a/b/c.go") else data))
        with pytest.raises(TrustError) as err:
            toolchain_module.check_two_sources(TC, tree, bad)
    good = hashlib.sha256(b"package b\n").hexdigest()
    evil = hashlib.sha256(b"package b // evil\n").hexdigest()
    assert err.value.message == (
        f"checking go1.21.13 linux/amd64 against {PREFIX}: src/a/b/c.go differs\n"
        f"\tarchive:    sha256 {good}\n\tmodule zip: sha256 {evil}\n"
        "the go.dev archive and the toolchain module are two copies of one release and must "
        "agree; do not bundle this toolchain, and report it")
    assert err.value.tampering and err.value.exit_code == 3


def test_two_sources_refuse_a_file_only_the_zip_has(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        tree, zip_path = _built(tmp_path, spool)
        with zipfile.ZipFile(zip_path, "a") as zf:
            zf.writestr(f"{PREFIX}/src/fmt/backdoor.go", b"package fmt\n")
        with pytest.raises(TrustError, match=r"the module zip has golang.org/toolchain@"
                           r"v0.0.1-go1.21.13.linux-amd64/src/fmt/backdoor.go, the archive has "
                           r"no such file; the go.dev archive"):
            toolchain_module.check_two_sources(TC, tree, zip_path)


def test_two_sources_refuse_an_omitted_tree_in_the_zip(tmp_path: Path) -> None:
    # distpack leaves test/ out of the module: a zip carrying it is not distpack's.
    with Spool(tmp_path / "spool") as spool:
        tree, zip_path = _built(tmp_path, spool)
        with zipfile.ZipFile(zip_path, "a") as zf:
            zf.writestr(f"{PREFIX}/test/run.go", b"package main\n")
        with pytest.raises(TrustError, match=r"the module zip has .*/test/run.go, the archive "
                           r"has no such file"):
            toolchain_module.check_two_sources(TC, tree, zip_path)


def test_two_sources_refuse_a_file_missing_from_the_zip(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        tree, zip_path = _built(tmp_path, spool)
        short = _rewrite(zip_path, tmp_path / "short.zip", lambda name, data: (
            None if name.endswith(("/bin/go", "/src/make.bash")) else data))
        with pytest.raises(TrustError) as err:
            toolchain_module.check_two_sources(TC, tree, short)
    assert err.value.message.startswith(
        f"checking go1.21.13 linux/amd64 against {PREFIX}: the archive has bin/go, the module "
        "zip does not (2 files missing); ")


def test_two_sources_refuse_a_zip_that_is_not_one(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        tree, zip_path = _built(tmp_path, spool)
        zip_path.write_bytes(b"PK\x03\x04 truncated")
        with pytest.raises(TrustError, match=r"^checking go1.21.13 linux/amd64 against .*: not "
                           r"a readable zip \(File is not a zip file\); the go.dev archive"):
            toolchain_module.check_two_sources(TC, tree, zip_path)


def test_module_zip_deflate_level_is_applied(tmp_path: Path) -> None:
    files = {**GOROOT, "src/big.go": (b"package big\n" + b"// filler\n" * 20000, 0o644)}
    sizes = {}
    with Spool(tmp_path / "spool") as spool:
        module = toolchain_module.from_tree(TC, _read(tmp_path, spool, files), spool)
        for level in (0, 9):
            zip_path = toolchain_module.write(module, tmp_path / f"goproxy{level}", level)
            sizes[level] = zip_path.stat().st_size
            assert hash_zip(zip_path) == module.zip_hash
    assert sizes[0] > 200_000 > 20_000 > sizes[9]


def test_module_rebuilt_from_the_installed_files_hashes_as_the_bundler_recorded(
        tmp_path: Path) -> None:
    # Carry the GOROOT once: the offline side can rebuild the zip from the extracted files
    # (manifests only, no bundler import) and check it against the h1 the bundle recorded.
    with Spool(tmp_path / "spool") as spool:
        module = toolchain_module.from_tree(TC, _read(tmp_path, spool), spool)
    goroot = tmp_path / "goroot"
    for name, (data, _mode) in GOROOT.items():
        (goroot / name).parent.mkdir(parents=True, exist_ok=True)
        (goroot / name).write_bytes(data)
    files = toolchainzip.from_directory(PREFIX, goroot)
    assert [f.entry for f in files] == [f.entry for f in module.files]
    assert toolchainzip.zip_hash(files) == module.zip_hash
    out = tmp_path / "rebuilt.zip"
    with open(out, "wb") as f:
        toolchainzip.write_zip(f, PREFIX, files, module.when)
    assert hash_zip(out) == module.zip_hash


def test_module_refuses_an_archive_the_checksum_database_does_not_vouch_for(
        tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        module = toolchain_module.from_tree(TC, _read(tmp_path, spool), spool)
    toolchain_module.check_recorded_hash(module, module.zip_hash, "sum.golang.org")
    other = "h1:dY/R5oiAVwVDM0WhYl9Ys7znU3RHeAM/fMlS7MxhIa4="
    with pytest.raises(TrustError) as err:
        toolchain_module.check_recorded_hash(module, other, "sum.golang.org")
    assert err.value.message == (
        f"verifying {PREFIX}: checksum mismatch\n\tbuilt from the go.dev archive: "
        f"{module.zip_hash}\n\tsum.golang.org: {other}\nthe archive and the toolchain module "
        "are two copies of one release and must agree; do not bundle this toolchain, and "
        "compare it file by file with check_two_sources")
    assert err.value.tampering


def test_goproxy_part_carries_the_toolchain_module_beside_fetched_modules(
        tmp_path: Path) -> None:
    from bundler.modules_part import plan_modules

    with Spool(tmp_path / "spool") as spool:
        module = toolchain_module.from_tree(TC, _read(tmp_path, spool), spool)
        zip_path = toolchain_module.write(module, tmp_path / "goproxy")
    part, records = plan_modules([toolchain_module.as_fetched(module, zip_path)])
    vdir = "goproxy/golang.org/toolchain/@v"
    assert [m.path for m in part.members if m.type == "file"] == [
        f"{vdir}/list", f"{vdir}/v0.0.1-go1.21.13.linux-amd64.info",
        f"{vdir}/v0.0.1-go1.21.13.linux-amd64.mod", f"{vdir}/v0.0.1-go1.21.13.linux-amd64.zip"]
    assert [(r.path, r.version, r.zip_hash, r.mod_hash) for r in records] == [
        ("golang.org/toolchain", "v0.0.1-go1.21.13.linux-amd64", module.zip_hash,
         PUBLISHED_GOMOD_HASH)]
    for m in part.members:
        if m.type == "file":
            with part.open(m) as f:
                assert f.read() == (tmp_path / m.path).read_bytes()
