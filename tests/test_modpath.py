"""Module path rules, case-escaping and semver order, checked against x/mod and the real `go`."""

from __future__ import annotations

import pytest

from manifests.modpath import (
    ModulePathError,
    canonical_version,
    check_module_path,
    check_module_version,
    compare,
    escape_path,
    escape_version,
    is_pseudo_version,
    max_version,
    sort_versions,
    unescape_path,
    unescape_version,
)


def test_escaping_matches_the_cache_paths_real_go_wrote(real):
    download = real.modcache / "cache" / "download"
    for mod in real.mods:
        if mod.path == "example.com/dep" and mod.version == "v1.0.0":
            continue  # pruned from the graph: go never downloads it
        zip_path = download / escape_path(mod.path) / "@v" / f"{escape_version(mod.version)}.zip"
        assert zip_path.is_file(), zip_path
        extracted = real.modcache / f"{escape_path(mod.path)}@{escape_version(mod.version)}"
        assert extracted.is_dir(), extracted
    assert (download / "example.com" / "!upper" / "!mod" / "@v" / "v1.0.0-!beta.zip").is_file()


@pytest.mark.parametrize("path,escaped", [
    ("example.com/Upper/Mod", "example.com/!upper/!mod"),
    ("github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"),
    ("example.com/lib/v2", "example.com/lib/v2"),
])
def test_escape_path_round_trips(path, escaped):
    assert escape_path(path) == escaped
    assert unescape_path(escaped) == path


def test_escape_version_round_trips_upper_case_prereleases():
    assert escape_version("v1.0.0-RC1") == "v1.0.0-!r!c1"
    assert unescape_version("v1.0.0-!r!c1") == "v1.0.0-RC1"


@pytest.mark.parametrize("escaped", [
    "example.com/Upper",  # a raw capital would give one module two spellings
    "example.com/!Upper",  # "!" must be followed by a-z
    "example.com/upper!",  # dangling "!"
    "example.com/ünicode",
])
def test_unescape_path_refuses_malformed_escapes(escaped):
    with pytest.raises(ModulePathError) as e:
        unescape_path(escaped)
    assert str(e.value) == f'invalid escaped module path "{escaped}"'


def test_unescape_path_refuses_escapes_of_invalid_paths():
    with pytest.raises(ModulePathError) as e:
        unescape_path("example.com/../etc")
    assert str(e.value) == ('invalid escaped module path "example.com/../etc": malformed module '
                            'path "example.com/../etc": invalid path element ".."')


def test_escape_refuses_bang_and_non_ascii():
    with pytest.raises(ModulePathError, match=r'malformed module path "example.com/a!b": '
                                              r"invalid char '!'"):
        escape_path("example.com/a!b")
    with pytest.raises(ModulePathError, match=r'version "v1.0.0-!x" invalid: disallowed version'):
        escape_version("v1.0.0-!x")
    with pytest.raises(ModulePathError, match="disallowed version string"):
        escape_version("v1.0.0-é")
    with pytest.raises(ModulePathError, match=r'invalid escaped version "v1.0.0-!X"'):
        unescape_version("v1.0.0-!X")


@pytest.mark.parametrize("path,reason", [
    ("../evil", 'invalid path element ".."'),
    ("example.com/../x", 'invalid path element ".."'),
    ("example.com//x", "double slash"),
    ("example.com/x/", "trailing slash"),
    ("/example.com", "empty path element"),
    ("-x.com/y", "leading dash"),
    ("example/x", "missing dot in first path element"),
    ("Example.com/x", "invalid char 'E' in first path element"),
    ("example.com/x/v1", "invalid version"),
    ("example.com/x/v0", "invalid version"),
    ("example.com/.hidden", "leading dot in path element"),
    ("example.com/x.", "trailing dot in path element"),
    ("example.com/con", '"con" disallowed as path element component on Windows'),
    ("example.com/ab~1", "trailing tilde and digits in path element"),
    ("example.com/a\\b", "invalid char '\\\\'"),
    ("", "empty string"),
])
def test_check_module_path_refuses_traversal_and_junk(path, reason):
    with pytest.raises(ModulePathError) as e:
        check_module_path(path)
    assert str(e.value).endswith(": " + reason)
    assert str(e.value).startswith("malformed module path ")


@pytest.mark.parametrize("path", ["example.com/Upper/Mod", "example.com/lib/v2", "gopkg.in/yaml.v3",
                                  "golang.org/x/text", "example.com/a_b~c-d.e"])
def test_check_module_path_accepts_real_paths(path):
    check_module_path(path)


def test_semver_order_follows_the_spec_including_prereleases():
    ordered = ["v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta",
               "v1.0.0-beta.2", "v1.0.0-beta.11", "v1.0.0-rc.1", "v1.0.0", "v1.0.1", "v1.10.0",
               "v2.0.0", "v2.0.0+incompatible", "v10.0.0"]
    assert sort_versions(reversed(ordered)) == ordered
    assert sort_versions(["v1.0.0", "bogus", "v0.1.0"]) == ["bogus", "v0.1.0", "v1.0.0"]
    assert compare("v2.0.0+incompatible", "v2.0.0") == 0  # build suffixes do not order
    assert compare("v1.2", "v1.2.0") == 0
    assert compare("bad", "v0.0.0") == -1


def test_max_version_is_what_minimal_version_selection_picks():
    assert max_version(["v1.2.0", "v1.10.0", "v1.9.9", "v1.10.0-rc.1"]) == "v1.10.0"


def test_canonical_version_keeps_incompatible_and_rejects_short_prereleases():
    assert canonical_version("v1.2") == "v1.2.0"
    assert canonical_version("v2.0.0+incompatible") == "v2.0.0+incompatible"
    assert canonical_version("v1.0.0+build") == "v1.0.0"
    assert canonical_version("v1.2-pre") == ""
    assert canonical_version("v01.0.0") == ""
    assert canonical_version("v1.0.0-01") == ""


@pytest.mark.parametrize("v,pseudo", [
    ("v0.0.0-20240101000000-abcdefabcdef", True),
    ("v1.2.4-0.20240101000000-abcdefabcdef", True),
    ("v1.2.3-pre.0.20240101000000-abcdefabcdef", True),
    ("v1.0.0", False),
    ("v1.0.0-Beta", False),
    ("v0.0.0-2024010100000-abcdef", False),
])
def test_is_pseudo_version(v, pseudo):
    assert is_pseudo_version(v) is pseudo


def test_check_module_version_matches_major_suffix():
    check_module_version("example.com/lib/v2", "v2.1.0")
    check_module_version("example.com/old", "v2.0.0+incompatible")
    with pytest.raises(ModulePathError, match="should be v2, not v1"):
        check_module_version("example.com/lib/v2", "v1.0.0")
    with pytest.raises(ModulePathError, match="should be v0 or v1, not v2"):
        check_module_version("example.com/x", "v2.0.0")
    with pytest.raises(ModulePathError, match="not a canonical semantic version"):
        check_module_version("example.com/x", "v1.2")
