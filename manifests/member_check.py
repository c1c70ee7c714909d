"""One bundle member's tar header against its signed manifest entry: pure, no tar I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from manifests.errors import TrustError
from manifests.model import Manifest, Member
from manifests.text import shown


@dataclass(frozen=True)
class MemberHeader:
    """What a tar header says of a member, in the manifest's words."""

    name: str
    kind: str  # file, dir, symlink, hardlink; or what else it is, for the message
    size: int
    mode: int
    linkname: str = ""


def refuse(path: str, why: str) -> TrustError:
    return TrustError(f"verifying member {path}: {why}", tampering=True)


def check_member(h: MemberHeader, manifest: Manifest) -> Member:
    """The manifest entry `h` must match in name, type, size, link target and mode."""
    m: Optional[Member] = manifest.member(h.name)
    if m is None:
        # Not in the signed manifest: the name is the attacker's text, shown quoted.
        raise refuse(shown(h.name), "the bundle carries it but the signed manifest does not "
                     "list it")
    if h.kind != m.type:
        raise refuse(m.path, f"type mismatch\n\tbundle:   {h.kind}\n\tmanifest: {m.type}")
    if h.kind == "file" and h.size != m.size:
        raise refuse(m.path, f"size mismatch\n\tbundle:   {h.size}\n\tmanifest: {m.size}")
    if h.kind in ("symlink", "hardlink") and h.linkname != m.target:
        raise refuse(m.path, f"link target mismatch\n\tbundle:   {h.linkname}\n"
                     f"\tmanifest: {m.target}")
    if h.kind in ("file", "dir") and (h.mode & 0o777) != m.mode:
        raise refuse(m.path, f"mode mismatch\n\tbundle:   {h.mode & 0o777:o}\n"
                     f"\tmanifest: {m.mode:o}")
    return m
