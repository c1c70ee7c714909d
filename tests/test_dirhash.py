"""h1: hashes of zips and go.mod files, checked against what the real `go` wrote to go.sum."""

from __future__ import annotations

import io
import zipfile

import pytest

from bundler.gosum import parse_gosum
from manifests.dirhash import hash1, hash_gomod, hash_zip
from manifests.modpath import escape_path, escape_version
from tests.support.goproxy_server import build_zip


def _vdir(real, path):
    return real.proxy_dir / escape_path(path) / "@v"


def test_zip_and_gomod_hashes_equal_the_go_sum_real_go_wrote(real):
    lines = parse_gosum(real.gosum.read_bytes()).lines
    assert {ln.path for ln in lines} >= {"example.com/Upper/Mod", "example.com/old",
                                         "example.com/pseudo", "example.com/lib/v2"}
    for ln in lines:
        base = _vdir(real, ln.path) / escape_version(ln.version)
        if ln.kind == "zip":
            assert hash_zip(f"{base}.zip") == ln.hash, ln
        else:
            assert hash_gomod(base.with_name(base.name + ".mod").read_bytes()) == ln.hash, ln


def test_zip_hash_equals_the_ziphash_files_in_real_gos_module_cache(real):
    ziphashes = sorted((real.modcache / "cache" / "download").rglob("*.ziphash"))
    assert len(ziphashes) == 6
    for zh in ziphashes:
        with open(zh.with_suffix(".zip"), "rb") as f:  # a file object works as well as a path
            assert hash_zip(f) == zh.read_text().strip()


def test_empty_gomod_hash_is_gos_constant():
    assert hash_gomod(b"") == "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="


def test_zip_hash_ignores_order_compression_and_timestamps():
    entries = [("m@v1.0.0/b.go", b"package b\n"), ("m@v1.0.0/a.go", b"package a\n")]
    first = build_zip("", entries)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in reversed(entries):
            zf.writestr(zipfile.ZipInfo(name, (2001, 2, 3, 4, 5, 6)), data)
    assert hash_zip(io.BytesIO(first)) == hash_zip(io.BytesIO(buf.getvalue()))
    assert hash_zip(io.BytesIO(first)) == hash1(entries)


def test_zip_hash_changes_with_one_flipped_byte():
    entries = [("m@v1.0.0/a.go", b"package a\n")]
    assert hash1(entries) != hash1([("m@v1.0.0/a.go", b"package b\n")])


def test_hash1_accepts_openers_and_bytes_alike():
    assert hash1([("go.mod", lambda: io.BytesIO(b"module x\n"))]) == hash_gomod(b"module x\n")


def test_hash1_refuses_newlines_in_names():
    with pytest.raises(ValueError, match="dirhash: filenames with newlines are not supported"):
        hash1([("a\nb", b"")])
