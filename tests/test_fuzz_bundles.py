"""Fuzzing the bundle reader and the manifest parser: mutations of a VALID signed bundle (bytes
of the compressed stream, bytes and header fields of the decompressed tar, the manifest's JSON
re-signed with the trusted key) must each end in a verified install or a clean refusal (a
RescueError with its exit code, never a traceback), and nothing may change outside the prefix.

CI runs a bounded, derandomized run. A long run (random, as many examples as asked):

    RESCUE_FUZZ_EXAMPLES=20000 nice -n 19 .venv/bin/python -m pytest tests/test_fuzz_bundles.py
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import stat
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from installer import install as installer
from keys import allowed_signers
from manifests.errors import RescueError
from manifests.model import parse_manifest
from tests.support import bundles, corpus, craft, tamper

GOROOT = "toolchains/go1.21.13.linux-amd64/go"
MODULE = "goproxy/example.com/m/@v"
_LONG = os.environ.get("RESCUE_FUZZ_EXAMPLES")
settings.register_profile(
    "rescue-fuzz-ci", max_examples=150, derandomize=True, deadline=None, database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile(
    "rescue-fuzz-long", parent=settings.get_profile("rescue-fuzz-ci"),
    max_examples=int(_LONG or 0) or 20000, derandomize=False)
FUZZ = settings.get_profile("rescue-fuzz-long" if _LONG else "rescue-fuzz-ci")
# The manifest parser alone is fast: many more examples for the same time.
PARSER_FUZZ = settings(FUZZ, max_examples=FUZZ.max_examples * (1 if _LONG else 5))
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def base_craft(sequence: int = 2) -> craft.Craft:
    """A bundle with every member type and both trees: a GOROOT and a module proxy."""
    c = craft.Craft(name="fuzz", sequence=sequence)
    c.toolchain()
    c.dir(f"{GOROOT}/src").file(f"{GOROOT}/src/a.go", b"package a\n")
    c.hardlink(f"{GOROOT}/src/b.go", f"{GOROOT}/src/a.go")
    c.symlink(f"{GOROOT}/src/c.go", "a.go")
    c.symlink(f"{GOROOT}/lib", "src")
    for d in ("goproxy", "goproxy/example.com", "goproxy/example.com/m", MODULE):
        c.dir(d)
    c.file(f"{MODULE}/list", b"v1.0.0\n")
    c.file(f"{MODULE}/v1.0.0.mod", b"module example.com/m\n")
    c.file(f"{MODULE}/v1.0.0.info", b'{"Version":"v1.0.0"}\n')
    return c


class Bench:
    """One valid bundle's parts, a world to install in, and the check that a run left the
    world alone: run many times per test, so every example starts from the same state."""

    def __init__(self, base: Path, signing: bundles.Signing, installed: Path) -> None:
        self.base = base
        self.signing = signing
        self.signers = allowed_signers.load(signing.signers)
        self.installed = installed
        self.world = corpus.World(base / "world")
        self.craft = base_craft()
        self.doc = self.craft.doc()
        self.manifest = tamper.canonical(self.doc)
        self.items = self.craft.items()
        self.tar = self._tar_bytes(self.manifest, self.doc, self.items)
        self.compressed = zstandard.ZstdCompressor(level=3).compress(self.tar)
        self.headers = list(self._header_offsets())
        self.outside = corpus.tree(self.world.base)
        self.n = 0

    def _tar_bytes(self, manifest: bytes, doc: Dict[str, Any],
                   items: List[tamper.Item]) -> bytes:
        head = corpus.head_items(manifest, tamper.resign(manifest, self.signing.key),
                                 tamper.sums(doc))
        return corpus.items_bytes(head + items) + corpus.END

    def _header_offsets(self) -> Iterator[int]:
        at = 0
        while at + 512 <= len(self.tar) and self.tar[at:at + 512].strip(b"\0"):
            yield at
            size = int(self.tar[at + 124:at + 135].strip(b"\0 ") or b"0", 8)
            at += 512 + -(-size // 512) * 512

    def signed_tar(self, doc: Dict[str, Any], manifest: bytes,
                   items: Optional[List[tamper.Item]] = None) -> bytes:
        """`manifest` signed by the trusted key, SHA256SUMS of `doc` (of the valid bundle's
        when `doc` has no sums to give), then `items` (default: the valid bundle's)."""
        try:
            tamper.sums(doc)
        except (KeyError, TypeError, ValueError):
            doc = self.doc
        return self._tar_bytes(manifest, doc, self.items if items is None else items)

    def install(self, compressed: bytes, existing: bool) -> None:
        """Install the bytes; a verified install or a clean refusal, nothing else."""
        self.n += 1
        bundle = self.world.bundles / f"b{self.n}.tar.zst"
        bundle.write_bytes(compressed)
        run = self.base / f"run{self.n}"
        run.mkdir()
        prefix = run / "prefix"
        if existing:
            shutil.copytree(self.installed, prefix, symlinks=True)
        before = corpus.tree(prefix)
        try:
            installer.install(bundle, prefix, self.signers, "fuzz", now=NOW,
                              lock_timeout=5)
        except RescueError as exc:
            _note(f"exit {exc.exit_code}: {exc.operation} ({_gist(exc.message)})")
            assert exc.exit_code in (2, 3, 4), f"exit {exc.exit_code}: {exc}"
            assert corpus.tree(prefix) == before, f"refused ({exc}) but the prefix changed"
        else:
            _note("installed")
            assert_confined(prefix)
        finally:
            bundle.unlink()
            corpus.remove(run)
        assert corpus.tree(self.world.base) == self.outside, "something changed beside the prefix"


def _note(outcome: str) -> None:
    """Count outcomes (`--hypothesis-show-statistics`): how deep the mutations reach."""
    with contextlib.suppress(InvalidArgument):  # outside a fuzz target
        event(outcome)


def _gist(message: str) -> str:
    """The kind of refusal, without the paths and numbers that make every message unique."""
    for gist in ("sha256 mismatch", "size mismatch", "type mismatch", "mode mismatch",
                 "link target mismatch", "does not list it", "not in the bundle",
                 "appears twice", "truncated or damaged", "not a rescue bundle",
                 "not in canonical form", "does not match the manifest", "record, which",
                 "expected member", "SHA256SUMS", "not valid JSON", "expired",
                 "already installed", "arrives before", "not written yet", "parsing SSH"):
        if gist in message:
            return gist
    return message.split("\n", 1)[0][-60:]


def assert_confined(prefix: Path) -> None:
    """What an accepted bundle installed: plain files, dirs and symlinks that stay inside, no
    privileged or world-writable modes."""
    real = os.path.realpath(prefix)
    for dirpath, dirnames, filenames in os.walk(prefix):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            kind = stat.S_IFMT(st_.st_mode)
            assert kind in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK), f"{p}: type {kind:o}"
            if kind != stat.S_IFLNK:
                assert not st_.st_mode & 0o7002, f"{p}: mode {st_.st_mode:o}"
            else:
                target = os.path.realpath(p)
                assert target == real or target.startswith(real + os.sep), f"{p} -> {target}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing) -> Path:
    base = tmp_path_factory.mktemp("fuzz-installed")
    c = base_craft(sequence=1)
    prefix = base / "prefix"
    installer.install(c.write(base / "first.tar.zst", signing.key), prefix,
                      allowed_signers.load(signing.signers), "fuzz", now=NOW)
    return prefix


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing,
          installed: Path) -> Bench:
    return Bench(tmp_path_factory.mktemp("fuzz"), signing, installed)


