"""Toolchain members: releases interleaved by GOROOT path, hard links to an earlier copy."""

from __future__ import annotations

import io
from pathlib import Path

from bundler.archives import Entry
from bundler.spool import Spool
from bundler.toolchain_part import Tree, toolchains_part


def _tree(spool: Spool, root: str, files: dict) -> Tree:
    tree = Tree(root, {root, root + "/src"})
    for name, data in files.items():
        sha, size = spool.add(io.BytesIO(data))
        tree.entries.append((Entry(name, "file", 0o644, size), sha))
    return tree


def test_identical_files_link_to_the_first_copy_in_packing_order(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        old = _tree(spool, "toolchains/a/go", {"src/z.go": b"same", "src/y.go": b"old"})
        new = _tree(spool, "toolchains/b/go", {"src/a.go": b"same", "src/y.go": b"new"})
        part = toolchains_part([old, new], spool)
        got = [(m.path, m.type, m.target) for m in part.members]
        with part.open(part.members[4]) as f:
            first = f.read()
    assert got == [
        ("toolchains/a/go", "dir", ""), ("toolchains/a/go/src", "dir", ""),
        ("toolchains/b/go", "dir", ""), ("toolchains/b/go/src", "dir", ""),
        # src/a.go of the second release sorts first: it is the stored copy.
        ("toolchains/b/go/src/a.go", "file", ""),
        ("toolchains/a/go/src/y.go", "file", ""), ("toolchains/b/go/src/y.go", "file", ""),
        ("toolchains/a/go/src/z.go", "hardlink", "toolchains/b/go/src/a.go"),
    ]
    assert first == b"same"
