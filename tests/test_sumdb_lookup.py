"""manifests.sumdb_lookup accepts what the test database serves (the data the real go accepts in
test_sumdb_go.py) and refuses each tampering, with Go-style messages."""

from __future__ import annotations

import base64
from typing import Callable, Dict

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from manifests import tlog
from manifests.errors import TrustError
from manifests.sumdb_lookup import check_lookup, compose, prove
from tests.support.goproxy_server import FixtureModule, RealGoProject, fixture_modules
from tests.support.sumdb_server import SumDB, fixture_sumdb

DEP = ("example.com/dep", "v1.2.0")


@pytest.fixture(scope="module")
def db() -> SumDB:
    return fixture_sumdb(fixture_modules())


def tiles_of(db: SumDB, forged: Dict[str, bytes] | None = None) -> Callable[[str], bytes]:
    def fetch(path: str) -> bytes:
        if forged and path in forged:
            return forged[path]
        data = db.tile(path)
        if data is None:
            raise AssertionError(f"no tile {path}")
        return data
    return fetch


def refused(db: SumDB, data: bytes, message: str, tiles: Dict[str, bytes] | None = None,
            record: tuple[str, str] = DEP) -> TrustError:
    with pytest.raises(TrustError) as caught:
        check_lookup(*record, data, db.verifier, tiles_of(db, tiles))
    err = caught.value
    assert message in str(err), str(err)
    assert str(err).startswith(f"verifying {record[0]}@{record[1]}: ")
    assert err.exit_code == 3 and err.tampering
    assert "check the key and fetch the data again from the database" in err.message
    return err


def test_every_record_is_proven_and_its_lines_are_those_go_wrote(
        real: RealGoProject) -> None:
    db = fixture_sumdb(real.mods)
    gosum = set(real.gosum.read_text().splitlines())
    for (m, v), record_id in db.ids.items():
        found = check_lookup(m, v, db.lookup(m, v), db.verifier, tiles_of(db))
        assert found.record_id == record_id and found.tree == db.tree
        assert len(found.lines) == 2
        assert all(line.startswith((f"{m} {v} h1:", f"{m} {v}/go.mod h1:"))
                   for line in found.lines)
        # tidy keeps only dep v1.2.0; the toolchain modules are in no project's go.sum
        if (m, v) != ("example.com/dep", "v1.0.0") and m != "golang.org/toolchain":
            assert set(found.lines) <= gosum


def test_all_records_are_proven_in_one_pass_with_one_tile_set(db: SumDB) -> None:
    seen: list[str] = []

    def fetch(path: str) -> bytes:
        seen.append(path)
        return tiles_of(db)(path)

    prove(db.tree, {i: (f"{m}@{v}", db.records[i]) for (m, v), i in db.ids.items()}, fetch)
    assert sorted(seen) == ["tile/8/0/000", "tile/8/0/001.p/51", "tile/8/1/000.p/1"]


def test_a_record_changed_in_the_lookup_is_refused(db: SumDB) -> None:
    refused(db, db.lookup(*DEP).replace(b"h1:", b"h1:X", 1),
            f"cannot authenticate record #{db.ids[DEP]} in tree#307")


def test_a_flipped_byte_in_the_tree_edge_tile_is_refused(db: SumDB) -> None:
    edge = db.tile("tile/8/0/001.p/51") or b""
    refused(db, db.lookup(*DEP), "downloaded inconsistent tile: tile/8/1/000.p/1, "
                                 "tile/8/0/001.p/51 do not rebuild tree#307",
            {"tile/8/0/001.p/51": bytes([edge[0] ^ 1]) + edge[1:]})


