"""`rescue build` proves a bundle complete: each project builds offline from the bundle alone."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from bundler import build, rehearsal, spec
from bundler import cli as bundler_cli
from bundler.blobstore import BlobStore
from manifests.errors import NotReadyError
from tests.support import bundles
from tests.support.goproxy_server import ProxyServer
from tests.support.modbundles import modules_table


def _spec(work: Path, signing, godl_url: str, proxy: str, projects: list[Path],
          versions: str = '["1.21.13"]') -> Path:
    return bundles.write_spec(work / "spec.toml", signing.key, godl_url, level=1,
                              versions=versions, extra=modules_table(proxy, projects))


def test_rehearsal_builds_lists_and_verifies_each_project_from_the_bundle(real, signing,
                                                                        godl_url, tmp_path,
                                                                        capsys):
    with ProxyServer(real.proxy_dir) as srv:
        path = _spec(tmp_path, signing, godl_url, srv.url, [real.project])
        code = bundler_cli.main(["build", str(path), "-o", str(tmp_path / "out"), "--cache",
                                 str(tmp_path / "cache"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    r = doc["rehearsal"]
    assert r["ran"] and r["toolchain"] == "go1.21.13.linux-amd64"
    assert [p["project"] for p in r["projects"]] == [str(real.project)]
    assert r["isolated"] == (rehearsal.probe_unshare() == "")
    assert r["isolated"] or r["note"].startswith("WITHOUT network isolation: ")
    print(f"rehearsal took {r['seconds']}s")  # measured for the report (pytest -s)
    # The project was only read: -o /dev/null, -mod=readonly.
    assert sorted(p.name for p in real.project.iterdir()) == ["go.mod", "go.sum", "main.go"]
    name = Path(doc["bundle"]).name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        name, name + ".cdx.json", name + ".sha256", name + ".spdx.json"]


def test_build_names_the_module_and_project_when_the_proxy_lacks_a_gosum_pin(real, signing,
                                                                            tmp_path, capsys):
    """A go.sum pin the spec's proxy does not have: no bundle, exit 2, module and project."""
    project = shutil.copytree(real.project, tmp_path / "svc")
    gosum = project / "go.sum"
    proxy = shutil.copytree(real.proxy_dir, tmp_path / "proxy")
    shutil.rmtree(proxy / "example.com" / "pseudo")  # the proxy lost it
    with ProxyServer(proxy) as srv:
        path = _spec(tmp_path, signing, "http://127.0.0.1:9", srv.url, [project], versions="[]")
        with pytest.raises(NotReadyError) as e:
            build.build(spec.load(path), tmp_path / "out", BlobStore(tmp_path / "cache"))
        v = "v0.0.0-20240101000000-abcdefabcdef"
        msg = str(e.value)
        # Files download concurrently: whichever of .info/.mod/.zip failed first is named.
        ext = re.match(rf"downloading example.com/pseudo@{v} (\.\w+): ", msg).group(1)
        pinned = f"example.com/pseudo {v}" + ("/go.mod h1:" if ext == ".mod" else " h1:")
        lineno = next(i for i, line in enumerate(gosum.read_text().splitlines(), 1)
                      if line.startswith(pinned))
        assert msg == (
            f"downloading example.com/pseudo@{v} {ext}: not found on any proxy in "
            f"GOPROXY={srv.url}:\n\t{srv.url}/example.com/pseudo/@v/{v}{ext}: 404 Not Found\n"
            f"\tneeded by project {project} (go.sum line {gosum}:{lineno}); "
            "the bundle cannot carry it")
        assert bundler_cli.main(["build", str(path), "-o", str(tmp_path / "out"), "--cache",
                                 str(tmp_path / "cache")]) == 2
    assert "example.com/pseudo" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_rehearsal_refuses_a_bundle_that_cannot_build_a_project(real, signing, godl_url,
                                                                tmp_path, capsys):
    """go.sum pins dep only by its go.mod: the bundle has no dep zip, so the build fails."""
    project = shutil.copytree(real.project, tmp_path / "svc")
    gosum = project / "go.sum"
    gosum.write_text("".join(line + "\n" for line in gosum.read_text().splitlines()
                             if not line.startswith("example.com/dep v1.2.0 h1:")))
    with ProxyServer(real.proxy_dir) as srv:
        path = _spec(tmp_path, signing, godl_url, srv.url, [project])
        with pytest.raises(NotReadyError) as e:
            build.build(spec.load(path), tmp_path / "out", BlobStore(tmp_path / "cache"))
    msg = str(e.value)
    print(msg)  # the real message, for the report (pytest -s)
    assert msg.startswith(f"rehearsing {project} offline with go1.21.13 linux/amd64: "
                          "`go build ./...` failed: the bundle's toolchain and modules cannot "
                          "build this project:\n\t")
    assert ("missing go.sum entry for module providing package example.com/dep "
            "(imported by example.com/project)") in msg
    assert "No bundle was written." in msg and "--no-rehearsal" in msg
    assert list((tmp_path / "out").iterdir()) == []
    # --no-rehearsal writes it anyway, and says the check was skipped.
    code = bundler_cli.main(["build", str(path), "-o", str(tmp_path / "out"), "--cache",
                             str(tmp_path / "cache"), "--no-rehearsal"])
    assert code == 0
    assert "rehearsal skipped: --no-rehearsal" in capsys.readouterr().out


