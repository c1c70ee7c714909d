"""Tiles of Go's log (x/mod sumdb/tlog tile.go): coordinates, paths, and hashes read from tiles
that are first authenticated against a signed tree head."""

from __future__ import annotations

import re
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

from manifests.tlog import (
    HASH_SIZE,
    TlogError,
    Tree,
    node_hash,
    split_stored_hash_index,
    stored_hash_index,
    sub_tree_index,
)

HEIGHT = 8  # the go command reads tiles of height 8 (sumdb.Client's default)
_PATH_BASE = 1000
_PATH = re.compile(r"\Atile/([0-9]+)/(data|[0-9]+)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([0-9]+))?\Z")

# Returns the bytes of the tile at a tile path (`tile/8/0/x001/234.p/5`), or raises.
TileFetcher = Callable[[str], bytes]


class Tile(NamedTuple):
    """W consecutive hashes at level H*L starting at N*2**H; L = -1 holds record data."""

    h: int
    level: int
    n: int
    w: int

    @property
    def path(self) -> str:
        n, digits = self.n, f"{self.n % _PATH_BASE:03d}"
        while n >= _PATH_BASE:
            n //= _PATH_BASE
            digits = f"x{n % _PATH_BASE:03d}/{digits}"
        partial = f".p/{self.w}" if self.w != 1 << self.h else ""
        level = "data" if self.level == -1 else str(self.level)
        return f"tile/{self.h}/{level}/{digits}{partial}"

    @property
    def full(self) -> Tile:
        return self._replace(w=1 << self.h)


def parse_tile_path(path: str) -> Tile:
    m = _PATH.match(path)
    bad = TlogError(f"malformed tile path {path!r}")
    if not m:
        raise bad
    h = int(m.group(1))
    level = -1 if m.group(2) == "data" else int(m.group(2))
    if not 1 <= h <= 30 or level > 63:
        raise bad
    n = 0
    for part in m.group(3).split("/"):
        n = n * _PATH_BASE + int(part.lstrip("x"))
    w = int(m.group(4)) if m.group(4) is not None else 1 << h
    if not 0 < w <= 1 << h:
        raise bad
    tile = Tile(h, level, n, w)
    if tile.path != path:
        raise bad
    return tile


def _tile_for_index(h: int, index: int) -> Tuple[Tile, int, int]:
    """The least-width tile holding stored hash `index`, and the byte range that rebuilds it."""
    level, n = split_stored_hash_index(index)
    tile_level = level // h
    level -= tile_level * h  # now the level within the tile
    tile_n = n << level >> h
    n -= tile_n << h >> level  # now n within the tile at that level
    return (Tile(h, tile_level, tile_n, (n + 1) << level),
            (n << level) * HASH_SIZE, ((n + 1) << level) * HASH_SIZE)


def tile_for_index(h: int, index: int) -> Tile:
    return _tile_for_index(h, index)[0]


def tile_hash(data: bytes) -> bytes:
    """The subtree hash over the 2**k hashes in `data`."""
    if len(data) == HASH_SIZE:
        return bytes(data)
    half = len(data) // 2
    return node_hash(tile_hash(data[:half]), tile_hash(data[half:]))


def hash_from_tile(tile: Tile, data: bytes, index: int) -> bytes:
    """The hash at stored `index`, from the data of `tile` (or of a wider one)."""
    if not (1 <= tile.h <= 30 and 0 <= tile.level < 64 and 1 <= tile.w <= 1 << tile.h):
        raise TlogError(f"invalid tile {tile.path}")
    if len(data) < tile.w * HASH_SIZE:
        raise TlogError(f"data len {len(data)} too short for tile {tile.path}")
    t1, start, end = _tile_for_index(tile.h, index)
    if (tile.level, tile.n) != (t1.level, t1.n) or tile.w < t1.w:
        raise TlogError(f"index {index} is in {t1.path} not {tile.path}")
    return tile_hash(data[start:end])


