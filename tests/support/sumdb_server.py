"""A real checksum database for tests: a tlog over go.sum records, tree heads signed as notes
with a test Ed25519 key, served over HTTP (alone or under a GOPROXY at /sumdb/<name>) or written
to a directory for a file:// GOPROXY. The real `go` is the judge of what it serves."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from manifests import tlog
from manifests.dirhash import hash_gomod, hash_zip
from manifests.modpath import ModulePathError, unescape_path, unescape_version
from manifests.sumdb_lookup import lookup_path
from manifests.sumdb_note import parse_verifier, signature_line, verifier_key
from manifests.tlog_tiles import HEIGHT, Tile, new_tiles, parse_tile_path, read_tile_data
from manifests.toolchainzip import MODULE as TOOLCHAIN_MODULE
from tests.support import gobin
from tests.support.goproxy_server import FixtureModule, ProxyServer

NAME = "sumdb.rescue.test"  # host[/path], as cmd/go requires of a database name
SEED = hashlib.sha256(b"rescue test checksum database").digest()


def record_text(module: str, version: str, zip_h1: str, gomod_h1: str) -> str:
    return f"{module} {version} {zip_h1}\n{module} {version}/go.mod {gomod_h1}\n"


class SumDB:
    """A growing log of go.sum records and the signed tree head over all of them."""

    def __init__(self, name: str = NAME, seed: bytes = SEED) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        self.vkey = verifier_key(name, self.key.public_key().public_bytes_raw())
        self.verifier = parse_verifier(self.vkey)
        self.records: List[str] = []
        self.ids: Dict[Tuple[str, str], int] = {}
        self.storage: List[bytes] = []

    def add_text(self, text: str) -> int:
        record_id = len(self.records)
        tlog.format_record(record_id, text)  # refuses what Go's server would refuse
        self.storage += tlog.stored_hashes(record_id, text.encode(),
                                           lambda xs: [self.storage[x] for x in xs])
        self.records.append(text)
        return record_id

    def add(self, module: str, version: str, zip_h1: str, gomod_h1: str) -> int:
        record_id = self.add_text(record_text(module, version, zip_h1, gomod_h1))
        self.ids[(module, version)] = record_id
        return record_id

    def add_module(self, mod: FixtureModule) -> int:
        return self.add(mod.path, mod.version, hash_zip(io.BytesIO(mod.zip_bytes())),
                        hash_gomod(mod.gomod()))

    def add_fillers(self, count: int) -> None:
        """Records of modules nobody fetches, so that the tree has full and partial tiles."""
        for _ in range(count):
            i = len(self.records)
            h = base64.b64encode(hashlib.sha256(b"filler %d" % i).digest()).decode()
            self.add_text(record_text(f"example.org/filler{i}", "v1.0.0", f"h1:{h}", f"h1:{h}"))

    @property
    def tree(self) -> tlog.Tree:
        n = len(self.records)
        return tlog.Tree(n, tlog.tree_hash(n, lambda xs: [self.storage[x] for x in xs]))

    def sign(self, text: str, key: Optional[Ed25519PrivateKey] = None,
             name: Optional[str] = None) -> bytes:
        """A note over `text`, by this database's key or by another one."""
        key = key or self.key
        pub = key.public_key().public_bytes_raw()
        khash = parse_verifier(verifier_key(name or self.name, pub)).key_hash
        sig = key.sign(text.encode())
        return (text + "\n" + signature_line(name or self.name, khash, sig)).encode()

    def signed_tree(self, tree: Optional[tlog.Tree] = None) -> bytes:
        return self.sign((tree or self.tree).note_text())

    def lookup(self, module: str, version: str, note: Optional[bytes] = None) -> bytes:
        record_id = self.ids[(module, version)]
        return tlog.format_record(record_id, self.records[record_id]) + \
            (note if note is not None else self.signed_tree())

    def tile(self, path: str, size: Optional[int] = None) -> Optional[bytes]:
        """A tile of the tree of `size` records (default: all), as x/mod's server serves it."""
        size = len(self.records) if size is None else size
        try:
            t = parse_tile_path(path)
        except tlog.TlogError:
            return None
        if t.h != HEIGHT:
            return None
        if t.level == -1:
            start = t.n << t.h
            if start + t.w > size:
                return None
            return "".join(text + "\n" for text in self.records[start:start + t.w]).encode()
        if (t.n << t.h) + t.w > size >> (t.h * t.level):
            return None
        return read_tile_data(t, lambda xs: [self.storage[x] for x in xs])

    def handle(self, path: str) -> Tuple[int, bytes]:
        """Answer a path under the database's base URL: /lookup, /tile, /latest, /supported."""
        if path == "/supported":
            return 200, b""
        if path == "/latest":
            return 200, self.signed_tree()
        if path.startswith("/lookup/"):
            esc_m, _, esc_v = path[len("/lookup/"):].rpartition("@")
            try:
                key = (unescape_path(esc_m), unescape_version(esc_v))
            except ModulePathError:
                return 400, b"invalid module@version syntax\n"
            if key not in self.ids:
                return 404, b"not found\n"
            return 200, self.lookup(*key)
        data = self.tile(path[1:]) if path.startswith("/tile/") else None
        return (200, data) if data is not None else (404, b"not found\n")

    def files(self, modules: Optional[Iterable[Tuple[str, str]]] = None) -> Dict[str, bytes]:
        """What a file:// GOPROXY carries under sumdb/<name>/: supported, the lookups of
        `modules` (default: all) and every tile of the current tree."""
        keys = list(self.ids) if modules is None else list(modules)
        note = self.signed_tree()
        out = {"supported": b""}
        for m, v in keys:
            out[lookup_path(m, v)] = self.lookup(m, v, note)
        for t in new_tiles(HEIGHT, 0, len(self.records)):
            for tile in (t, Tile(t.h, -1, t.n, t.w)) if t.level == 0 else (t,):
                data = self.tile(tile.path)
                assert data is not None
                out[tile.path] = data
        return out

    def write_dir(self, directory: Path, files: Optional[Dict[str, bytes]] = None) -> Path:
        """Write `files` (default: self.files()) under directory/sumdb/<name>/."""
        base = Path(directory) / "sumdb" / self.name
        for rel, data in (self.files() if files is None else files).items():
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_bytes(data)
        return base

    def gosumdb(self, url: Optional[str] = None) -> str:
        """GOSUMDB for this database: its key, and the URL when it is not behind a proxy."""
        return f"{self.vkey} {url}" if url else self.vkey

    def serve(self) -> ProxyServer:
        """The database alone on 127.0.0.1 (use as a context manager; `.url` is its base)."""
        empty = Path(__file__).parent / "__sumdb_empty__"
        return ProxyServer(empty, routes={"": self.handle})

    def mount(self, proxy: ProxyServer) -> ProxyServer:
        """Serve the database under `proxy` at /sumdb/<name>, as proxy.golang.org does."""
        proxy.routes[f"/sumdb/{self.name}"] = self.handle
        return proxy


def fixture_sumdb(mods: Iterable[FixtureModule], fillers: int = 300) -> SumDB:
    """A database holding `mods` spread among filler records: some in full tiles (proven through
    a parent tile) and some in the partial right-edge tile; and, last, in place of two fillers,
    the golang.org/toolchain modules of the fixture toolchains (go1.21.13, go1.22.10) as the
    bundler builds them from the godl archives."""
    db = SumDB()
    mods = list(mods)
    step = max(1, fillers // (len(mods) + 1))
    for mod in mods:
        db.add_fillers(step)
        db.add_module(mod)
    toolchains = [gobin.toolchain_module_hashes(v)
                  for v in (gobin.GO_VERSION, gobin.NEWER_GO_VERSION)]
    db.add_fillers(fillers - step * len(mods) - len(toolchains))
    for version, zip_h1, mod_h1 in toolchains:
        db.add(TOOLCHAIN_MODULE, version, zip_h1, mod_h1)
    return db
