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
from installer.serve_routes import latest_version
from tests.support.clirun import run
from tests.support.goproxy_server import RealGoProject
from tests.support.sumdb_server import NAME as SUMDB_NAME
from tests.support.sumdb_server import SumDB
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

TEXT, JSON = "text/plain; charset=utf-8", "application/json"
PSEUDO = "v0.0.0-20240101000000-abcdefabcdef"
FILES = {  # a module and the database's files in a small prefix, with the type go expects
    "example.com/dep/@v/list": (b"v1.0.0\n", TEXT),
    "example.com/dep/@v/v1.0.0.info": (b'{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}',
                                       JSON),
    "example.com/dep/@v/v1.0.0.mod": (b"module example.com/dep\n", TEXT),
    "example.com/dep/@v/v1.0.0.zip": (b"PK\x05\x06" + bytes(18), "application/zip"),
    "example.com/pseudo/@v/list": (PSEUDO.encode() + b"\n", TEXT),
    f"example.com/pseudo/@v/{PSEUDO}.info": (b'{"Version":"%s"}' % PSEUDO.encode(), JSON),
    f"sumdb/{SUMDB_NAME}/supported": (b"", TEXT),
    f"sumdb/{SUMDB_NAME}/lookup/example.com/dep@v1.0.0": (b"1\nexample.com/dep v1.0.0 h1:x\n",
                                                         TEXT),
    f"sumdb/{SUMDB_NAME}/tile/8/0/000.p/2": (bytes(64), "application/octet-stream"),
}


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
    for name, (data, _type) in FILES.items():
        (base / "P" / "goproxy" / name).parent.mkdir(parents=True, exist_ok=True)
        (base / "P" / "goproxy" / name).write_bytes(data)
    (base / "P" / "state").mkdir()
    db = SumDB()
    (base / "P" / "state" / "sumdb.json").write_text(json.dumps(
        {"name": db.name, "key": db.vkey, "nosumdb": "corp.example/*"}))
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
                                        "127.0.0.1:0", "--json", "--quiet"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        yield int(json.loads(line)["url"].rsplit(":", 1)[1])
    finally:
        proc.send_signal(signal.SIGTERM)  # as a service manager stops it
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert err == (f"rescue: serving {hostile_prefix / 'goproxy'}: stopped (Ctrl-C or "
                   "SIGTERM); nothing was changed\n")  # --quiet: no request was logged
    doc = json.loads(out)  # --json: the way out is a JSON document too
    assert doc["exit_code"] == 130 and doc["error"]["type"] == "interrupted"


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


def header(answer: bytes, name: str) -> str:
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    found = [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
             if line.split(":", 1)[0].lower() == name.lower()]
    return found[0] if found else ""


@pytest.mark.parametrize("server", ["serve", "nginx"])
def test_lan_server_answers_each_file_with_the_type_go_expects(
        request: pytest.FixtureRequest, server: str) -> None:
    port = request.getfixturevalue(f"hostile_{server}")
    for rel, (data, content_type) in FILES.items():
        status, answer = ask(port, get("/" + rel))
        assert status == 200, answer[:300]
        assert header(answer, "Content-Type") == content_type, rel
        assert answer.split(b"\r\n\r\n", 1)[1] == data, rel
        status, answer = ask(port, get("/" + rel, "HEAD"))
        assert status == 200 and answer.endswith(b"\r\n\r\n"), answer
        assert header(answer, "Content-Length") == str(len(data))
    # Another database's endpoints are not here: go then asks that database itself.
    assert ask(port, get("/sumdb/sum.golang.org/supported"))[0] == 404


def test_serve_never_reads_a_body_as_the_next_request(hostile_serve: int) -> None:
    inner = get("/example.com/dep/@v/v1.0.0.mod")  # ends with Connection: close
    outer = (f"GET /example.com/dep/@v/list HTTP/1.1\r\nHost: lan\r\nContent-Length: "
             f"{len(inner)}\r\n\r\n").encode() + inner  # keep-alive, a body nobody reads
    status, answer = ask(hostile_serve, outer)
    assert status == 200 and answer.count(b"HTTP/1.1 ") == 1, answer
    assert b"module example.com/dep" not in answer


def test_serve_answers_latest_with_the_highest_release_else_pre_release(
        hostile_serve: int, hostile_nginx: int) -> None:
    status, answer = ask(hostile_serve, get("/example.com/dep/@latest"))
    assert status == 200 and header(answer, "Content-Type") == "application/json"
    assert answer.endswith(FILES["example.com/dep/@v/v1.0.0.info"][0])
    status, answer = ask(hostile_serve, get("/example.com/pseudo/@latest"))
    assert status == 200 and answer.endswith(FILES[f"example.com/pseudo/@v/{PSEUDO}.info"][0])
    assert ask(hostile_serve, get("/example.com/none/@latest"))[0] == 404
    # A static server cannot: go falls back to @v/list on this 404 (README).
    assert ask(hostile_nginx, get("/example.com/dep/@latest"))[0] == 404


@pytest.mark.parametrize("listing,latest", [
    ("v1.0.0\nv1.2.0\nv1.10.0-rc.1\n", "v1.2.0"),
    ("v2.0.0+incompatible\nv1.9.9\n", "v2.0.0+incompatible"),
    ("v1.0.0-beta\nv0.0.0-20240101000000-abcdefabcdef\nv1.0.0-alpha\n", "v1.0.0-beta"),
    ("v0.0.0-20240101000000-abcdefabcdef 2024-01-01T00:00:00Z\n",
     "v0.0.0-20240101000000-abcdefabcdef"),
    ("not-a-version\n\n", None),
])
def test_latest_is_the_highest_release_else_the_highest_pre_release(
        listing: str, latest: Optional[str]) -> None:
    assert latest_version(listing) == latest


