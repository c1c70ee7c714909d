"""Install refusals: each attack or emergency is refused with a clear message, prefix untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pytest

from installer import cli
from manifests.model import MANIFEST_NAME
from tests.support import bundles, tamper

TC = "toolchains/go1.21.13.linux-amd64/go"
ROOT = Path(__file__).resolve().parents[1]


def run_install(bundle: Path, prefix: Path, signers: Path, capsys: pytest.CaptureFixture,
                *extra: str) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["install", str(bundle), "--prefix", str(prefix), "--trust", str(signers),
                     *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, toolchain_bundle: Path,
              signing: bundles.Signing) -> Path:
    """A prefix with the good bundle installed (copied for each test that needs one)."""
    prefix = tmp_path_factory.mktemp("installed") / "prefix"
    code = cli.main(["install", str(toolchain_bundle), "--prefix", str(prefix), "--trust",
                     str(signing.signers)])
    assert code == 0
    assert (prefix / "current").is_symlink()
    return prefix


@pytest.fixture
def prefix(installed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "prefix"
    subprocess.run(["cp", "-a", str(installed), str(copy)], check=True)
    return copy


@pytest.fixture(scope="module")
def manifest_doc(toolchain_bundle: Path) -> Dict[str, Any]:
    return json.loads(tamper.header(toolchain_bundle)[MANIFEST_NAME])  # type: ignore[no-any-return]


def refused(bundle: Path, prefix: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
            tmp_path: Path, fresh: bool = True) -> Tuple[int, str]:
    """Install `bundle` over the installed prefix and into a fresh one; neither may change."""
    before = tamper.snapshot(prefix)
    code, _out, err = run_install(bundle, prefix, signing.signers, capsys)
    assert code != 0, err
    assert tamper.snapshot(prefix) == before
    if fresh:
        new = tmp_path / "fresh" / "deeper" / "prefix"
        code2, _out2, err2 = run_install(bundle, new, signing.signers, capsys)
        assert code2 == code, err2
        assert not (tmp_path / "fresh").exists(), "a refused install left directories behind"
    return code, err


def test_install_refuses_flipped_byte_in_goroot_file(toolchain_bundle: Path, prefix: Path,
                                                     manifest_doc: Dict[str, Any],
                                                     signing: bundles.Signing, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    target = f"{TC}/bin/gofmt"
    member = next(m for m in manifest_doc["members"] if m["path"] == target)
    assert member["type"] == "file"
    flipped: Dict[str, str] = {}

    def flip(info: Any, data: Optional[bytes]):  # type: ignore[no-untyped-def]
        if info.name == target:
            assert data is not None
            data = tamper.flip_byte(data)
            flipped["sha256"] = hashlib.sha256(data).hexdigest()
        return [(info, data)]

    bad = tamper.rewrite(toolchain_bundle, tmp_path / "flipped.tar.zst", flip)
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert f"verifying member {target}: sha256 mismatch" in err
    assert f"bundle:   {flipped['sha256']}" in err
    assert f"manifest: {member['sha256']}" in err
    assert "Nothing was installed" in err
    assert "Copy the bundle again from the build host" in err


def test_install_refuses_manifest_signed_by_untrusted_key(toolchain_bundle: Path, prefix: Path,
                                                          signing: bundles.Signing,
                                                          tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    mallory = bundles.make_signing(tmp_path / "mallory", name="mallory")

    def change(doc: Dict[str, Any]) -> None:
        doc["name"] = "forged"

    bad = tamper.forge(toolchain_bundle, tmp_path / "untrusted.tar.zst", change, mallory.key)
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert f"signed by key {mallory.key_id}, which is not in the trust store" in err
    assert signing.key_id in err  # what the store does trust
    assert "--trust FILE" in err and "rescue keys trust" not in err  # what works offline
    # --json reports the same refusal to a script.
    code, out, _ = run_install(bad, prefix, signing.signers, capsys, "--json")
    doc = json.loads(out)
    assert (code, doc["ok"], doc["exit_code"]) == (3, False, 3)
    assert doc["error"]["type"] == "untrusted"
    assert doc["error"]["operation"] == "verifying bundle signature"
    assert mallory.key_id in doc["error"]["message"]


def test_install_refuses_edited_manifest_with_old_signature(toolchain_bundle: Path, prefix: Path,
                                                            manifest_doc: Dict[str, Any],
                                                            signing: bundles.Signing,
                                                            tmp_path: Path,
                                                            capsys: pytest.CaptureFixture
                                                            ) -> None:
    # The attacker swaps a file and updates its hash in the manifest and SHA256SUMS consistently.
    target = f"{TC}/VERSION"
    new_data = b"go1.21.13\nevil\n"

    def change(doc: Dict[str, Any]) -> None:
        for m in doc["members"]:
            if m["path"] == target:
                m["sha256"] = hashlib.sha256(new_data).hexdigest()
                m["size"] = len(new_data)

    def swap(info: Any, data: Optional[bytes]):  # type: ignore[no-untyped-def]
        return [(info, new_data if info.name == target else data)]

    bad = tamper.forge(toolchain_bundle, tmp_path / "edited.tar.zst", change, None, edit=swap)
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert f"signature by release@rescue {signing.key_id}" in err or signing.key_id in err
    assert "does not match the manifest" in err
    assert "edited after signing" in err


@pytest.mark.parametrize("where", ["inside-header", "middle", "near-end"])
def test_install_refuses_bundle_cut_short(where: str, toolchain_bundle: Path, prefix: Path,
                                          signing: bundles.Signing, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    size = toolchain_bundle.stat().st_size
    length = {"inside-header": 1000, "middle": size // 2, "near-end": size - 64}[where]
    bad = tamper.cut(toolchain_bundle, tmp_path / "cut.tar.zst", length)
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert f"reading bundle {bad}" in err
    assert "truncated or damaged" in err
    assert "copy it again from the build host and compare its sha256" in err


def test_install_refuses_member_not_in_manifest(toolchain_bundle: Path, prefix: Path,
                                                signing: bundles.Signing, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    extra = f"{TC}/bin/backdoor"
    data = b"#!/bin/sh\necho pwned\n"
    bad = tamper.rewrite(toolchain_bundle, tmp_path / "extra.tar.zst",
                         append=[(tamper.file_info(extra, data, 0o755), data)])
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert f"verifying member {extra!r}: the bundle carries it but the signed manifest does " \
           "not list it" in err
    assert "Nothing was installed" in err


def test_install_refuses_escape_path_listed_in_signed_manifest(toolchain_bundle: Path,
                                                               prefix: Path,
                                                               signing: bundles.Signing,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    # Even a manifest signed by a trusted key may not name a path outside the prefix.
    data = b"escaped\n"

    def change(doc: Dict[str, Any]) -> None:
        doc["members"].append({"path": "../escape", "type": "file", "mode": 0o644,
                               "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                               "target": ""})

    bad = tamper.forge(toolchain_bundle, tmp_path / "escape.tar.zst", change, signing.key,
                       append=[(tamper.file_info("../escape", data), data)])
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert "reading manifest: '../escape': path element '..' is not allowed" in err
    assert "do not install it" in err
    assert not (tmp_path / "escape").exists()


def test_install_refuses_escape_path_only_in_tar(toolchain_bundle: Path, prefix: Path,
                                                 signing: bundles.Signing, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    data = b"escaped\n"

    def first_content(info: Any, data_: Optional[bytes]):  # type: ignore[no-untyped-def]
        if info.name == "toolchains":  # right after the header, before any listed member
            return [(tamper.file_info("../escape", data), data), (info, data_)]
        return [(info, data_)]

    bad = tamper.rewrite(toolchain_bundle, tmp_path / "escape.tar.zst", first_content)
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert "verifying member '../escape': the bundle carries it but the signed manifest does " \
           "not list it" in err
    assert not (tmp_path / "escape").exists()


def test_install_refuses_expired_bundle(toolchain_bundle: Path, prefix: Path,
                                        signing: bundles.Signing, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    def change(doc: Dict[str, Any]) -> None:
        doc["created"] = "2020-01-01T00:00:00Z"
        doc["expires"] = "2020-03-31T00:00:00Z"

    bad = tamper.forge(toolchain_bundle, tmp_path / "expired.tar.zst", change, signing.key)
    code, err = refused(bad, prefix, signing, capsys, tmp_path)
    assert code == 3
    assert "it expired on 2020-03-31T00:00:00Z; stale bundles are refused" in err
    assert "Build a fresh bundle on the connected host" in err


def test_install_refuses_replay_of_older_sequence(toolchain_bundle: Path,
                                                  signing: bundles.Signing, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    def newer(doc: Dict[str, Any]) -> None:
        doc["sequence"] = 2

    second = tamper.forge(toolchain_bundle, tmp_path / "seq2.tar.zst", newer, signing.key)
    prefix = tmp_path / "replayed"  # a real install (the copied prefix's go.env points elsewhere)
    code, _out, err = run_install(second, prefix, signing.signers, capsys)
    assert code == 0, err
    code, err = refused(toolchain_bundle, prefix, signing, capsys, tmp_path, fresh=False)
    assert code == 3
    assert "checking bundle rescue-test #1: channel 'stable' already installed sequence 2" in err
    assert "installing an older bundle over a newer one is refused" in err
    assert "build a bundle of it on channel 'stable' with a sequence above 2." in err


def test_install_refuses_prefix_under_a_regular_file(toolchain_bundle: Path,
                                                     signing: bundles.Signing, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    code, _out, err = run_install(toolchain_bundle, blocker / "prefix", signing.signers, capsys)
    assert code == 2
    assert f"installing into {blocker / 'prefix'}: {blocker} is not a directory" in err
    assert "pass --prefix with a directory you own" in err
    assert blocker.read_text() == "not a directory\n"


def _unshare_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount_ns = pytest.mark.skipif(not _unshare_ok(),
                                    reason="needs `unshare -m` (root or CAP_SYS_ADMIN)")


def install_in_namespace(setup: str, bundle: Path, prefix: Path, signers: Path,
                         after: str = "") -> subprocess.CompletedProcess:
    """Run the installer CLI in a private mount namespace after `setup` (mounts vanish after)."""
    script = (f"set -e\n{setup}\nset +e\n"
              f'"$PY" -m installer.cli install "$BUNDLE" --prefix "$PREFIX" --trust "$TRUST"\n'
              f"rc=$?\n{after}\nexit $rc\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PY": sys.executable, "BUNDLE": str(bundle),
           "PREFIX": str(prefix), "TRUST": str(signers), "PYTHONPATH": str(ROOT)}
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@needs_mount_ns
def test_install_refuses_read_only_prefix(toolchain_bundle: Path, prefix: Path,
                                          signing: bundles.Signing) -> None:
    before = tamper.snapshot(prefix)
    done = install_in_namespace('mount --bind -o ro "$PREFIX" "$PREFIX"', toolchain_bundle,
                                prefix, signing.signers)
    assert done.returncode == 2, done.stderr
    assert f"installing into {prefix}: {prefix} is not writable by this user" in done.stderr
    assert "pass --prefix with a directory you own" in done.stderr
    assert tamper.snapshot(prefix) == before


@needs_mount_ns
def test_install_refuses_fresh_prefix_on_small_disk(toolchain_bundle: Path,
                                                    signing: bundles.Signing,
                                                    tmp_path: Path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    done = install_in_namespace(f'mount -t tmpfs -o size=50m tmpfs "{disk}"', toolchain_bundle,
                                disk / "prefix", signing.signers, after=f'ls -A "{disk}"')
    assert done.returncode == 2, done.stderr
    assert f"installing into {disk / 'prefix'}: not enough free disk space on {disk}" \
        in done.stderr
    assert "needed:" in done.stderr and "free:" in done.stderr
    assert "pass --prefix on a larger filesystem" in done.stderr
    assert done.stdout == "", "checked before writing: nothing may be created on the disk"


@needs_mount_ns
def test_install_refuses_reinstall_when_disk_is_nearly_full(toolchain_bundle: Path,
                                                            installed: Path,
                                                            signing: bundles.Signing,
                                                            tmp_path: Path) -> None:
    # The installed prefix fits on the disk, a second staging of the bundle does not.
    used = int(subprocess.run(["du", "-sb", str(installed)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = disk / "prefix"
    snap = ('"$PY" -c \'import json, sys; from pathlib import Path; '
            'from tests.support.tamper import snapshot; '
            'json.dump(snapshot(Path(sys.argv[1])), open(sys.argv[2], "w"))\' "$PREFIX" ')
    setup = (f'mount -t tmpfs -o size={used // (1 << 20) + 120}m tmpfs "{disk}"\n'
             f'cp -a "{installed}" "$PREFIX"\n' + snap + f'"{tmp_path}/before.json"')
    done = install_in_namespace(setup, toolchain_bundle, prefix, signing.signers,
                                after=snap + f'"{tmp_path}/after.json"')
    assert done.returncode == 2, done.stderr
    assert f"installing into {prefix}: not enough free disk space" in done.stderr
    before = json.loads((tmp_path / "before.json").read_text())
    assert before and json.loads((tmp_path / "after.json").read_text()) == before
