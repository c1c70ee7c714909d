"""Fetch, at build time, what the go command needs to verify modules against a checksum database
offline: each module's lookup, one signed tree head, and the tiles proving every record in it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import httpx

from bundler import fetch
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.sumdb_lookup import (
    Lookup,
    check_tree_prefix,
    compose,
    lookup_path,
    newest_head,
    parse_lookup,
    prove,
)
from manifests.sumdb_note import NoteError, Verifier, parse_verifier
from manifests.tlog import EMPTY_HASH, HASH_SIZE, Tree, stored_hash_index
from manifests.tlog_tiles import parse_tile_path, tiles_for

_WORKERS = 8  # lookups and tiles are small: a few requests in flight hide the round trips


@dataclass(frozen=True)
class SumdbData:
    """What to carry under `goproxy/sumdb/<name>/`, and what it proves."""

    name: str
    tree: Tree  # the one signed tree head every carried lookup names
    files: Dict[str, bytes]  # relative path (`supported`, `lookup/...`, `tile/...`) -> bytes
    lookups: Dict[Tuple[str, str], Lookup]  # (module, version) -> its proven record

    def lines(self, module: str, version: str) -> List[str]:
        """The go.sum lines the database holds for module@version (zip and go.mod)."""
        return self.lookups[(module, version)].lines


def _get(client: httpx.Client, url: str, what: str, limit: int) -> Optional[bytes]:
    """The body at url (bounded), or None for a 404 or 410."""
    def attempt() -> Optional[bytes]:
        with client.stream("GET", url) as resp:
            if resp.status_code in (404, 410):
                return None
            resp.raise_for_status()
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise TrustError(f"fetching {what}: {url}: larger than {limit} bytes; the "
                                     "checksum database URL may be wrong", tampering=True)
            return bytes(body)
    return fetch._retrying(what, url, attempt)


class _Tiles:
    """Tiles read once each; a partial tile the server no longer has is cut from the full one,
    as the go command does (sumdb.Client.readTile)."""

    def __init__(self, client: httpx.Client, base: str, name: str) -> None:
        self.client, self.base, self.name = client, base, name
        self.got: Dict[str, bytes] = {}

    def __call__(self, path: str) -> bytes:
        if path not in self.got:
            self.got[path] = self._read(path)
        return self.got[path]

    def prefetch(self, paths: Iterable[str]) -> None:
        todo = [p for p in dict.fromkeys(paths) if p not in self.got]
        with ThreadPoolExecutor(_WORKERS) as pool:
            for path, data in zip(todo, pool.map(self._read, todo)):
                self.got[path] = data

    def _read(self, path: str) -> bytes:
        tile = parse_tile_path(path)
        limit = (1 << tile.h) * HASH_SIZE
        data = _get(self.client, f"{self.base}/{path}", f"tile {path} of {self.name}", limit)
        if data is None and tile.w != 1 << tile.h:
            full = _get(self.client, f"{self.base}/{tile.full.path}",
                        f"tile {tile.full.path} of {self.name}", limit)
            data = None if full is None else full[:tile.w * HASH_SIZE]
        if data is None:
            raise NotReadyError(f"fetching tile {path} of {self.name}: {self.base}/{path}: not "
                                "found; check the checksum database URL (or the GOPROXY's "
                                "/sumdb endpoint) in the spec")
        return data


def key(vkey: str) -> Verifier:
    try:
        return parse_verifier(vkey.strip())
    except NoteError as exc:
        raise NotReadyError(f"reading checksum database key {vkey!r}: {exc}; write it as "
                            "GOSUMDB does: <name>+<hex8 hash>+<base64 key>") from None


def fetch_sumdb(client: httpx.Client, base_url: str, vkey: str,
                modules: Iterable[Tuple[str, str]],
                limits: Limits = DEFAULT_LIMITS) -> SumdbData:
    """Fetch and verify the lookups of `modules` from a checksum database (`https://<name>` or
    `<proxy>/sumdb/<name>`) and the tiles proving them in the newest signed tree seen.

    Every lookup is re-composed with that one tree note (a note is signed on its own, so any
    tree holding the record will do), and every older tree head seen must be a prefix of it.
    """
    verifier = key(vkey)
    base = base_url.rstrip("/")
    wanted = sorted(set(modules))
    if len(wanted) > limits.sumdb_records:
        raise NotReadyError(f"fetching checksum database {verifier.name}: {len(wanted)} "
                            f"lookups (limit {limits.sumdb_records}); split the bundle")
    lookups = dict(zip(wanted, _map(lambda mv: _lookup(client, base, verifier, mv, limits),
                                    wanted)))
    files = {"supported": b""}
    if not lookups:
        return SumdbData(verifier.name, Tree(0, EMPTY_HASH), files, {})
    tiles = _Tiles(client, base, verifier.name)
    newest = newest_head(verifier.name, lookups.values())
    ids = {found.record_id: (f"{m}@{v}", found.text) for (m, v), found in lookups.items()}
    needed = [t.path for t in tiles_for(newest.tree.n, [stored_hash_index(0, i)
                                                        for i in sorted(ids)])]
    tiles.prefetch(needed)
    for older in sorted({found.tree for found in lookups.values()} - {newest.tree},
                        key=lambda t: t.n):
        check_tree_prefix(verifier.name, older, newest.tree, tiles)
    prove(newest.tree, ids, tiles)
    for (m, v), found in lookups.items():
        files[lookup_path(m, v)] = compose(found.record_id, found.text, newest.note)
    files.update((path, tiles(path)) for path in needed)
    return SumdbData(verifier.name, newest.tree, files, lookups)


def _map(fn: Callable, items: List) -> List:
    with ThreadPoolExecutor(_WORKERS) as pool:
        return list(pool.map(fn, items))


def _lookup(client: httpx.Client, base: str, verifier: Verifier, mv: Tuple[str, str],
            limits: Limits) -> Lookup:
    m, v = mv
    url = f"{base}/{lookup_path(m, v)}"
    data = _get(client, url, f"lookup {m}@{v}", limits.sumdb_lookup_bytes)
    if data is None:
        raise NotReadyError(f"fetching lookup {m}@{v}: {url}: not found in checksum database "
                            f"{verifier.name}; a private module belongs under goprivate in "
                            "the spec")
    return parse_lookup(m, v, data, verifier, limits)


def database_url(client: httpx.Client, goproxy: str, name: str) -> str:
    """Where to ask database `name`, as the go command finds it (modfetch/sumdb.go initBase):
    the first proxy whose `/sumdb/<name>/supported` answers 200; past a 404 or 410 the next
    one; after the list, the database itself. A file:// proxy cannot be asked from here."""
    from bundler.goproxy_config import parse_goproxy

    for entry in parse_goproxy(goproxy):
        if not entry.url.startswith(("http://", "https://")):
            continue
        base = f"{entry.url}/sumdb/{name}"
        try:
            found = _get(client, f"{base}/supported", f"checksum database {name} support",
                         DEFAULT_LIMITS.sumdb_lookup_bytes)
        except NotReadyError:
            if entry.fall_back_on_error:
                continue
            raise
        if found is not None:
            return base
    return f"https://{name}"
