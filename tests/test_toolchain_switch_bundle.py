"""A bundle of go1.21.13 + go1.22.10, installed with go1.21.13 current, switches per go.mod with
the real go inside `unshare -n`, as root and as uid 65534: through P/bin/go1.22.10 after
`. env.sh`, and through the golang.org/toolchain module rebuilt into P/goproxy with
P/current/bin/go alone; the checksum database vouches for both toolchain modules."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from bundler import build
from manifests.errors import TrustError
from manifests.model import Toolchain
from tests.support import bundles, craft, gobin, modbundles, tamper, upstream
from tests.support.goproxy_server import ProxyServer, RealGoProject
from tests.support.sumdb_server import SumDB, fixture_sumdb
from tests.support.users import STOCK_PYTHON, USERS, User, chown_tree, make_user, remove_user_dirs
from tests.test_doctor_go import bring_fix

pytestmark = pytest.mark.slow

OLD, NEW = f"go{gobin.GO_VERSION}", f"go{gobin.NEWER_GO_VERSION}"
MODULE = "golang.org/toolchain"


def _archives() -> Dict[str, Path]:
    return {a.name: a for a in (gobin.godl_archive(), gobin.godl_archive(gobin.NEWER_GO_VERSION))}


def _module_hashes() -> Dict[str, Toolchain]:
    """The h1 the bundler builds for each archive's toolchain module, as the test database
    records them (tests/support/sumdb_server.fixture_sumdb)."""
    out = {}
    for version in (gobin.GO_VERSION, gobin.NEWER_GO_VERSION):
        _, zip_h1, mod_h1 = gobin.toolchain_module_hashes(version)
        out[f"go{version}"] = Toolchain(f"go{version}", "linux", "amd64", "godl", "", "", 0,
                                        zip_h1, mod_h1)
    return out


@dataclass
class Built:
    result: Optional[build.BuildResult]
    db: SumDB
    error: Optional[TrustError] = None


def _build(work: Path, signing: bundles.Signing, real: RealGoProject, db: SumDB) -> Built:
    with upstream.serve(upstream.godl_routes(_archives())) as godl, \
            db.mount(ProxyServer(real.proxy_dir)) as srv:
        spec = bundles.write_spec(
            work / "spec.toml", signing.key, godl, level=1,
            versions=f'["{gobin.GO_VERSION}", "{gobin.NEWER_GO_VERSION}"]',
            extra=modbundles.modules_table(srv.url, [real.project], sumdb=db.vkey))
        try:
            return Built(bundles.build_bundle(spec, work / "out", work / "cache"), db)
        except TrustError as exc:
            return Built(None, db, exc)


@pytest.fixture(scope="module")
def hashes() -> Dict[str, Toolchain]:
    return _module_hashes()


@pytest.fixture(scope="module")
def switch_bundle(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing,
                  real: RealGoProject, hashes: Dict[str, Toolchain]) -> Built:
    db = fixture_sumdb(real.mods)  # it records both toolchain modules
    started = time.monotonic()
    built = _build(tmp_path_factory.mktemp("switch"), signing, real, db)
    assert built.error is None, built.error
    print(f"\nbuild of {OLD} + {NEW} + modules: {time.monotonic() - started:.1f}s, "
          f"{built.result.path.stat().st_size / 1e6:.1f} MB")  # type: ignore[union-attr]
    return built


def test_manifest_records_both_origins_and_the_database_vouches_for_each_toolchain_module(
        switch_bundle: Built, hashes: Dict[str, Toolchain], pyz: Path,
        signing: bundles.Signing) -> None:
    assert switch_bundle.result is not None
    done = subprocess.run([STOCK_PYTHON, "-I", str(pyz), "inspect",
                           str(switch_bundle.result.path), "--trust", str(signing.signers),
                           "--json"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    for t in doc["toolchains"]:
        want = hashes[t["version"]]
        assert t["url"].endswith(f"/dl/{t['id']}.tar.gz") and len(t["sha256"]) == 64
        assert t["module"] == f"{MODULE}@v0.0.1-{t['id']}"
        assert (t["module_zip_hash"], t["module_mod_hash"]) == (want.module_zip_hash,
                                                                want.module_mod_hash)
        assert t["module_vouched_by"] == switch_bundle.db.name
    # No zip is carried: only the database's two lookups (bytes, not megabytes).
    members = [m for m in _manifest_members(switch_bundle.result.path)
               if "golang.org/toolchain" in m]
    assert sorted(members) == sorted(
        f"goproxy/sumdb/{switch_bundle.db.name}/lookup/golang.org/toolchain@v0.0.1-{v}"
        f".linux-amd64" for v in (OLD, NEW))


def _manifest_members(bundle: Path) -> List[str]:
    doc = json.loads(tamper.header(bundle)["manifest.json"])
    return [m["path"] for m in doc["members"]]


def test_build_stops_when_the_database_and_the_go_dev_archive_disagree_on_a_toolchain(
        tmp_path: Path, signing: bundles.Signing, real: RealGoProject,
        hashes: Dict[str, Toolchain]) -> None:
    db = SumDB()  # fixture_sumdb's records, but the database says another h1 for go1.22.10
    for mod in real.mods:
        db.add_module(mod)
    wrong = "h1:" + "B" * 43 + "="
    old, new = hashes[OLD], hashes[NEW]
    db.add(MODULE, old.module_version, old.module_zip_hash, old.module_mod_hash)
    db.add(MODULE, new.module_version, wrong, new.module_mod_hash)
    built = _build(tmp_path, signing, real, db)
    assert built.result is None and built.error is not None
    archive = f"{NEW}.linux-amd64.tar.gz"
    digest = hashlib.sha256(gobin.godl_archive(gobin.NEWER_GO_VERSION).read_bytes()).hexdigest()
    text = str(built.error)
    assert text.startswith(
        f"verifying {MODULE}@{new.module_version}: checksum mismatch\n"
        f"\tmodule built from the go.dev archive ")
    assert f"/dl/{archive} (sha256 {digest}): {new.module_zip_hash}\n" in text
    assert f"\t{db.name}: {wrong}\n" in text


def _project(user: User, name: str, gomod: str) -> Path:
    proj = user.work / name
    proj.mkdir()
    (proj / "go.mod").write_text(f"module example.com/{name}\n\n{gomod}\n")
    (proj / "main.go").write_text('package main\n\nimport (\n\t"fmt"\n\t"runtime"\n)\n\n'
                                  'func main() { fmt.Println("built by", runtime.Version()) }\n')
    chown_tree(proj, user.uid)
    return proj


def _fresh(user: User, tag: str, path: str = "/usr/bin:/bin") -> Dict[str, str]:
    # A fresh GOPATH (so GOMODCACHE) per run; one GOCACHE per user keeps the builds quick.
    return user.env(PATH=path, GOPATH=str(user.work / f"gopath-{tag}"),
                    GOCACHE=str(user.work / "gocache"), CGO_ENABLED="0")


@dataclass
class Installed:
    user: User
    rescue: List[str]
    prefix: Path


@pytest.fixture(scope="module", params=USERS)
def installed(request: pytest.FixtureRequest, pyz: Path, switch_bundle: Built
              ) -> Iterator[Installed]:
    """The bundle installed once per user (root, uid 65534), go1.21.13 current."""
    assert switch_bundle.result is not None
    user = make_user(request.param)
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    P = user.work / "P"
    bundle = user.give(switch_bundle.result.path)
    started = time.monotonic()
    done = user.run([*rescue, "install", str(bundle), "--prefix", str(P), "--use",
                     gobin.GO_VERSION, "--json"], offline=True)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    print(f"\ninstall as {user.name}: {time.monotonic() - started:.1f}s; toolchain modules "
          f"rebuilt: {doc['toolchain_modules']}")
    assert doc["current"] == f"{OLD}.linux-amd64"
    assert [m["module"] for m in doc["toolchain_modules"]] == [
        f"{MODULE}@v0.0.1-{v}.linux-amd64" for v in (OLD, NEW)]
    yield Installed(user, rescue, P)
    remove_user_dirs(user)


@pytest.mark.parametrize("gomod", ["go 1.22.10", "go 1.21\n\ntoolchain go1.22.10"],
                         ids=["go-line", "toolchain-line"])
def test_project_needing_the_bundled_newer_go_builds_offline_as_every_user(
        installed: Installed, gomod: str) -> None:
    user, P = installed.user, installed.prefix
    tag = "go" if gomod.startswith("go 1.22") else "tc"
    proj = _project(user, f"app-{tag}", gomod)
    # 1. `. env.sh`: P/bin/go1.22.10 is on PATH after P/current/bin; go finds it first and
    # runs the installed GOROOT (its wired go.env), downloading nothing.
    script = ('. "$1" && go version && go env GOROOT GOPROXY GOTOOLCHAIN && '
              'go build -o "$2" . && "$2"')
    done = user.run(["sh", "-c", script, "sh", str(P / "env.sh"), str(user.work / f"a-{tag}")],
                    offline=True, env=_fresh(user, f"a-{tag}"), cwd=proj)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"go version {NEW} linux/amd64", str(P / f"versions/{NEW}.linux-amd64"),
        f"file://{P}/goproxy", "auto", f"built by {NEW}"]
    assert done.stderr == ""
    # 2. P/current/bin/go alone, a fresh module cache, no P/bin on PATH: the switch downloads
    # golang.org/toolchain from P/goproxy and checks it with the carried checksum database.
    go = str(P / "current/bin/go")
    env = _fresh(user, f"b-{tag}")
    done = user.run([go, "version"], offline=True, env=env, cwd=proj)
    assert done.stdout == f"go version {NEW} linux/amd64\n", done.stderr
    assert done.stderr == f"go: downloading {NEW} (linux/amd64)\n"
    done = user.run([go, "build", "-o", str(user.work / f"b-{tag}"), "."], offline=True,
                    env=env, cwd=proj)
    assert done.returncode == 0, done.stderr
    ran = user.run([str(user.work / f"b-{tag}")], offline=True)
    assert ran.stdout == f"built by {NEW}\n"


def _doctor_need(installed: Installed, proj: Path, env: Dict[str, str]) -> Dict[str, str]:
    """doctor's one go-version-needed finding for `proj` (an error: exit 4)."""
    done = installed.user.run([*installed.rescue, "doctor", "--prefix", str(installed.prefix),
                               "--project", str(proj), "--json"], offline=True, env=env)
    assert done.returncode == 4, done.stdout + done.stderr
    [need] = [f for f in json.loads(done.stdout)["findings"]
              if f["check"] == "go-version-needed"]
    return need  # type: ignore[no-any-return]


