"""Throw-away TLS for drills and tests: a private CA, server certificates, HTTPS on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Name = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class ServerCert:
    cert_pem: bytes
    key_pem: bytes


class CA:
    """A private certificate authority that lives only as long as this object."""

    def __init__(self, common_name: str = "rescue throw-away CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, names: Sequence[Name] = (LOOPBACK,), *, expired: bool = False) -> ServerCert:
        """A server certificate for `names` (host names and IP addresses, as SANs).

        `expired`: valid for an hour that ended a day ago, as a forgotten renewal leaves it.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.IPAddress(n) if not isinstance(n, str) else x509.DNSName(n) for n in names]
        now = _now()
        start = now - datetime.timedelta(days=1, hours=1) if expired else now - \
            datetime.timedelta(hours=1)
        end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(names[0]))]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        return ServerCert(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def server_context(server: ServerCert) -> ssl.SSLContext:
    """A TLS server context presenting `server` (ssl loads chains from files only)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(server.cert_pem)
        key.write_bytes(server.key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


class HTTPSServer(ThreadingHTTPServer):
    """ThreadingHTTPServer speaking TLS when given a context.

    The handshake runs in the request's own thread, not in the accept loop: a client that
    refuses the certificate (the point of a drill) must not stall or kill the server.
    """

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], handler: Callable[..., Any],
                 tls: Union[ssl.SSLContext, None] = None) -> None:
        super().__init__(address, handler)
        self.tls = tls

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate, or went away: its error to report
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()


@contextmanager
def serving(handler: Callable[..., Any], tls: Union[ssl.SSLContext, None] = None
            ) -> Iterator[str]:
    """`handler` on an ephemeral 127.0.0.1 port, in a thread; yields the base URL."""
    server = HTTPSServer(("127.0.0.1", 0), handler, tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{server.scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