def new_tiles(h: int, old_size: int, new_size: int) -> List[Tile]:
    """The tiles a log of new_size publishes beyond those of a log of old_size (x/mod today)."""
    tiles = []
    level = 0
    while new_size >> (h * level) > 0:
        old_n, new_n = old_size >> (h * level), new_size >> (h * level)
        if old_n != new_n:
            tiles += [Tile(h, level, n, 1 << h) for n in range(old_n >> h, new_n >> h)]
            n = new_n >> h
            if new_n - (n << h) > 0:
                tiles.append(Tile(h, level, n, new_n - (n << h)))
        level += 1
    return tiles


def read_tile_data(tile: Tile, read: Callable[[Sequence[int]], List[bytes]]) -> bytes:
    start = tile.n << tile.h
    return b"".join(read([stored_hash_index(tile.h * tile.level, start + i)
                          for i in range(tile.w)]))


def tile_parent(tile: Tile, k: int, n: int) -> Tile | None:
    """The k'th parent of `tile` as wide as a tree of n records has it, or None."""
    level, tn, w = tile.level + k, tile.n >> (k * tile.h), 1 << tile.h
    most = n >> (level * tile.h)
    if (tn << tile.h) + w >= most:
        if tn << tile.h >= most:
            return None
        w = most - (tn << tile.h)
    return Tile(tile.h, level, tn, w)


def tiles_for(tree_n: int, indexes: Sequence[int], h: int = HEIGHT) -> List[Tile]:
    """The tiles, parents first, that authenticate `indexes` in a tree of tree_n records: the
    tiles that rebuild the tree hash, then each index's tile and the parents up to a known one."""
    order: Dict[Tile, int] = {}
    for x in sub_tree_index(0, tree_n, []):
        tile = tile_parent(tile_for_index(h, x), 0, tree_n)
        assert tile is not None
        order.setdefault(tile, len(order))
    for x in indexes:
        if x >= stored_hash_index(0, tree_n):
            raise TlogError("indexes not in tree")
        tile = tile_for_index(h, x)
        k = 0
        while tile_parent(tile, k, tree_n) not in order:
            k += 1
        for j in range(k - 1, -1, -1):
            parent = tile_parent(tile, j, tree_n)
            assert parent is not None and parent.w == 1 << h, "only full tiles have parents"
            order[parent] = len(order)
    return list(order)


def read_hashes(tree: Tree, indexes: Sequence[int], fetch: TileFetcher,
                h: int = HEIGHT) -> List[bytes]:
    """The hashes at `indexes`, read from tiles that are checked against `tree` first
    (tlog.TileHashReader): the tree hash is rebuilt from the right-edge tiles, and every other
    tile must hash to the entry its parent tile holds for it."""
    tiles = tiles_for(tree.n, indexes, h)
    data: Dict[Tile, bytes] = {}
    for tile in tiles:
        got = fetch(tile.path)
        if len(got) != tile.w * HASH_SIZE:
            raise TlogError(f"tile {tile.path} holds {len(got)} bytes, want {tile.w * HASH_SIZE}")
        data[tile] = got
    stx = sub_tree_index(0, tree.n, [])
    edge = [tile_parent(tile_for_index(h, x), 0, tree.n) for x in stx]
    th = hash_from_tile(edge[-1], data[edge[-1]], stx[-1])  # type: ignore[index,arg-type]
    for tile, x in zip(reversed(edge[:-1]), reversed(stx[:-1])):
        th = node_hash(hash_from_tile(tile, data[tile], x), th)  # type: ignore[index,arg-type]
    if th != tree.hash:
        paths = ", ".join(dict.fromkeys(t.path for t in edge if t is not None))
        raise TlogError(f"downloaded inconsistent tile: {paths} do not rebuild tree#{tree.n}")
    edge_set = set(edge)
    for tile in tiles:
        if tile in edge_set:
            continue
        parent = tile_parent(tile, 1, tree.n)
        assert parent is not None and parent in data, "lost parent tile"
        want = hash_from_tile(parent, data[parent], stored_hash_index(parent.level * h, tile.n))
        if tile_hash(data[tile]) != want:
            raise TlogError(f"downloaded inconsistent tile {tile.path}")
    out = []
    for x in indexes:
        tile = tile_parent(tile_for_index(h, x), 0, tree.n)
        assert tile is not None
        out.append(hash_from_tile(tile, data[tile], x))
    return out