def test_serve_prints_what_clients_set_logs_each_request_and_stops_on_ctrl_c(
        hostile_prefix: Path) -> None:
    proc = subprocess.Popen(rescue_argv("serve", "--prefix", str(hostile_prefix), "--listen",
                                        "127.0.0.1:0"), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        head = [proc.stdout.readline() for _ in range(5)]  # type: ignore[union-attr]
        port = int(head[0].split(" port ", 1)[1].split(";")[0])
        ask(port, get("/example.com/dep/@v/list"))
        ask(port, get("/example.com/linked/@v/list"))
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    url = f"http://127.0.0.1:{port}"
    assert head == [
        f"serving {hostile_prefix / 'goproxy'} read-only on {url} (bound to 127.0.0.1 port "
        f"{port}; Ctrl-C stops it)\n", "clients set:\n", f"  GOPROXY={url}\n",
        f"  GOSUMDB={SumDB().vkey}\n", "  GONOSUMDB=corp.example/*\n"]
    lines = err.splitlines()
    assert lines[0].endswith(" 127.0.0.1 GET /example.com/dep/@v/list 200 " + lines[0][-3:])
    assert " 127.0.0.1 GET /example.com/linked/@v/list 403 (a symbolic link, which is never " \
           "followed) " in lines[1]
    assert lines[2:] == [f"rescue: serving {hostile_prefix / 'goproxy'}: stopped (Ctrl-C or "
                         "SIGTERM); nothing was changed"]
    assert proc.returncode == 130


def test_nginx_config_written_to_a_file_says_how_to_use_it(
        hostile_prefix: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "go-modules.conf"
    code, text, _ = run(["serve", "--prefix", hostile_prefix, "--nginx-config", "--listen",
                         "[::]:80", "-o", out], capsys)
    assert code == 0
    assert text == (f"wrote {out}; check it with `nginx -t`, then reload nginx. Clients set:\n"
                    f"  GOPROXY=http://{socket.gethostname()}:80\n  GOSUMDB={SumDB().vkey}\n"
                    "  GONOSUMDB=corp.example/*\n")
    conf = out.read_text()
    assert "    listen [::]:80;\n" in conf and "autoindex off;" in conf
    assert f"    location ^~ /sumdb/{SUMDB_NAME}/tile/ {{\n" in conf
    assert "# <module>/@latest is not served (404)" in conf


@pytest.mark.parametrize("args,message", [
    (["--listen", "lan-host:8080"],
     "rescue: reading --listen lan-host:8080: not ADDR[:PORT] with an IP address; give one such "
     "as 0.0.0.0:8080 (every IPv4 interface), 192.0.2.7, [::]:8080 or [::1]:8080 (the port "
     "defaults to 8080; 0 picks a free one)\n"),
    (["--listen", "[::1]:99999"], "rescue: reading --listen [::1]:99999: not ADDR[:PORT]"),
    (["--listen", "192.0.2.77:8080"],
     "rescue: serving on 192.0.2.77:8080: Cannot assign requested address; no interface of "
     "this machine has that address; see `ip address`, or pass 0.0.0.0 or [::]\n"),
    (["-o", "x.conf"], "rescue: reading the command line: -o/--output only goes with "
                       "--nginx-config\n"),
])
def test_serve_refuses_what_it_cannot_do_and_says_what_to_pass(
        hostile_prefix: Path, capsys: pytest.CaptureFixture, args: List[str],
        message: str) -> None:
    code, _, err = run(["serve", "--prefix", hostile_prefix, *args], capsys)
    assert code == 2
    assert err.startswith(message)


def test_serve_on_a_port_in_use_says_to_pass_another(hostile_prefix: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(["serve", "--prefix", hostile_prefix, "--listen",
                            f"127.0.0.1:{port}"], capsys)
    assert code == 2
    assert err == (f"rescue: serving on 127.0.0.1:{port}: Address already in use; another "
                   "program listens there; pass another port (--listen ADDR:PORT) or stop it\n")


def test_serve_without_modules_says_to_install_a_bundle_that_carries_them(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["serve", "--prefix", tmp_path / "P"], capsys)
    assert code == 2
    assert err == (f"rescue: serving {tmp_path / 'P' / 'goproxy'}: no module proxy there (no "
                   f"bundle that carries modules was installed into {tmp_path / 'P'}); install "
                   f"one first: python3 rescue.pyz install BUNDLE --prefix {tmp_path / 'P'}\n")


def test_nginx_config_refuses_a_prefix_path_nginx_would_read_as_a_variable(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prefix = tmp_path / "go$HOME"
    (prefix / "goproxy").mkdir(parents=True)
    code, _, err = run(["serve", "--prefix", prefix, "--nginx-config"], capsys)
    assert code == 2
    assert err == (f"rescue: writing the nginx configuration for '{prefix / 'goproxy'}': the "
                   "path holds a $ (nginx reads a variable there), a double quote or a control "
                   "character; pass --prefix as a path without them (a link to the prefix "
                   "will do), or use `serve --listen`\n")
