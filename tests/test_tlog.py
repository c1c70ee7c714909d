"""Go's log (manifests.tlog, tlog_tiles) against known vectors and x/mod's own properties."""

from __future__ import annotations

import hashlib

import pytest

from manifests import tlog
from manifests.tlog import Tree
from manifests.tlog_tiles import (
    Tile,
    hash_from_tile,
    new_tiles,
    parse_tile_path,
    read_hashes,
    read_tile_data,
    tile_for_index,
    tiles_for,
)

# RFC 6962 / certificate-transparency reference leaves and the root of each prefix tree.
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def build(leaves: list[bytes]) -> list[bytes]:
    storage: list[bytes] = []
    for i, data in enumerate(leaves):
        storage += tlog.stored_hashes(i, data, reader(storage))
        assert tlog.stored_hash_count(i + 1) == len(storage)
    return storage


def reader(storage: list[bytes]):
    return lambda xs: [storage[x] for x in xs]


def test_tree_hashes_match_rfc6962_reference_vectors() -> None:
    storage = build([bytes.fromhex(leaf) for leaf in CT_LEAVES])
    for n, want in enumerate(CT_ROOTS, start=1):
        assert tlog.tree_hash(n, reader(storage)).hex() == want


def test_empty_tree_hash_is_sha256_of_nothing() -> None:
    assert tlog.tree_hash(0, reader([])) == hashlib.sha256(b"").digest()


def test_tree_note_text_matches_x_mod_golden() -> None:
    tree = Tree(123456789012, tlog.record_hash(b"hello world"))
    golden = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
    assert tree.note_text() == golden
    assert tlog.parse_tree(golden + "JOE\n" * 10) == tree  # junk after the head is ignored


@pytest.mark.parametrize("bad", [
    "not-go.sum database tree\n1\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
    "go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
    "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
    "go.sum database tree\n012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
    "go.sum database tree\n12\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=",
])
def test_malformed_tree_notes_are_refused(bad: str) -> None:
    with pytest.raises(tlog.TlogError, match="malformed tree note"):
        tlog.parse_tree(bad)


def test_records_format_and_parse_like_x_mod() -> None:
    assert tlog.format_record(123456789012, "hello, world\n") == b"123456789012\nhello, world\n\n"
    for bad in ["", "hello\nworld", "hello\n\nworld\n", "hello\x01world\n"]:
        with pytest.raises(tlog.TlogError, match="malformed record data"):
            tlog.format_record(1, bad)
    assert tlog.parse_record(b"7\na b h1:x\n\nrest") == (7, "a b h1:x\n", b"rest")
    for bad_msg in [b"x\na\n\n", b"7\na\n", b"7", b"07\na\n\n", b"7\n\xff\n\n"]:
        with pytest.raises(tlog.TlogError, match="malformed record data"):
            tlog.parse_record(bad_msg)


@pytest.mark.parametrize("path,tile", [
    ("tile/4/0/001", Tile(4, 0, 1, 16)),
    ("tile/4/0/001.p/5", Tile(4, 0, 1, 5)),
    ("tile/3/5/x123/x456/078", Tile(3, 5, 123456078, 8)),
    ("tile/3/5/x123/x456/078.p/2", Tile(3, 5, 123456078, 2)),
    ("tile/1/0/x003/x057/500", Tile(1, 0, 3057500, 2)),
    ("tile/1/data/x003/x057/500", Tile(1, -1, 3057500, 2)),
    ("tile/8/0/x001/x234/067", Tile(8, 0, 1234067, 256)),
])
def test_tile_paths(path: str, tile: Tile) -> None:
    assert tile.path == path
    assert parse_tile_path(path) == tile


@pytest.mark.parametrize("path", ["tile/3/5/123/456/078", "tile/3/-1/123/456/078",
                                  "tile/8/0/000.p/256", "tile/8/0/000.p/0", "tile/8/0/x000/001",
                                  "tile/31/0/000", "tile/8/0/000.p/007", "tile/8/0/1000"])
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(tlog.TlogError, match="malformed tile path"):
        parse_tile_path(path)


@pytest.mark.parametrize("old,new,count", [(1, 1, 0), (100, 101, 1), (1023, 1025, 3),
                                           (1024, 1030, 1), (1030, 2000, 1), (1030, 10000, 10),
                                           (49516517, 49516586, 3)])
def test_new_tiles_counts_match_x_mod(old: int, new: int, count: int) -> None:
    assert len(new_tiles(10, old, new)) == count


def test_split_stored_hash_index_inverts_stored_hash_index() -> None:
    for level in range(10):
        for n in range(100):
            assert tlog.split_stored_hash_index(tlog.stored_hash_index(level, n)) == (level, n)


def test_proofs_and_tiles_over_growing_trees() -> None:
    """x/mod's TestTree, height 2: every record of every tree up to 100 is proven, from the
    storage and from the tiles; a flipped proof hash fails; tiles extend earlier ones."""
    h = 2
    leaves = [b"leaf %d" % i for i in range(100)]
    storage: list[bytes] = []
    tiles: dict[Tile, bytes] = {}
    for i, data in enumerate(leaves):
        before = len(storage)
        storage += tlog.stored_hashes(i, data, reader(storage))
        th = tlog.tree_hash(i + 1, reader(storage))
        for tile in new_tiles(h, i, i + 1):
            tiles[tile] = read_tile_data(tile, reader(storage))
        for j in range(before, len(storage)):
            tile = tile_for_index(h, j)
            assert hash_from_tile(tile, tiles[tile], j) == storage[j]
        tree = Tree(i + 1, th)
        got = read_hashes(tree, [tlog.stored_hash_index(0, j) for j in range(i + 1)],
                          lambda p: tiles[parse_tile_path(p)], h)
        assert got == [tlog.record_hash(leaf) for leaf in leaves[:i + 1]]
        for j in range(i + 1):
            proof = tlog.prove_record(i + 1, j, reader(storage))
            tlog.check_record(proof, i + 1, th, j, tlog.record_hash(leaves[j]))
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                with pytest.raises(tlog.TlogError, match="invalid transparency proof"):
                    tlog.check_record(bad, i + 1, th, j, tlog.record_hash(leaves[j]))
        with pytest.raises(tlog.TlogError, match="indexes not in tree"):
            tiles_for(i + 1, [(i + 1) * 2], h)


def test_a_flipped_byte_in_any_tile_is_refused() -> None:
    """Unlike x/mod (which skips re-checking some tiles when several tree-edge hashes share a
    tile), every tile read is authenticated: by the tree hash or by its parent tile."""
    h = 2
    leaves = [b"leaf %d" % i for i in range(37)]
    storage = build(leaves)
    tree = Tree(len(leaves), tlog.tree_hash(len(leaves), reader(storage)))
    tiles = {t: read_tile_data(t, reader(storage)) for t in new_tiles(h, 0, len(leaves))}
    wanted = [tlog.stored_hash_index(0, j) for j in range(len(leaves))]
    for victim in tiles_for(tree.n, wanted, h):
        forged = dict(tiles)
        forged[victim] = bytes([tiles[victim][0] ^ 1]) + tiles[victim][1:]
        with pytest.raises(tlog.TlogError, match="downloaded inconsistent tile"):
            read_hashes(tree, wanted, lambda p, f=forged: f[parse_tile_path(p)], h)
