"""Serve a prefix's P/goproxy to other hosts: the GOPROXY protocol and the checksum database
endpoints, read-only, over HTTP (stdlib http.server, one thread per connection)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import socketserver
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from installer import serve_routes
from installer.serve_routes import Latest, Refusal
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from manifests.modpath import escape_version
from manifests.text import plain

DEFAULT_PORT = 8080
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_COMMON = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_DIR = _COMMON | getattr(os, "O_DIRECTORY", 0)
_FILE = _COMMON | getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not hang a thread
_LINK_ERRNOS = {errno.ELOOP, getattr(errno, "EMLINK", errno.ELOOP)}


class Listen(NamedTuple):
    host: str
    port: int
    family: int

    @property
    def url_host(self) -> str:
        """The host part of the URL clients use: a wildcard address names this machine."""
        if ipaddress.ip_address(self.host).is_unspecified:
            return socket.gethostname()
        return f"[{self.host}]" if self.family == socket.AF_INET6 else self.host


def parse_listen(text: str) -> Listen:
    """`ADDR[:PORT]` with an IP address: `0.0.0.0:8080`, `192.0.2.7`, `[::]:8080`, `::1`."""
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
        if not 0 <= number <= 65535 or not port.isdigit():
            raise ValueError(port)
    except ValueError:
        raise NotReadyError(
            f"reading --listen {plain(text)}: not ADDR[:PORT] with an IP address; give one "
            "such as 0.0.0.0:8080 (every IPv4 interface), 192.0.2.7, [::]:8080 or [::1]:8080 "
            f"(the port defaults to {DEFAULT_PORT}; 0 picks a free one)",
            operation="reading --listen", subject=text) from None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return Listen(str(address), number, family)


class Opened(NamedTuple):
    fd: int
    size: int


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def open_inside(root: Path, rel: str) -> Opened:
    """The regular file `root/rel`, opened one part at a time with O_NOFOLLOW: a link anywhere
    below `root` (planted, or left by damage) is refused, never followed out of P/goproxy."""
    parts = rel.split("/")
    try:
        if os.open not in os.supports_dir_fd or not _NOFOLLOW:
            return _open_checked(root, parts)
        fd = os.open(root, _DIR)
        try:
            for part in parts[:-1]:
                child = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = child
            found = os.open(parts[-1], _FILE, dir_fd=fd)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise Refused(404, "not found") from None
    except OSError as exc:
        # Linux answers ENOTDIR, not ELOOP, for a link opened as a directory with O_NOFOLLOW.
        if exc.errno in _LINK_ERRNOS or _a_link_on_the_way(root, parts):
            raise Refused(403, "a symbolic link, which is never followed") from None
        if exc.errno == errno.ENOTDIR:
            raise Refused(404, "not found") from None
        raise Refused(403, exc.strerror or "cannot open") from None
    return _regular(found)


def _a_link_on_the_way(root: Path, parts: List[str]) -> bool:
    path = root
    for part in parts:
        path = path / part
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return True
        except OSError:
            return False
    return False


def _open_checked(root: Path, parts: List[str]) -> Opened:
    """Where open() takes no dir_fd (Windows): lstat every part, then open the file."""
    if _a_link_on_the_way(root, parts):
        raise OSError(errno.ELOOP, "a symbolic link")
    return _regular(os.open(root.joinpath(*parts), _FILE))


def _regular(fd: int) -> Opened:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Refused(403 if not stat.S_ISDIR(info.st_mode) else 404, "not a regular file")
    return Opened(fd, info.st_size)


def read_small(root: Path, rel: str, limit: int) -> bytes:
    opened = open_inside(root, rel)
    with os.fdopen(opened.fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Refused(500, f"{rel} is larger than {limit} bytes")
    return data


def latest_info(root: Path, route: Latest) -> bytes:
    """`<m>/@latest`: the .info of the version `@v/list` makes latest (404 when it has none)."""
    listing = read_small(root, f"{route.module_dir}/@v/list", DEFAULT_LIMITS.module_meta_bytes)
    version = serve_routes.latest_version(listing.decode("utf-8", "replace"))
    if version is None:
        raise Refused(404, "no version in @v/list")
    return read_small(root, f"{route.module_dir}/@v/{escape_version(version)}.info",
                      DEFAULT_LIMITS.module_meta_bytes)


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the files routes name; every other method is 405."""

    server_version = "rescue-serve"
    protocol_version = "HTTP/1.1"  # go keeps connections alive between a module's files
    timeout = DEFAULT_LIMITS.serve_idle_seconds  # an idle or stalled client frees its thread
    server: Server

    def version_string(self) -> str:
        return self.server_version  # not the Python version: nothing for a scanner to match

    def parse_request(self) -> bool:
        self._started = time.monotonic()
        self._reason = ""
        if len(self.raw_requestline) > DEFAULT_LIMITS.serve_request_line_bytes:
            self.requestline, self.command, self.path = "", "", ""
            self.request_version = "HTTP/1.0"  # read no headers; answer and close
            self.close_connection = True
            self._refuse(Refusal(414, "request line longer than "
                                      f"{DEFAULT_LIMITS.serve_request_line_bytes} bytes"))
            return False
        return super().parse_request()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _not_allowed(self) -> None:
        self._refuse(Refusal(405, "read-only: GET and HEAD only"), {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _not_allowed  # noqa: N815

    def _answer(self, body: bool) -> None:
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") \
                or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a body nobody reads must not be taken for a request
        found = serve_routes.route(self.path, self.server.sumdb_name)
        try:
            if isinstance(found, Refusal):
                raise Refused(*found)
            if isinstance(found, Latest):
                data = latest_info(self.server.root, found)
                self._send(200, serve_routes.JSON, len(data))
                if body:
                    self.wfile.write(data)
                return
            opened = open_inside(self.server.root, found.rel)
        except Refused as exc:
            self._refuse(Refusal(exc.status, exc.reason))
            return
        with os.fdopen(opened.fd, "rb") as f:
            self._send(200, found.content_type, opened.size)
            if body:
                self._copy(f, opened.size)

    def _copy(self, f, size: int) -> None:  # type: ignore[no-untyped-def]
        left = size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:  # cut while served: the client sees a short body and retries
                self.close_connection = True
                return
            self.wfile.write(chunk)
            left -= len(chunk)

    def _send(self, status: int, content_type: str, length: int,
              headers: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _refuse(self, refusal: Refusal, headers: Optional[Dict[str, str]] = None) -> None:
        self._reason = refusal.reason
        body = f"{refusal.status} {self.responses.get(refusal.status, ('',))[0]}: " \
               f"{refusal.reason}\n".encode()
        if refusal.status >= 500 or refusal.status in (400, 405, 414):
            self.close_connection = True  # the rest of what it sent cannot be trusted
        self._send(refusal.status, serve_routes.TEXT, len(body), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: object = "-", size: object = "-") -> None:
        log = self.server.log
        if log is None:
            return
        took = time.monotonic() - getattr(self, "_started", time.monotonic())
        what = f"{self.command or '-'} {plain(getattr(self, 'path', '') or '-', 200)}"
        reason = f" ({self._reason})" if getattr(self, "_reason", "") else ""
        log(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {self.client_address[0]} "
            f"{what} {code}{reason} {took * 1000:.0f}ms")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # send_error's own lines: log_request says it once per request

    def send_error(self, code: int, message: Optional[str] = None,
                   explain: Optional[str] = None) -> None:
        """http.server's own refusals (a malformed request line, 501, headers too long)."""
        self.close_connection = True
        self._refuse(Refusal(code, message or self.responses.get(code, ("error",))[0]))


class Server(socketserver.ThreadingMixIn, HTTPServer):
    """One daemon thread per connection; stdlib only (ThreadingHTTPServer is this, from 3.7)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, listen: Listen, root: Path, sumdb_name: Optional[str],
                 log: Optional[Callable[[str], None]]) -> None:
        self.address_family = listen.family
        self.root, self.sumdb_name, self.log = root, sumdb_name, log
        HTTPServer.__init__(self, (listen.host, listen.port), Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-answer is one log line, not a traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, socket.timeout)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]  # a bug
        elif self.log is not None:
            self.log(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                     f"{client_address[0]} connection dropped: "  # type: ignore[index]
                     f"{type(exc).__name__}: {plain(exc, 200)}")

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for this host's name (getfqdn), which can hang for
        # seconds on a host with no network: the name is not needed.
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), \
            int(self.server_address[1])


def start(listen: Listen, root: Path, sumdb_name: Optional[str],
          log: Optional[Callable[[str], None]]) -> Server:
    """A bound, listening server (call serve_forever); the bind's failure named with a fix."""
    try:
        return Server(listen, root, sumdb_name, log)
    except OSError as exc:
        where = f"{listen.url_host if listen.family == socket.AF_INET6 else listen.host}" \
                f":{listen.port}"
        fix = {errno.EADDRINUSE: "another program listens there; pass another port "
                                 "(--listen ADDR:PORT) or stop it",
               errno.EACCES: "ports below 1024 need root (or CAP_NET_BIND_SERVICE); pass a "
                             "port above 1023",
               errno.EADDRNOTAVAIL: "no interface of this machine has that address; see "
                                    "`ip address`, or pass 0.0.0.0 or [::]"}.get(
            exc.errno or 0, "check the address and try again")
        raise NotReadyError(f"serving on {where}: {exc.strerror}; {fix}",
                            operation="serving", subject=where) from None


def log_to_stderr() -> Callable[[str], None]:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, file=sys.stderr, flush=True)
    return log


def address(server: Server) -> Tuple[str, int]:
    return str(server.server_address[0]), int(server.server_address[1])
