"""Issue 19 item 5, the sandbox: `python3 rescue.pyz exec -- CMD` under the real bwrap with the
real go, as root and as uid 65534; and each way it refuses to run, in-process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.support import bundles, users
from tests.support.clirun import run
from tests.test_allowlist import fapolicyd_cli, install_fake, trust_lines

# Read at import: an autouse fixture hides CI from the tests themselves.
IN_CI = os.environ.get("CI") == "true"
BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
TC = "go1.21.13.linux-amd64"


@pytest.fixture(scope="module", autouse=True)
def _bwrap_installed() -> None:
    if not os.path.exists(BWRAP):
        if IN_CI:
            pytest.fail("no bwrap: scripts/setup installs Debian's bubblewrap")
        pytest.skip("no bwrap (Debian bubblewrap; scripts/setup installs it)")


@dataclass
class Agent:
    """A CI agent's user, the real go 1.21.13 the pyz installed (as root, the way an agent's
    prefix is provisioned), and a project of the agent's own."""

    user: users.User
    rescue: List[str]
    prefix: Path
    project: Path

    def exec(self, *cmd: str, offline: bool = True) -> subprocess.CompletedProcess:
        return self.user.run([*self.rescue, "exec", "--prefix", str(self.prefix), "--", *cmd],
                             offline=offline, cwd=self.project)


@pytest.fixture(scope="module")
def provisioned(pyz: Path, toolchain_bundle: Path) -> Iterator[Path]:
    """One prefix for every agent user: root installs, the agents only read it."""
    root = users.make_user("root")
    prefix = root.home / "go-emergency"
    done = root.run([users.STOCK_PYTHON, "-I", str(pyz), "install", str(toolchain_bundle),
                     "--prefix", str(prefix)], offline=True)
    assert done.returncode == 0, done.stderr
    root.home.chmod(0o755)
    yield prefix
    shutil.rmtree(root.home.parent)  # as root: no `chmod -R` of the read-only GOROOT first


@pytest.fixture(scope="module", params=users.USERS)
def agent(request: pytest.FixtureRequest, pyz: Path, provisioned: Path) -> Iterator[Agent]:
    user = users.make_user(request.param)
    rescue = [users.STOCK_PYTHON, "-I", str(user.give(pyz))]
    project = user.work / "hello"
    project.mkdir()
    (project / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (project / "main.go").write_text('package main\n\nfunc main() { println("hello") }\n')
    users.chown_tree(project, user.uid)
    yield Agent(user, rescue, provisioned, project)
    users.remove_user_dirs(user)


def test_exec_builds_offline_as_the_callers_uid_in_a_private_0700_workdir(agent: Agent) -> None:
    done = agent.exec("sh", "-c", 'go build -o hello . && ./hello && id -u && '
                      'stat -c "%a %u" "$HOME/.." "$GOCACHE" && go env GOROOT GOPROXY')
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stderr  # println
    uid, work, cache, goroot, goproxy = done.stdout.split("\n")[:5]
    assert int(uid) == agent.user.uid
    assert work == f"700 {agent.user.uid}" and cache == f"700 {agent.user.uid}"
    assert goroot == str(agent.prefix / "versions" / TC)
    assert goproxy == f"file://{agent.prefix}/goproxy"
    assert (agent.project / "hello").stat().st_uid == agent.user.uid  # the project is writable
    assert not [p for p in Path("/tmp").glob("rescue-exec-*")
                if p.stat().st_uid == agent.user.uid], "the temp work dir is removed"


def test_exec_cannot_write_into_the_goroot_and_the_tree_stays_as_signed(agent: Agent) -> None:
    goroot = agent.prefix / "versions" / TC
    done = agent.exec("sh", "-c", 'echo evil >> "$(go env GOROOT)/VERSION"; '
                      f'rm -f "$(go env GOROOT)/bin/gofmt"; touch {agent.prefix}/planted; '
                      'chmod u+w "$(go env GOROOT)"; exit 7')
    assert done.returncode == 7, done.stderr  # CMD's own exit code, passed through
    # No capability inside (root too): the 0444 file refuses the write; the read-only mount
    # refuses everything that would change the tree, chmod included.
    assert f"{goroot}/VERSION: Permission denied" in done.stderr
    assert done.stderr.count("Read-only file system") == 3, done.stderr
    assert (goroot / "bin" / "gofmt").exists() and not (agent.prefix / "planted").exists()
    verified = agent.user.run([*agent.rescue, "verify", "--prefix", str(agent.prefix),
                               "--all"])
    assert verified.returncode == 0, verified.stderr


def test_exec_has_no_network_not_even_the_hosts_loopback(agent: Agent) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)"
        # The agent's user reaches the listener outside the sandbox, and not from inside.
        outside = agent.user.run([users.STOCK_PYTHON, "-c", dial])
        assert outside.returncode == 0, outside.stderr
        listener.accept()[0].close()
        done = agent.exec("python3", "-c", dial, offline=False)
        # A network namespace of its own: 127.0.0.1 is the sandbox's loopback, where nothing
        # listens.
        assert done.returncode == 1
        assert "ConnectionRefusedError: [Errno 111] Connection refused" in done.stderr
        with pytest.raises(socket.timeout):
            listener.accept()


