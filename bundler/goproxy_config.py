"""GOPROXY configuration: Go's proxy-list syntax, GOPRIVATE/GONOPROXY patterns, NETRC."""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from manifests.errors import NotReadyError
from manifests.modpath import matching_pattern

# Go's own default is "https://proxy.golang.org,direct"; rescue never goes direct.
DEFAULT_GOPROXY = "https://proxy.golang.org"
NO_VCS = ("rescue carries modules only from proxies (no VCS access), so it cannot fetch from "
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
                f"GOPROXY={value}: \"direct\" means fetching from version control; {NO_VCS}. "
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


@dataclass(frozen=True)
class ProxyConfig:
    """Which proxies to ask, in order, and which modules never to ask them for."""

    goproxy: str  # as the operator wrote it, for messages
    entries: tuple[ProxyEntry, ...]
    noproxy_var: str  # where `noproxy` came from, for messages
    noproxy: str
    netrc_file: Path | None = None

    @classmethod
    def parse(cls, goproxy: str = DEFAULT_GOPROXY, *, goprivate: str = "",
              gonoproxy: str | None = None,
              netrc_file: str | os.PathLike[str] | None = None) -> ProxyConfig:
        # As in cmd/go, GONOPROXY defaults to GOPRIVATE.
        noproxy_var, noproxy = (("GONOPROXY", gonoproxy) if gonoproxy is not None
                                else ("GOPRIVATE", goprivate))
        return cls(goproxy, tuple(parse_goproxy(goproxy)), noproxy_var, noproxy,
                   Path(netrc_file) if netrc_file else None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyConfig:
        """From GOPROXY, GOPRIVATE, GONOPROXY and NETRC (default ~/.netrc)."""
        env = os.environ if environ is None else environ
        netrc_file = env.get("NETRC") or os.path.join(
            env.get("HOME") or os.path.expanduser("~"), ".netrc")
        return cls.parse(env.get("GOPROXY") or DEFAULT_GOPROXY,
                         goprivate=env.get("GOPRIVATE", ""), gonoproxy=env.get("GONOPROXY"),
                         netrc_file=netrc_file)

    def refuse_unproxied(self, module: str, doing: str) -> None:
        """Raise when Go would fetch `module` from version control, not from these proxies."""
        glob = matching_pattern(self.noproxy, module)
        if glob is not None:
            raise NotReadyError(
                f"{doing}: {module} matches {self.noproxy_var} pattern {glob!r}, which Go "
                f"fetches directly from version control; {NO_VCS}. Serve it from a proxy in "
                f"GOPROXY and set GONOPROXY=none (GOPRIVATE may stay, for checksum privacy), "
                f"or leave it out of the bundle.")
