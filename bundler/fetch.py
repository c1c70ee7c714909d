"""Upstream downloads: httpx with retries and bounds, into a content-addressed cache."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Optional

import httpx

from bundler import progress, tls
from manifests.errors import NotReadyError, TrustError
from manifests.files import atomic_writer, sha256_file

RETRIES = 4
BACKOFF_SECONDS = 0.5
CHUNK = 1 << 20


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


def _retrying(what: str, url: str, attempt_fn):  # type: ignore[no-untyped-def]
    """Run attempt_fn with backoff on transport errors and 5xx answers."""
    last: Optional[BaseException] = None
    for attempt in range(RETRIES):
        try:
            return attempt_fn()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500:
                raise NotReadyError(
                    f"fetching {what}: {url}: HTTP {exc.response.status_code}; check the "
                    "URL and version in the spec, or the mirror's contents") from None
            last = exc
        except httpx.TransportError as exc:
            refused = tls.certificate_failure(exc, url)
            if refused is not None:
                raise refused from None
            last = exc
        time.sleep(BACKOFF_SECONDS * (2 ** attempt))
    raise NotReadyError(f"fetching {what}: {url}: {last} (after {RETRIES} tries); check the "
                        "network, HTTPS_PROXY and SSL_CERT_FILE, or use a mirror URL in the spec")


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


class Cache:
    """Downloads keyed by their sha256: a rebuild never downloads the same bytes twice."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def lookup(self, sha256: str) -> Optional[Path]:
        path = self.path_for(sha256)
        if path.is_file() and sha256_file(path) == sha256:
            return path
        return None

    def fetch(self, client: httpx.Client, url: str, sha256: str, what: str,
              size: Optional[int] = None) -> Path:
        """The cached file for `sha256`, downloading `url` and checking it when missing."""
        sha256 = sha256.lower()
        hit = self.lookup(sha256)
        if hit:
            return hit
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> Path:
            digest = hashlib.sha256()
            got = 0
            # Whole or nothing: a mismatch or a dropped connection leaves no file under `final`.
            with atomic_writer(final) as out, client.stream("GET", url) as resp:
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
            return final

        return _retrying(what, url, attempt)
