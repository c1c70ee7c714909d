"""The GOPROXY client: list fall-through, private patterns, .netrc, retries and bounds."""

from __future__ import annotations

import dataclasses
import json
import socket

import httpx
import pytest

from bundler.goproxy import GoProxy
from bundler.goproxy_config import ProxyConfig
from bundler.retry import RetryPolicy
from manifests.dirhash import hash_zip
from manifests.errors import NotReadyError, TrustError
from manifests.limits import DEFAULT_LIMITS
from manifests.modpath import match_prefix_patterns
from tests.support.goproxy_server import ProxyServer, fixture_modules, write_modules

DEP_ZIP = "/example.com/dep/@v/v1.2.0.zip"


@pytest.fixture()
def proxy_dir(tmp_path):
    return write_modules(tmp_path / "proxy", fixture_modules())


@pytest.fixture()
def client():
    with httpx.Client(timeout=10) as c:
        yield c


NO_WAIT = RetryPolicy(tries=3, backoff=0)


def _proxy(client, goproxy, limits=DEFAULT_LIMITS, **config):
    return GoProxy(client, ProxyConfig.parse(goproxy, **config), limits=limits, retry=NO_WAIT)


@pytest.mark.parametrize("globs,target,match", [
    ("*.corp.example.com,rsc.io/private", "git.corp.example.com/x/y", True),
    ("*.corp.example.com,rsc.io/private", "rsc.io/private/quux", True),
    ("*.corp.example.com,rsc.io/private", "rsc.io/public", False),
    ("*.corp.example.com", "corp.example.com/x", False),
    ("example.com/*/secret", "example.com/team/secret/v2", True),
    ("example.com/*/secret", "example.com/team", False),
    ("example.com/", "example.com/x", True),  # trailing slash ignored
    ("exam[a-z]le.com", "example.com/x", True),
    ("exam[^a-z]le.com", "example.com/x", False),
])
def test_private_patterns_use_gos_glob_prefix_matching(globs, target, match):
    assert match_prefix_patterns(globs, target) is match


def test_private_module_is_refused_naming_the_pattern(client):
    proxy = _proxy(client, "https://proxy.example", goprivate="*.corp.example.com")
    with pytest.raises(NotReadyError) as e:
        proxy.mod("git.corp.example.com/team/x", "v1.0.0")
    assert str(e.value) == (
        "downloading git.corp.example.com/team/x@v1.0.0 .mod: git.corp.example.com/team/x "
        "matches GOPRIVATE pattern '*.corp.example.com', which Go fetches directly from version "
        "control; rescue carries modules only from proxies (no VCS access), so it cannot fetch "
        "from version control. Serve it from a proxy in GOPROXY and set GONOPROXY=none "
        "(GOPRIVATE may stay, for checksum privacy), or leave it out of the bundle.")


def test_gonoproxy_none_lets_a_private_module_come_from_the_proxy(client, proxy_dir):
    with ProxyServer(proxy_dir) as srv:
        proxy = _proxy(client, srv.url, goprivate="example.com", gonoproxy="none")
        assert proxy.mod("example.com/dep", "v1.2.0").startswith(b"module example.com/dep")


def test_fetches_escaped_urls_and_streams_the_zip(client, proxy_dir, tmp_path):
    with ProxyServer(proxy_dir) as srv:
        proxy = _proxy(client, srv.url)
        v = "v1.0.0-Beta"
        assert json.loads(proxy.info("example.com/Upper/Mod", v))["Version"] == v
        assert proxy.mod("example.com/Upper/Mod", v) == b"module example.com/Upper/Mod\n\ngo 1.21\n"
        dest = tmp_path / "out" / "m.zip"
        url = proxy.zip_to("example.com/Upper/Mod", v, dest)
        assert proxy.list("example.com/dep") == ["v1.0.0", "v1.2.0"]
    assert url == f"{srv.url}/example.com/!upper/!mod/@v/v1.0.0-!beta.zip"
    assert srv.requests[:3] == ["/example.com/!upper/!mod/@v/v1.0.0-!beta.info",
                                "/example.com/!upper/!mod/@v/v1.0.0-!beta.mod",
                                "/example.com/!upper/!mod/@v/v1.0.0-!beta.zip"]
    assert hash_zip(dest) == hash_zip(proxy_dir / "example.com/!upper/!mod/@v/v1.0.0-!beta.zip")
    assert [p.name for p in dest.parent.iterdir()] == ["m.zip"]  # no temp file left behind


def test_404_on_every_proxy_names_module_version_and_each_url(client, tmp_path):
    with ProxyServer(tmp_path) as a, ProxyServer(tmp_path) as b:
        b.override("/example.com/gone/@v/v1.0.0.zip", 410, b"gone")
        proxy = _proxy(client, f"{a.url},{b.url}")
        with pytest.raises(NotReadyError) as e:
            proxy.zip_to("example.com/gone", "v1.0.0", tmp_path / "z.zip")
    assert str(e.value) == (
        f"downloading example.com/gone@v1.0.0 .zip: not found on any proxy in "
        f"GOPROXY={a.url},{b.url}:\n"
        f"\t{a.url}/example.com/gone/@v/v1.0.0.zip: 404 Not Found\n"
        f"\t{b.url}/example.com/gone/@v/v1.0.0.zip: 410 Gone")


