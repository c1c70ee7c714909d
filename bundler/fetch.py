"""Upstream downloads: httpx with retries and bounds, into the content-addressed store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Optional, TypeVar

import httpx

from bundler import progress, tls
from bundler.blobstore import BlobStore
from bundler.retry import RetryPolicy, Transient
from manifests.errors import NotReadyError, TrustError

RETRY = RetryPolicy(tries=4, backoff=0.5)
CHUNK = 1 << 20

T = TypeVar("T")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("RESCUE_CACHE_DIR", Path(base) / "rescue"))


def new_client(ca_bundle: Optional[Path] = None) -> httpx.Client:
    """The client every upstream request goes through; certificates are always verified.

    trust_env: HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE and .netrc are honoured as operators
    expect; `ca_bundle` (the spec's private CA) is trusted on top of them.
    """
    return httpx.Client(follow_redirects=True, trust_env=True,
                        verify=tls.client_context(ca_bundle),
                        timeout=httpx.Timeout(60.0, connect=20.0),
                        headers={"User-Agent": "rescue-bundler/0.1"})


def _retrying(what: str, url: str, attempt_fn: Callable[[], T]) -> T:
    """Run attempt_fn under RETRY: transport errors and 5xx answers are tried again."""
    def attempt() -> T:
        try:
            return attempt_fn()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500:
                raise NotReadyError(
                    f"fetching {what}: {url}: HTTP {exc.response.status_code}; check the "
                    "URL and version in the spec, or the mirror's contents") from None
            raise Transient(exc) from None
        except httpx.TransportError as exc:
            refused = tls.certificate_failure(exc, url)
            if refused is not None:  # never retried: a certificate does not change in a second
                raise refused from None
            raise Transient(exc) from None

    try:
        return RETRY.run(attempt)
    except Transient as last:
        raise NotReadyError(
            f"fetching {what}: {url}: {last.cause} (after {RETRY.tries} tries); check the "
            "network, HTTPS_PROXY and SSL_CERT_FILE, or use a mirror URL in the spec") from None


def get_bytes(client: httpx.Client, url: str, what: str, limit: int,
              headers: Optional[dict] = None) -> bytes:
    """GET a small document (an index), bounded to `limit` bytes."""
    def attempt() -> bytes:
        with client.stream("GET", url, headers=headers) as resp:
            resp.raise_for_status()
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise NotReadyError(f"fetching {what}: {url}: larger than {limit} bytes")
            return bytes(body)
    return _retrying(what, url, attempt)


def download(store: BlobStore, client: httpx.Client, url: str, sha256: str, what: str,
             size: Optional[int] = None) -> Path:
    """The stored file for `sha256`, downloading `url` and checking it when missing."""
    sha256 = sha256.lower()
    hit = store.lookup(sha256)
    if hit:
        return hit
    # Whole or nothing: a mismatch or a dropped connection leaves nothing under its name.
    with store.staged() as tmp:
        def attempt() -> None:
            digest = hashlib.sha256()
            got = 0
            with open(tmp, "wb") as out, client.stream("GET", url) as resp:
                resp.raise_for_status()
                total = size or int(resp.headers.get("content-length") or 0) or None
                with progress.task(f"downloading {what}", total) as bar:
                    for chunk in resp.iter_bytes(CHUNK):
                        got += len(chunk)
                        if size is not None and got > size:
                            raise TrustError(
                                f"fetching {what}: {url}: more than the {size} bytes the "
                                f"index announced", tampering=True)
                        digest.update(chunk)
                        out.write(chunk)
                        bar.advance(len(chunk))
            actual = digest.hexdigest()
            if actual != sha256:
                raise TrustError(
                    f"verifying {what}: sha256 mismatch\n\tdownloaded: {actual}\n"
                    f"\texpected:   {sha256}\n\turl:        {url}", tampering=True)

        _retrying(what, url, attempt)
        return store.add(tmp, sha256)[1]