def test_ctrl_c_stops_the_sandboxed_build_and_exits_130(agent: Agent) -> None:
    """An operator's Ctrl-C reaches rescue (the build runs in a session of its own): the build
    is stopped with it, nothing keeps running, and the temp work dir goes."""
    marker = f"sleep {61 + agent.user.uid % 1000}.{os.getpid()}"  # this test's own sleeper
    argv = agent.user.argv([*agent.rescue, "exec", "--prefix", str(agent.prefix), "--", "sh",
                            "-c", f"echo started; exec {marker}"])
    proc = subprocess.Popen(argv, cwd=agent.project, env=agent.user.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; the build was stopped" in err
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", marker]).returncode == 0:
        assert time.monotonic() < deadline, f"{marker} still runs after Ctrl-C"
        time.sleep(0.1)
    assert not [p for p in Path("/tmp").glob("rescue-exec-*")
                if p.stat().st_uid == agent.user.uid], "the temp work dir is removed"


@pytest.fixture
def fake(tmp_path: Path, signing: bundles.Signing, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A crafted prefix, run from a project dir (in-process, as the test's user)."""
    prefix = install_fake(tmp_path, signing, tmp_path / "P")
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    return prefix


def test_exec_without_bwrap_is_exit_2_naming_the_package(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "project"))
    code, _, err = run(["exec", "--prefix", fake, "--", "go", "version"], capsys)
    assert code == 2
    assert ("rescue: running 'go version': bwrap (bubblewrap) is not on PATH; install "
            "bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; RHEL/Fedora: "
            "`dnf install bubblewrap`) and run again") in err


def test_exec_where_user_namespaces_are_off_is_exit_2_saying_what_to_do(
        fake: Path, pyz: Path) -> None:
    # user.max_user_namespaces is per user namespace: 0 in a throw-away one is a kernel that
    # allows none, and the machine's own setting is untouched.
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    done = subprocess.run(["unshare", "-U", "-r", "sh", "-c", script, "sh", users.STOCK_PYTHON,
                           "-I", str(pyz), "exec", "--prefix", str(fake), "--", "go", "version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "go version" not in done.stdout
    assert ("rescue: running 'go version': bwrap could not make the sandbox (exit 1; bwrap says: "
            "'bwrap: Creating new namespace failed: nesting depth or "
            "/proc/sys/user/max_*_namespaces exceeded (ENOSPC)'); this kernel does not let an "
            "unprivileged user make a user namespace; as root allow it (`sysctl -w "
            "user.max_user_namespaces=15000`") in done.stderr


def test_exec_keeps_a_private_workdir_and_refuses_one_others_can_read(
        fake: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kept = tmp_path / "ci-cache"
    code, out, err = run(["exec", "--prefix", fake, "--workdir", kept, "--env", "GOFLAGS=-x",
                          "--", "sh", "-c", 'echo "$GOFLAGS" > "$GOCACHE/seen"'], capsys)
    assert code == 0, err
    assert (kept / "cache" / "seen").read_text() == "-x\n" and kept.stat().st_mode & 0o777 == 0o700
    kept.chmod(0o755)
    code, _, err = run(["exec", "--prefix", fake, "--workdir", kept, "--", "true"], capsys)
    assert code == 2
    assert (f"the work dir '{kept}' is owned by uid 0 with mode 0755; it holds the build's HOME "
            f"and caches, so it must be yours and 0700: `chmod 700 {kept}` (as its owner), or "
            "pass another --workdir") in err
    link = tmp_path / "link"
    link.symlink_to(kept)
    code, _, err = run(["exec", "--prefix", fake, "--workdir", link, "--", "true"], capsys)
    assert code == 2
    assert (f"the work dir '{link}' is not a directory (a link is never followed); pass "
            "another --workdir") in err


def test_exec_refusals_name_the_fix(fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["exec", "--prefix", fake, "--", "no-such-tool"], capsys)
    assert code == 2
    assert (f"'no-such-tool' is not on the sandbox's PATH ({fake}/current/bin:{fake}/bin:"
            "/usr/local/bin:/usr/bin:/bin); give its path, or set PATH with --env") in err
    # A path is checked here too: bwrap's own exit 1 would pass for the command's.
    code, _, err = run(["exec", "--prefix", fake, "--", "./build.sh"], capsys)
    assert code == 2
    assert (f"running './build.sh': '{Path.cwd() / 'build.sh'}' is not an executable file; "
            "give the path of one, relative to the project or absolute") in err
    code, _, err = run(["exec", "--prefix", fake, "--", "/opt/tools/lint"], capsys)
    assert code == 2
    assert ("running '/opt/tools/lint': '/opt/tools/lint' is outside what the sandbox shows "
            f"({Path.cwd()}, ") in err
    assert "; copy it into the project, or run one on the sandbox's PATH" in err
    code, _, err = run(["exec", "--prefix", tmp_path / "nowhere", "--", "go"], capsys)
    assert code == 2
    assert (f"running 'go': no prefix at '{tmp_path / 'nowhere'}'; pass the --prefix you "
            "installed into") in err
    (fake / "current").unlink()
    code, _, err = run(["exec", "--prefix", fake, "--", "go"], capsys)
    assert code == 2
    assert (f"running 'go': no toolchain is current in '{fake}'; install a bundle, or make one "
            "current with `use VERSION`") in err
    (fake / "current").symlink_to(f"versions/{TC}")
    monkeypatch.chdir(fake / "versions")
    code, _, err = run(["exec", "--prefix", fake, "--", "go"], capsys)
    assert code == 2
    assert (f"the current directory '{fake}/versions' is inside the prefix, which the build "
            "only reads; cd to your project first") in err
    for system in ("/", "/usr"):
        monkeypatch.chdir(system)
        code, _, err = run(["exec", "--prefix", fake, "--", "go"], capsys)
        assert code == 2
        assert (f"the current directory is {system}, which would make the system's own files "
                "writable to the build; cd to your project first") in err
    code, _, err = run(["exec", "--prefix", fake, "--env", "NOVALUE", "--", "go"], capsys)
    assert code == 2 and "'NOVALUE': give NAME=VALUE" in err


def test_exec_names_a_workdir_it_cannot_make_and_a_prefix_go_cannot_use(
        fake: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a-file").write_text("")
    code, _, err = run(["exec", "--prefix", fake, "--workdir", tmp_path / "a-file" / "w", "--",
                        "true"], capsys)
    assert code == 2
    assert (f"cannot make the work dir '{tmp_path}/a-file/w': Not a directory; pass a --workdir "
            "you can write") in err
    # The installer refuses such a path; a link to a prefix moved there later is caught here.
    moved = tmp_path / "go,emergency"
    fake.rename(moved)
    (tmp_path / "linked").symlink_to(moved)
    code, _, err = run(["exec", "--prefix", tmp_path / "linked", "--", "true"], capsys)
    assert code == 2
    assert (f"the prefix '{moved}': the path holds a comma (','), which go reads as a GOPROXY "
            "list separator") in err


def test_exec_reports_a_bwrap_that_fails_for_its_own_reason(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    # A stand-in for a bwrap that can make a sandbox but fails at this one's setup (say, a
    # bind source gone): its own message went to stderr; rescue says where to look.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "bwrap").write_text('#!/bin/sh\ncase "$*" in *--json-status-fd*) '
                                 'echo "bwrap: Can\'t find source path" >&2; exit 1 ;; esac\n')
    (tools / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    code, _, err = run(["exec", "--prefix", fake, "--", "true"], capsys)
    assert code == 2
    assert ("running 'true': bwrap could not make the sandbox (exit 1; its message is above); "
            "check that the command exists inside the sandbox, which sees only /usr, /etc, the "
            "prefix, the current directory and the work dir") in err


def test_allowlist_of_a_real_go_is_what_fapolicyd_writes_for_it(
        provisioned: Path, pyz: Path, tmp_path: Path) -> None:
    # The agent's other half: the real toolchain's ~9300 files, through the pyz as an operator
    # runs it, line for line what fapolicyd-cli itself writes for the same tree.
    started = time.monotonic()
    done = subprocess.run([users.STOCK_PYTHON, "-I", str(pyz), "allowlist", "--prefix",
                           str(provisioned)], capture_output=True, timeout=300)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    upper = tmp_path / "etc-upper"
    theirs = fapolicyd_cli(upper, "--file", "add", str(provisioned / "versions" / TC),
                           "--trust-file", "go")
    assert theirs.returncode == 0, theirs.stderr
    ours = trust_lines(done.stdout)
    assert ours == trust_lines((upper / "fapolicyd/trust.d/go").read_bytes())
    assert len(ours) > 9000
    print(f"allowlist of {len(ours)} files in {took:.1f}s")
