"""GOPROXY configuration: Go's list syntax, what rescue refuses in it, where settings come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.goproxy_config import ProxyConfig, ProxyEntry, parse_goproxy
from manifests.errors import NotReadyError


def test_goproxy_list_separators_set_fall_through_as_go_does():
    assert parse_goproxy("https://a.example, b.example/x |http://c.example/") == [
        ProxyEntry("https://a.example", False),
        ProxyEntry("https://b.example/x", True),
        ProxyEntry("http://c.example", False),
    ]
    assert parse_goproxy("file:///srv/goproxy") == [ProxyEntry("file:///srv/goproxy", False)]


@pytest.mark.parametrize("value", ["direct", "https://proxy.golang.org,direct"])
def test_goproxy_direct_is_refused_because_rescue_has_no_vcs_access(value):
    with pytest.raises(NotReadyError) as e:
        parse_goproxy(value)
    assert str(e.value) == (
        f'GOPROXY={value}: "direct" means fetching from version control; rescue carries '
        "modules only from proxies (no VCS access), so it cannot fetch from version control. "
        "Set GOPROXY to proxies only, e.g. GOPROXY=https://proxy.golang.org")


def test_goproxy_off_is_refused_with_what_to_set_instead():
    with pytest.raises(NotReadyError) as e:
        parse_goproxy("off")
    assert str(e.value) == ('GOPROXY=off: "off" disallows downloading modules; rescue needs at '
                            "least one proxy URL. Set GOPROXY to proxies only, e.g. "
                            "GOPROXY=https://proxy.golang.org")


@pytest.mark.parametrize("value,message", [
    ("ftp://x.example", "invalid proxy URL scheme (must be https, http, file): ftp://x.example"),
    ("file://host/share", "invalid file:// proxy URL with non-path elements: file://host/share"),
    (" , |", "GOPROXY=' , |': the list contains no proxy URLs"),
    ("noscheme", "invalid proxy URL missing scheme: noscheme"),
])
def test_malformed_goproxy_entries_are_refused(value, message):
    with pytest.raises(NotReadyError) as e:
        parse_goproxy(value)
    assert str(e.value) == message


def test_gonoproxy_defaults_to_goprivate_as_in_cmd_go():
    config = ProxyConfig.from_env({"GOPRIVATE": "example.com", "HOME": "/home/u"})
    assert (config.goproxy, config.noproxy_var, config.noproxy) == (
        "https://proxy.golang.org", "GOPRIVATE", "example.com")
    assert config.netrc_file == Path("/home/u/.netrc")
    config = ProxyConfig.from_env({"GOPRIVATE": "example.com", "GONOPROXY": "none",
                                   "NETRC": "/etc/netrc"})
    assert (config.noproxy_var, config.noproxy) == ("GONOPROXY", "none")
    assert config.netrc_file == Path("/etc/netrc")
