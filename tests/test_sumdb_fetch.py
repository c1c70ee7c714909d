"""bundler.sumdb_fetch against the test checksum database; what it writes is judged by the real
`go`, offline, from a file:// GOPROXY."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Iterator, Tuple

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundler.sumdb_fetch import fetch_sumdb
from manifests import tlog
from manifests.errors import NotReadyError, TrustError
from manifests.tlog_tiles import parse_tile_path, tiles_for
from tests.support.goproxy_server import ProxyServer, RealGoProject, fixture_modules
from tests.support.sumdb_server import SumDB, fixture_sumdb, lookup_path
from tests.test_sumdb_go import gosum_lines, project_without_gosum, run_go

DEP = ("example.com/dep", "v1.2.0")


class Growing:
    """A database that logs new records after every lookup it answers (as sum.golang.org does
    all day), and that serves a partial tile only at the tree's right edge: once tiles are
    asked for it has grown past the edge the client proves against, which must then cut the
    partial tile from the full one."""

    def __init__(self, db: SumDB, per_lookup: int = 40) -> None:
        self.db, self.per_lookup = db, per_lookup
        self.grew_past_tiles = False
        self.lock = threading.Lock()  # the fetcher asks several things at once

    def handle(self, path: str) -> Tuple[int, bytes]:
        with self.lock:
            return self._handle(path)

    def _handle(self, path: str) -> Tuple[int, bytes]:
        if path.startswith("/tile/"):
            if not self.grew_past_tiles:
                self.db.add_fillers(300)
                self.grew_past_tiles = True
            tile = parse_tile_path(path[1:])
            if tile.w != tile.full.w and self.db.tile(tile.full.path) is not None:
                return 404, b"not found\n"
        answer = self.db.handle(path)
        if path.startswith("/lookup/"):
            self.db.add_fillers(self.per_lookup)
        return answer


@pytest.fixture
def growing(real: RealGoProject) -> Iterator[Tuple[SumDB, ProxyServer]]:
    db = fixture_sumdb(real.mods)
    with ProxyServer(real.proxy_dir, routes={"": Growing(db).handle}) as srv:
        yield db, srv


def modules(real: RealGoProject) -> list[tuple[str, str]]:
    return [(m.path, m.version) for m in real.mods]


def test_fetched_lookups_share_the_newest_tree_head_and_go_verifies_them_offline(
        go_bin: Path, real: RealGoProject, growing: Tuple[SumDB, ProxyServer],
        tmp_path: Path) -> None:
    db, srv = growing
    with httpx.Client() as client:
        got = fetch_sumdb(client, srv.url, db.vkey, modules(real))
    assert len({found.tree for found in got.lookups.values()}) > 1  # heads of several sizes
    assert got.tree == max((f.tree for f in got.lookups.values()), key=lambda t: t.n)
    note = got.lookups[max(got.lookups, key=lambda k: got.lookups[k].tree.n)].note
    for m, v in modules(real):
        assert got.files[lookup_path(m, v)].endswith(note)
    ids = [tlog.stored_hash_index(0, f.record_id) for f in got.lookups.values()]
    assert sorted(p for p in got.files if p.startswith("tile/")) == \
        sorted(t.path for t in tiles_for(got.tree.n, sorted(ids)))
    edge = next(p for p in got.files if p.startswith("tile/8/0/") and ".p/" in p)
    assert f"/{edge}" in srv.requests and f"/{parse_tile_path(edge).full.path}" in srv.requests
    mirror = tmp_path / "mirror"
    shutil.copytree(real.proxy_dir, mirror)
    SumDB.write_dir(db, mirror, got.files)
    project = project_without_gosum(real, tmp_path)
    done = run_go(go_bin, ["mod", "tidy"], project, tmp_path / "home", offline=True,
                  GOPROXY=f"file://{mirror}", GOSUMDB=db.gosumdb())
    assert done.returncode == 0, done.stderr
    assert gosum_lines(project / "go.sum") == gosum_lines(real.gosum)
    lines = set(real.gosum.read_text().splitlines())
    assert set(got.lines(*DEP)) <= lines


def test_fetching_through_a_proxys_sumdb_endpoint(real: RealGoProject) -> None:
    db = fixture_sumdb(real.mods)
    with db.mount(ProxyServer(real.proxy_dir)) as srv, httpx.Client() as client:
        got = fetch_sumdb(client, f"{srv.url}/sumdb/{db.name}", db.vkey, modules(real))
    assert got.tree == db.tree and got.files["supported"] == b""
    assert got.lines(*DEP) == db.records[db.ids[DEP]].splitlines()


@pytest.fixture
def db_alone() -> Iterator[Tuple[SumDB, ProxyServer]]:
    db = fixture_sumdb(fixture_modules())
    with db.serve() as srv:
        yield db, srv


def fetch(srv: ProxyServer, db: SumDB, vkey: str | None = None) -> None:
    with httpx.Client() as client:
        fetch_sumdb(client, srv.url, vkey or db.vkey, [DEP, ("example.com/dep", "v1.0.0")])


def test_a_tampered_tile_is_refused_at_fetch(db_alone: Tuple[SumDB, ProxyServer]) -> None:
    db, srv = db_alone
    data = db.tile("tile/8/0/000") or b""
    srv.override("/tile/8/0/000", 200, data[:64] + bytes([data[64] ^ 1]) + data[65:])
    with pytest.raises(TrustError, match="verifying example.com/dep@v1.0.0: proving records in "
                                         "tree#307: downloaded inconsistent tile tile/8/0/000"):
        fetch(srv, db)


def test_a_tree_head_by_another_key_is_refused_at_fetch(
        db_alone: Tuple[SumDB, ProxyServer]) -> None:
    db, srv = db_alone
    note = db.sign(db.tree.note_text(), key=Ed25519PrivateKey.generate())
    srv.override("/" + lookup_path(*DEP), 200, db.lookup(*DEP, note))
    with pytest.raises(TrustError, match="verifying example.com/dep@v1.2.0: reading tree note "
                                         "of sumdb.rescue.test: note has no verifiable"):
        fetch(srv, db)


def test_two_signed_heads_of_one_size_are_refused_as_misbehavior(
        db_alone: Tuple[SumDB, ProxyServer]) -> None:
    db, srv = db_alone
    srv.override("/" + lookup_path(*DEP), 200,
                 db.lookup(*DEP, db.signed_tree(tlog.Tree(db.tree.n, bytes(32)))))
    with pytest.raises(TrustError, match="two signed tree heads of size 307 differ"):
        fetch(srv, db)


def test_an_older_head_off_the_newest_history_is_refused_as_misbehavior(
        db_alone: Tuple[SumDB, ProxyServer]) -> None:
    db, srv = db_alone
    off = db.signed_tree(tlog.Tree(db.tree.n - 1, bytes(32)))
    srv.override("/" + lookup_path("example.com/dep", "v1.0.0"), 200,
                 db.lookup("example.com/dep", "v1.0.0", off))
    with pytest.raises(TrustError, match="checksum database sumdb.rescue.test: tree#306 is not "
                                         "a prefix of tree#307: server misbehavior"):
        fetch(srv, db)


def test_a_module_the_database_does_not_know_names_goprivate(
        db_alone: Tuple[SumDB, ProxyServer]) -> None:
    db, srv = db_alone
    with httpx.Client() as client, pytest.raises(
            NotReadyError, match="fetching lookup example.com/private@v1.0.0: .*: not found in "
                                 "checksum database sumdb.rescue.test; a private module belongs "
                                 "under goprivate in the spec"):
        fetch_sumdb(client, srv.url, db.vkey, [("example.com/private", "v1.0.0")])


def test_a_malformed_key_is_a_spec_problem() -> None:
    with httpx.Client() as client, pytest.raises(
            NotReadyError, match="reading checksum database key 'sum.golang.org': malformed "
                                 "verifier id; write it as GOSUMDB does"):
        fetch_sumdb(client, "http://127.0.0.1:9", "sum.golang.org", [DEP])
