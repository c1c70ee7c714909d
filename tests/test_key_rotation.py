"""Key rotation and revocation without a new rescue.pyz: a bundle carries the next trust store,
signed by the keys in use AND the new ones; the installer adopts it under P/state/trust/, and
from then on a key it removed or revoked is refused, by key id and date. Run by the operator
(`python3 -I rescue.pyz`, root and uid 65534) with the trust store built into the pyz."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from bundler import cli as bundler_cli
from installer import cli as installer_cli
from tests.support import bundles, craft, users


def policy(version: int, *keys: bundles.Signing, extra: str = "") -> str:
    lines = [k.signers.read_text().strip() for k in keys]
    return f"# rescue-policy {version}\n{extra}" + "\n".join(lines) + "\n"


def crafted(dest: Path, key: Path, sequence: int, trust_policy: str = "") -> Path:
    c = craft.Craft(name="rot", sequence=sequence)
    c.toolchain()
    doc = {**c.doc(), **({"trust_policy": trust_policy} if trust_policy else {})}
    return c.write(dest, key, doc=doc)


def cosign(bundle: Path, key: Path) -> None:
    assert bundler_cli.main(["sign", str(bundle), "--key", str(key)]) == 0


def install(user: users.User, rescue: List[str], bundle: Path, prefix: Path) -> Dict[str, Any]:
    done = user.run([*rescue, "install", str(user.give(bundle)), "--prefix", str(prefix),
                     "--json"], offline=True)
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == done.returncode
    return doc


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, bundles.Signing]:
    base = tmp_path_factory.mktemp("rotation")
    return {n: bundles.make_signing(base / n, n) for n in ("next", "third")}


def test_rotation_needs_both_key_sets_then_refuses_the_retired_key_by_id_and_date(
        user: users.User, rescue: List[str], signing: bundles.Signing,
        keys: Dict[str, bundles.Signing], tmp_path: Path) -> None:
    prefix = user.home / "go-emergency"
    nxt = keys["next"]
    rotate = crafted(tmp_path / "rotate.tar.zst", signing.key, 1, policy(1, nxt))
    doc = install(user, rescue, rotate, prefix)
    assert doc["exit_code"] == 3
    assert ("it carries trust policy version 1, which must be signed by 1 of its own keys too; "
            "it has 0. Have the new key(s) co-sign it: rescue sign BUNDLE --key NEWKEY"
            ) in doc["error"]["message"]
    assert not (prefix / "state" / "trust").exists()
    cosign(rotate, nxt.key)
    doc = install(user, rescue, rotate, prefix)
    assert doc["exit_code"] == 0, doc
    assert any(n.startswith("adopted trust policy version 1 from bundle rot #1") for n in
               doc["notes"])
    old_only = crafted(tmp_path / "old.tar.zst", signing.key, 2)
    doc = install(user, rescue, old_only, prefix)
    assert doc["exit_code"] == 3
    msg = doc["error"]["message"]
    assert f"signed by key {signing.key_id}, which is not in the trust policy version 1 " \
           "adopted on 20" in msg and "from bundle rot #1" in msg, msg
    doc = install(user, rescue, crafted(tmp_path / "new.tar.zst", nxt.key, 2), prefix)
    assert doc["exit_code"] == 0, doc
    verify = user.run([*rescue, "verify", "--prefix", str(prefix)], offline=True)
    assert verify.returncode == 0, verify.stderr  # bundles of either era still vouched for


def test_revoked_key_is_refused_with_its_date_and_an_older_policy_is_a_replay(
        user: users.User, rescue: List[str], signing: bundles.Signing,
        keys: Dict[str, bundles.Signing], tmp_path: Path) -> None:
    prefix = user.home / "go-emergency"
    nxt, third = keys["next"], keys["third"]
    first = crafted(tmp_path / "v1.tar.zst", signing.key, 1, policy(1, nxt))
    cosign(first, nxt.key)
    assert install(user, rescue, first, prefix)["exit_code"] == 0
    # Installed while `next` was trusted, and signed by it alone.
    assert install(user, rescue, crafted(tmp_path / "b2.tar.zst", nxt.key, 2),
                   prefix)["exit_code"] == 0
    revoke = policy(2, nxt, third,
                    extra=f"# rescue-revoked {nxt.key_id} 2026-11-20 laptop lost\n")
    second = crafted(tmp_path / "v2.tar.zst", nxt.key, 3, revoke)
    cosign(second, third.key)
    assert install(user, rescue, second, prefix)["exit_code"] == 0
    verify = user.run([*rescue, "verify", "--prefix", str(prefix), "--json"], offline=True)
    assert verify.returncode == 3  # what the revoked key signed no longer vouches for itself
    said = json.loads(verify.stdout)["error"]["message"]
    assert "rot #2 (manifest sha256 " in said, said
    assert f"key {nxt.key_id} that signed it was revoked on 2026-11-20" in said, said
    doc = install(user, rescue, crafted(tmp_path / "b3.tar.zst", nxt.key, 4), prefix)
    assert doc["exit_code"] == 3
    assert f"key {nxt.key_id} was revoked on 2026-11-20 (laptop lost)" in \
        doc["error"]["message"]
    replay = crafted(tmp_path / "v1again.tar.zst", third.key, 5, policy(1, third))
    doc = install(user, rescue, replay, prefix)
    assert doc["exit_code"] == 3
    assert "it carries trust policy version 1, older than version 2 in use" in \
        doc["error"]["message"]


def test_spec_trust_policy_must_be_a_versioned_store(tmp_path: Path,
                                                     signing: bundles.Signing) -> None:
    from bundler import spec
    from manifests.errors import NotReadyError

    (tmp_path / "next_signers").write_text(signing.signers.read_text())  # no version line
    path = bundles.write_spec(tmp_path / "spec.toml", signing.key, "http://127.0.0.1:9")
    text = path.read_text().replace("[bundle]\n", '[bundle]\ntrust_policy = "next_signers"\n')
    path.write_text(text)
    with pytest.raises(NotReadyError) as e:
        spec.load(path)
    assert "bundle.trust_policy 'next_signers' needs signers and a version line " \
           "`# rescue-policy N`" in e.value.message


def test_inspect_of_a_rotation_bundle_without_the_new_keys_says_what_to_do(
        signing: bundles.Signing, keys: Dict[str, bundles.Signing], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = crafted(tmp_path / "r.tar.zst", signing.key, 1, policy(1, keys["next"]))
    code = installer_cli.main(["inspect", str(bundle), "--trust", str(signing.signers)])
    assert code == 3 and "rescue sign BUNDLE --key NEWKEY" in capsys.readouterr().err
