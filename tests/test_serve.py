"""Issue 19 item 2: a prefix's modules served to other hosts, by `serve` and by a stock nginx
with the generated config, judged by the real `go` in network namespaces that have only
loopback (no route out), as root and as uid 65534; and what either refuses to serve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from installer import cli
from tests.support.goproxy_server import RealGoProject
from tests.support.users import NOBODY, User, chown_tree, make_user, remove_user_dirs

REPO = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NEEDS = [t for t in ("unshare", "nsenter", "ip", "setpriv") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(NEEDS) or os.geteuid() != 0,
                                reason=f"needs root and {', '.join(NEEDS) or 'namespaces'}")
SECRET = b"TOPSECRET outside P/goproxy\n"


def rescue_argv(*args: str) -> List[str]:
    """The in-tree installer as its own process (python -I: no PYTHONPATH, no user site)."""
    return [sys.executable, "-I", "-m", "installer.cli", *args]


def world_readable_dir(name: str, where: str = "/tmp") -> Path:
    base = Path(tempfile.mkdtemp(prefix=f"rescue-{name}-", dir=where))
    base.chmod(0o755)  # nginx's workers and uid 65534 read the prefix
    return base


def remove(base: Path) -> None:
    shutil.rmtree(base, ignore_errors=True)  # root: read-only trees go too


@pytest.fixture(scope="module")
def lan_prefix(full_bundle, signing) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The fixture modules' bundle (with its checksum database data) installed in a prefix."""
    # In memory when it can be: a GOROOT is ~15k files, seconds to write and remove on disk.
    base = world_readable_dir("serve", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")
    started = time.monotonic()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "GOENV": "off", "LANG": "C.UTF-8"}
    done = subprocess.run(rescue_argv("install", str(full_bundle.path), "--prefix",
                                      str(base / "P"), "--trust", str(signing.signers),
                                      "--json"),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"install took {time.monotonic() - started:.1f}s")
    yield base / "P"
    remove(base)


@pytest.fixture(scope="module")
def client_cache() -> Iterator[Path]:
    """One GOCACHE for every client, owned by uid 65534 (who builds first): later root
    clients reuse its compiled standard library instead of building it again."""
    base = world_readable_dir("gocache")
    os.chown(base, NOBODY, NOBODY)
    yield base
    remove(base)


# --- running things in a network namespace with only loopback ------------------------------

@dataclass
class Host:
    """A process that started a network namespace of its own, lo up and nothing else."""

    proc: subprocess.Popen
    first_line: str = ""
    log: str = ""
    requests: List[str] = field(default_factory=list)

    def enter(self, argv: List[str]) -> List[str]:
        return ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--", *argv]


@contextmanager
def netns_server(argv: List[str], ready: Optional[Tuple[str, int]] = None) -> Iterator[Host]:
    """Run argv in a new network namespace whose only interface is loopback; stop it with
    SIGINT (Ctrl-C) at the end. `ready`: wait for that address to accept connections."""
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c",
                             'ip link set lo up && echo netns-ready && exec "$@"', "sh", *argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    host = Host(proc)
    try:
        # Until then /proc/PID/ns/net may still be this namespace (unshare not done yet).
        assert proc.stdout.readline() == "netns-ready\n", proc.stderr.read()  # type: ignore
        if ready is None:
            host.first_line = proc.stdout.readline()  # type: ignore[union-attr]
            assert host.first_line, proc.stderr.read()  # type: ignore[union-attr]
        else:
            wait_for(host, *ready)
        yield host
    finally:
        proc.send_signal(signal.SIGINT if ready is None else signal.SIGQUIT)
        out, err = proc.communicate(timeout=20)
        host.log = err
    if ready is None:
        assert proc.returncode == 130, err
        assert "stopped (Ctrl-C or SIGTERM); nothing was changed" in err


def wait_for(host: Host, addr: str, port: int) -> None:
    probe = ("import socket,sys,time\nfor _ in range(100):\n try:\n  socket.create_connection("
             f"({addr!r},{port}),1).close(); sys.exit(0)\n except OSError: time.sleep(0.05)\n"
             "sys.exit(1)")
    assert subprocess.run(host.enter([sys.executable, "-c", probe])).returncode == 0, \
        host.proc.stderr.read() if host.proc.poll() is not None else ""  # type: ignore


def start_serve(prefix: Path, listen: str) -> Tuple[List[str], Dict]:  # type: ignore[type-arg]
    return rescue_argv("serve", "--prefix", str(prefix), "--listen", listen, "--json"), {}


