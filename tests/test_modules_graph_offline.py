"""Issue 6 item 4: `go list -m all` and friends work offline for graph-only modules."""

from __future__ import annotations

import json

import pytest

from bundler.gosum import parse_gosum
from tests.support import bundles
from tests.support.goproxy_server import ProxyServer
from tests.support.modbundles import modules_table
from tests.support.users import STOCK_PYTHON

GO_COMMANDS = [("list", "-m", "all"), ("list", "-m", "-json", "all"), ("mod", "graph"),
               ("build", "./..."), ("mod", "verify")]


@pytest.fixture(scope="module")
def graph_bundle(tmp_path_factory, signing, godl_url, graph):
    work = tmp_path_factory.mktemp("graphbundle")
    with ProxyServer(graph.proxy_dir) as srv:
        path = bundles.write_spec(work / "spec.toml", signing.key, godl_url, level=3,
                                  extra=modules_table(srv.url, [graph.project]))
        return bundles.build_bundle(path, work / "out", work / "cache")


def test_bundle_carries_info_for_every_module_of_the_build_list(graph_bundle, graph):
    carried = {(x.path, x.version): x for x in graph_bundle.manifest.modules}
    lines = parse_gosum(graph.gosum.read_bytes()).lines
    graph_only = {(x.path, x.version) for x in lines} - {
        (x.path, x.version) for x in lines if x.kind == "zip"}
    assert graph_only == {("example.com/graphonly/v2", "v2.0.3"), ("example.com/edge", "v1.0.0")}
    # The pruned edge: in the build list, in no go.sum line; carried by its .info alone.
    assert carried[("example.com/leaf", "v1.1.0")].mod_hash == ""
    assert ("example.com/leaf", "v1.0.0") not in carried
    members = {m.path for m in graph_bundle.manifest.members}
    for m, v in graph_only | {("example.com/leaf", "v1.1.0")}:
        assert f"goproxy/{m}/@v/{v}.info" in members
    assert "goproxy/example.com/leaf/@v/v1.1.0.mod" not in members
    assert "goproxy/example.com/leaf/@v/list" not in members  # no version go could load


def test_go_list_graph_build_verify_offline_with_graph_only_modules(graph_bundle, graph, pyz,
                                                                     user):
    """gopls, linters and license scanners run `go list -m all`; it must work offline, for
    root and for an unprivileged user alike."""
    prefix, modcache = user.home / "P", user.home / "modcache"
    done = user.run([STOCK_PYTHON, "-I", str(user.give(pyz)), "install",
                     str(user.give(graph_bundle.path)), "--prefix", str(prefix),
                     "--modcache-dir", str(modcache), "--json"], offline=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    project = user.give(graph.project)
    env = user.env(PATH=f"{prefix / 'current' / 'bin'}:/usr/bin:/bin",
                   GOCACHE=str(user.home / "gocache"), GOFLAGS="-modcacherw", CGO_ENABLED="0")
    with_proxy = dict(env, GOMODCACHE=str(user.home / "fresh"))
    cache_only = dict(env, GOMODCACHE=str(modcache), GOPROXY="off", GOFLAGS="")

    def go(args: tuple[str, ...], env: dict[str, str]) -> str:
        run = user.run(["go", *args], cwd=project, env=env, offline=True)
        assert run.returncode == 0, f"go {' '.join(args)}:\n{run.stdout}{run.stderr}"
        return run.stdout

    want = {"example.com/edge v1.0.0", "example.com/graphonly/v2 v2.0.3",
            "example.com/leaf v1.1.0", "example.com/pruned v1.0.0", "example.com/tool v1.0.0"}
    for label, e in (("GOPROXY=file://P/goproxy", with_proxy), ("GOPROXY=off", cache_only)):
        out = {args: go(args, e) for args in GO_COMMANDS}
        assert set(out[("list", "-m", "all")].splitlines()[1:]) == want, label
        listed = json.loads("[" + out[("list", "-m", "-json", "all")].replace("}\n{", "},{")
                            + "]")
        assert all(x.get("Time") == "2024-01-01T00:00:00Z" for x in listed[1:]), label
        assert ("example.com/tool@v1.0.0 example.com/graphonly/v2@v2.0.3"
                in out[("mod", "graph")]), label
        assert "all modules verified" in out[("mod", "verify")], label
