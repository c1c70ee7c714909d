"""Resolving, fetching and verifying module files: go.sum pins, explicit entries, MVS, the cache."""

from __future__ import annotations

import io
import shutil
import zipfile

import httpx
import pytest

from bundler.goproxy import GoProxy
from bundler.goproxy_config import ProxyConfig
from bundler.gosum import parse_gosum
from bundler.modules import FetchedModule, resolve_and_fetch
from bundler.retry import RetryPolicy
from manifests.dirhash import hash_gomod, hash_zip
from manifests.errors import SECURITY_NOTE, NotReadyError, TrustError
from tests.support.goproxy_server import (
    FixtureModule,
    ProxyServer,
    build_zip,
    write_module,
)

DEP = "example.com/dep"


@pytest.fixture()
def proxy_dir(real, tmp_path):
    # A private copy so a test may tamper with files without touching the others.
    return shutil.copytree(real.proxy_dir, tmp_path / "proxy")


@pytest.fixture()
def server(proxy_dir):
    with ProxyServer(proxy_dir) as srv:
        yield srv


@pytest.fixture()
def proxy(server):
    with httpx.Client(timeout=10) as client:
        yield GoProxy(client, ProxyConfig.parse(server.url), retry=RetryPolicy(tries=3, backoff=0))


def _fetch(proxy, tmp_path, **kw):
    return resolve_and_fetch(proxy, tmp_path / "cache", **kw)


def test_gosum_from_real_go_carries_exactly_its_pins_verified(real, proxy, tmp_path):
    got = _fetch(proxy, tmp_path, gosum_files=[real.gosum])
    sums = {(s.path, s.version, s.kind): s.hash for s in parse_gosum(real.gosum.read_bytes()).lines}
    assert [(m.path, m.version) for m in got] == sorted({(p, v) for p, v, _ in sums})
    for m in got:
        assert m.zip_hash == sums[(m.path, m.version, "zip")] == hash_zip(m.zip_path)
        assert m.mod_hash == sums[(m.path, m.version, "mod")] == hash_gomod(m.mod)
        assert m.info is not None and m.version.encode() in m.info
    old = next(m for m in got if m.path == "example.com/old")
    assert old.version == "v2.0.0+incompatible" and old.mod == b"module example.com/old\n"


def test_second_run_downloads_nothing_already_cached(real, proxy, server, tmp_path):
    first = _fetch(proxy, tmp_path, gosum_files=[real.gosum])
    server.requests.clear()
    events = []
    again = _fetch(proxy, tmp_path, gosum_files=[real.gosum], progress=events.append)
    assert again == first
    assert server.requests == []
    assert events and all(e.cached for e in events)


def test_corrupted_cache_entry_is_fetched_again(real, proxy, server, tmp_path):
    first = _fetch(proxy, tmp_path, gosum_files=[real.gosum])
    dep = next(m for m in first if m.path == DEP)
    dep.zip_path.chmod(0o644)
    dep.zip_path.write_bytes(b"flipped")
    server.requests.clear()
    again = _fetch(proxy, tmp_path, gosum_files=[real.gosum])
    assert server.requests == ["/example.com/dep/@v/v1.2.0.zip"]
    assert next(m for m in again if m.path == DEP).zip_hash == dep.zip_hash


def test_zip_differing_from_gosum_stops_the_build_naming_the_module(real, proxy, server, tmp_path):
    evil = build_zip(f"{DEP}@v1.2.0/", [("fixture.go", b"package fixture // backdoor\n")])
    server.override("/example.com/dep/@v/v1.2.0.zip", 200, evil)
    with pytest.raises(TrustError) as e:
        _fetch(proxy, tmp_path, gosum_files=[real.gosum])
    want = {(s.path, s.version, s.kind): s for s in parse_gosum(real.gosum.read_bytes(),
                                                                str(real.gosum)).lines}
    pin = want[(DEP, "v1.2.0", "zip")]
    assert str(e.value) == (
        f"verifying {DEP}@v1.2.0: checksum mismatch\n"
        f"\tdownloaded: {hash_zip(io.BytesIO(evil))}\n"
        f"\tgo.sum:     {pin.hash}\n"
        f"\t(go.sum line {pin.where}; downloaded from {server.url}/example.com/dep/@v/v1.2.0.zip)"
        f"\n\n{SECURITY_NOTE}")


def test_gomod_differing_from_gosum_stops_the_build(real, proxy, server, tmp_path):
    server.override("/example.com/dep/@v/v1.2.0.mod", 200,
                    b"module example.com/dep\nrequire x.io/evil v1.0.0\n")
    with pytest.raises(TrustError) as e:
        _fetch(proxy, tmp_path, gosum_files=[real.gosum])
    assert str(e.value).startswith(f"verifying {DEP}@v1.2.0/go.mod: checksum mismatch\n"
                                   "\tdownloaded: h1:")
    assert "\n\tgo.sum:     h1:" in str(e.value) and str(e.value).endswith(SECURITY_NOTE)


def test_zip_with_dotdot_entry_is_refused(proxy, proxy_dir, tmp_path):
    evil = FixtureModule("example.com/evil", "v1.0.0")
    write_module(proxy_dir, evil, zip_data=build_zip(
        "example.com/evil@v1.0.0/", [("go.mod", evil.gomod()), ("../../../.bashrc", b"curl|sh")]))
    with pytest.raises(TrustError) as e:
        _fetch(proxy, tmp_path, explicit=["example.com/evil@v1.0.0"])
    assert ('example.com/evil@v1.0.0/../../../.bashrc: malformed file path "../../../.bashrc": '
            'invalid path element ".."') in str(e.value)
    assert str(e.value).startswith("verifying example.com/evil@v1.0.0: module zip from ")
    # Nothing refused reaches the cache (the .mod and .info were fine and may stay).
    blobs = [p for p in (tmp_path / "cache" / "sha256").rglob("*") if p.is_file()]
    assert blobs and not any(zipfile.is_zipfile(p) for p in blobs)
    assert not list((tmp_path / "cache" / "tmp").iterdir())


