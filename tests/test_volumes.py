"""Bundles on FAT32 media: `rescue split` cuts a bundle into parts of at most --volume-size
with a signed index; `cat` of the parts is the bundle; the installer takes the first part or
the directory, checks each part, and names the one that is missing or damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from bundler import cli as bundler_cli
from manifests.errors import NotReadyError
from manifests.volumes import parse_size
from tests.support import bundles, craft, users

SIZE = 8192


@pytest.fixture
def parts(tmp_path: Path, signing: bundles.Signing) -> Dict[str, Any]:
    c = craft.Craft(name="vol")
    root = c.toolchain()
    c.dir(f"{root}/src").file(f"{root}/src/noise.bin", os.urandom(40_000))
    bundle = c.write(tmp_path / "vol.tar.zst", signing.key)
    out = tmp_path / "usb"
    code = bundler_cli.main(["split", str(bundle), "--volume-size", "8K", "--key",
                             str(signing.key), "-o", str(out)])
    assert code == 0
    return {"bundle": bundle, "dir": out,
            "parts": sorted(out.glob("vol.tar.zst.part[0-9][0-9][0-9]"))}


def test_parts_are_at_most_the_volume_size_and_cat_gives_the_bundle(
        parts: Dict[str, Any]) -> None:
    files: List[Path] = parts["parts"]
    assert len(files) >= 5 and [f.name for f in files][:2] == ["vol.tar.zst.part001",
                                                             "vol.tar.zst.part002"]
    assert all(f.stat().st_size <= SIZE for f in files)
    assert b"".join(f.read_bytes() for f in files) == parts["bundle"].read_bytes()
    index = json.loads((parts["dir"] / "vol.tar.zst.parts.json").read_text())
    assert [p["name"] for p in index["parts"]] == [f.name for f in files]
    assert (parts["dir"] / "vol.tar.zst.parts.sig").read_text().startswith(
        "-----BEGIN SSH SIGNATURE-----")


def test_install_from_the_first_part_or_the_directory_for_every_user(
        user: users.User, rescue: List[str], parts: Dict[str, Any]) -> None:
    usb = user.give(parts["dir"])
    for n, source in enumerate((usb / "vol.tar.zst.part001", usb)):
        prefix = user.home / f"P{n}"
        done = user.run([*rescue, "install", str(source), "--prefix", str(prefix)],
                        offline=True)
        assert done.returncode == 0, done.stderr
        assert (prefix / "versions" / "go1.21.13.linux-amd64" / "src" / "noise.bin").exists()


def _install(user: users.User, rescue: List[str], first: Path, prefix: Path) -> Any:
    done = user.run([*rescue, "install", str(first), "--prefix", str(prefix), "--json"],
                    offline=True)
    return done.returncode, json.loads(done.stdout)["error"]


@pytest.mark.parametrize("user", ["root"], indirect=True)
def test_a_missing_damaged_or_short_part_is_named(user: users.User, rescue: List[str],
                                                  parts: Dict[str, Any]) -> None:
    usb = user.give(parts["dir"])
    first = usb / "vol.tar.zst.part001"
    count = len(parts["parts"])
    third = usb / "vol.tar.zst.part003"
    saved = third.read_bytes()
    third.unlink()
    code, err = _install(user, rescue, first, user.home / "P")
    assert code == 2 and err["message"].startswith(
        f"opening bundle vol.tar.zst: part 3 of {count} (vol.tar.zst.part003) is missing from "
        f"{usb}; copy it from the build host")
    third.write_bytes(saved[:-10])
    code, err = _install(user, rescue, first, user.home / "P")
    assert code == 3 and (f"part 3 of {count} (vol.tar.zst.part003) is {len(saved) - 10} "
                          f"bytes, the signed index says {len(saved)}: cut short or damaged"
                          ) in err["message"]
    third.write_bytes(saved[:100] + bytes([saved[100] ^ 0xFF]) + saved[101:])
    code, err = _install(user, rescue, first, user.home / "P")
    assert code == 3 and (f"reading part 3 of {count} (vol.tar.zst.part003) of bundle "
                          "vol.tar.zst: it is damaged (sha256 ") in err["message"], err
    assert not (user.home / "P" / "versions").exists()
    third.write_bytes(saved)
    index = usb / "vol.tar.zst.parts.json"
    index.write_text(index.read_text().replace('"size":', '"size": ', 1))
    code, err = _install(user, rescue, first, user.home / "P")
    assert code == 3 and "checking the volume index" in err["message"]


def test_volume_size_mistakes_are_named_before_any_work() -> None:
    assert parse_size("3900M") == 3900 << 20 and parse_size("4G") == 4 << 30
    for bad in ("12", "3.9G", "lots"):
        with pytest.raises(NotReadyError) as e:
            parse_size(bad)
        assert "give a size like 3900M (FAT32 takes files below 4G)" in e.value.message


def test_a_directory_must_hold_exactly_one_volume_index(parts: Dict[str, Any], tmp_path: Path,
                                                        signing: bundles.Signing,
                                                        capsys: pytest.CaptureFixture) -> None:
    from installer import cli

    empty = tmp_path / "empty"
    empty.mkdir()
    code = cli.main(["install", str(empty), "--prefix", str(tmp_path / "P"), "--trust",
                     str(signing.signers)])
    assert code == 2
    assert (f"opening bundle {empty}: a directory must hold exactly one volume index "
            "(*.parts.json), it holds 0; give the bundle file or its first part instead"
            ) in capsys.readouterr().err
    (parts["dir"] / "vol.tar.zst.parts.sig").unlink()
    code = cli.main(["install", str(parts["dir"]), "--prefix", str(tmp_path / "P"),
                     "--trust", str(signing.signers)])
    assert code == 2 and "the volume index signature" in capsys.readouterr().err