# --- mutations ----------------------------------------------------------------------------

@st.composite
def byte_edits(draw: st.DrawFn, data: bytes, max_edits: int = 4) -> bytes:
    """Flips, overwrites, insertions, deletions and a truncation anywhere in `data`."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if kind == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            out[at] = draw(st.sampled_from([0x00, 0xff, 0x7f, 0x80, 0x30, 0x37]))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 64))]
        else:
            del out[at:]
    return bytes(out)


# Tar header fields (offset, width) and values an attacker would put in them.
_FIELDS = {"name": (0, 100), "mode": (100, 8), "size": (124, 12), "type": (156, 1),
           "linkname": (157, 100), "magic": (257, 8), "prefix": (345, 155)}
_FIELD_VALUES = {
    "name": [b"../../../canary/file", b"/etc/passwd", b"manifest.json", b"\xff\xfe",
             GOROOT.encode() + b"/bin/GO", GOROOT.encode() + b"/./bin/go", b"", b"a\nb"],
    "mode": [b"0004755\0", b"0000777\0", b"0007777\0", b"9999999\0", b"\x80" + b"\xff" * 7],
    "size": [b"00000000000\0", b"77777777777\0", b"\x80" + b"\x00" * 3 + b"\xff" * 8,
             b"00000001000\0", b"-1\0"],
    "type": [b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"g", b"x", b"L", b"K", b"S", b"V",
             b"\0", b"Z"],
    "linkname": [b"../../../../canary", b"/etc/shadow", GOROOT.encode() + b"/bin/go",
                 b"manifest.json"],
    "magic": [b"ustar  \0", b"\0" * 8, b"ustar\x0001"],
    "prefix": [b"..", b"/tmp", GOROOT.encode()],
}


@st.composite
def tar_field_edits(draw: st.DrawFn, bench: Bench) -> bytes:
    """Header fields of the decompressed tar set to hostile values, checksums fixed or not."""
    out = bytearray(bench.tar)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(bench.headers))
        field = draw(st.sampled_from(sorted(_FIELDS)))
        offset, width = _FIELDS[field]
        value = draw(st.sampled_from(_FIELD_VALUES[field]) | st.binary(max_size=width))
        out[at + offset:at + offset + width] = value[:width].ljust(width, b"\0")
        if draw(st.booleans()):  # a valid checksum gets the record past tarfile's first check
            head = out[at:at + 512]
            head[148:156] = b" " * 8
            out[at + 148:at + 156] = f"{sum(head):06o}\0 ".encode()
    return bytes(out)


_PATHS = [f"{GOROOT}/../../../canary", "/tmp/x", f"{GOROOT}/a/./../..", "", ".",
          f"{GOROOT}/bin/go\x00", f"{GOROOT}/x\ny", f"{GOROOT}/caf\u00e9", f"{GOROOT}/cafe\u0301",
          f"{GOROOT}/BIN", f"{GOROOT}/src/A.GO", "manifest.json", "toolchains", "goproxy",
          f"{MODULE}/v1.0.0.zip", f"{MODULE}/../../../x", "goproxy/x.py", f"{GOROOT}/\u202e",
          f"{GOROOT}/" + "d/" * 130 + "f", f"{GOROOT}/" + "x" * 5000, f"{GOROOT}/lib/evil",
          f"{GOROOT}/src/c.go/x", f"{GOROOT}/go.env", "toolchains/go1.99.0.linux-amd64/go/x"]
_TARGETS = ["../../../../canary", "/etc/passwd", "", ".", "..", "a.go", f"{GOROOT}/bin/go",
            f"{GOROOT}/src/c.go", f"{GOROOT}/lib", "../lib/../src/a.go", "c.go/../../..",
            f"{GOROOT}/src/a.go", "../" * 40, "\x00", "lib/a.go"]
_INTS = [-1, 0, 1, 0o777, 0o1777, 0o2755, 0o4755, 0o7777, 0o666, 2 ** 31, 2 ** 32, 2 ** 63,
         2 ** 64, 10 ** 12, 10 ** 30]
_ODD = [None, True, False, 1.5, float("nan"), "1", [], {}, [1], {"a": 1}]
_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


def _value(draw: st.DrawFn, key: str) -> Any:
    pools = {"path": _PATHS, "target": _TARGETS, "mode": _INTS, "size": _INTS,
             "type": ["file", "dir", "symlink", "hardlink", "fifo", "chardev", "socket", ""],
             "sha256": ["", "0" * 64, "A" * 64, "g" * 64, "0" * 63],
             "sequence": _INTS, "format": [0, 1, 2], "version": [
                 "go1.21.13", "go1.21.13/../..", "go1.22.0", "go1.²", "", "go1.21rc2"],
             "os": ["linux", "windows", "../x", ""], "arch": ["amd64", "arm64", "x/../y"],
             "source": ["godl", "pypi", "../x"], "url": ["https://go.dev/dl/x", "a b", ""],
             "builder": ["rescue", "\x1b[2J"], "created": ["2026-01-01T00:00:00Z", "x"],
             "expires": ["2020-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "soon",
                         "2099-01-01T00:00:00+01:00"],
             "name": ["fuzz", "../x", "a" * 65, "x\ny"], "channel": ["stable", "", "../c"],
             "targets": [["linux-amd64"], [], ["../x"], [1], "linux-amd64"]}
    pool = pools.get(key, [])
    pick = draw(st.integers(0, 9))
    if pool and pick < 7:  # mostly values that pass the type checks and probe the rules
        return draw(st.sampled_from(pool))
    return draw(st.sampled_from(_ODD) if pick < 8 else _TEXT if pick < 9 else st.integers())


@st.composite
def doc_edits(draw: st.DrawFn, doc: Dict[str, Any]) -> Dict[str, Any]:
    """Structured edits of the manifest: fields set to hostile values, members added, dropped,
    duplicated or reordered, toolchains and modules changed."""
    doc = copy.deepcopy(doc)
    members = doc["members"]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["member", "member", "member", "add", "drop", "dup", "swap",
                                   "top", "toolchain", "module"]))
        i = draw(st.integers(0, len(members) - 1)) if members else 0
        if op == "member" and members:
            key = draw(st.sampled_from(["path", "type", "mode", "size", "sha256", "target"]))
            members[i][key] = _value(draw, key)
        elif op == "add":
            members.insert(draw(st.integers(0, len(members))), {
                k: _value(draw, k) for k in ("path", "type", "mode", "size", "sha256", "target")})
        elif op == "drop" and members:
            del members[i]
        elif op == "dup" and members:
            members.insert(draw(st.integers(0, len(members))), copy.deepcopy(members[i]))
        elif op == "swap" and members:
            j = draw(st.integers(0, len(members) - 1))
            members[i], members[j] = members[j], members[i]
        elif op == "top":
            key = draw(st.sampled_from(["format", "sequence", "name", "channel", "expires",
                                        "created", "targets", "builder", "extra"]))
            doc[key] = _value(draw, key)
        elif op == "toolchain":
            key = draw(st.sampled_from(["version", "os", "arch", "source", "url", "sha256",
                                        "size"]))
            doc["toolchains"][0][key] = _value(draw, key)
        else:
            doc["modules"] = draw(st.sampled_from([
                [{"path": "example.com/m", "version": "v1.0.0", "zip_hash": "", "mod_hash": ""}],
                [{"path": "../x", "version": "v1\n", "zip_hash": "h1:x", "mod_hash": ""}],
                [{"path": 1}], "modules"]))
    return doc


def _stream_for(bench: Bench, doc: Dict[str, Any]) -> List[tamper.Item]:
    """Tar members made to agree with an edited manifest where they can (so edits reach the
    stager, not only the parser): a member's bytes from the valid bundle, or filler."""
    items: List[tamper.Item] = []
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE}
    for m in doc["members"] if isinstance(doc.get("members"), list) else []:
        if not isinstance(m, dict) or not isinstance(m.get("path"), str) or not m["path"]:
            continue
        try:
            info = tarfile.TarInfo(m["path"])
            kind = m.get("type")
            info.type = kinds.get(kind, tarfile.REGTYPE) if isinstance(kind, str) else \
                tarfile.REGTYPE
            mode = m.get("mode")
            info.mode = mode if isinstance(mode, int) and 0 <= mode < 8 ** 7 else 0o644
            target = m.get("target")
            info.linkname = target if isinstance(target, str) else ""
            data = None
            if info.type == tarfile.REGTYPE:
                data = bench.craft.contents.get(m["path"], b"filler\n")
            info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        except (ValueError, UnicodeError):
            continue
        items.append((info, data))
    return items


