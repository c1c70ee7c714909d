"""Read a bundle's SBOM after its signature and every member's hash check out; and the pyz's own."""

from __future__ import annotations

import pkgutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from installer.bundle_reader import BundleReader
from installer.stage import Selected, stage
from keys.allowed_signers import AllowedSigner
from keys.trust_core import Verified
from manifests.errors import NotReadyError, TrustError
from manifests.sbom import FORMATS, PYZ_PACKAGE, SUFFIXES, pyz_member


def bundle_sbom(bundle: Path, signers: List[AllowedSigner], trust_source: str, fmt: str,
                on_total: Callable[[int], None] = lambda n: None,
                on_bytes: Callable[[int], None] = lambda n: None) -> Tuple[bytes, Verified]:
    """The SBOM member in `fmt`, once the signature and every member's sha256 are checked (a
    bundle is trusted whole or not at all)."""
    wanted = FORMATS[fmt]
    with BundleReader(bundle) as reader:
        verified = reader.header(signers, trust_source)
        m = verified.manifest
        if m.member(wanted) is None:
            raise NotReadyError(
                f"reading the SBOM of {bundle}: this bundle carries none (built by "
                f"{m.builder}, before rescue wrote SBOMs into bundles); rebuild it with this "
                "release's `rescue build`, or see its contents with `inspect`")
        on_total(m.content_bytes)
        with tempfile.TemporaryDirectory(prefix="rescue-sbom-") as tmp:
            out = Path(tmp) / "sbom.json"
            stage(reader, m, Selected({wanted: out}), on_bytes)
            data = out.read_bytes()
    _check_printable(bundle, wanted, data)
    return data, verified


def _check_printable(bundle: Path, member: str, data: bytes) -> None:
    """What `sbom` prints to a terminal is what rescue writes: ASCII JSON, lines apart. A
    signed bundle may still be hostile (a stolen key): its escape sequences are not printed."""
    bad = next((i for i, b in enumerate(data) if (b < 0x20 and b != 0x0A) or b > 0x7E), None)
    if bad is not None:
        raise TrustError(f"reading the SBOM of {bundle}: {member} holds byte 0x{data[bad]:02x} at "
                         f"offset {bad}, which rescue never writes (its SBOMs are ASCII JSON); "
                         "not printed. Ask the bundle's builder how it was made")


def pyz_sbom(fmt: str) -> bytes:
    """The SBOM `rescue zipapp` built into this pyz."""
    data: Optional[bytes]
    try:
        data = pkgutil.get_data(PYZ_PACKAGE, pyz_member(fmt))
    except (FileNotFoundError, OSError):  # zipimport raises OSError, the file loader its subclass
        data = None
    if data is None:
        raise NotReadyError(
            "reading the SBOM of rescue.pyz: this rescue is not running from a pyz that "
            "`rescue zipapp` built (it writes the SBOM into the pyz and beside it, as "
            f"rescue.pyz{SUFFIXES[fmt]})")
    return data