@pytest.fixture(scope="module")
def graph_unrehearsed(graph, signing, godl_url, tmp_path_factory) -> build.BuildResult:
    """Go 1.21.13 and the `graph` project's modules, built with --no-rehearsal."""
    work = tmp_path_factory.mktemp("unrehearsed")
    with ProxyServer(graph.proxy_dir) as srv:
        path = _spec(work, signing, godl_url, srv.url, [graph.project])
        return build.build(spec.load(path), work / "out", BlobStore(work / "cache"),
                           rehearse=False)


def test_rehearsal_names_the_module_whose_file_the_bundle_lacks(graph, graph_unrehearsed):
    """A build-list module's file missing from the bundle: go's words, module and project."""
    result = graph_unrehearsed
    assert result.rehearsal.skipped == "--no-rehearsal"
    # Rehearse as if the bundle had not carried leaf's .info (the pruned edge of the graph).
    gone = "goproxy/example.com/leaf/@v/v1.1.0.info"
    lacking = dataclasses.replace(result.manifest, members=tuple(
        m for m in result.manifest.members if m.path != gone), _index={})
    with pytest.raises(NotReadyError) as e:
        rehearsal.rehearse(result.path, lacking, [graph.project])
    msg = str(e.value)
    print(msg)  # the real message, for the report (pytest -s)
    assert msg.startswith(f"rehearsing {graph.project} offline with go1.21.13 linux/amd64: "
                          "`go list -m all` failed: the bundle lacks example.com/leaf@v1.1.0:\n"
                          "\tgo: example.com/leaf@v1.1.0: reading file:///")
    assert msg.split("\n")[1].endswith("/goproxy/example.com/leaf/@v/v1.1.0.info: no such file "
                                        "or directory")



def test_rehearsal_without_unshare_runs_and_says_it_was_not_isolated(graph, graph_unrehearsed,
                                                                     tmp_path, monkeypatch):
    result = graph_unrehearsed
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no unshare (and no C compiler)
    rehearsal.probe_unshare.cache_clear()
    try:
        report = rehearsal.rehearse(result.path, result.manifest, [graph.project])
    finally:
        rehearsal.probe_unshare.cache_clear()
    assert not report.isolated
    assert report.note.startswith("WITHOUT network isolation: unshare -rn is not available (")
    assert report.summary().startswith(
        "rehearsal passed: 1 project(s) built, listed and verified with go1.21.13.linux-amd64 "
        "and only the bundle's modules, WITHOUT network isolation: unshare -rn is not available")


def test_rehearsal_is_skipped_without_a_toolchain_for_this_host(real, server_url, signing,
                                                                tmp_path):
    path = _spec(tmp_path, signing, "http://127.0.0.1:9", server_url, [real.project],
                 versions="[]")
    result = build.build(spec.load(path), tmp_path / "out", BlobStore(tmp_path / "cache"))
    assert result.rehearsal.skipped == (
        f"the bundle carries no toolchain for this host ({rehearsal.host_target()}; it "
        "carries: none), so nothing here can build with it")
    assert result.rehearsal.summary().startswith("rehearsal skipped: ")
    assert result.path.is_file()


@pytest.fixture()
def server_url(real):
    with ProxyServer(real.proxy_dir) as srv:
        yield srv.url
