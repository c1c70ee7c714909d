"""The bundle manifest: what a bundle carries, in canonical JSON that both sides sign and check."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from manifests.errors import SECURITY_NOTE, TrustError
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.paths import check_link_target, check_member_path

FORMAT_VERSION = 1

# The first members of every bundle, in this order: trust is settled before any content is read.
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SUMS_NAME = "SHA256SUMS"
HEADER_NAMES = (MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME)

MEMBER_TYPES = ("file", "dir", "symlink", "hardlink")


@dataclass(frozen=True)
class Member:
    """One entry of the tar stream after the header members."""

    path: str
    type: str
    mode: int
    size: int = 0
    sha256: str = ""
    target: str = ""  # symlink target (relative) or hardlink target (a member path)


@dataclass(frozen=True)
class Toolchain:
    version: str  # "go1.21.13"
    os: str
    arch: str
    source: str  # "godl" or "pypi"
    url: str
    sha256: str  # of the upstream archive as fetched
    size: int

    @property
    def id(self) -> str:
        return f"{self.version}.{self.os}-{self.arch}"

    @property
    def root(self) -> str:
        """The member directory holding this toolchain's GOROOT."""
        return f"toolchains/{self.id}/go"


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    zip_hash: str = ""  # go.sum h1: of the .zip, "" when only the .mod is carried
    mod_hash: str = ""  # go.sum h1: of the .mod


@dataclass(frozen=True)
class Manifest:
    name: str
    channel: str
    sequence: int
    created: str  # RFC 3339, UTC
    expires: str
    builder: str
    targets: Tuple[str, ...]
    toolchains: Tuple[Toolchain, ...] = ()
    modules: Tuple[Module, ...] = ()
    members: Tuple[Member, ...] = ()
    format: int = FORMAT_VERSION
    _index: Dict[str, Member] = field(default_factory=dict, compare=False, repr=False)

    def member(self, path: str) -> Optional[Member]:
        if not self._index:
            self._index.update((m.path, m) for m in self.members)
        return self._index.get(path)

    @property
    def content_bytes(self) -> int:
        return sum(m.size for m in self.members if m.type == "file")

    def to_json(self) -> bytes:
        """Canonical bytes: the exact text that is signed."""
        doc = asdict(self)
        doc.pop("_index")
        return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                + "\n").encode()


def _typed(doc: Dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if kind is int and isinstance(value, bool):
        value = None
    if not isinstance(value, kind):
        raise TrustError(f"reading manifest: {where}: field {key!r} must be {kind.__name__}")
    return value


def _record(doc: Any, cls: type, where: str) -> Any:
    if not isinstance(doc, dict):
        raise TrustError(f"reading manifest: {where}: expected an object")
    kwargs = {}
    for name, fld in cls.__dataclass_fields__.items():
        if name.startswith("_"):
            continue
        kind = {"str": str, "int": int}.get(str(fld.type))
        if kind is None:
            continue
        if name not in doc and fld.default is not MISSING:
            kwargs[name] = fld.default
            continue
        kwargs[name] = _typed(doc, name, kind, where)
    return cls(**kwargs)


def parse_manifest(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """Parse and validate manifest bytes (already signature-checked by the caller)."""
    if len(data) > limits.manifest_bytes:
        raise TrustError(f"reading manifest: {len(data)} bytes exceeds the {limits.manifest_bytes}"
                         " byte limit")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TrustError(f"reading manifest: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise TrustError("reading manifest: expected a JSON object")
    fmt = doc.get("format")
    if fmt != FORMAT_VERSION:
        raise TrustError(f"reading manifest: format {fmt!r} is not supported (this installer "
                         f"reads format {FORMAT_VERSION}); use a rescue.pyz of the same release "
                         "as the bundler")
    members_doc = doc.get("members")
    if not isinstance(members_doc, list) or len(members_doc) > limits.members:
        raise TrustError("reading manifest: 'members' must be a list within the member limit")
    members = tuple(_record(m, Member, f"member {i}") for i, m in enumerate(members_doc))
    toolchains = tuple(_record(t, Toolchain, "toolchain") for t in doc.get("toolchains", []))
    modules = tuple(_record(m, Module, "module") for m in doc.get("modules", []))
    targets = doc.get("targets")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise TrustError("reading manifest: 'targets' must be a list of strings")
    manifest = Manifest(
        name=_typed(doc, "name", str, "manifest"),
        channel=_typed(doc, "channel", str, "manifest"),
        sequence=_typed(doc, "sequence", int, "manifest"),
        created=_typed(doc, "created", str, "manifest"),
        expires=_typed(doc, "expires", str, "manifest"),
        builder=_typed(doc, "builder", str, "manifest"),
        targets=tuple(targets),
        toolchains=toolchains,
        modules=modules,
        members=members,
    )
    problems = check_members(manifest, limits)
    if problems:
        raise TrustError("reading manifest: " + "; ".join(problems[:20])
                         + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
                         + f"\n\n{SECURITY_NOTE}")
    return manifest


def check_members(manifest: Manifest, limits: Limits = DEFAULT_LIMITS) -> List[str]:
    """Every problem with the member list, collected (paths, types, sizes, links)."""
    problems: List[str] = []
    seen: Dict[str, Member] = {}
    folded: Dict[str, str] = {}
    total = 0
    for m in manifest.members:
        problem = check_member_path(m.path, limits)
        if problem:
            problems.append(problem)
            continue
        if m.path in HEADER_NAMES:
            problems.append(f"{m.path}: reserved name")
        if m.path in seen:
            problems.append(f"{m.path}: listed twice")
        low = m.path.lower()
        if low in folded and folded[low] != m.path:
            # Would overwrite each other on case-insensitive filesystems.
            problems.append(f"{m.path}: collides with {folded[low]} ignoring case")
        folded.setdefault(low, m.path)
        if m.type not in MEMBER_TYPES:
            problems.append(f"{m.path}: unknown type {m.type!r}")
        if not 0 <= m.mode <= 0o777:
            problems.append(f"{m.path}: mode {m.mode:o} has bits beyond 0777")
        if m.type == "file":
            if not 0 <= m.size <= limits.member_bytes:
                problems.append(f"{m.path}: size {m.size} outside 0..{limits.member_bytes}")
            if len(m.sha256) != 64 or any(c not in "0123456789abcdef" for c in m.sha256):
                problems.append(f"{m.path}: sha256 must be 64 lower-case hex digits")
            total += m.size
        elif m.type == "symlink":
            problem = check_link_target(m.path, m.target)
            if problem:
                problems.append(problem)
        elif m.type == "hardlink":
            first = seen.get(m.target)
            if first is None or first.type != "file":
                problems.append(f"{m.path}: hard link to {m.target!r}, which is not an earlier "
                                "file member")
        seen[m.path] = m
    if total > limits.total_bytes:
        problems.append(f"content totals {total} bytes, beyond the {limits.total_bytes} limit")
    for m in manifest.members:
        parent = m.path.rpartition("/")[0]
        if parent and parent not in seen:
            problems.append(f"{m.path}: parent directory {parent} is not listed")
        elif parent and seen[parent].type != "dir":
            problems.append(f"{m.path}: parent {parent} is not a directory")
    return problems


def sums_text(manifest: Manifest) -> bytes:
    """SHA256SUMS for every file member, in `sha256sum -c` format."""
    lines = [f"{m.sha256}  {m.path}\n" for m in manifest.members if m.type == "file"]
    return "".join(lines).encode()
