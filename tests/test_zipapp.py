"""rescue.pyz: built once per session, then started the way an offline machine would start it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from bundler import zipapp
from bundler.zipapp import TRUSTED_MEMBER, build_zipapp
from installer import embedded
from tests.support import gobin

PYENV = Path("/root/.pyenv/versions")
SIGNERS = "rescue@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests\n"


def _interpreter(minor: int) -> Optional[Path]:
    found = sorted(PYENV.glob(f"3.{minor}.*/bin/python3"))
    if found:
        return found[-1]
    # 3.14 unpacked from Debian's packages (see ZIPAPP-FACTS.md), when this machine has one.
    for extra in (gobin.cache_root() / f"cpython-3.{minor}/usr/bin/python3",
                  shutil.which(f"python3.{minor}")):
        if extra and Path(extra).exists():
            return Path(extra)
    return None


HOST_PYTHON = _interpreter(9) or Path("/usr/bin/python3")


def _build(out: Path, trust: Path):
    return build_zipapp(out, trust_file=trust, wheel_cache=gobin.cache_root() / "pyz-wheels")


@pytest.fixture(scope="session")
def trust_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "allowed_signers"
    path.write_text(SIGNERS)
    return path


@pytest.fixture(scope="session")
def pyz(tmp_path_factory, trust_file: Path) -> Path:
    return _build(tmp_path_factory.mktemp("dist") / "rescue.pyz", trust_file).output


@pytest.fixture
def home(tmp_path: Path) -> Dict[str, str]:
    """A clean environment whose per-user cache is empty (every start in it is cold)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
            "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _run(pyz: Path, env: Dict[str, str], *args: str, python: Path = HOST_PYTHON,
         wrap: Optional[List[str]] = None) -> subprocess.CompletedProcess:
    cmd = [*(wrap or []), str(python), "-I", str(pyz), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _selftest(pyz: Path, env: Dict[str, str], **kw) -> dict:
    proc = _run(pyz, env, "selftest", "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    return report


def _in_mount_ns(script: str) -> List[str]:
    """Wrap a command so it runs after `script` in a private mount namespace (we are root)."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -m is not permitted here")
    return ["unshare", "-m", "sh", "-ec", script + '\nexec "$@"', "sh"]


@pytest.mark.parametrize("minor", range(9, 15), ids=lambda m: f"3.{m}")
def test_selftest_passes_isolated_on_every_python(pyz: Path, home, minor: int):
    python = _interpreter(minor)
    if python is None:
        pytest.skip(f"no Python 3.{minor} on this machine")
    report = _selftest(pyz, home, python=python)
    assert report["python"].startswith(f"3.{minor}.")
    assert report["isolated"] is True
    assert report["cryptography"] == "50.0.2" and report["zstandard"] == "0.25.0"
    assert report["native_dir"].startswith(home["XDG_CACHE_HOME"] + "/rescue/native/")


def test_cold_start_works_without_network(pyz: Path, home):
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    _selftest(pyz, home, wrap=["unshare", "-n"])


def test_pyz_never_carries_the_connected_side(pyz: Path):
    names = zipfile.ZipFile(pyz).namelist()
    assert not [n for n in names if n.startswith("bundler/")]
    # Bytecode only as compiled at build time from a source the pyz carries beside it.
    for n in names:
        if n.endswith(".pyc"):
            folder, _, base = n.rpartition("/")
            source = (f"{folder.removesuffix('/__pycache__')}/{base.split('.')[0]}.py"
                      if folder.endswith("__pycache__") else n[:-1])
            assert source in names and (source.startswith("_native/") or "__pycache__" not in n)
    for needed in ("__main__.py", "installer/cli.py", "installer/selftest.py",
                   "manifests/__init__.py", "keys/__init__.py", "click/__init__.py"):
        assert needed in names
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert pyz.stat().st_mode & 0o777 == 0o755


def test_python_that_built_the_pyz_imports_the_installer_from_bytecode(pyz: Path, home):
    """A stock Python of the builder's version skips compiling the installer at each start;
    any other version compiles the source it carries (the selftests above)."""
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import installer.cli, click; "
             "print(installer.cli.__file__, click.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(pyz)], env=home,
                         capture_output=True, text=True, check=True).stdout.split()
    assert [f.endswith(".pyc") for f in out] == [True, True], out


def test_rebuild_with_same_inputs_is_byte_identical_and_offline(pyz: Path, trust_file: Path,
                                                                tmp_path, monkeypatch):
    def no_download(*args):
        raise AssertionError(f"second build tried to download {args[1:]}")

    monkeypatch.setattr(zipapp, "_download", no_download)  # the wheelhouse must be enough
    again = _build(tmp_path / "again.pyz", trust_file).output
    assert again.read_bytes() == pyz.read_bytes()


def test_embedded_signers_are_read_from_inside_the_zip(pyz: Path, home):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from installer import embedded;"
            "print(embedded.trusted_signers_text(), end='')")
    proc = subprocess.run([str(HOST_PYTHON), "-I", "-c", code, str(pyz)], env=home,
                          capture_output=True, text=True, check=True)
    assert proc.stdout == SIGNERS
    assert zipfile.ZipFile(pyz).read(TRUSTED_MEMBER).decode() == SIGNERS


def test_embedded_signers_absent_from_source_tree_is_none():
    assert embedded.trusted_signers_text() is None


def test_rescue_native_dir_is_honoured(pyz: Path, home, tmp_path):
    home["RESCUE_NATIVE_DIR"] = str(tmp_path / "chosen")
    assert _selftest(pyz, home)["native_dir"].startswith(str(tmp_path / "chosen") + "/")


def test_read_only_cache_falls_back_next_to_pyz(pyz: Path, home, tmp_path):
    cache = Path(home["XDG_CACHE_HOME"])
    cache.mkdir()
    wrap = _in_mount_ns(f"mount -t tmpfs -o ro tmpfs {cache}")
    report = _selftest(pyz, home, wrap=wrap)
    assert report["native_dir"].startswith(str(pyz.parent / ".rescue-native") + "/")


def test_noexec_cache_falls_back_next_to_pyz(pyz: Path, home):
    cache = Path(home["XDG_CACHE_HOME"])
    cache.mkdir()
    wrap = _in_mount_ns(f"mount -t tmpfs -o noexec tmpfs {cache}")
    report = _selftest(pyz, home, wrap=wrap)
    assert report["native_dir"].startswith(str(pyz.parent / ".rescue-native") + "/")


def test_unusable_cache_and_pyz_dir_fall_back_to_fresh_temp_dir(pyz: Path, home, tmp_path):
    cache, ro = Path(home["XDG_CACHE_HOME"]), tmp_path / "ro"
    cache.mkdir()
    ro.mkdir()
    shutil.copy(pyz, ro / "rescue.pyz")
    wrap = _in_mount_ns(f"mount -t tmpfs -o ro tmpfs {cache}\n"
                        f"mount --bind {ro} {ro}\nmount -o remount,bind,ro {ro}")
    home["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    report = _selftest(ro / "rescue.pyz", home, wrap=wrap)
    assert report["native_dir"].startswith(str(tmp_path / "tmp" / "rescue-native-"))
    assert list((tmp_path / "tmp").iterdir()) == []  # the fresh dir is removed at exit


def test_nowhere_to_unpack_names_rescue_native_dir(pyz: Path, home, tmp_path):
    box = tmp_path / "box"  # pyz, cache and temp dir (TMPDIR) all on one noexec mount
    box.mkdir()
    wrap = _in_mount_ns(f"mount -t tmpfs -o noexec tmpfs {box}\ncp {pyz} {box}/rescue.pyz")
    home.update(XDG_CACHE_HOME=str(box / "cache"), TMPDIR=str(box))
    proc = _run(box / "rescue.pyz", home, "selftest", wrap=wrap)
    assert proc.returncode == 2, proc.stderr  # this machine's problem, not an untrusted input
    assert "RESCUE_NATIVE_DIR" in proc.stderr and "noexec" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cache_dir_writable_by_others_is_not_trusted(pyz: Path, home):
    first = Path(_selftest(pyz, home)["native_dir"])
    first.chmod(0o777)  # as if another user could have planted code there
    second = _selftest(pyz, home)["native_dir"]
    assert Path(second).parent == pyz.parent / ".rescue-native"


def test_concurrent_cold_starts_both_succeed(pyz: Path, home, tmp_path):
    for round_ in range(3):
        home["XDG_CACHE_HOME"] = str(tmp_path / f"cache{round_}")
        procs = [subprocess.Popen([str(HOST_PYTHON), "-I", str(pyz), "selftest", "--json"],
                                  env=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
        dirs = {json.loads(out)["native_dir"] for out, _ in outs}
        assert len(dirs) == 1
        native = Path(dirs.pop()).parent
        assert [p.name for p in native.iterdir() if ".tmp-" in p.name] == []


def test_wheel_whose_file_differs_from_its_record_is_refused(tmp_path: Path, pyz: Path) -> None:
    # `pyz` first: the shared wheel cache is complete, so this build needs no network.
    from manifests.errors import TrustError

    shared = gobin.cache_root() / "pyz-wheels"
    cache = tmp_path / "wheels"
    cache.mkdir()
    for wheel in shared.glob("*.whl"):
        os.link(wheel, cache / wheel.name)
    click_wheel = next(cache.glob("click-*.whl"))
    tampered = tmp_path / "tampered.whl"
    with zipfile.ZipFile(click_wheel) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "click/core.py":
                data += b"\nimport os; os.system('id')\n"
            dst.writestr(info, data)
    click_wheel.unlink()
    shutil.move(str(tampered), click_wheel)
    with pytest.raises(TrustError) as e:
        build_zipapp(tmp_path / "rescue.pyz", trust_file=None, wheel_cache=cache)
    assert (f"verifying {click_wheel.name}: click/core.py: hash does not match RECORD"
            in str(e.value))
    assert "SECURITY ERROR" in str(e.value)
    assert not (tmp_path / "rescue.pyz").exists()


def test_python_without_lzma_is_told_what_the_native_parts_need(pyz: Path, home):
    """The native parts are LZMA members (the pyz stays under 25 MB with every platform's
    wheels): a Python built without its lzma module is told so, exit 2, not a traceback."""
    run = ("import runpy, sys; sys.modules['lzma'] = None; sys.argv = [sys.argv[1], 'selftest']; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([str(HOST_PYTHON), "-I", "-c", run, str(pyz)], env=home,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"rescue: this Python ({HOST_PYTHON}) has no lzma module, which rescue.pyz needs to "
        "unpack its native parts: install your system's Python lzma support (the xz library "
        "it was built against), or run the pyz with another python3\n")
    names = {i.filename: i.compress_type for i in zipfile.ZipFile(pyz).infolist()}
    assert {t for n, t in names.items() if n.startswith("_native/") and n.endswith(".so")} == {
        zipfile.ZIP_LZMA}
