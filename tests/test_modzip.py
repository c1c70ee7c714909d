"""Module zip validation (x/mod's rules) and extraction into a read-only module cache tree."""

from __future__ import annotations

import dataclasses
import stat
import zipfile

import pytest

from manifests.dirhash import hash_zip
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS
from manifests.modzip import check_module_zip, extract_module_zip
from tests.support.goproxy_server import build_zip, fixture_modules

M, V = "example.com/m", "v1.0.0"
P = f"{M}@{V}/"


def _zip(tmp_path, entries, name="m.zip"):
    path = tmp_path / name
    path.write_bytes(build_zip("", entries))
    return path


def test_every_fixture_zip_is_valid(tmp_path):
    for mod in fixture_modules():
        path = tmp_path / "z.zip"
        path.write_bytes(mod.zip_bytes())
        assert check_module_zip(path, mod.path, mod.version) == [], mod.key


def test_zip_with_dotdot_entry_is_refused(tmp_path):
    path = _zip(tmp_path, [(P + "go.mod", b"module example.com/m\n"), (P + "../evil.go", b"x")])
    assert check_module_zip(path, M, V) == [
        f'{P}../evil.go: malformed file path "../evil.go": invalid path element ".."']


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_every_problem_in_a_hostile_zip_is_reported(tmp_path):
    entries = [
        ("other.com/x@v1.0.0/a.go", b""),
        (P + "a/../../b.go", b""),
        (P + "/etc/passwd", b""),
        (P + "win\\path.go", b""),
        (P + "dup.go", b""),
        (P + "dup.go", b""),
        (P + "Case.go", b""),
        (P + "case.go", b""),
        (P + "sub/go.mod", b""),
        (P + "GO.MOD", b""),
        (P + "file", b""),
        (P + "file/inner.go", b""),
    ]
    problems = check_module_zip(_zip(tmp_path, entries), M, V)
    assert problems == [
        f'other.com/x@v1.0.0/a.go: path does not have prefix "{P}"',
        f"{P}a/../../b.go: file path is not clean",
        f'{P}/etc/passwd: malformed file path "/etc/passwd": empty path element',
        f"{P}win\\path.go: malformed file path \"win\\\\path.go\": invalid char '\\\\'",
        f'{P}dup.go: multiple entries for file "dup.go"',
        f'{P}case.go: case-insensitive file name collision: "Case.go" and "case.go"',
        f"{P}sub/go.mod: go.mod file not in module root directory",
        f"{P}GO.MOD: go.mod files must have lowercase names",
        f'{P}file/inner.go: entry "file" is both a file and a directory',
    ]


def test_symlink_entries_are_refused(tmp_path):
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(P + "link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/shadow")
    assert check_module_zip(path, M, V) == [f"{P}link: file is a symbolic link"]


def test_size_limits_come_from_the_limits_object(tmp_path):
    limits = dataclasses.replace(DEFAULT_LIMITS, module_unzipped_bytes=10, module_gomod_bytes=4,
                                 module_license_bytes=4)
    path = _zip(tmp_path, [(P + "go.mod", b"module x\n"), (P + "LICENSE", b"12345"),
                           (P + "big.go", b"x" * 20)])
    assert check_module_zip(path, M, V, limits) == [
        f"{P}go.mod: go.mod file too large (max size is 4 bytes)",
        "total uncompressed size of module contents too large (max size is 10 bytes)",
        f"{P}LICENSE: LICENSE file too large (max size is 4 bytes)",
    ]
    tiny = dataclasses.replace(DEFAULT_LIMITS, module_zip_bytes=10)
    size = path.stat().st_size
    assert check_module_zip(path, M, V, tiny) == [
        f"module zip file is too large ({size} bytes; limit is 10 bytes)"]


def test_bad_module_version_or_garbage_file_is_reported(tmp_path):
    path = _zip(tmp_path, [(P + "a.go", b"")])
    assert check_module_zip(path, M, "v1.0") == [
        'example.com/m@v1.0: version "v1.0" invalid: not a canonical semantic version']
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    assert check_module_zip(junk, M, V) == ["not a valid zip file: File is not a zip file"]


def test_extract_makes_files_0444_and_dirs_read_only(tmp_path):
    path = _zip(tmp_path, [(P + "go.mod", b"module example.com/m\n"), (P + "pkg/a/a.go", b"x")])
    dest = tmp_path / "cache" / "example.com" / "m@v1.0.0"
    extract_module_zip(path, M, V, dest)
    assert (dest / "pkg" / "a" / "a.go").read_bytes() == b"x"
    assert stat.S_IMODE((dest / "go.mod").stat().st_mode) == 0o444
    for d in (dest, dest / "pkg", dest / "pkg" / "a"):
        assert stat.S_IMODE(d.stat().st_mode) & 0o222 == 0, d


def test_extract_with_modcacherw_leaves_dirs_writable(tmp_path):
    path = _zip(tmp_path, [(P + "pkg/a.go", b"x")])
    dest = tmp_path / "out"
    extract_module_zip(path, M, V, dest, read_only=False)
    assert stat.S_IMODE((dest / "pkg").stat().st_mode) & 0o200
    assert stat.S_IMODE((dest / "pkg" / "a.go").stat().st_mode) == 0o444


def test_extract_refuses_a_traversal_zip_and_writes_nothing(tmp_path):
    path = _zip(tmp_path, [(P + "ok.go", b"x"), (P + "../../escape.go", b"x")])
    dest = tmp_path / "out" / "m"
    with pytest.raises(TrustError) as e:
        extract_module_zip(path, M, V, dest)
    assert str(e.value) == (
        f"unzip {path}: module zip for {M}@{V} is not valid:\n\t"
        f'{P}../../escape.go: malformed file path "../../escape.go": invalid path element ".."')
    assert not dest.exists()
    assert not (tmp_path / "escape.go").exists()


def test_extract_refuses_a_non_empty_target(tmp_path):
    path = _zip(tmp_path, [(P + "a.go", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale").write_text("x")
    with pytest.raises(NotReadyError, match=f"target directory {dest} exists and is not empty"):
        extract_module_zip(path, M, V, dest)


def test_extract_returns_the_h1_go_computes_for_the_zip(tmp_path):
    path = _zip(tmp_path, [(P + "go.mod", b"module example.com/m\n"), (P + "pkg/", b""),
                           (P + "pkg/a.go", b"package a\n")])
    got = extract_module_zip(path, M, V, tmp_path / "out")
    assert got == hash_zip(str(path))


def test_extract_refuses_a_zip_whose_h1_is_not_the_signed_one(tmp_path):
    path = _zip(tmp_path, [(P + "a.go", b"package a // altered\n")])
    signed = hash_zip(str(_zip(tmp_path, [(P + "a.go", b"package a\n")], "signed.zip")))
    with pytest.raises(TrustError) as e:
        extract_module_zip(path, M, V, tmp_path / "out", want_h1=signed)
    assert str(e.value).startswith(f"verifying {M}@{V}: checksum mismatch\n\tzip:      h1:")
    assert f"\tmanifest: {signed}\n" in str(e.value)
    assert e.value.tampering