def _encode(draw: st.DrawFn, doc: Dict[str, Any]) -> bytes:
    """Canonical JSON as the builder writes it, or now and then another spelling."""
    how = draw(st.sampled_from(["canonical"] * 6 + ["indented", "unsorted", "unicode"]))
    try:
        if how == "canonical":
            return tamper.canonical(doc)
        if how == "indented":
            return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        if how == "unsorted":
            return json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
    except (ValueError, TypeError):
        return tamper.canonical({"not": "encodable"})


# --- the targets --------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), existing=st.booleans())
def test_fuzzed_compressed_stream_installs_or_is_refused_cleanly(
        bench: Bench, data: st.DataObject, existing: bool) -> None:
    bench.install(data.draw(byte_edits(bench.compressed)), existing)


@FUZZ
@given(data=st.data(), existing=st.booleans(), fields=st.booleans())
def test_fuzzed_decompressed_tar_installs_or_is_refused_cleanly(
        bench: Bench, data: st.DataObject, existing: bool, fields: bool) -> None:
    tar = data.draw(tar_field_edits(bench) if fields else byte_edits(bench.tar))
    bench.install(zstandard.ZstdCompressor(level=1).compress(tar), existing)


@FUZZ
@given(data=st.data(), existing=st.booleans(), agree=st.booleans())
def test_fuzzed_manifest_signed_by_the_trusted_key_installs_or_is_refused_cleanly(
        bench: Bench, data: st.DataObject, existing: bool, agree: bool) -> None:
    doc = data.draw(doc_edits(bench.doc))
    manifest = _encode(data.draw, doc)
    tar = bench.signed_tar(doc, manifest, _stream_for(bench, doc) if agree else None)
    bench.install(zstandard.ZstdCompressor(level=1).compress(tar), existing)


@PARSER_FUZZ
@given(data=st.data())
def test_fuzzed_manifest_bytes_parse_or_are_refused_cleanly(bench: Bench,
                                                            data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        text = data.draw(byte_edits(bench.manifest, max_edits=6))
    else:
        text = _encode(data.draw, data.draw(doc_edits(bench.doc)))
    try:
        parse_manifest(text)
    except RescueError as exc:
        event(f"refused: {_gist(exc.message)}")
        assert exc.exit_code == 3, exc
    else:
        event("parsed")


def test_the_fuzz_bench_installs_its_own_bundle(bench: Bench) -> None:
    """The unmutated inputs install: the targets start from a valid bundle, not a refused one."""
    bench.install(bench.compressed, existing=True)
    bench.install(bench.compressed, existing=False)
    parse_manifest(bench.manifest)
