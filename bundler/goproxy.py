"""GOPROXY protocol client: list fall-through, .netrc credentials, retries and bounds."""

from __future__ import annotations

import json
import netrc
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

import httpx

from bundler import tls
from bundler.goproxy_config import ProxyConfig
from bundler.retry import RetryPolicy, Transient
from manifests.errors import NotReadyError, TrustError
from manifests.files import atomic_writer
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import (
    ModulePathError,
    escape_path,
    escape_version,
    is_pseudo_version,
    is_valid_semver,
    sort_versions,
)

RETRY = RetryPolicy(tries=3, backoff=0.5)


class _Failed(Exception):
    def __init__(self, url: str, reason: str, *, not_found: bool = False, retry: bool = False,
                 error: NotReadyError | None = None):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.not_found, self.retry = url, reason, not_found, retry
        self.error = error  # a refused certificate: shown as it is, with its fix


class _TooLarge(Exception):
    pass


class GoProxy:
    """Fetches `.info`, `.mod`, `.zip` and `@v/list` from a GOPROXY list over a caller's client."""

    def __init__(self, client: httpx.Client, config: ProxyConfig, *,
                 limits: Limits = DEFAULT_LIMITS, retry: RetryPolicy = RETRY) -> None:
        self.client, self.config, self.limits, self.retry = client, config, limits, retry
        self._hosts: dict[str, tuple[str, str]] | None = None

    # --- public protocol -------------------------------------------------------------

    def info(self, module: str, version: str) -> bytes:
        data, url = self._get(module, version, ".info")
        try:
            reported = json.loads(data).get("Version")
        except (ValueError, AttributeError):
            reported = None
        if reported != version:
            raise TrustError(f"{module}@{version}: {url}: proxy returned info for version "
                             f"{reported!r} instead of the requested version")
        return data

    def mod(self, module: str, version: str) -> bytes:
        return self._get(module, version, ".mod")[0]

    def zip_to(self, module: str, version: str, dest: str | os.PathLike[str]) -> str:
        """Stream the zip to a temp file beside `dest`, fsync, rename; returns the URL used."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(dest) as f:
            return self._fetch(module, version, ".zip", self.limits.module_zip_bytes, f)

    def list(self, module: str) -> list[str]:
        """Released versions from `@v/list` (pseudo-versions dropped, as Go does), sorted."""
        data, _ = self._get(module, None, "list")
        found = set()
        for line in data.decode("utf-8", "replace").splitlines():
            f = line.split()
            if f and is_valid_semver(f[0]) and not is_pseudo_version(f[0]):
                found.add(f[0])
        return sort_versions(found)

    # --- machinery -------------------------------------------------------------------

    def _get(self, module: str, version: str | None, suffix: str) -> tuple[bytes, str]:
        limit = (self.limits.module_gomod_bytes if suffix == ".mod"
                 else self.limits.module_meta_bytes)
        with tempfile.SpooledTemporaryFile(max_size=1 << 20) as buf:
            url = self._fetch(module, version, suffix, limit, buf)  # type: ignore[arg-type]
            buf.seek(0)
            return buf.read(), url

    def _fetch(self, module: str, version: str | None, suffix: str, limit: int,
               out: BinaryIO) -> str:
        what = f"{module}@{version}" if version else module
        doing = f"downloading {what} {suffix}" if version else f"listing versions of {what}"
        self.config.refuse_unproxied(module, doing)
        try:
            rel = escape_path(module) + "/@v/" + (
                escape_version(version) + suffix if version else "list")
        except ModulePathError as e:
            raise NotReadyError(f"{doing}: {e}") from None
        tried: list[_Failed] = []
        for entry in self.config.entries:
            url = f"{entry.url}/{rel}"
            try:
                self._with_retries(url, limit, out)
                return url
            except _TooLarge:
                raise TrustError(f"{doing}: {url}: response larger than the limit of {limit} "
                                 "bytes") from None
            except _Failed as e:
                tried.append(e)
                if e.not_found or entry.fall_back_on_error:
                    continue
                break
        if tried[-1].error is not None:
            raise tried[-1].error
        lines = "\n\t".join(f"{t.url}: {t.reason}" for t in tried)
        goproxy = self.config.goproxy
        if all(t.not_found for t in tried) and len(tried) == len(self.config.entries):
            raise NotReadyError(f"{doing}: not found on any proxy in GOPROXY={goproxy}:"
                                f"\n\t{lines}")
        raise NotReadyError(f"{doing}: {tried[-1].reason} (GOPROXY={goproxy}):\n\t{lines}")

    def _with_retries(self, url: str, limit: int, out: BinaryIO) -> None:
        def attempt() -> None:
            out.seek(0)
            out.truncate()
            try:
                self._attempt(url, limit, out)
            except _Failed as e:
                if e.retry:
                    raise Transient(e) from None
                raise

        try:
            self.retry.run(attempt)
        except Transient as last:
            assert isinstance(last.cause, _Failed)
            raise _Failed(url, f"{last.cause.reason} (tried {self.retry.tries} times)") from None

    def _attempt(self, url: str, limit: int, out: BinaryIO) -> None:
        if url.startswith("file:"):
            return self._attempt_file(url, limit, out)
        host = urllib.parse.urlsplit(url).hostname or ""
        auth = self._auth(host)
        try:
            with self.client.stream("GET", url, auth=auth, follow_redirects=True) as r:
                if r.status_code in (404, 410):
                    raise _Failed(url, f"{r.status_code} {r.reason_phrase}", not_found=True)
                if r.status_code >= 500:
                    raise _Failed(url, f"{r.status_code} {r.reason_phrase}", retry=True)
                if r.status_code in (401, 403):
                    hint = (f"the credentials for {host} in {self.config.netrc_file}" if auth else
                            f"no credentials for {host} in {self.config.netrc_file or '.netrc'}")
                    raise _Failed(url, f"{r.status_code} {r.reason_phrase} ({hint})")
                if r.status_code != 200:
                    raise _Failed(url, f"{r.status_code} {r.reason_phrase}")
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _TooLarge()
                n = 0
                for chunk in r.iter_bytes(1 << 20):
                    n += len(chunk)
                    if n > limit:
                        raise _TooLarge()
                    out.write(chunk)
        except httpx.TransportError as e:
            refused = tls.certificate_failure(e, url)
            if refused is not None:  # never retried: a certificate does not change in a second
                raise _Failed(url, refused.message.split("\n")[0], error=refused) from None
            raise _Failed(url, f"{type(e).__name__}: {e}", retry=True) from None

    def _attempt_file(self, url: str, limit: int, out: BinaryIO) -> None:
        # A file:// proxy is a directory in GOPROXY layout; a missing file counts as a 404.
        path = urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > limit:
                    raise _TooLarge()
                while chunk := f.read(1 << 20):
                    out.write(chunk)
        except FileNotFoundError:
            raise _Failed(url, "file does not exist", not_found=True) from None
        except OSError as e:
            raise _Failed(url, str(e)) from None

    def _auth(self, host: str) -> tuple[str, str] | None:
        if self._hosts is None:
            self._hosts = {}
            if self.config.netrc_file and self.config.netrc_file.is_file():
                try:
                    parsed = netrc.netrc(str(self.config.netrc_file))
                except (netrc.NetrcParseError, OSError) as e:
                    raise NotReadyError(f"reading {self.config.netrc_file}: {e}") from None
                # Only `machine` entries: a `default` entry would send credentials anywhere.
                for name, (login, _account, password) in parsed.hosts.items():
                    if name != "default":
                        self._hosts[name.lower()] = (login or "", password or "")
        return self._hosts.get(host.lower())
