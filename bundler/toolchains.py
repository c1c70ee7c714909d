"""Find the spec's toolchain archives in their upstream index, then fetch and verify them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Tuple

import httpx

from bundler import fetch, godl, pypi_source
from bundler.blobstore import BlobStore
from bundler.spec import Spec, toolchain_ids
from manifests.errors import TrustError
from manifests.limits import DEFAULT_LIMITS
from manifests.model import Toolchain


def resolve_toolchains(spec: Spec, client: httpx.Client) -> List[godl.Upstream]:
    """Every (version, target) of the spec, located in its upstream index."""
    wanted = toolchain_ids(spec)
    if not wanted:
        return []
    found = []
    if spec.source == "godl":
        data = fetch.get_bytes(client, spec.download_index, "download index",
                               DEFAULT_LIMITS.index_bytes)
        releases = godl.parse_index(data, spec.download_index)
        for v, os_, arch in wanted:
            found.append(godl.resolve(releases, spec.download_index, spec.download_base, v, os_,
                                      arch))
    else:
        url = pypi_source.project_url(spec.pypi())
        page = fetch.get_bytes(client, url, "PyPI index page", DEFAULT_LIMITS.index_bytes,
                               headers={"Accept": pypi_source.ACCEPT})
        for v, os_, arch in wanted:
            found.append(pypi_source.resolve(page, url, v, os_, arch))
    for up in found:
        pin = spec.sha256_pins.get(f"{up.version}.{up.os}-{up.arch}")
        if pin and pin != up.sha256:
            raise TrustError(
                f"verifying {up.filename}: the index's sha256 differs from the spec's pin\n"
                f"\tindex: {up.sha256}\n\tspec:  {pin}", tampering=True)
    return found


def fetch_toolchains(spec: Spec, store: BlobStore,
                     client: httpx.Client) -> Iterator[Tuple[Toolchain, Path]]:
    """Each resolved toolchain's record and its verified archive in `store`, one at a time:
    the caller plans one archive before the next is downloaded."""
    for up in resolve_toolchains(spec, client):
        what = f"{up.version} {up.os}/{up.arch} ({up.filename})"
        path = fetch.download(store, client, up.url, up.sha256, what, up.size or None)
        tc = Toolchain(up.version, up.os, up.arch, spec.source, up.url, up.sha256,
                       path.stat().st_size)
        yield tc, path
