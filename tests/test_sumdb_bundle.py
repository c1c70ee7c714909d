"""Checksum database data in the bundle: fetched, proven and checked against go.sum at build,
verified against the signed manifest at install, merged across bundles at the newest head, and
used by the real `go` offline with GOSUMDB on (root and uid 65534)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from installer import cli as installer_cli
from manifests.errors import TrustError
from manifests.model import Manifest, Member, Module, check_members
from manifests.sumdb_bundle import Sumdb
from tests.support import bundles, tamper
from tests.support.goproxy_server import ProxyServer, RealGoProject
from tests.support.modbundles import modules_table
from tests.support.sumdb_server import SumDB, fixture_sumdb, lookup_path
from tests.support.users import User
from tests.test_sumdb_go import forked, project_without_gosum, run_go

DEP = ("example.com/dep", "v1.2.0")
APP = ("example.com/app", "v1.0.0")
OLD = ("example.com/old", "v2.0.0+incompatible")
BASE = "goproxy/sumdb/sumdb.rescue.test"


def _spec(work: Path, signing: bundles.Signing, srv: ProxyServer, db: SumDB,
          project: Optional[Path] = None, require: Optional[List[str]] = None,
          sequence: int = 1) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    return bundles.write_spec(work / "spec.toml", signing.key, "http://127.0.0.1:9",
                              versions="[]", sequence=sequence,
                              extra=modules_table(srv.url, [project] if project else None,
                                                  require=require, transitive=not require,
                                                  sumdb=db.vkey))


def _build(work: Path, signing: bundles.Signing, srv: ProxyServer, db: SumDB, **kw):  # type: ignore[no-untyped-def]
    return bundles.build_bundle(_spec(work, signing, srv, db, **kw), work / "out",
                                work / "cache")


def _install(bundle: Path, prefix: Path, signing: bundles.Signing, capsys) -> Dict:  # type: ignore[no-untyped-def]
    code = installer_cli.main(["install", str(bundle), "--prefix", str(prefix), "--trust",
                               str(signing.signers), "--json"])
    out = capsys.readouterr()
    doc = json.loads(out.out) if out.out.strip() else {}
    doc["_code"], doc["_stderr"] = code, out.err
    return doc


# --- the manifest ---------------------------------------------------------------------------

def _manifest(extra: List[Member], db: Optional[Sumdb]) -> Manifest:
    dirs = ["goproxy", "goproxy/sumdb", BASE, f"{BASE}/lookup", f"{BASE}/lookup/example.com",
            f"{BASE}/tile", f"{BASE}/tile/8", f"{BASE}/tile/8/0", f"{BASE}/tile/8/0/001.p"]
    files = [f"{BASE}/supported", f"{BASE}/lookup/example.com/dep@v1.2.0",
             f"{BASE}/tile/8/0/000", f"{BASE}/tile/8/0/001.p/51"]
    members = [Member(d, "dir", 0o755) for d in dirs]
    members += [Member(f, "file", 0o644, 1, "0" * 64) for f in files] + extra
    return Manifest("b", "stable", 1, "", "", "", ("linux-amd64",),
                    modules=(Module(*DEP, "h1:x", "h1:y"),), members=tuple(members), sumdb=db)


DB = Sumdb("sumdb.rescue.test", SumDB().vkey, 307, base64.b64encode(bytes(32)).decode())


def test_manifest_takes_sumdb_members_only_in_their_exact_shapes() -> None:
    assert check_members(_manifest([], DB)) == []

    def problems(path: str, kind: str = "file", db: Optional[Sumdb] = DB) -> List[str]:
        return check_members(_manifest([Member(path, kind, 0o644 if kind == "file" else 0o755,
                                               1, "0" * 64)], db))

    assert problems(f"{BASE}/lookup/example.com/app@v1.0.0") == [
        f"{BASE}/lookup/example.com/app@v1.0.0: a lookup of no module this bundle carries for "
        "sumdb.rescue.test"]
    assert problems(f"{BASE}/latest") == [f"{BASE}/latest: not supported, a lookup or a tile"]
    assert f"{BASE}/tile/8/data/000: only hash tiles of height 8 are carried" in problems(
        f"{BASE}/tile/8/data/000")
    assert problems(f"{BASE}/tile/8/0/002") == [
        f"{BASE}/tile/8/0/002: a tile beyond the carried tree of 307 records"]
    assert problems(f"{BASE}/tile/8/0/001.p/7") == []  # an older width, inside the tree
    assert problems(f"{BASE}/tile/8/0/x") == [f"{BASE}/tile/8/0/x: not supported, a lookup or "
                                              "a tile"]
    assert problems(f"{BASE}/evil", "dir") == [f"{BASE}/evil: not a checksum database directory"]
    assert problems("goproxy/sumdb/other.db", "dir") == [
        "goproxy/sumdb/other.db: not under goproxy/sumdb/sumdb.rescue.test (the database the "
        "manifest names)"]
    no_db = check_members(_manifest([], None))
    assert "goproxy/sumdb: checksum database data, but the manifest names no database" in no_db


def test_manifest_sumdb_record_must_name_its_key() -> None:
    from manifests.model import check_fields

    other = SumDB(name="other.db")
    bad = _manifest([], Sumdb(DB.name, other.vkey, 307, DB.hash))
    assert f"sumdb: key {other.vkey!r} is not sumdb.rescue.test's" in check_fields(bad)
    assert check_fields(_manifest([], Sumdb(DB.name, DB.key, 0, "x"))) == [
        "sumdb: size and hash must be a tree head (1 or more records, a base64 SHA-256)"]


# --- build ----------------------------------------------------------------------------------

def test_bundle_carries_the_lookups_and_tiles_of_one_signed_head(
        real: RealGoProject, signing: bundles.Signing, tmp_path: Path) -> None:
    db = fixture_sumdb(real.mods)
    with db.mount(ProxyServer(real.proxy_dir)) as srv:
        result = _build(tmp_path, signing, srv, db, project=real.project)
        assert f"/sumdb/{db.name}/supported" in srv.requests
    m = result.manifest
    assert m.sumdb == Sumdb(db.name, db.vkey, db.tree.n,
                            base64.b64encode(db.tree.hash).decode())
    carried = {x.path[len(BASE) + 1:] for x in m.members
               if x.path.startswith(BASE + "/") and x.type == "file"}
    assert carried == {"supported", "tile/8/0/000", "tile/8/0/001.p/51", "tile/8/1/000.p/1",
                       *(lookup_path(x.path, x.version) for x in m.modules)}
    size = sum(x.size for x in m.members if x.path.startswith(BASE) and x.type == "file")
    print(f"sumdb data: {size} bytes of {m.content_bytes} content bytes; bundle file "
          f"{result.size} bytes")


def test_build_stops_when_the_database_record_contradicts_gosum(
        real: RealGoProject, signing: bundles.Signing, tmp_path: Path) -> None:
    zero = "h1:" + base64.b64encode(bytes(32)).decode()
    liar = forked(fixture_sumdb(real.mods), DEP, zero)
    with liar.mount(ProxyServer(real.proxy_dir)) as srv, pytest.raises(TrustError) as e:
        _build(tmp_path, signing, srv, liar, project=real.project)
    gosum = next(line.split()[2] for line in real.gosum.read_text().splitlines()
                 if line.startswith("example.com/dep v1.2.0 "))
    assert str(e.value).startswith(
        f"verifying example.com/dep@v1.2.0: checksum mismatch\n\tgo.sum: {gosum}\n"
        f"\tsumdb.rescue.test: {zero}\nThe checksum database sumdb.rescue.test and the go.sum's "
        "h1: hash disagree")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_build_stops_on_a_tile_that_does_not_rebuild_the_signed_head(
        real: RealGoProject, signing: bundles.Signing, tmp_path: Path) -> None:
    db = fixture_sumdb(real.mods)
    edge = db.tile("tile/8/0/001.p/51") or b""
    with db.mount(ProxyServer(real.proxy_dir)) as srv, pytest.raises(TrustError) as e:
        srv.override(f"/sumdb/{db.name}/tile/8/0/001.p/51", 200, tamper.flip_byte(edge, 0))
        _build(tmp_path, signing, srv, db, project=real.project)
    assert "proving records in tree#307: downloaded inconsistent tile: tile/8/1/000.p/1, " \
           "tile/8/0/001.p/51 do not rebuild tree#307" in str(e.value)


def test_build_stops_on_a_tree_head_signed_by_another_key(
        real: RealGoProject, signing: bundles.Signing, tmp_path: Path) -> None:
    db = fixture_sumdb(real.mods)
    note = db.sign(db.tree.note_text(), key=Ed25519PrivateKey.generate())
    with db.mount(ProxyServer(real.proxy_dir)) as srv, pytest.raises(TrustError) as e:
        srv.override(f"/sumdb/{db.name}/{lookup_path(*DEP)}", 200, db.lookup(*DEP, note))
        _build(tmp_path, signing, srv, db, project=real.project)
    assert str(e.value).startswith(
        "verifying example.com/dep@v1.2.0: reading tree note of sumdb.rescue.test: note has no "
        "verifiable signatures")


# --- install --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def modules_bundle(real: RealGoProject, signing: bundles.Signing,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = fixture_sumdb(real.mods)
    with db.mount(ProxyServer(real.proxy_dir)) as srv:
        return _build(tmp_path_factory.mktemp("sumdb-modules"), signing, srv, db,
                      project=real.project).path


def _resigned(src: Path, dest: Path, signing: bundles.Signing, files: Dict[str, bytes],
              change=lambda doc: None) -> Path:  # type: ignore[no-untyped-def]
    """`src` with the member files in `files` replaced, its manifest updated and re-signed by
    the trusted key: what an attacker holding that key (or a compromised builder) makes."""
    def edit(doc: Dict) -> None:
        for mem in doc["members"]:
            if mem["path"] in files:
                mem["sha256"] = hashlib.sha256(files[mem["path"]]).hexdigest()
                mem["size"] = len(files[mem["path"]])
        change(doc)

    def swap(info, data):  # type: ignore[no-untyped-def]
        return [(info, files.get(info.name, data))]

    return tamper.forge(src, dest, edit, signing.key, edit=swap)


def test_install_refuses_a_resigned_bundle_whose_module_and_lookup_were_swapped(
        modules_bundle: Path, signing: bundles.Signing, tmp_path: Path, capsys) -> None:
    path = f"{BASE}/{lookup_path(*DEP)}"
    old = next(data for info, data in tamper.members(modules_bundle) if info.name == path)
    evil = "h1:" + base64.b64encode(b"e" * 32).decode()
    first, rest = old.split(b"\n", 1)
    zip_line = rest.split(b"\n")[0]
    forged = first + b"\n" + rest.replace(zip_line.split(b" ")[2], evil.encode(), 1)

    def change(doc: Dict) -> None:  # the signed manifest agrees with the forged record
        for mod in doc["modules"]:
            if (mod["path"], mod["version"]) == DEP:
                mod["zip_hash"] = evil

    bad = _resigned(modules_bundle, tmp_path / "bad.tar.zst", signing, {path: forged}, change)
    prefix = tmp_path / "P"
    got = _install(bad, prefix, signing, capsys)
    assert got["_code"] == 3, got
    assert "verifying example.com/dep@v1.2.0: cannot authenticate record #227 in tree#307" \
        in got["_stderr"]
    assert not (prefix / "goproxy").exists()


def test_install_refuses_a_resigned_bundle_with_a_tampered_tile(
        modules_bundle: Path, signing: bundles.Signing, tmp_path: Path, capsys) -> None:
    path = f"{BASE}/tile/8/0/000"
    old = next(data for info, data in tamper.members(modules_bundle) if info.name == path)
    bad = _resigned(modules_bundle, tmp_path / "bad.tar.zst", signing,
                    {path: tamper.flip_byte(old, 40 * 32)})
    got = _install(bad, tmp_path / "P", signing, capsys)
    assert got["_code"] == 3, got
    assert "proving records in tree#307: downloaded inconsistent tile tile/8/0/000" \
        in got["_stderr"]
    assert not (tmp_path / "P" / "goproxy").exists()


def test_install_refuses_a_resigned_bundle_whose_lookup_contradicts_its_manifest(
        modules_bundle: Path, signing: bundles.Signing, tmp_path: Path, capsys) -> None:
    path = f"{BASE}/{lookup_path(*APP)}"
    old = next(data for info, data in tamper.members(modules_bundle) if info.name == path)
    zip_h1 = old.split(b"\n")[1].split(b" ")[2]
    evil = b"h1:" + base64.b64encode(b"e" * 32)
    bad = _resigned(modules_bundle, tmp_path / "bad.tar.zst", signing,
                    {path: old.replace(zip_h1, evil, 1)})
    got = _install(bad, tmp_path / "P", signing, capsys)
    assert got["_code"] == 3, got
    assert (f"verifying example.com/app@v1.0.0: checksum mismatch\n\tbundle: "
            f"{zip_h1.decode()}\n\tsumdb.rescue.test: {evil.decode()}") in got["_stderr"]


def test_install_wires_gosumdb_to_the_carried_database(
        real: RealGoProject, modules_bundle: Path, signing: bundles.Signing, tmp_path: Path,
        capsys) -> None:
    from installer import wiring
    from installer.prefix import Layout

    prefix = tmp_path / "P"
    got = _install(modules_bundle, prefix, signing, capsys)
    assert got["_code"] == 0, got
    db = SumDB()
    settings = wiring.go_settings(Layout(prefix))
    assert settings["GOSUMDB"] == db.vkey  # not sum.golang.org: go needs the key
    assert "GONOSUMDB" not in settings
    assert f"GOSUMDB={db.vkey} " in (prefix / "env.sh").read_text()
    assert installer_cli.main(["inspect", str(modules_bundle), "--trust",
                               str(signing.signers)]) == 0
    tree = fixture_sumdb(real.mods).tree
    assert (f"sumdb      sumdb.rescue.test  tree#307 {base64.b64encode(tree.hash).decode()}"
            in capsys.readouterr().out)
    assert (prefix / "goproxy" / "sumdb" / db.name / "supported").is_file()


# --- two bundles, two heads, and the real go -------------------------------------------------

def _download(go: Path, prefix: Path, home: Path, db: SumDB,
              mv: tuple) -> subprocess.CompletedProcess:
    outside = home / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    return run_go(go, ["mod", "download", "-json", f"{mv[0]}@{mv[1]}"], outside, home,
                  offline=True, GOPROXY=f"file://{prefix / 'goproxy'}", GOSUMDB=db.vkey)


def test_two_bundles_with_two_heads_answer_go_at_the_newest(
        go_bin: Path, real: RealGoProject, signing: bundles.Signing, tmp_path: Path,
        capsys) -> None:
    db = fixture_sumdb(real.mods)
    with db.mount(ProxyServer(real.proxy_dir)) as srv:
        first = _build(tmp_path / "a", signing, srv, db,
                       require=[f"{m}@{v}" for m, v in (DEP, APP)])
        old_head = db.signed_tree()
        db.add_fillers(300)  # the database grows between the two builds
        second = _build(tmp_path / "b", signing, srv, db, require=["@".join(OLD)],
                        sequence=2)
    assert (first.manifest.sumdb.size, second.manifest.sumdb.size) == (307, 607)
    prefix = tmp_path / "P"
    assert _install(first.path, prefix, signing, capsys)["_code"] == 0
    got = _install(second.path, prefix, signing, capsys)
    assert got["_code"] == 0, got
    # dep's record sits in a full tile both bundles carry: re-composed with the newest head.
    # app's sits in a tile the newest tree completed and no bundle carries: named, kept.
    base = prefix / "goproxy" / "sumdb" / db.name
    assert (base / lookup_path(*DEP)).read_bytes().endswith(db.signed_tree())
    assert (base / lookup_path(*APP)).read_bytes().endswith(old_head)
    assert ("checksum database sumdb.rescue.test: 1 lookup(s) cannot be proven in the newest "
            "tree#607 this prefix carries (its tiles are not in any installed bundle): "
            "example.com/app@v1.0.0 (tree#307); go refuses them once it has seen tree#607. "
            "Build a new bundle of those modules and install it.") in got["notes"]
    home = tmp_path / "home"
    for mv in (OLD, DEP):  # after the newest head, an older bundle's module still verifies
        done = _download(go_bin, prefix, home, db, mv)
        assert done.returncode == 0, done.stderr
    latest = home / "gopath" / "pkg" / "sumdb" / db.name / "latest"
    assert latest.read_bytes() == db.signed_tree()
    done = _download(go_bin, prefix, home, db, APP)
    assert done.returncode != 0 and "checking tree#307" in done.stdout, done.stdout
    fresh = _download(go_bin, prefix, tmp_path / "fresh", db, APP)  # the note's other half
    assert fresh.returncode == 0, fresh.stderr
    # verify judges a re-composed lookup by its record and signature, not by the bundle's bytes
    code = installer_cli.main(["verify", "--all", "--prefix", str(prefix), "--trust",
                               str(signing.signers), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] and not report["verify"]["changed"], report


# --- the real rescue.pyz and go, offline, root and uid 65534 ---------------------------------

def test_fresh_project_gets_its_gosum_from_the_carried_database_for_every_user(
        user: User, rescue: List[str], full_bundle, real: RealGoProject,  # type: ignore[no-untyped-def]
        fixture_db: SumDB) -> None:
    bundle = user.give(full_bundle.path)
    prefix = user.home / "go-emergency"
    done = user.run([*rescue, "install", str(bundle), "--prefix", str(prefix), "--json"],
                    offline=True)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    row = next(c for c in report["checks"] if c["name"] == "go mod download (sumdb)")
    assert row["ok"] and row["got"].endswith(" verified"), row
    assert row["expected"].endswith("verified by sumdb.rescue.test from P/goproxy/sumdb")
    goenv = (prefix / "current" / "go.env").read_text()
    assert f"GOSUMDB={fixture_db.vkey}\n" in goenv and "GOSUMDB=off" not in goenv
    project = project_without_gosum(real, user.work)
    users_own(user, project)
    env = user.env(PATH=f"{prefix / 'current' / 'bin'}:/usr/bin:/bin",
                   GOFLAGS="-mod=mod -modcacherw", GOMODCACHE=str(user.work / "modcache"))
    for args in (["env", "GOSUMDB"], ["mod", "tidy"], ["mod", "verify"], ["build", "./..."]):
        ran = user.run(["go", *args], offline=True, env=dict(env, CGO_ENABLED="0"), cwd=project)
        assert ran.returncode == 0, f"go {' '.join(args)}: {ran.stdout}{ran.stderr}"
        if args == ["env", "GOSUMDB"]:
            assert ran.stdout.strip() == fixture_db.vkey
    assert sorted((project / "go.sum").read_text().splitlines()) == \
        sorted(real.gosum.read_text().splitlines())


def users_own(user: User, tree: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, user.uid, user.uid)


def test_sumdb_data_adds_little_to_the_fixture_bundle(full_bundle) -> None:  # type: ignore[no-untyped-def]
    m = full_bundle.manifest
    size = sum(x.size for x in m.members if x.path.startswith("goproxy/sumdb/")
               and x.type == "file")
    modules = sum(x.size for x in m.members if x.path.startswith("goproxy/")
                  and x.type == "file")
    print(f"sumdb data {size} bytes = {100 * size / m.content_bytes:.3f}% of the content "
          f"({100 * size / modules:.1f}% of the module files); bundle {full_bundle.size} bytes")
    assert 0 < size < 64 * 1024


def test_private_modules_get_gonosumdb_and_need_no_lookup(
        go_bin: Path, modules_bundle: Path, signing: bundles.Signing, tmp_path: Path,
        capsys) -> None:
    from installer import wiring
    from installer.prefix import Layout

    lookup = f"{BASE}/{lookup_path(*APP)}"

    def private(doc: Dict) -> None:  # as a spec with goprivate = "example.com/app" builds it
        doc["sumdb"]["nosumdb"] = "example.com/app"
        doc["members"] = [m for m in doc["members"] if m["path"] != lookup]

    def drop(info, data):  # type: ignore[no-untyped-def]
        return [] if info.name == lookup else [(info, data)]

    bundle = tamper.forge(modules_bundle, tmp_path / "private.tar.zst", private, signing.key,
                          edit=drop)
    prefix = tmp_path / "P"
    got = _install(bundle, prefix, signing, capsys)
    assert got["_code"] == 0, got
    settings = wiring.go_settings(Layout(prefix))
    assert settings["GONOSUMDB"] == "example.com/app"
    assert "GONOSUMDB=example.com/app" in (prefix / "env.sh").read_text()
    home = tmp_path / "home"
    outside = home / "outside"
    outside.mkdir(parents=True)
    done = run_go(go_bin, ["mod", "download", "-json", "@".join(APP)], outside, home,
                  offline=True, **settings)
    assert done.returncode == 0, done.stdout + done.stderr


def test_plan_leaves_goprivate_modules_to_gonosumdb(real: RealGoProject) -> None:
    import httpx

    from bundler.spec import ModuleSpec
    from bundler.sumdb_part import plan_sumdb

    db = fixture_sumdb(real.mods)
    ms = ModuleSpec(goproxy="http://unused.invalid", goprivate="example.com/app",
                    sumdb=db.vkey)
    records = [(m.path, m.version, "", "") for m in real.mods if (m.path, m.version) in
               (APP, DEP)]
    with db.serve() as srv, httpx.Client() as client:
        got, part = plan_sumdb(client, ModuleSpec(**{**ms.__dict__, "sumdb_url": srv.url}),
                               records)
    assert got is not None and got.nosumdb == "example.com/app" and part is not None
    assert [m.path for m in part.members if "/lookup/" in m.path and m.type == "file"] == \
        [f"{BASE}/{lookup_path(*DEP)}"]
    assert plan_sumdb(httpx.Client(), ModuleSpec(sumdb="off"), records) == (None, None)


def test_a_bundle_of_another_database_is_refused_by_a_prefix_that_has_one(
        real: RealGoProject, modules_bundle: Path, signing: bundles.Signing, tmp_path: Path,
        capsys) -> None:
    other = SumDB(name="other.rescue.test")
    for mod in real.mods:
        other.add_module(mod)
    with other.mount(ProxyServer(real.proxy_dir)) as srv:
        second = _build(tmp_path / "b", signing, srv, other, require=["@".join(DEP)],
                        sequence=2)
    prefix = tmp_path / "P"
    assert _install(modules_bundle, prefix, signing, capsys)["_code"] == 0
    got = _install(second.path, prefix, signing, capsys)
    assert got["_code"] == 2, got
    assert ("installing checksum database other.rescue.test: this prefix verifies modules with "
            "sumdb.rescue.test (GOSUMDB takes one database); install this bundle into another "
            "prefix, or rebuild it with modules.sumdb = ") in got["_stderr"]
    assert not (prefix / "goproxy" / "sumdb" / "other.rescue.test").exists()


def test_installed_goroots_are_rewired_when_a_bundle_brings_the_database(
        modules_bundle: Path, signing: bundles.Signing, tmp_path: Path, capsys) -> None:
    from tests.support import craft

    toolchain = craft.Craft(name="tc", channel="tc")
    toolchain.toolchain()
    prefix = tmp_path / "P"
    got = _install(toolchain.write(tmp_path / "tc.tar.zst", signing.key), prefix, signing,
                   capsys)
    assert got["_code"] == 0, got
    go_env = prefix / "versions" / "go1.21.13.linux-amd64" / "go.env"
    assert "GOSUMDB=off\n" in go_env.read_text()  # no database data in the prefix yet
    assert _install(modules_bundle, prefix, signing, capsys)["_code"] == 0
    assert f"GOSUMDB={SumDB().vkey}\n" in go_env.read_text()
    assert oct(go_env.parent.stat().st_mode & 0o777) == "0o555"
    code = installer_cli.main(["verify", "--all", "--prefix", str(prefix), "--trust",
                               str(signing.signers), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"], report


def test_checklist_sumdb_row_warns_of_a_newer_saved_head_and_fails_on_damaged_data(
        go_bin: Path, real: RealGoProject, modules_bundle: Path, signing: bundles.Signing,
        tmp_path: Path, capsys) -> None:
    from installer import checklist
    from installer.prefix import Layout

    prefix = tmp_path / "P"
    assert _install(modules_bundle, prefix, signing, capsys)["_code"] == 0
    layout = Layout(prefix)

    def row() -> checklist.Check:
        checks = checklist.run(go_bin.parent.parent, "go1.21.13", "linux", "amd64", layout,
                               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        return next(c for c in checks if c.name == "go mod download (sumdb)")

    good = row()
    assert good.ok and good.got == "example.com/app@v1.0.0 verified", good  # record #265
    assert not good.warn and good.detail == ()
    # The host was online once: its GOPATH saved a newer head than any bundle carries.
    grown = fixture_sumdb(real.mods)
    grown.add_fillers(300)
    saved = tmp_path / "go" / "pkg" / "sumdb" / grown.name / "latest"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(grown.signed_tree())
    warned = row()
    assert warned.ok and warned.warn, warned
    assert warned.detail == (
        f"{saved} holds tree#607 of sumdb.rescue.test, newer than the carried tree#307: go "
        "proves lookups in the newest tree it has seen, so it will refuse any module missing "
        "from go.sum",
        f"fix: install a bundle built after that head, or move {saved} aside (go saves the "
        "carried head again)")
    edge = prefix / "goproxy" / "sumdb" / "sumdb.rescue.test" / "tile/8/0/001.p/51"
    os.chmod(edge, 0o644)
    edge.write_bytes(tamper.flip_byte(edge.read_bytes(), 0))
    bad = row()
    assert not bad.ok and "downloaded inconsistent tile" in bad.got, bad
    assert bad.detail == (
        "go could not verify a bundled module against the checksum database data in "
        f"{prefix / 'goproxy' / 'sumdb' / 'sumdb.rescue.test'}",
        "fix: rescue verify, then rescue repair BUNDLE; or install a newer bundle of it")