def test_project_needing_a_go_no_bundle_carries_fails_and_doctor_names_it(
        installed: Installed) -> None:
    user, P = installed.user, installed.prefix
    proj = _project(user, "future", "go 1.23.0")
    path = f"{P}/current/bin:{P}/bin:/usr/bin:/bin"
    done = user.run(["sh", "-c", '. "$1" && go version', "sh", str(P / "env.sh")],
                    offline=True, env=_fresh(user, "c"), cwd=proj)
    assert done.returncode == 1
    assert done.stderr.endswith(
        "go: download go1.23.0 for linux/amd64: toolchain not available\n"), done.stderr
    need = _doctor_need(installed, proj, _fresh(user, "c", path))
    assert need["message"] == (
        "go.mod asks for go1.23.0, so GOTOOLCHAIN=auto makes go switch to it, but no go1.23.0 "
        "is on PATH; offline, go stops with: download go1.23.0 for linux/amd64: toolchain not "
        f"available; no installed toolchain is go 1.23.0 or newer (installed: {OLD}, {NEW})")
    assert need["fix"] == bring_fix("go1.23.0", P, " for linux-amd64")


def test_a_bundle_choosing_local_stops_every_switch_and_doctor_says_what_serves(
        installed: Installed, signing: bundles.Signing, tmp_path: Path) -> None:
    user, rescue, P = installed.user, installed.rescue, installed.prefix
    proj = _project(user, "pinned", "go 1.22.10")
    path = f"{P}/current/bin:{P}/bin:/usr/bin:/bin"
    for seq, choice in ((1, "local"), (2, "auto")):
        c = craft.Craft(name="policy", channel="policy", sequence=seq)
        c.dir("goproxy")
        doc = c.doc()
        doc["gotoolchain"] = choice
        bundle = user.give(c.write(tmp_path / f"choice-{seq}.tar.zst", signing.key, doc=doc))
        done = user.run([*rescue, "install", str(bundle), "--prefix", str(P)], offline=True)
        assert done.returncode == 0, done.stdout + done.stderr
        if choice == "auto":
            break
        # Go's own words, from the wired go.env and from env.sh: no switch, no download.
        want = ("go: go.mod requires go >= 1.22.10 (running go 1.21.13; GOTOOLCHAIN=local)\n")
        done = user.run([str(P / "current/bin/go"), "build", "."], offline=True,
                        env=_fresh(user, "d"), cwd=proj)
        assert (done.returncode, done.stderr) == (1, want)
        done = user.run(["sh", "-c", '. "$1" && go env GOTOOLCHAIN && go build .', "sh",
                         str(P / "env.sh")], offline=True, env=_fresh(user, "d"), cwd=proj)
        assert (done.returncode, done.stdout, done.stderr) == (1, "local\n", want)
        # go1.22.10 itself still serves, from P/bin.
        done = user.run([str(P / f"bin/{NEW}"), "build", "-o", str(user.work / "d"), "."],
                        offline=True, env=_fresh(user, "d"), cwd=proj)
        assert done.returncode == 0, done.stderr
        need = _doctor_need(installed, proj, _fresh(user, "d", path))
        assert need["message"] == (
            "go.mod requires go >= 1.22.10 (running go 1.21.13; GOTOOLCHAIN=local): the "
            "project's `go 1.22.10` line asks for a newer go than go1.21.13, and "
            f"GOTOOLCHAIN=local keeps go from switching; installed here and new enough: {NEW}")
        assert need["fix"] == (
            f"make it current: python3 rescue.pyz use {NEW} --prefix {P}; or run {NEW} itself "
            f"(in P/bin, on PATH after . {P}/env.sh); this prefix keeps GOTOOLCHAIN=local (its "
            "bundle's spec chose toolchains.gotoolchain = \"local\"), so go never switches by "
            "itself")
    # auto again: the next test (or user) finds the prefix switching as before.
    done = user.run([str(P / "current/bin/go"), "env", "GOTOOLCHAIN"], offline=True,
                    env=_fresh(user, "d"))
    assert done.stdout == "auto\n"
