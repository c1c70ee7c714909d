"""go.sum pins and go.mod require directives, as the bundler reads them."""

from __future__ import annotations

import pytest

from bundler.gosum import EMPTY_GOMOD_HASH, Require, parse_gomod, parse_gosum
from manifests.errors import NotReadyError

H = "h1:" + "A" * 43 + "="


def test_gosum_lines_become_zip_and_mod_pins():
    data = (f"example.com/Upper/Mod v1.0.0-Beta {H}\n"
            f"example.com/Upper/Mod v1.0.0-Beta/go.mod {H}\n\n"
            f"example.com/old v2.0.0+incompatible/go.mod {H}\n").encode()
    lines = parse_gosum(data, "p/go.sum").lines
    assert [(s.path, s.version, s.kind, s.where) for s in lines] == [
        ("example.com/Upper/Mod", "v1.0.0-Beta", "zip", "p/go.sum:1"),
        ("example.com/Upper/Mod", "v1.0.0-Beta", "mod", "p/go.sum:2"),
        ("example.com/old", "v2.0.0+incompatible", "mod", "p/go.sum:4"),
    ]


def test_malformed_gosum_reports_every_bad_line_with_file_and_line():
    data = (f"example.com/a v1.0.0 {H} extra\n"
            f"example.com/b v1.0.0 {H}\n"
            f"../evil v1.0.0 {H}\n"
            f"example.com/c latest {H}\n"
            f"example.com/d v1.0.0 h1:short\n").encode()
    with pytest.raises(NotReadyError) as e:
        parse_gosum(data, "proj/go.sum")
    assert str(e.value) == (
        "malformed go.sum:\n"
        "proj/go.sum:1: wrong number of fields 4\n"
        'proj/go.sum:3: malformed module path "../evil": invalid path element ".."\n'
        "proj/go.sum:4: example.com/c: invalid version 'latest'\n"
        "proj/go.sum:5: example.com/d@v1.0.0: hash 'h1:short' is not an h1: hash")


def test_gosum_drops_the_old_empty_gomod_bug_line_as_go_does():
    data = f"example.com/a v1.0.0/go.mod {EMPTY_GOMOD_HASH}\n".encode()
    assert parse_gosum(data).lines == []


def test_gomod_requires_in_blocks_single_lines_and_indirect_comments():
    gomod = b"""// a comment
module "example.com/main" // trailing

go 1.21

require example.com/one v1.0.0
require (
	example.com/two v2.0.0+incompatible // indirect
	"example.com/three" v0.0.0-20240101000000-abcdefabcdef // indirect; why
	example.com/four/v2 v2.1.0 // not indirect
)
replace example.com/one => ../one
exclude (
	example.com/two v1.0.0
)
"""
    mod = parse_gomod(gomod)
    assert mod.module == "example.com/main"
    assert mod.requires == [
        Require("example.com/one", "v1.0.0", False),
        Require("example.com/two", "v2.0.0+incompatible", True),
        Require("example.com/three", "v0.0.0-20240101000000-abcdefabcdef", True),
        Require("example.com/four/v2", "v2.1.0", False),
    ]


def test_gomod_with_unterminated_block_is_refused():
    with pytest.raises(NotReadyError, match="x/go.mod: unterminated require block"):
        parse_gomod(b"module m.com/x\nrequire (\n\tm.com/y v1.0.0\n", "x/go.mod")


def test_gomod_with_broken_require_names_the_line():
    with pytest.raises(NotReadyError, match="x/go.mod:2: usage: require module/path v1.2.3"):
        parse_gomod(b"module m.com/x\nrequire m.com/y\n", "x/go.mod")