def test_a_forged_full_tile_that_go_1_21_misses_is_refused(db: SumDB) -> None:
    """The forgery test_go_1_21_trusts_a_full_tile_it_never_authenticates gets past `go`."""
    rid = db.ids[DEP]
    zip_h1 = db.records[rid].split("\n")[0].split(" ")[2]
    text = db.records[rid].replace(zip_h1, "h1:" + base64.b64encode(bytes(32)).decode())
    tile = bytearray(db.tile("tile/8/0/000") or b"")
    tile[rid * 32:(rid + 1) * 32] = tlog.record_hash(text.encode())
    refused(db, tlog.format_record(rid, text) + db.signed_tree(),
            "downloaded inconsistent tile tile/8/0/000", {"tile/8/0/000": bytes(tile)})


def test_a_tile_of_the_wrong_length_is_refused(db: SumDB) -> None:
    refused(db, db.lookup(*DEP), "tile tile/8/0/000 holds 8191 bytes, want 8192",
            {"tile/8/0/000": (db.tile("tile/8/0/000") or b"")[:-1]})


def test_a_tree_head_signed_by_another_key_is_refused(db: SumDB) -> None:
    note = db.sign(db.tree.note_text(), key=Ed25519PrivateKey.generate())
    refused(db, db.lookup(*DEP, note),
            "reading tree note of sumdb.rescue.test: note has no verifiable signatures "
            "(signed by sumdb.rescue.test+")
    stranger = db.sign(db.tree.note_text(), key=Ed25519PrivateKey.generate(), name="evil.test")
    refused(db, db.lookup(*DEP, stranger), "(signed by evil.test+")


def test_a_tree_head_with_a_forged_signature_is_refused(db: SumDB) -> None:
    note = db.signed_tree()
    head, b64 = note.rsplit(b" ", 1)
    sig = bytearray(base64.b64decode(b64))
    sig[-1] ^= 1
    refused(db, db.lookup(*DEP, head + b" " + base64.b64encode(bytes(sig)) + b"\n"),
            f"invalid signature for key {db.verifier.id}")


def test_a_tree_head_the_key_signed_over_another_hash_is_refused(db: SumDB) -> None:
    """A database key that signs a tree its tiles do not rebuild (a fork, or a stolen key)."""
    note = db.signed_tree(tlog.Tree(db.tree.n, bytes(32)))
    refused(db, db.lookup(*DEP, note), "downloaded inconsistent tile")


def test_a_lookup_answered_with_another_modules_record_is_refused(db: SumDB) -> None:
    refused(db, db.lookup("example.com/dep", "v1.0.0"),
            "holds no go.sum lines for example.com/dep v1.2.0 and its go.mod")


def test_a_record_beyond_the_signed_tree_is_refused(db: SumDB) -> None:
    small = db.signed_tree(tlog.Tree(200, db.tree.hash))
    refused(db, db.lookup(*DEP, small), "cannot validate record 227 in tree of size 200")


@pytest.mark.parametrize("data,message", [
    (b"227\nexample.com/dep v1.2.0 h1:x\n", "malformed record data"),
    (b"x" * 200_000, "lookup answer is 200000 bytes (limit 131072)"),
    (b"227\nexample.com/dep v1.2.0 h1:x\n\ngo.sum database tree\n", "malformed note"),
])
def test_malformed_lookup_answers_are_refused(db: SumDB, data: bytes, message: str) -> None:
    refused(db, data, message)


def test_a_lookup_recomposed_with_a_newer_tree_head_is_proven_in_that_tree() -> None:
    """The bundler carries every lookup with one (the newest) tree note; the record is proven
    in that tree, not the one its first answer named."""
    db = SumDB()
    mod = FixtureModule("example.com/dep", "v1.2.0", {"a.go": "package a\n"})
    db.add_fillers(3)
    db.add_module(mod)
    old = db.lookup(mod.path, mod.version)
    db.add_fillers(600)
    record_id, text, _ = tlog.parse_record(old)
    newer = compose(record_id, text, db.signed_tree())
    found = check_lookup(mod.path, mod.version, newer, db.verifier, tiles_of(db))
    assert found.tree.n == 604 and found.record_id == 3
