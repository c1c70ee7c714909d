"""The connected side's TLS: which CAs a download trusts, and certificate failures named with
their host and their fix. Verification is always on: nothing here can turn it off."""

from __future__ import annotations

import os
import ssl
import time
import urllib.parse
from pathlib import Path
from typing import Optional

import httpx

from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code carries them.
_UNKNOWN_CA = {2, 18, 19, 20, 21}  # no issuer here; self-signed leaf or chain; leaf unverifiable
_NOT_YET_VALID, _EXPIRED = 9, 10
_NAME_MISMATCH = {62, 64}  # host name, IP address


def read_ca_bundle(path: Path) -> tuple[Optional[bytes], str]:
    """(the PEM bytes, "") of a CA file, or (None, what is wrong with it) for the spec's error."""
    try:
        with open(path, "rb") as f:
            data = f.read(DEFAULT_LIMITS.ca_bundle_bytes + 1)
    except FileNotFoundError:
        return None, f"no such file {path}"
    except IsADirectoryError:
        return None, f"{path} is a directory; give the PEM file of the CA certificate(s)"
    except PermissionError:
        return None, f"cannot read {path}: permission denied"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror}"
    if len(data) > DEFAULT_LIMITS.ca_bundle_bytes:
        return None, f"{path} is larger than {DEFAULT_LIMITS.ca_bundle_bytes} bytes, not a CA file"
    if _PEM_CERT not in data:
        return None, (f"{path} is not a PEM certificate file (no \"-----BEGIN CERTIFICATE-----\" "
                      "line); convert a DER file with `openssl x509 -inform der -in FILE "
                      "-out ca.pem`")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path} holds a certificate OpenSSL cannot read ({exc})"
    return data, ""


def client_context(ca_bundle: Optional[Path] = None) -> ssl.SSLContext:
    """The CAs httpx trusts by default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), plus
    the spec's private CA: a CA for one mirror must not cut off go.dev."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        value = os.environ.get(var)
        if value and not os.path.exists(value):
            raise NotReadyError(f"setting up TLS: {var}={value}: no such "
                                f"{'file' if var == 'SSL_CERT_FILE' else 'directory'}; point it "
                                "at your CA's PEM file, or unset it to use the built-in CAs")
    try:
        ctx = httpx.create_ssl_context(trust_env=True)
    except ssl.SSLError as exc:
        raise NotReadyError(f"setting up TLS: SSL_CERT_FILE={os.environ.get('SSL_CERT_FILE')}: "
                            f"not a PEM file of CA certificates ({exc}); point it at your CA's "
                            "PEM file, or unset it") from None
    except OSError as exc:
        raise NotReadyError(f"setting up TLS: SSL_CERT_FILE={os.environ.get('SSL_CERT_FILE')}: "
                            f"cannot read it ({exc.strerror}); make it readable by this user, "
                            "or unset it") from None
    if ca_bundle is not None:
        data, problem = read_ca_bundle(ca_bundle)
        if data is None:  # the spec checked it; it changed since
            raise NotReadyError(f"setting up TLS: ca_bundle {problem}")
        ctx.load_verify_locations(cadata=data.decode("ascii"))
    # Defence in depth: no code path may hand out a context that skips either check.
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def _host(url: str) -> tuple[str, str]:
    """(host:port as the URL gives it, the bare host name) for messages."""
    parts = urllib.parse.urlsplit(url)
    name = parts.hostname or url
    host = f"[{name}]" if ":" in name else name
    return (f"{host}:{parts.port}" if parts.port else host), name


def _cert_error(exc: BaseException) -> Optional[ssl.SSLCertVerificationError]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def certificate_failure(exc: BaseException, url: str) -> Optional[NotReadyError]:
    """The error to show when `exc` (from a request to `url`) is a refused server certificate.

    Not retried by callers: a certificate does not become trusted a second later.
    """
    cert = _cert_error(exc)
    if cert is None:
        return None
    host, name = _host(url)
    code = cert.verify_code
    if code in _UNKNOWN_CA:
        what = "is not signed by a CA this machine trusts"
        fix = ("if it is your private CA (or your TLS-inspecting proxy's), give its PEM file "
               "with SSL_CERT_FILE=FILE or `ca_bundle = \"FILE\"` under [upstream] in the spec")
    elif code in (_EXPIRED, _NOT_YET_VALID):
        clock = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        what = "has expired" if code == _EXPIRED else "is not valid yet"
        fix = (f"renew the server's certificate, or set this machine's clock right (it says "
               f"{clock})")
    elif code in _NAME_MISMATCH:
        what = f"does not match the host name {name}"
        fix = ("use the host name the certificate was issued for in the URL, or have it "
               "reissued with this name in its subjectAltName (a mismatch can also mean "
               "something intercepts the connection)")
    else:
        what = f"was refused ({cert.verify_message})"
        fix = "ask the server's operator to fix its certificate"
    return NotReadyError(f"connecting to {host}: its TLS certificate {what}; {fix}\n\turl: {url}",
                         hint=fix)