# --- the clients -----------------------------------------------------------------------------

WANT_LIST = {"example.com/Upper/Mod v1.0.0-Beta", "example.com/app v1.0.0",
             "example.com/dep v1.2.0", "example.com/lib/v2 v2.1.0",
             "example.com/old v2.0.0+incompatible",
             "example.com/pseudo v0.0.0-20240101000000-abcdefabcdef"}


@dataclass
class Client:
    host: Host
    go: Path
    home: Path
    gocache: Path
    served: Dict[str, str]  # GOPROXY, GOSUMDB (GONOSUMDB) as the server printed them
    user: Optional[User] = None

    def run(self, args: List[str], cwd: Path) -> str:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "GOENV": "off",
               "GOTOOLCHAIN": "local", "GOPATH": str(self.home / "gopath"),
               "GOCACHE": str(self.gocache), "GOFLAGS": "-modcacherw", "CGO_ENABLED": "0",
               **self.served}
        argv = [str(self.go), *args]
        if self.user is not None:
            argv = self.user.argv(argv)
        done = subprocess.run(self.host.enter(argv), cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"go {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout + done.stderr


def project_copy(real: RealGoProject, where: Path, uid: int, gosum: bool = True) -> Path:
    project = where / ("project" if gosum else "project-nosum")
    shutil.copytree(real.project, project)
    if not gosum:
        (project / "go.sum").unlink()
    chown_tree(project, uid)
    return project


def build_offline_through(client: Client, real: RealGoProject, work: Path, uid: int = 0,
                          tidy: bool = True) -> Dict[str, str]:
    """What a build agent does through the LAN proxy, and what go answers."""
    project = project_copy(real, work, uid)
    out = {"download": client.run(["mod", "download"], project),
           "build": client.run(["build", "./..."], project),
           "verify": client.run(["mod", "verify"], project),
           "list": client.run(["list", "-m", "all"], project)}
    assert "all modules verified" in out["verify"]
    assert set(out["list"].splitlines()[1:]) == WANT_LIST
    if tidy:  # no go.sum: every hash comes from the checksum database through the proxy
        bare = project_copy(real, work, uid, gosum=False)
        client.run(["mod", "tidy"], bare)
        assert sorted((bare / "go.sum").read_text().splitlines()) == \
            sorted(real.gosum.read_text().splitlines())
        # Outside any module: go resolves @latest of a module with only a pseudo-version.
        outside = work / "outside"
        outside.mkdir()
        chown_tree(outside, uid)
        out["latest"] = client.run(["list", "-m", "example.com/pseudo@latest",
                                    "example.com/dep@latest"], outside)
        assert out["latest"].split("\n")[:2] == [
            "example.com/pseudo v0.0.0-20240101000000-abcdefabcdef", "example.com/dep v1.2.0"]
    return out


def served_paths(log: str) -> List[str]:
    return [line.split(" ")[3] for line in log.splitlines() if " GET " in line]


def test_go_builds_offline_through_serve_on_ipv4_as_root_and_as_nobody(
        lan_prefix: Path, real: RealGoProject, client_cache: Path, tmp_path: Path) -> None:
    argv, _ = start_serve(lan_prefix, "127.0.0.1:0")
    nobody = make_user("nobody")
    try:
        with netns_server(argv) as host:
            doc = json.loads(host.first_line)
            assert doc["ok"] is True and doc["url"].startswith("http://127.0.0.1:")
            served = doc["env"]
            assert served["GOPROXY"] == doc["url"]
            assert served["GOSUMDB"].startswith("sumdb.rescue.test+")
            go = lan_prefix / "current" / "bin" / "go"
            as_nobody = Client(host, go, nobody.home, client_cache, served, nobody)
            started = time.monotonic()
            build_offline_through(as_nobody, real, nobody.work, NOBODY, tidy=False)
            nobody_took = time.monotonic() - started
            as_root = Client(host, go, tmp_path / "home", client_cache, served)
            build_offline_through(as_root, real, tmp_path)
    finally:
        remove_user_dirs(nobody)
    paths = served_paths(host.log)
    assert "/sumdb/sumdb.rescue.test/supported" in paths
    assert any(p.startswith("/sumdb/sumdb.rescue.test/lookup/") for p in paths)
    assert any(p.startswith("/sumdb/sumdb.rescue.test/tile/") for p in paths)
    assert "/example.com/pseudo/@latest" in paths  # a list of pseudo-versions only: go asks
    assert "/example.com/dep/@latest" not in paths  # a release in @v/list: go picks it there
    assert " 127.0.0.1 GET /example.com/dep/@v/v1.2.0.zip 200 " in host.log
    print(f"uid 65534 client (cold GOCACHE) took {nobody_took:.1f}s")


def test_go_builds_offline_through_serve_on_ipv6_loopback(
        lan_prefix: Path, real: RealGoProject, client_cache: Path, tmp_path: Path) -> None:
    argv, _ = start_serve(lan_prefix, "[::1]:0")
    with netns_server(argv) as host:
        doc = json.loads(host.first_line)
        assert doc["url"].startswith("http://[::1]:") and doc["listen"].startswith("[::1]:")
        client = Client(host, lan_prefix / "current" / "bin" / "go", tmp_path / "home",
                        client_cache, doc["env"])
        build_offline_through(client, real, tmp_path, tidy=False)
    assert " ::1 GET /example.com/dep/@v/v1.2.0.zip 200 " in host.log


def nginx_conf(work: Path, server_block: Path) -> Path:
    """A whole nginx.conf around the generated server block, everything inside `work`."""
    conf = work / "nginx.conf"
    temp = "\n".join(f"    {d}_temp_path {work / d};"
                     for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"user nobody nogroup;\nworker_processes 1;\npid {work / 'nginx.pid'};\n"
                    f"error_log {work / 'error.log'} info;\nevents {{}}\n"
                    f"http {{\n    access_log {work / 'access.log'};\n{temp}\n"
                    f"    include {server_block};\n}}\n")
    return conf


@contextmanager
def nginx(prefix: Path, work: Path, listen: str, netns: bool = True) -> Iterator[Host]:
    block = work / "go-modules.conf"
    assert cli.main(["serve", "--prefix", str(prefix), "--nginx-config", "--listen", listen,
                     "-o", str(block)]) == 0
    conf = nginx_conf(work, block)
    check = subprocess.run([NGINX, "-t", "-p", str(work), "-e", str(work / "error.log"), "-c",
                            str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    argv = [NGINX, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf), "-g",
            "daemon off;"]
    addr, _, port = listen.rpartition(":")
    if netns:
        with netns_server(argv, ready=(addr, int(port))) as host:
            yield host
        return
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((addr, int(port)), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, \
                    (work / "error.log").read_text()
                time.sleep(0.05)
        yield Host(proc)
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.communicate(timeout=20)


@pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (scripts/setup)")
def test_go_builds_offline_through_a_stock_nginx_with_the_generated_config(
        lan_prefix: Path, real: RealGoProject, client_cache: Path, tmp_path: Path) -> None:
    work = world_readable_dir("nginx")
    try:
        with nginx(lan_prefix, work, "127.0.0.1:8080") as host:
            served = json.loads(_nginx_env(lan_prefix))
            assert served["GOPROXY"] == "http://127.0.0.1:8080"
            client = Client(host, lan_prefix / "current" / "bin" / "go", tmp_path / "home",
                            client_cache, served)
            build_offline_through(client, real, tmp_path)
        access = (work / "access.log").read_text()
    finally:
        remove(work)
    # No @latest from a static server: go fell back to @v/list for the pseudo-version.
    assert '"GET /example.com/pseudo/@latest HTTP/1.1" 404' in access
    assert '"GET /example.com/pseudo/@v/list HTTP/1.1" 200' in access
    assert '"GET /sumdb/sumdb.rescue.test/supported HTTP/1.1" 200' in access
    assert '"GET /example.com/dep/@v/v1.2.0.zip HTTP/1.1" 200' in access


def _nginx_env(prefix: Path) -> str:
    done = subprocess.run(rescue_argv("serve", "--prefix", str(prefix), "--nginx-config",
                                      "--listen", "127.0.0.1:8080", "--json"),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert "autoindex off;" in doc["nginx_config"]
    return json.dumps(doc["env"])


# --- what neither server may answer ----------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_prefix() -> Iterator[Path]:
    """A prefix whose P/goproxy had links, a FIFO and a dotfile planted in it, beside a
    secret file outside it."""
    base = world_readable_dir("hostile")
    outside = base / "outside"
    (outside / "@v").mkdir(parents=True)
    (outside / "secret").write_bytes(SECRET)
    (outside / "@v" / "list").write_bytes(SECRET)
    vdir = base / "P" / "goproxy" / "example.com" / "dep" / "@v"
    vdir.mkdir(parents=True)
    (vdir / "list").write_text("v1.0.0\n")
    (vdir / "v1.0.0.info").write_text('{"Version":"v1.0.0"}')
    (vdir / ".secret").write_bytes(SECRET)
    evil = vdir.parents[1] / "evil" / "@v"
    evil.mkdir(parents=True)
    (evil / "v1.0.0.zip").symlink_to(outside / "secret")
    (evil / "list").symlink_to("../../../../outside/@v/list")
    (vdir.parents[1] / "linked").symlink_to(outside)
    fifo = vdir.parents[1] / "fifo" / "@v"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / "list")
    for dirpath, _dirs, _files in os.walk(base):
        os.chmod(dirpath, 0o755)
    yield base / "P"
    remove(base)


@pytest.fixture(scope="module")
def hostile_serve(hostile_prefix: Path) -> Iterator[int]:
    proc = subprocess.Popen(rescue_argv("serve", "--prefix", str(hostile_prefix), "--listen",
                                        "127.0.0.1:0", "--json"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        yield int(json.loads(line)["url"].rsplit(":", 1)[1])
    finally:
        proc.send_signal(signal.SIGTERM)  # as a service manager stops it
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def hostile_nginx(hostile_prefix: Path) -> Iterator[int]:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (scripts/setup)")
    work = world_readable_dir("nginx")
    port = free_port()
    try:
        with nginx(hostile_prefix, work, f"127.0.0.1:{port}", netns=False):
            yield port
    finally:
        remove(work)


def ask(port: int, request: bytes) -> Tuple[int, bytes]:
    """One raw request (no client tidies the path first); the status and the whole answer."""
    with socket.create_connection(("127.0.0.1", port), 10) as conn:
        conn.sendall(request)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def get(path: str, method: str = "GET", body: bytes = b"") -> bytes:
    extra = f"Content-Length: {len(body)}\r\n" if body else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: lan\r\nConnection: close\r\n{extra}\r\n"
            .encode() + body)


# (what, request, status from serve, status from nginx). nginx's try_files answers 404 for
# what disable_symlinks refuses; serve says 403 (and its log line says why).
REFUSALS = [
    ("dot-dot", get("/../outside/secret"), 400, 400),
    ("encoded dot-dot", get("/%2e%2e/outside/secret"), 400, 400),
    ("encoded slashes and dot-dots",
     get("/example.com/dep/@v/..%2F..%2F..%2F..%2F..%2Foutside%2Fsecret"), 400, 400),
    ("planted file link", get("/example.com/evil/@v/v1.0.0.zip"), 403, 404),
    ("planted relative link", get("/example.com/evil/@v/list"), 403, 404),
    ("planted directory link", get("/example.com/linked/@v/list"), 403, 404),
    ("dotfile", get("/example.com/dep/@v/.secret"), 404, 404),
    ("directory listing", get("/example.com/dep/@v/"), 404, 404),
    ("root listing", get("/"), 404, 404),
    ("planted fifo", get("/example.com/fifo/@v/list"), 403, 404),
    ("POST", get("/example.com/dep/@v/list", "POST", b"v9.9.9\n"), 405, 405),
    ("PUT", get("/example.com/dep/@v/list", "PUT", b"v9.9.9\n"), 405, 405),
    ("huge request line", get("/" + "a" * 9000), 414, 414),
    ("huger request line", get("/example.com/" + "a" * 70000), 414, 414),
]


@pytest.mark.parametrize("server", ["serve", "nginx"])
@pytest.mark.parametrize("what,request_bytes,serve_status,nginx_status", REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_lan_server_refuses_to_leave_goproxy_or_to_change_it(
        request: pytest.FixtureRequest, server: str, what: str, request_bytes: bytes,
        serve_status: int, nginx_status: int, hostile_prefix: Path) -> None:
    port = request.getfixturevalue(f"hostile_{server}")
    status, answer = ask(port, request_bytes)
    assert status == (serve_status if server == "serve" else nginx_status), answer[:300]
    assert b"TOPSECRET" not in answer
    assert (hostile_prefix / "goproxy" / "example.com" / "dep" / "@v" / "list").read_text() \
        == "v1.0.0\n"
    status, answer = ask(port, get("/example.com/dep/@v/list"))  # and it still serves
    assert status == 200 and answer.endswith(b"\r\n\r\nv1.0.0\n")
