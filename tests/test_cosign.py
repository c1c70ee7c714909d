"""The two-person rule: a trust store may ask for K distinct trusted signatures (per channel);
`rescue sign` adds one to a built bundle without rebuilding it; a key counts once, an untrusted
one not at all, and each signature still checks out alone with stock `ssh-keygen -Y verify`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import zstandard

from bundler import cli as bundler_cli
from installer import cli as installer_cli
from tests.support import bundles, craft, tamper


def store(path: Path, *signings: bundles.Signing, rules: str = "") -> Path:
    lines = [s.signers.read_text().strip() for s in signings]
    path.write_text(rules + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Tuple[bundles.Signing, ...]:
    base = tmp_path_factory.mktemp("people")
    return tuple(bundles.make_signing(base / n, n) for n in ("alice", "bob", "carol"))


def crafted(dest: Path, key: Path, channel: str = "stable") -> Path:
    c = craft.Craft(name="two", channel=channel)
    c.toolchain()
    return c.write(dest, key)


def sign(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, Dict[str, Any], str]:
    capsys.readouterr()
    code = bundler_cli.main(["sign", *[str(a) for a in args], "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def installer(capsys: pytest.CaptureFixture[str], *args: Any) -> Tuple[int, Dict[str, Any]]:
    capsys.readouterr()
    code = installer_cli.main([*[str(a) for a in args], "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def two_person(people: Tuple[bundles.Signing, ...], tmp_path: Path) -> Tuple[Path, Path]:
    """A store that wants alice and bob both, and a bundle alice alone signed."""
    alice, bob, _ = people
    trust = store(tmp_path / "allowed_signers", alice, bob, rules="# rescue-threshold 2\n")
    return trust, crafted(tmp_path / "two.tar.zst", alice.key)


def test_bundle_signed_once_is_refused_under_a_two_person_rule_until_co_signed(
        people: Tuple[bundles.Signing, ...], two_person: Tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob, _ = people
    trust, bundle = two_person
    code, doc = installer(capsys, "install", bundle, "--prefix", tmp_path / "P", "--trust",
                          trust)
    assert code == 3
    assert (f"checking bundle two #1: channel 'stable' needs signatures by 2 distinct trusted "
            f"keys ({trust}); it has 1 ({alice.key_id}). Have another trusted signer co-sign "
            "it: rescue sign BUNDLE --key KEY") in doc["error"]["message"]
    assert not (tmp_path / "P" / "versions").exists()
    content_before = _after_header(bundle)
    code, signed, err = sign(capsys, bundle, "--key", bob.key, "--store", trust)
    assert code == 0, err
    assert (signed["signatures"], signed["key_id"]) == (2, bob.key_id)
    assert _after_header(bundle) == content_before  # the content copied byte for byte
    code, doc = installer(capsys, "inspect", bundle, "--trust", trust)
    assert code == 0
    assert [s["key_id"] for s in doc["signatures"]] == [alice.key_id, bob.key_id]
    assert doc["threshold"] == 2
    code, doc = installer(capsys, "install", bundle, "--prefix", tmp_path / "P", "--trust",
                          trust)
    assert code == 0, doc
    code, doc = installer(capsys, "verify", "--prefix", tmp_path / "P", "--trust", trust)
    assert code == 0, doc  # the kept signatures meet the threshold again


def test_a_key_counts_once_and_an_untrusted_co_signer_not_at_all(
        people: Tuple[bundles.Signing, ...], two_person: Tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    alice, _, carol = people
    trust, bundle = two_person
    code, _, err = sign(capsys, bundle, "--key", alice.key)
    assert code == 2 and f"key {alice.key_id} has signed it already" in err
    # The same key twice, crafted by hand: still one signature.
    twice = tamper.rewrite(bundle, tmp_path / "twice.tar.zst", append=())
    items = list(tamper.members(twice))
    sig = dict((i.name, d) for i, d in items)["manifest.sig"]
    items.insert(3, (tamper.file_info("manifest.sig.2", sig), sig))
    tamper.write(twice, items)
    code, doc = installer(capsys, "inspect", twice, "--trust", trust)
    assert code == 3 and f"key {alice.key_id} signed more than once (it counts once)" in \
        doc["error"]["message"]
    code, _, err = sign(capsys, bundle, "--key", carol.key)
    assert code == 0, err
    code, doc = installer(capsys, "inspect", bundle, "--trust", trust)
    assert code == 3 and "it has 1" in doc["error"]["message"]
    assert f"signed by key {carol.key_id}, which is not in the trust store" in \
        doc["error"]["message"]


def test_threshold_per_channel(people: Tuple[bundles.Signing, ...], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob, _ = people
    trust = store(tmp_path / "allowed_signers", alice, bob,
                  rules="# rescue-threshold stable 2\n")
    beta = crafted(tmp_path / "beta.tar.zst", alice.key, channel="beta")
    assert installer(capsys, "inspect", beta, "--trust", trust)[0] == 0
    stable = crafted(tmp_path / "stable.tar.zst", alice.key)
    assert installer(capsys, "inspect", stable, "--trust", trust)[0] == 3


def test_each_signature_checks_with_stock_ssh_keygen(people: Tuple[bundles.Signing, ...],
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob, _ = people
    trust = store(tmp_path / "allowed_signers", alice, bob)
    bundle = crafted(tmp_path / "two.tar.zst", alice.key)
    assert sign(capsys, bundle, "--key", bob.key, "--store", trust)[0] == 0
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(bundle), "-C", str(out), "manifest.json",
                    "manifest.sig", "manifest.sig.2"], check=True)
    for sig, who in (("manifest.sig", "alice@rescue"), ("manifest.sig.2", "bob@rescue")):
        with open(out / "manifest.json", "rb") as manifest:
            done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(trust), "-I", who,
                                   "-n", "rescue-manifest", "-s", str(out / sig)],
                                  stdin=manifest, capture_output=True, text=True)
        assert done.returncode == 0 and "Good" in done.stdout, done.stderr


@pytest.mark.parametrize("rules, message", [
    ("# rescue-threshold two\n", ":1: '# rescue-threshold two': write `# rescue-threshold K` "
                                 "or `# rescue-threshold CHANNEL K` with K from 1 to 16"),
    ("# rescue-threshold 3\n", ": the threshold is 3 signatures, but the store has 2 distinct "
                               "key(s); no bundle could ever be installed"),
])
def test_threshold_mistakes_in_the_trust_store_are_named(
        people: Tuple[bundles.Signing, ...], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], rules: str, message: str) -> None:
    alice, bob, _ = people
    trust = store(tmp_path / "allowed_signers", alice, bob, rules=rules)
    bundle = crafted(tmp_path / "two.tar.zst", alice.key)
    code, doc = installer(capsys, "inspect", bundle, "--trust", trust)
    assert code == 2 and f"reading trust store {trust}{message}" in doc["error"]["message"]


def test_sign_refuses_an_old_single_frame_bundle_and_a_changed_one(
        people: Tuple[bundles.Signing, ...], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob, _ = people
    bundle = crafted(tmp_path / "two.tar.zst", alice.key)
    plain = zstandard.ZstdDecompressor().stream_reader(bundle.read_bytes(),
                                                      read_across_frames=True).read()
    old = tmp_path / "old.tar.zst"
    old.write_bytes(zstandard.ZstdCompressor().compress(plain))
    code, _, err = sign(capsys, old, "--key", bob.key)
    assert code == 2 and "its first frame holds manifest.json, manifest.sig, SHA256SUMS, " in err
    changed = tamper.forge(bundle, tmp_path / "changed.tar.zst",
                           lambda d: d.update(sequence=9), key=None)
    trust = store(tmp_path / "allowed_signers", alice, bob)
    code, _, err = sign(capsys, changed, "--key", bob.key, "--store", trust)
    assert code == 3 and "a signature it carries does not check out" in err


def _after_header(bundle: Path) -> bytes:
    dobj = zstandard.ZstdDecompressor().decompressobj()
    data = bundle.read_bytes()
    dobj.decompress(data)
    assert dobj.eof
    return dobj.unused_data


def _names(items: List[Any]) -> List[str]:
    return [i.name for i, _ in items]