def test_comma_stops_on_a_server_error_but_pipe_falls_through(client, proxy_dir):
    with ProxyServer(proxy_dir) as broken, ProxyServer(proxy_dir) as good:
        broken.override("/example.com/dep/@v/v1.2.0.mod", 500, b"boom")
        with pytest.raises(NotReadyError) as e:
            _proxy(client, f"{broken.url},{good.url}").mod("example.com/dep", "v1.2.0")
        assert str(e.value) == (
            "downloading example.com/dep@v1.2.0 .mod: 500 Internal Server Error (tried 3 times) "
            f"(GOPROXY={broken.url},{good.url}):\n"
            f"\t{broken.url}/example.com/dep/@v/v1.2.0.mod: 500 Internal Server Error "
            "(tried 3 times)")
        assert good.requests == []
        data = _proxy(client, f"{broken.url}|{good.url}").mod("example.com/dep", "v1.2.0")
        assert data.startswith(b"module example.com/dep")
        assert good.requests == ["/example.com/dep/@v/v1.2.0.mod"]


def test_server_errors_are_retried_with_backoff(client, proxy_dir):
    sleeps = []
    with ProxyServer(proxy_dir) as srv:
        srv.override("/example.com/dep/@v/v1.2.0.mod", 503, b"busy", times=2)
        retry = RetryPolicy(tries=3, backoff=0.25, sleep=sleeps.append)
        proxy = GoProxy(client, ProxyConfig.parse(srv.url), retry=retry)
        assert proxy.mod("example.com/dep", "v1.2.0").startswith(b"module")
    assert sleeps == [0.25, 0.5]
    assert len(srv.requests) == 3


def test_unreachable_proxy_names_the_url_after_bounded_tries(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    proxy = _proxy(client, f"http://127.0.0.1:{port}")
    with pytest.raises(NotReadyError) as e:
        proxy.info("example.com/dep", "v1.2.0")
    msg = str(e.value)
    assert msg.startswith("downloading example.com/dep@v1.2.0 .info: ConnectError")
    assert f"\n\thttp://127.0.0.1:{port}/example.com/dep/@v/v1.2.0.info: ConnectError" in msg
    assert msg.endswith("(tried 3 times)")


def test_netrc_credentials_reach_a_proxy_that_requires_them(client, proxy_dir, tmp_path):
    with ProxyServer(proxy_dir, auth=("alice", "s3cret")) as srv:
        with pytest.raises(NotReadyError) as e:
            _proxy(client, srv.url).mod("example.com/dep", "v1.2.0")
        assert str(e.value).endswith(
            "/example.com/dep/@v/v1.2.0.mod: 401 Unauthorized (no credentials for 127.0.0.1 in "
            ".netrc)")
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
        config = ProxyConfig.from_env({"GOPROXY": srv.url, "NETRC": str(netrc)})
        proxy = GoProxy(client, config, retry=NO_WAIT)
        assert proxy.mod("example.com/dep", "v1.2.0").startswith(b"module example.com/dep")
        netrc.write_text("machine 127.0.0.1 login alice password wrong\n")
        with pytest.raises(NotReadyError, match=f"401 Unauthorized \\(the credentials for "
                                                f"127.0.0.1 in {netrc}\\)"):
            GoProxy(client, config).mod("example.com/dep", "v1.2.0")


def test_oversized_zip_is_refused_while_streaming(client, proxy_dir, tmp_path):
    limits = dataclasses.replace(DEFAULT_LIMITS, module_zip_bytes=100)
    with ProxyServer(proxy_dir) as srv:
        proxy = _proxy(client, srv.url, limits=limits)
        with pytest.raises(TrustError) as e:
            proxy.zip_to("example.com/dep", "v1.2.0", tmp_path / "z.zip")
    assert str(e.value) == (f"downloading example.com/dep@v1.2.0 .zip: {srv.url}{DEP_ZIP}: "
                            "response larger than the limit of 100 bytes")
    assert list(tmp_path.glob("*zip*")) == []


def test_info_for_another_version_is_refused(client, proxy_dir):
    with ProxyServer(proxy_dir) as srv:
        srv.override("/example.com/dep/@v/v1.2.0.info", 200, b'{"Version":"v9.9.9"}')
        with pytest.raises(TrustError) as e:
            _proxy(client, srv.url).info("example.com/dep", "v1.2.0")
    assert str(e.value) == (f"example.com/dep@v1.2.0: {srv.url}/example.com/dep/@v/v1.2.0.info: "
                            "proxy returned info for version 'v9.9.9' instead of the requested "
                            "version")


def test_file_proxy_serves_a_directory_and_missing_files_count_as_404(client, proxy_dir):
    proxy = _proxy(client, f"file://{proxy_dir}")
    assert proxy.mod("example.com/dep", "v1.0.0").startswith(b"module example.com/dep")
    with pytest.raises(NotReadyError, match="not found on any proxy"):
        proxy.mod("example.com/dep", "v7.0.0")


def test_invalid_module_path_is_refused_before_any_request(client):
    with pytest.raises(NotReadyError) as e:
        _proxy(client, "https://proxy.example").mod("example.com/../x", "v1.0.0")
    assert str(e.value) == ('downloading example.com/../x@v1.0.0 .mod: malformed module path '
                            '"example.com/../x": invalid path element ".."')
