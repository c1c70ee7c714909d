"""GOPROXY protocol client: Go's proxy-list semantics, private patterns, .netrc, retries, bounds."""

from __future__ import annotations

import json
import netrc
import os
import re
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

import httpx

from bundler import tls
from manifests.errors import NotReadyError, TrustError
from manifests.files import atomic_writer
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import (
    ModulePathError,
    escape_path,
    escape_version,
    is_pseudo_version,
    is_valid_semver,
    matching_pattern,
    sort_versions,
)

# Go's own default is "https://proxy.golang.org,direct"; rescue never goes direct.
DEFAULT_GOPROXY = "https://proxy.golang.org"
_NO_VCS = ("rescue carries modules only from proxies (no VCS access), so it cannot fetch from "
           "version control")


@dataclass(frozen=True)
class ProxyEntry:
    url: str
    fall_back_on_error: bool  # True after `|`: any error tries the next proxy, not only 404/410


def parse_goproxy(value: str) -> list[ProxyEntry]:
    """Parse a GOPROXY list the way cmd/go does, refusing `direct` and `off`."""
    entries: list[ProxyEntry] = []
    rest = value
    while rest:
        m = re.search(r"[,|]", rest)
        if m:
            url, fallback, rest = rest[: m.start()], m.group() == "|", rest[m.end():]
        else:
            url, fallback, rest = rest, False, ""
        url = url.strip()
        if not url:
            continue
        if url == "off":
            raise NotReadyError(
                f"GOPROXY={value}: \"off\" disallows downloading modules; rescue needs at least "
                f"one proxy URL. Set GOPROXY to proxies only, e.g. GOPROXY={DEFAULT_GOPROXY}")
        if url == "direct":
            raise NotReadyError(
                f"GOPROXY={value}: \"direct\" means fetching from version control; {_NO_VCS}. "
                f"Set GOPROXY to proxies only, e.g. GOPROXY={DEFAULT_GOPROXY}")
        # As in cmd/go: a word with a dot, colon or slash but no scheme is a host for https.
        if any(c in url for c in ".:/") and ":/" not in url and not url.startswith("/"):
            url = "https://" + url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc or parts.query or parts.fragment:
                raise NotReadyError(f"invalid file:// proxy URL with non-path elements: {url}")
        elif parts.scheme in ("http", "https"):
            if not parts.netloc:
                raise NotReadyError(f"invalid proxy URL missing host: {url}")
        elif parts.scheme == "":
            raise NotReadyError(f"invalid proxy URL missing scheme: {url}")
        else:
            raise NotReadyError(f"invalid proxy URL scheme (must be https, http, file): {url}")
        entries.append(ProxyEntry(url.rstrip("/"), fallback))
    if not entries:
        raise NotReadyError(f"GOPROXY={value!r}: the list contains no proxy URLs")
    return entries


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

    def __init__(self, client: httpx.Client, goproxy: str = DEFAULT_GOPROXY, *,
                 goprivate: str = "", gonoproxy: str | None = None,
                 netrc_file: str | os.PathLike[str] | None = None,
                 limits: Limits = DEFAULT_LIMITS, tries: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.entries = parse_goproxy(goproxy)
        self.goproxy = goproxy
        # As in cmd/go, GONOPROXY defaults to GOPRIVATE.
        self.noproxy_var, self.noproxy = (("GONOPROXY", gonoproxy) if gonoproxy is not None
                                          else ("GOPRIVATE", goprivate))
        self.netrc_file = Path(netrc_file) if netrc_file else None
        self._hosts: dict[str, tuple[str, str]] | None = None
        self.limits, self.tries, self.backoff, self.sleep = limits, max(1, tries), backoff, sleep

    @classmethod
    def from_env(cls, client: httpx.Client, environ: Mapping[str, str] | None = None,
                 **kw: object) -> GoProxy:
        """Configured from GOPROXY, GOPRIVATE, GONOPROXY and NETRC (default ~/.netrc)."""
        env = os.environ if environ is None else environ
        netrc_file = env.get("NETRC") or os.path.join(
            env.get("HOME") or os.path.expanduser("~"), ".netrc")
        return cls(client, env.get("GOPROXY") or DEFAULT_GOPROXY,
                   goprivate=env.get("GOPRIVATE", ""), gonoproxy=env.get("GONOPROXY"),
                   netrc_file=netrc_file, **kw)  # type: ignore[arg-type]

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
        glob = matching_pattern(self.noproxy, module)
        if glob is not None:
            raise NotReadyError(
                f"{doing}: {module} matches {self.noproxy_var} pattern {glob!r}, which Go "
                f"fetches directly from version control; {_NO_VCS}. Serve it from a proxy in "
                f"GOPROXY and set GONOPROXY=none (GOPRIVATE may stay, for checksum privacy), "
                f"or leave it out of the bundle.")
        try:
            rel = escape_path(module) + "/@v/" + (
                escape_version(version) + suffix if version else "list")
        except ModulePathError as e:
            raise NotReadyError(f"{doing}: {e}") from None
        tried: list[_Failed] = []
        for entry in self.entries:
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
        if all(t.not_found for t in tried) and len(tried) == len(self.entries):
            raise NotReadyError(f"{doing}: not found on any proxy in GOPROXY={self.goproxy}:"
                                f"\n\t{lines}")
        raise NotReadyError(f"{doing}: {tried[-1].reason} (GOPROXY={self.goproxy}):\n\t{lines}")

    def _with_retries(self, url: str, limit: int, out: BinaryIO) -> None:
        for attempt in range(1, self.tries + 1):
            out.seek(0)
            out.truncate()
            try:
                self._attempt(url, limit, out)
                return
            except _Failed as e:
                if not e.retry:
                    raise
                if attempt == self.tries:
                    raise _Failed(url, f"{e.reason} (tried {self.tries} times)") from None
                self.sleep(self.backoff * 2 ** (attempt - 1))

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
                    hint = (f"the credentials for {host} in {self.netrc_file}" if auth else
                            f"no credentials for {host} in {self.netrc_file or '.netrc'}")
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
            if self.netrc_file and self.netrc_file.is_file():
                try:
                    parsed = netrc.netrc(str(self.netrc_file))
                except (netrc.NetrcParseError, OSError) as e:
                    raise NotReadyError(f"reading {self.netrc_file}: {e}") from None
                # Only `machine` entries: a `default` entry would send credentials anywhere.
                for name, (login, _account, password) in parsed.hosts.items():
                    if name != "default":
                        self._hosts[name.lower()] = (login or "", password or "")
        return self._hosts.get(host.lower())
