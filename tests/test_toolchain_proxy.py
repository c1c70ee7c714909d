"""Install rebuilds each toolchain's golang.org/toolchain module into P/goproxy from the verified
GOROOT, only when it hashes to the signed manifest's h1, and keeps P/bin/go<V> in step with
install, remove and repair (crafted bundles, in process)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from installer import cli
from manifests import toolchainzip
from manifests.dirhash import hash_zip
from tests.support import bundles, craft, tamper

V_DIR = Path("goproxy/golang.org/toolchain/@v")
OLD, NEW = "go1.21.13", "go1.22.10"


def run(argv: List[Any], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def module_h1(c: craft.Craft, root: str, version: str) -> str:
    """The h1 distpack's module of the crafted GOROOT has: from the manifest's sha256s."""
    prefix = f"{toolchainzip.MODULE}@v0.0.1-{version}.linux-amd64"
    files = [(m["path"][len(root) + 1:], m["sha256"], m["size"], None) for m in c.members
             if m["path"].startswith(root + "/") and m["type"] == "file"]
    return toolchainzip.zip_hash(toolchainzip.plan(prefix, files))  # type: ignore[arg-type]


def two_toolchains(wrong_h1: str = "") -> craft.Craft:
    c = craft.Craft()
    for version in (OLD, NEW):
        root = c.toolchain(version=version)
        c.dir(f"{root}/src").file(f"{root}/src/go.mod", b"module std\n")  # becomes _go.mod
        c.dir(f"{root}/test").file(f"{root}/test/x.go", b"package x\n")  # distpack drops it
        c.toolchains[-1]["module_zip_hash"] = wrong_h1 or module_h1(c, root, version)
        c.toolchains[-1]["module_mod_hash"] = toolchainzip.gomod_hash()
    return c


def test_install_rebuilds_the_toolchain_modules_and_links_go_v_for_each_version(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    c = two_toolchains()
    P = tmp_path / "P"
    code, out, err = run(["install", c.write(tmp_path / "b.tar.zst", signing.key), "--prefix",
                          P, "--trust", signing.signers, "--use", OLD, "--json"], capsys)
    assert code == 0, err
    done = json.loads(out)
    assert [m["module"] for m in done["toolchain_modules"]] == [
        f"golang.org/toolchain@v0.0.1-{v}.linux-amd64" for v in (OLD, NEW)]
    assert (P / V_DIR / "list").read_text() == (f"v0.0.1-{OLD}.linux-amd64\n"
                                                f"v0.0.1-{NEW}.linux-amd64\n")
    for version, tc in zip((OLD, NEW), c.toolchains):
        base = f"{P / V_DIR}/v0.0.1-{version}.linux-amd64"
        assert hash_zip(base + ".zip") == tc["module_zip_hash"]
        assert Path(base + ".mod").read_bytes() == b"module golang.org/toolchain\n"
        assert (os.stat(base + ".zip").st_mode & 0o777) == 0o444
        link = P / "bin" / version
        assert os.readlink(link) == f"../versions/{version}.linux-amd64/bin/go"
        assert link.resolve() == (P / f"versions/{version}.linux-amd64/bin/go").resolve()
    # The zip holds the upstream go.env (the h1 covers it), the GOROOT the wired one.
    with zipfile.ZipFile(P / V_DIR / f"v0.0.1-{NEW}.linux-amd64.zip") as zf:
        names = zf.namelist()
        go_env = zf.read(f"golang.org/toolchain@v0.0.1-{NEW}.linux-amd64/go.env")
    assert go_env == craft.UPSTREAM_GO_ENV
    assert f"golang.org/toolchain@v0.0.1-{NEW}.linux-amd64/src/_go.mod" in names
    assert not [n for n in names if "/test/" in n]
    assert "GOTOOLCHAIN=auto" in (P / f"versions/{NEW}.linux-amd64/go.env").read_text()
    code, out, err = run(["verify", "--prefix", P, "--trust", signing.signers], capsys)
    assert code == 0, out + err

    code, _, err = run(["remove", NEW, "--prefix", P], capsys)
    assert code == 0, err
    assert not os.path.lexists(P / "bin" / NEW) and (P / "bin" / OLD).is_symlink()
    (P / "bin" / OLD).unlink()
    code, out, err = run(["repair", "--prefix", P, "--trust", signing.signers], capsys)
    assert code == 0, out + err
    assert os.readlink(P / "bin" / OLD) == f"../versions/{OLD}.linux-amd64/bin/go"


def test_install_refuses_a_toolchain_module_hash_the_rebuilt_zip_does_not_match(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    # Re-signed by a trusted key: every member hash is right, the module h1 is not.
    wrong = "h1:" + "A" * 43 + "="
    c = two_toolchains(wrong_h1=wrong)
    P = tmp_path / "P"
    code, _, err = run(["install", c.write(tmp_path / "b.tar.zst", signing.key), "--prefix", P,
                        "--trust", signing.signers], capsys)
    assert code == 3, err
    right = module_h1(c, f"toolchains/{OLD}.linux-amd64/go", OLD)
    assert (f"verifying golang.org/toolchain@v0.0.1-{OLD}.linux-amd64: checksum mismatch\n"
            f"\trebuilt from the {OLD}.linux-amd64 GOROOT: {right}\n\tmanifest: {wrong}\n"
            f"The module rebuilt from the verified {OLD}.linux-amd64 GOROOT does not hash to "
            "the h1 the signed manifest records for it") in err
    assert not (P / "versions").exists() or not os.listdir(P / "versions")
    assert not (P / "goproxy" / "golang.org").exists()
    assert not (P / "bin").exists()


def test_install_rewires_goroots_installed_when_the_wiring_said_local(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture) -> None:
    # A prefix from before GOTOOLCHAIN=auto: its GOROOT's go.env still says local.
    P = tmp_path / "P"
    first = craft.Craft()
    first.toolchain(version=OLD)
    code, _, err = run(["install", first.write(tmp_path / "1.tar.zst", signing.key), "--prefix",
                        P, "--trust", signing.signers], capsys)
    assert code == 0, err
    goroot = P / f"versions/{OLD}.linux-amd64"
    go_env = goroot / "go.env"
    old = go_env.read_text().replace("GOTOOLCHAIN=auto", "GOTOOLCHAIN=local")
    goroot.chmod(0o755)
    go_env.unlink()
    go_env.write_text(old)
    go_env.chmod(0o444)
    goroot.chmod(0o555)
    second = craft.Craft(sequence=2)
    second.toolchain(version=NEW)
    code, _, err = run(["install", second.write(tmp_path / "2.tar.zst", signing.key),
                        "--prefix", P, "--trust", signing.signers], capsys)
    assert code == 0, err
    assert "GOTOOLCHAIN=auto\n" in go_env.read_text()
    code, out, err = run(["verify", "--prefix", P, "--trust", signing.signers], capsys)
    assert code == 0, out + err


def test_a_staged_file_changed_after_its_check_is_caught_as_the_zip_is_written(
        tmp_path: Path) -> None:
    """The zip's h1 comes from the bytes written into it, not from the manifest's sums: a
    GOROOT file that changed on disk between its check and the rebuild is refused."""
    from installer.prefix import Layout
    from installer.toolchain_proxy import stage_modules
    from manifests.errors import TrustError
    from manifests.model import parse_manifest

    c = two_toolchains()
    staging = tmp_path / "staging"
    for m in c.members:
        if m["type"] == "dir":
            (staging / m["path"]).mkdir(parents=True, exist_ok=True)
        elif m["type"] == "file":
            (staging / m["path"]).write_bytes(c.contents[m["path"]])
    root = f"toolchains/{OLD}.linux-amd64/go"
    (staging / root / "src/go.mod").write_bytes(b"module evil\n")  # after the check
    manifest = parse_manifest(tamper.canonical(c.doc()))
    with pytest.raises(TrustError) as e:
        stage_modules(manifest, staging, Layout(tmp_path / "P"), "linux-amd64")
    assert (f"verifying golang.org/toolchain@v0.0.1-{OLD}.linux-amd64: checksum mismatch\n"
            "\tthe zip written: h1:") in e.value.message
    assert f"\n\tmanifest: {c.toolchains[0]['module_zip_hash']}\n" in e.value.message
