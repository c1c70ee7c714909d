"""What `rescue build` leaves for the operator: the bundle's sha256 (printed and in
BUNDLE.sha256 for `sha256sum -c`), no silent overwrite of another bundle, `-o FILE.tar.zst`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from bundler import cli as bundler_cli
from tests.support import bundles, upstream

NAME = "rescue-test-stable-1.rescue.tar.zst"


def rescue_build(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, spec: Path,
                 epoch: int, *args: str) -> Tuple[int, str, str]:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
    capsys.readouterr()
    code = bundler_cli.main(["build", str(spec), "--cache", str(spec.parent / "cache"), *args])
    out, err = capsys.readouterr()
    return code, out, err


def sha256sum_check(directory: Path, sums: str) -> subprocess.CompletedProcess:
    """The stock coreutils check an operator runs on a copy."""
    return subprocess.run(["sha256sum", "-c", sums], cwd=directory, capture_output=True,
                          text=True)


@pytest.fixture
def spec(signing: bundles.Signing, godl_url: str, tmp_path: Path) -> Iterator[Path]:
    yield bundles.write_spec(tmp_path / "spec.toml", signing.key, godl_url, level=1)


def test_build_prints_sha256_and_writes_bundle_sha256_for_sha256sum_c(
        spec: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out_dir = tmp_path / "out"
    code, out, err = rescue_build(capsys, monkeypatch, spec, int(time.time()), "-o", str(out_dir))
    assert code == 0, err
    bundle = out_dir / NAME
    sha = upstream.sha256_file(bundle)
    assert f"\nsha256 {sha}\n" in out
    assert f"also in {bundle}.sha256; check a copy with `sha256sum -c {NAME}.sha256`" in out
    assert (out_dir / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert sorted(p.name for p in out_dir.iterdir()) == [
        NAME, f"{NAME}.cdx.json", f"{NAME}.sha256", f"{NAME}.spdx.json"]
    assert (f"sbom   {NAME}.spdx.json, {NAME}.cdx.json (SPDX 2.3, CycloneDX 1.6; the same "
            "files are signed inside the bundle, under sbom/)") in out
    check = sha256sum_check(out_dir, f"{NAME}.sha256")
    assert (check.returncode, check.stdout) == (0, f"{NAME}: OK\n")
    # A damaged copy on the USB stick: the same file says so.
    usb = tmp_path / "usb"
    usb.mkdir()
    for name in (NAME, f"{NAME}.sha256"):
        shutil.copy(out_dir / name, usb / name)
    with open(usb / NAME, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    check = sha256sum_check(usb, f"{NAME}.sha256")
    assert check.returncode == 1 and f"{NAME}: FAILED" in check.stdout


def test_rebuild_with_other_bytes_refuses_to_overwrite_the_bundle_unless_force(
        spec: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out_dir = tmp_path / "out"
    epoch = int(time.time()) // 60 * 60
    code, out, err = rescue_build(capsys, monkeypatch, spec, epoch, "-o", str(out_dir), "--json")
    assert code == 0, err
    first = json.loads(out)
    bundle = out_dir / NAME
    assert first["sha256"] == upstream.sha256_file(bundle)
    assert first["sha256_file"] == f"{bundle}.sha256"
    assert (first["identical"], first["replaced"]) == (False, False)
    before = bundle.stat()

    # Same spec, same SOURCE_DATE_EPOCH: the same bytes, said so, the file left alone.
    code, out, err = rescue_build(capsys, monkeypatch, spec, epoch, "-o", str(out_dir))
    assert code == 0, err
    assert out.startswith(f"{bundle} is already there with the same bytes (identical rebuild); "
                          "kept it")
    assert f"sha256 {first['sha256']}\n" in out
    assert (bundle.stat().st_ino, bundle.stat().st_mtime_ns) == (before.st_ino,
                                                                  before.st_mtime_ns)

    # Another build time: other bytes under the same name, channel and sequence: refused.
    code, out, err = rescue_build(capsys, monkeypatch, spec, epoch + 60, "-o", str(out_dir))
    assert code == 2
    assert err.startswith(f"rescue: writing bundle {bundle}: a different bundle with this name "
                          f"is already there\n\texisting: {first['sha256']}\n\tnew:      ")
    assert err.endswith(f"raise bundle.sequence in {spec} for a new bundle, or pass --force to "
                        "replace it.\n")
    assert upstream.sha256_file(bundle) == first["sha256"]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        NAME, f"{NAME}.cdx.json", f"{NAME}.sha256", f"{NAME}.spdx.json"]  # no .partial
    assert sha256sum_check(out_dir, f"{NAME}.sha256").returncode == 0

    code, out, err = rescue_build(capsys, monkeypatch, spec, epoch + 60, "-o", str(out_dir),
                                  "--force", "--json")
    assert code == 0, err
    forced = json.loads(out)
    assert (forced["identical"], forced["replaced"]) == (False, True)
    assert forced["sha256"] != first["sha256"]
    assert forced["sha256"] == upstream.sha256_file(bundle)
    assert sha256sum_check(out_dir, f"{NAME}.sha256").returncode == 0


def test_output_ending_in_tar_zst_is_the_bundle_file_not_a_directory(
        spec: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    target = tmp_path / "usb" / "dc-emergency.tar.zst"
    code, out, err = rescue_build(capsys, monkeypatch, spec, int(time.time()), "-o", str(target))
    assert code == 0, err
    assert target.is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "dc-emergency.tar.zst", "dc-emergency.tar.zst.cdx.json", "dc-emergency.tar.zst.sha256",
        "dc-emergency.tar.zst.spdx.json"]
    assert out.startswith(f"wrote {target} (")
    check = sha256sum_check(target.parent, "dc-emergency.tar.zst.sha256")
    assert (check.returncode, check.stdout) == (0, "dc-emergency.tar.zst: OK\n")
