"""A project's modules in a bundle: spec, pack, inspect, and offline `go build` after install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bundler import build, spec
from bundler.blobstore import BlobStore
from bundler.gosum import parse_gosum
from installer import cli as installer_cli
from manifests.errors import SECURITY_NOTE, NotReadyError, TrustError
from manifests.modpath import escape_path, escape_version, sort_versions
from tests.support import bundles
from tests.support.goproxy_server import ProxyServer, build_zip
from tests.support.modbundles import modules_table

PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python3")
PYTHON = str(PY39 if PY39.exists() else sys.executable)
DEP = "example.com/dep"


def _modules_only_spec(work: Path, signing, goproxy: str, channel: str = "stable",
                       **kw) -> Path:
    return bundles.write_spec(work / "spec.toml", signing.key, "http://127.0.0.1:9",
                              versions="[]", channel=channel, extra=modules_table(goproxy, **kw))


def _gosum_keys(gosum: Path) -> set:
    return {(s.path, s.version) for s in parse_gosum(gosum.read_bytes()).lines}


def test_bundle_carries_every_gosum_pin_byte_for_byte_as_a_goproxy_tree(full_bundle, real,
                                                                         tmp_path):
    m = full_bundle.manifest
    assert {(x.path, x.version) for x in m.modules} == _gosum_keys(real.gosum)
    sums = {(s.path, s.version, s.kind): s.hash for s in parse_gosum(real.gosum.read_bytes()).lines}
    for x in m.modules:
        assert x.mod_hash == sums[(x.path, x.version, "mod")]
        assert x.zip_hash == sums.get((x.path, x.version, "zip"), "")
    # Stock tar opens the bundle, and goproxy/ is a GOPROXY whose zips are the upstream bytes.
    subprocess.run(["tar", "--zstd", "-xf", str(full_bundle.path), "-C", str(tmp_path),
                    "goproxy"], check=True)
    for x in m.modules:
        vdir = f"{escape_path(x.path)}/@v"
        ev = escape_version(x.version)
        assert ((tmp_path / "goproxy" / vdir / f"{ev}.mod").read_bytes()
                == (real.proxy_dir / vdir / f"{ev}.mod").read_bytes())
        if x.zip_hash:
            assert ((tmp_path / "goproxy" / vdir / f"{ev}.zip").read_bytes()
                    == (real.proxy_dir / vdir / f"{ev}.zip").read_bytes())
    for mpath in {x.path for x in m.modules}:
        listing = tmp_path / "goproxy" / escape_path(mpath) / "@v" / "list"
        assert listing.read_text() == "".join(
            v + "\n" for v in sort_versions(x.version for x in m.modules if x.path == mpath))
    assert (tmp_path / "goproxy" / "example.com" / "!upper" / "!mod" / "@v"
            / "v1.0.0-!beta.zip").is_file()
    paths = [mem.path for mem in m.members]
    assert paths.index("goproxy") < paths.index("goproxy/example.com")


def test_offline_go_builds_and_verifies_after_installing_the_bundle(full_bundle, real, pyz,
                                                                    tmp_path):
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    prefix, modcache = tmp_path / "P", tmp_path / "modcache"
    home = tmp_path / "home"
    home.mkdir()
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    done = subprocess.run(
        ["unshare", "-n", PYTHON, "-I", str(pyz), "install", str(full_bundle.path),
         "--prefix", str(prefix), "--modcache-dir", str(modcache), "--json"],
        env=base_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    carried = sorted(f"{x.path}@{x.version}" for x in full_bundle.manifest.modules)
    # Beside the carried modules, the toolchain's own module, rebuilt from its GOROOT.
    toolchain_modules = sorted(f"golang.org/toolchain@{t.module_version}"
                               for t in full_bundle.manifest.toolchains if t.module_zip_hash)
    assert result["modules_added"] == sorted(carried + toolchain_modules)
    assert sorted(result["modcache"]["written"]) == carried

    project = tmp_path / "project"
    shutil.copytree(real.project, project)
    env = {"PATH": f"{prefix / 'current' / 'bin'}:{base_env['PATH']}", "HOME": str(home),
           "GOCACHE": str(tmp_path / "gocache"), "GOMODCACHE": str(tmp_path / "fresh"),
           "GOFLAGS": "-modcacherw", "CGO_ENABLED": "0"}

    def go(*args: str, **extra: str) -> str:
        run = subprocess.run(["unshare", "-n", "go", *args], cwd=project, env=dict(env, **extra),
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"go {' '.join(args)}:\n{run.stdout}{run.stderr}"
        return run.stdout

    assert go("env", "GOPROXY").strip() == f"file://{prefix / 'goproxy'}"
    go("build", "./...")
    assert "all modules verified" in go("mod", "verify")
    # The rebuilt module cache alone: no proxy at all.
    go("build", "./...", GOPROXY="off", GOMODCACHE=str(modcache), GOFLAGS="",
       GOCACHE=str(tmp_path / "gocache2"))
    assert "all modules verified" in go("mod", "verify", GOPROXY="off",
                                        GOMODCACHE=str(modcache), GOFLAGS="")


def test_inspect_lists_the_modules_a_bundle_carries(full_bundle, signing, capsys):
    code = installer_cli.main(["inspect", str(full_bundle.path), "--trust",
                               str(signing.signers)])
    out = capsys.readouterr().out
    assert code == 0
    for x in full_bundle.manifest.modules:
        assert f"module     {x.path} {x.version}" in out
    assert installer_cli.main(["inspect", str(full_bundle.path), "--trust",
                               str(signing.signers), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {(x["path"], x["version"]) for x in doc["modules"]} == {
        (x.path, x.version) for x in full_bundle.manifest.modules}


def test_module_shared_by_two_projects_is_carried_once(real, server, signing, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(real.project, other)
    path = _modules_only_spec(tmp_path, signing, server.url,
                              projects=[real.project, other, real.project / "go.mod"])
    result = bundles.build_bundle(path, tmp_path / "out", tmp_path / "cache")
    keys = [(x.path, x.version) for x in result.manifest.modules]
    assert len(keys) == len(set(keys)) and set(keys) == _gosum_keys(real.gosum)
    zips = [mem.path for mem in result.manifest.members if mem.path.endswith(".zip")]
    assert len(zips) == len(set(zips)) == sum(1 for x in result.manifest.modules if x.zip_hash)
    assert result.manifest.toolchains == ()


def test_same_spec_and_epoch_give_a_byte_identical_modules_bundle(real, server, signing,
                                                                 tmp_path):
    path = _modules_only_spec(tmp_path, signing, server.url, projects=[real.project])
    a = bundles.build_bundle(path, tmp_path / "a", tmp_path / "cache", epoch=1_900_000_000)
    b = bundles.build_bundle(path, tmp_path / "b", tmp_path / "cache2", epoch=1_900_000_000)
    assert a.path.read_bytes() == b.path.read_bytes()


def test_build_stops_when_the_proxy_zip_differs_from_gosum(real, signing, tmp_path):
    evil = build_zip(f"{DEP}@v1.2.0/", [("fixture.go", b"package fixture // backdoor\n")])
    proxy = shutil.copytree(real.proxy_dir, tmp_path / "proxy")
    with ProxyServer(proxy) as srv:
        srv.override("/example.com/dep/@v/v1.2.0.zip", 200, evil)
        path = _modules_only_spec(tmp_path, signing, srv.url, projects=[real.project])
        with pytest.raises(TrustError) as e:
            build.build(spec.load(path), tmp_path / "out", BlobStore(tmp_path / "cache"))
    msg = str(e.value)
    assert msg.startswith(f"verifying {DEP}@v1.2.0: checksum mismatch\n\tdownloaded: h1:")
    assert f"{srv.url}/example.com/dep/@v/v1.2.0.zip" in msg and msg.endswith(SECURITY_NOTE)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("table, message", [
    ('[modules]\ngoproxy = "https://proxy.example"\n',
     "modules: nothing to carry; give projects"),
    ('[modules]\nrequire = ["example.com/dep@latest"]\n',
     "modules.require: module entry 'example.com/dep@latest'"),
    ('[modules]\nrequire = ["example.com/dep"]\n', "want module@version"),
    ('[modules]\nprojects = ["nowhere"]\n', "modules.projects: 'nowhere': no go.mod in"),
    ('[modules]\nrequire = ["example.com/dep@v1.0.0"]\ngoproxy = "direct"\n',
     'modules.goproxy: GOPROXY=direct: "direct" means fetching from version control'),
    ('[modules]\nrequire = ["example.com/dep@v1.0.0"]\ngoproxy = "off"\n',
     'modules.goproxy: GOPROXY=off: "off" disallows downloading modules'),
    ('[modules]\nrequire = ["example.com/dep@v1.0.0"]\ntransitive = "yes"\n',
     "modules.transitive must be true or false"),
    ('[modules]\nrequire = ["example.com/dep@v1.0.0"]\ngosum = "x"\n',
     "modules.gosum: unknown key; did you mean 'sumdb'? ([modules] keys: projects, require"),
    ('[modules]\nrequire = ["example.com/dep@v1.0.0"]\nsumdb = "sum.golang.org+1"\n',
     "modules.sumdb 'sum.golang.org+1': malformed verifier id; give the database's key as "
     "GOSUMDB takes it (<name>+<hex8>+<base64 key>), \"sum.golang.org\", or \"off\""),
    ('[modules]\nrequire = ["example.com/dep@v1.0.0"]\nsumdb = "off"\n'
     'sumdb_url = "https://sum.example"\n',
     'modules.sumdb_url is given but modules.sumdb = "off": remove one'),
    ('[modules]\nprojects = "app"\n', "modules.projects must be a list"),
])
def test_spec_errors_in_the_modules_table_say_what_to_fix(signing, tmp_path, table, message):
    path = bundles.write_spec(tmp_path / "spec.toml", signing.key, "http://127.0.0.1:9",
                              versions="[]", extra=table)
    with pytest.raises(NotReadyError) as e:
        spec.load(path)
    assert re.match(rf"reading spec {re.escape(str(path))}:\d+: ", str(e.value)), str(e.value)
    assert message in str(e.value)


def test_spec_project_without_gosum_says_to_run_go_mod_tidy(signing, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "go.mod").write_text("module example.com/app\n")
    path = bundles.write_spec(tmp_path / "spec.toml", signing.key, "http://127.0.0.1:9",
                              versions="[]", extra='[modules]\nprojects = ["app"]\n')
    with pytest.raises(NotReadyError, match="no go.sum in .*; run `go mod tidy` there"):
        spec.load(path)


def test_spec_with_only_modules_resolves_projects_relative_to_itself(signing, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "go.mod").write_text("module example.com/app\n")
    (app / "go.sum").write_text("")
    path = bundles.write_spec(tmp_path / "spec.toml", signing.key, "http://127.0.0.1:9",
                              versions="[]", extra='[modules]\nprojects = ["app"]\n'
                              'require = ["example.com/Upper/Mod@v1.0.0-Beta"]\n'
                              'goprivate = "corp.example"\n')
    s = spec.load(path)
    assert s.go_versions == ()
    assert s.modules is not None and s.modules.projects == (app.resolve(),)
    assert s.modules.gosum_files == (app.resolve() / "go.sum",)
    assert s.modules.goproxy == "https://proxy.golang.org" and s.modules.transitive is True
    assert s.modules.goprivate == "corp.example"


def test_failing_modcache_leaves_the_previous_current_and_no_new_version(full_bundle, real,
                                                                         server, signing,
                                                                         tmp_path):
    from installer import install as inst
    from keys import allowed_signers

    signers = allowed_signers.parse(signing.signers.read_text())
    root = tmp_path / "P"
    # A modules-only bundle first: the prefix exists but has no current toolchain.
    only = _modules_only_spec(tmp_path, signing, server.url, channel="modules",
                              projects=[real.project])
    inst.install(bundles.build_bundle(only, tmp_path / "out", tmp_path / "cache").path, root,
                 signers, "test")
    assert not (root / "current").is_symlink()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(NotReadyError) as e:
        inst.install(full_bundle.path, root, signers, "test", modcache_dir=blocker / "mod")
    assert "module cache" in str(e.value)
    # The checklist passed, then the module cache failed before the switch: the prefix still
    # has no current toolchain and no new version.
    assert not (root / "current").is_symlink()
    assert list((root / "versions").iterdir()) == []