def test_mvs_picks_the_max_required_version(proxy, tmp_path):
    got = _fetch(proxy, tmp_path, explicit=["example.com/app@v1.0.0", "example.com/lib/v2@v2.1.0"])
    by = {(m.path, m.version): m for m in got}
    assert sorted(by) == [("example.com/app", "v1.0.0"), (DEP, "v1.0.0"), (DEP, "v1.2.0"),
                          ("example.com/lib/v2", "v2.1.0")]
    # lib/v2 asks for dep v1.0.0, app for v1.2.0: v1.2.0 is selected and carried whole,
    # v1.0.0 only as the .mod the module graph reads.
    assert by[(DEP, "v1.2.0")].zip_path is not None and by[(DEP, "v1.2.0")].info is not None
    old = by[(DEP, "v1.0.0")]
    assert (old.zip_path, old.info, old.zip_hash) == (None, None, None)
    assert old.mod_hash == hash_gomod(old.mod)


def test_transitive_false_carries_only_the_named_modules(proxy, tmp_path):
    got = _fetch(proxy, tmp_path, explicit=["example.com/app@v1.0.0"], transitive=False)
    assert [(m.path, m.version) for m in got] == [("example.com/app", "v1.0.0")]
    assert isinstance(got[0], FetchedModule) and got[0].zip_hash == hash_zip(got[0].zip_path)


def test_explicit_module_is_pinned_at_first_download(proxy, server, tmp_path):
    entry = "example.com/pseudo@v0.0.0-20240101000000-abcdefabcdef"
    first = _fetch(proxy, tmp_path, explicit=[entry], transitive=False)
    first[0].zip_path.unlink()  # the blob is gone, the recorded pin is not
    server.override("/example.com/pseudo/@v/v0.0.0-20240101000000-abcdefabcdef.zip", 200,
                    build_zip("example.com/pseudo@v0.0.0-20240101000000-abcdefabcdef/",
                              [("fixture.go", b"package fixture // changed upstream\n")]))
    with pytest.raises(TrustError) as e:
        _fetch(proxy, tmp_path, explicit=[entry], transitive=False)
    msg = str(e.value)
    assert msg.startswith("verifying example.com/pseudo@v0.0.0-20240101000000-abcdefabcdef: "
                          "checksum mismatch\n\tdownloaded: h1:")
    assert f"\n\tpinned:     {first[0].zip_hash}\n\t(pinned at first download in " in msg


def test_module_shared_by_two_projects_is_carried_once(real, proxy, tmp_path):
    other = tmp_path / "other" / "go.sum"
    other.parent.mkdir()
    other.write_bytes(real.gosum.read_bytes())
    got = _fetch(proxy, tmp_path, gosum_files=[real.gosum, other],
                 explicit=["example.com/dep@v1.2.0"], transitive=False)
    keys = [(m.path, m.version) for m in got]
    assert len(keys) == len(set(keys)) == 6


def test_gosum_files_that_disagree_are_refused(real, proxy, tmp_path):
    text = real.gosum.read_text().splitlines()
    line = next(ln for ln in text if ln.startswith(f"{DEP} v1.2.0 h1:"))
    other = tmp_path / "go.sum"
    other.write_text(line.split(" h1:")[0] + " h1:" + "B" * 43 + "=\n")
    with pytest.raises(TrustError) as e:
        _fetch(proxy, tmp_path, gosum_files=[real.gosum, other])
    assert str(e.value).startswith(f"go.sum files disagree about {DEP}@v1.2.0:\n\t{real.gosum}:")
    assert f"\n\t{other}:1: h1:BBBB" in str(e.value)


@pytest.mark.parametrize("entry,message", [
    ("example.com/dep@latest", "module entry 'example.com/dep@latest': example.com/dep@latest: "
     "version \"latest\" invalid: not a canonical semantic version (rescue needs exact versions, "
     "not queries like @latest)"),
    ("example.com/dep", "module entry 'example.com/dep': want module@version, e.g. "
     "golang.org/x/text@v0.14.0"),
])
def test_explicit_entries_need_exact_versions(proxy, tmp_path, entry, message):
    with pytest.raises(NotReadyError) as e:
        _fetch(proxy, tmp_path, explicit=[entry])
    assert str(e.value) == message


def test_missing_module_names_module_version_and_url(proxy, server, tmp_path):
    with pytest.raises(NotReadyError) as e:
        _fetch(proxy, tmp_path, explicit=["example.com/nowhere@v1.0.0"])
    assert str(e.value) == (
        f"downloading example.com/nowhere@v1.0.0 .mod: not found on any proxy in "
        f"GOPROXY={server.url}:\n\t{server.url}/example.com/nowhere/@v/v1.0.0.mod: 404 Not Found")


def test_dependency_gomod_declaring_another_path_is_refused(proxy, server, tmp_path):
    server.override("/example.com/dep/@v/v1.2.0.mod", 200, b"module example.com/impostor\n")
    with pytest.raises(TrustError) as e:
        _fetch(proxy, tmp_path, explicit=["example.com/app@v1.0.0"])
    assert str(e.value) == ("parsing example.com/dep@v1.2.0/go.mod: module declares its path as: "
                            "example.com/impostor\n\tbut was required as: example.com/dep")
