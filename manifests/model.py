"""The bundle manifest: what a bundle carries, in canonical JSON that both sides sign and check."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from manifests.errors import TrustError
from manifests.goversion import check_target, is_toolchain_version
from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.modpath import ModulePathError, parse_proxy_file
from manifests.paths import check_link_target, check_member_path
from manifests.sumdb_bundle import SUMDB_DIR, Shapes, Sumdb, check_record
from manifests.text import a_kind, shown
from manifests.toolchainzip import MODULE as TOOLCHAIN_MODULE
from manifests.toolchainzip import module_version

FORMAT_VERSION = 1

# The first members of every bundle, in this order: trust is settled before any content is read.
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SUMS_NAME = "SHA256SUMS"
HEADER_NAMES = (MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME)
# Co-signatures (`rescue sign`) follow, numbered from 2: each an SSHSIG over manifest.json that
# stock `ssh-keygen -Y verify -s manifest.sig.2` checks alone.
MAX_SIGNATURES = 16


# The bundle's SBOM (manifests/sbom.py): listed and hashed like any member, so the signature
# covers it; installed nowhere.
SBOM_DIR = "sbom"
SBOM_SPDX = "sbom/bundle.spdx.json"
SBOM_CDX = "sbom/bundle.cdx.json"
SBOM_FILES = (SBOM_SPDX, SBOM_CDX)


def cosignature_name(n: int) -> str:
    return f"{SIGNATURE_NAME}.{n}"

MEMBER_TYPES = ("file", "dir", "symlink", "hardlink")
SOURCES = ("godl", "pypi")
# What a bundle may set GOTOOLCHAIN to: switch from what the bundles carry, or never switch.
GOTOOLCHAIN_CHOICES = ("auto", "local")
# Bundle names and channels become file names and appear in messages.
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_URL_RE = re.compile(r"\A[!-~]{1,2048}\Z")  # printable ASCII, no spaces
# The installer rewrites each GOROOT's go.env; it must be a small regular file.


def content_root(path: str) -> str:
    """The tree a member is installed as: one GOROOT (`toolchains/<id>/go`) or `goproxy`."""
    parts = path.split("/")
    return "/".join(parts[:3]) if parts[0] == "toolchains" else parts[0]


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
    # Its second origin: the golang.org/toolchain module (cmd/distpack's form of this GOROOT)
    # as the checksum database records it, h1 of the .zip and of the .mod. The zip is not
    # carried: the installer rebuilds it from the verified GOROOT and must get this h1.
    # "" in bundles built before, or from sources with no such module.
    module_zip_hash: str = ""
    module_mod_hash: str = ""

    @property
    def id(self) -> str:
        return f"{self.version}.{self.os}-{self.arch}"

    @property
    def module_version(self) -> str:
        """`v0.0.1-go1.22.10.linux-amd64`: its version of golang.org/toolchain."""
        return module_version(self.version, self.os, self.arch)

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
    # A new trust store (allowed_signers text) the installer adopts: key rotation. Signed by
    # the current store's threshold AND the new one's (keys/trust_core). Absent when empty.
    trust_policy: str = ""
    # The checksum database whose data goproxy/sumdb/<name>/ carries. Absent when None.
    sumdb: Optional[Sumdb] = None
    # GOTOOLCHAIN for the prefix ("auto" or "local"): the spec's toolchains.gotoolchain. ""
    # (absent) leaves the prefix's choice as it is, "auto" for a new prefix.
    gotoolchain: str = ""
    _index: Dict[str, Member] = field(default_factory=dict, compare=False, repr=False)

    def member(self, path: str) -> Optional[Member]:
        if not self._index:
            self._index.update((m.path, m) for m in self.members)
        return self._index.get(path)

    def sumdb_records(self) -> List[Tuple[str, str, str, str]]:
        """(path, version, zip h1, go.mod h1) of every module the checksum database vouches
        for in this bundle: its modules, and its toolchains as golang.org/toolchain modules."""
        out = [(x.path, x.version, x.zip_hash, x.mod_hash) for x in self.modules]
        out += [(TOOLCHAIN_MODULE, t.module_version, t.module_zip_hash, t.module_mod_hash)
                for t in self.toolchains if t.module_zip_hash]
        return out

    @property
    def content_bytes(self) -> int:
        return sum(m.size for m in self.members if m.type == "file")

    def to_json(self) -> bytes:
        """Canonical bytes: the exact text that is signed."""
        # Field by field, not dataclasses.asdict: that deep-copies 10^4 members, which made this
        # check the slowest step of reading a header.
        doc: Dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                               if not f.name.startswith("_")}
        for key in ("toolchains", "modules", "members"):
            doc[key] = [vars(record) for record in doc[key]]
        # No module hashes: the bytes bundles had before toolchains carried them.
        doc["toolchains"] = [{k: v for k, v in tc.items() if v or not k.startswith("module_")}
                             for tc in doc["toolchains"]]
        if not doc["trust_policy"]:
            doc.pop("trust_policy")  # bundles without one stay byte-identical to older ones
        if not doc["gotoolchain"]:
            doc.pop("gotoolchain")  # as trust_policy: older bundles keep their bytes
        if doc["sumdb"] is None:
            doc.pop("sumdb")
        else:
            doc["sumdb"] = vars(doc["sumdb"])
        return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                + "\n").encode()


def _typed(doc: Dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if kind is int and isinstance(value, bool):
        value = None
    if not isinstance(value, kind):
        raise TrustError(f"reading manifest: {where}: field {key!r} must be {a_kind(kind)}")
    return value


@functools.lru_cache(maxsize=None)  # noqa: UP033 (functools.cache needs 3.9)
def _record_fields(cls: type) -> Tuple[Tuple[str, type, Any], ...]:
    """(name, type, default) of a record's str and int fields, worked out once per class."""
    found = []
    for name, fld in cls.__dataclass_fields__.items():  # type: ignore[attr-defined]
        kind = {"str": str, "int": int}.get(str(fld.type))
        if not name.startswith("_") and kind is not None:
            found.append((name, kind, fld.default))
    return tuple(found)


def _record(doc: Any, cls: type, where: str) -> Any:
    if not isinstance(doc, dict):
        raise TrustError(f"reading manifest: {where}: expected an object")
    kwargs = {}
    for name, kind, default in _record_fields(cls):
        if name not in doc and default is not MISSING:
            kwargs[name] = default
            continue
        kwargs[name] = _typed(doc, name, kind, where)
    return cls(**kwargs)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_H1_RE = re.compile(r"h1:[A-Za-z0-9+/]{43}=")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def parse_manifest(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """Parse and validate manifest bytes (already signature-checked by the caller)."""
    if len(data) > limits.manifest_bytes:
        raise TrustError(f"reading manifest: {len(data)} bytes exceeds the {limits.manifest_bytes}"
                         " byte limit")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TrustError(f"reading manifest: not valid JSON: {shown(exc)}") from None
    if not isinstance(doc, dict):
        raise TrustError("reading manifest: expected a JSON object")
    try:
        # A lone surrogate (`\\udcff`) parses but can never become a file name or a message.
        # Only a `\\uD800`-`\\uDFFF` escape makes one: without any, skip the whole-document
        # copy (megabytes, at the header's peak memory).
        if _SURROGATE_ESCAPE.search(data):
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise TrustError("reading manifest: a string is not valid Unicode (a lone surrogate)",
                         tampering=True) from None
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
        trust_policy=_typed(doc, "trust_policy", str, "manifest") if "trust_policy" in doc
        else "",
        sumdb=_record(doc["sumdb"], Sumdb, "sumdb") if "sumdb" in doc else None,
        gotoolchain=_typed(doc, "gotoolchain", str, "manifest") if "gotoolchain" in doc
        else "",
    )
    del doc, members_doc  # the records hold what is needed; free the parsed JSON first
    if manifest.to_json() != data:
        # Duplicate keys, unknown fields, other spacing: two parsers could read it two ways.
        raise TrustError("reading manifest: not in canonical form (duplicate or unknown keys, "
                         "or bytes the builder never writes)", tampering=True)
    problems = check_fields(manifest) + check_members(manifest, limits)
    if problems:
        raise TrustError("reading manifest: " + "; ".join(problems[:20])
                         + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""),
                         tampering=True)
    return manifest


def check_fields(manifest: Manifest) -> List[str]:
    """Every manifest field that becomes a path, a command argument or a message, checked."""
    problems: List[str] = []
    for key in ("name", "channel"):
        if not NAME_RE.match(getattr(manifest, key)):
            problems.append(f"{key} {shown(getattr(manifest, key))} is not 1-64 letters, digits, "
                            "'.', '_' or '-'")
    if manifest.sequence < 0:
        problems.append(f"sequence {manifest.sequence} is negative")
    ids = set()
    for tc in manifest.toolchains:
        if not is_toolchain_version(tc.version):
            problems.append(f"toolchain version {shown(tc.version)} is not a Go release like "
                            "go1.21.13")
            continue
        bad = check_target(tc.os, tc.arch)
        if bad:
            problems.append(f"toolchain {tc.version}: {shown(bad)}")
            continue
        if tc.id in ids:
            problems.append(f"toolchain {tc.id} is listed twice")
        ids.add(tc.id)
        if tc.source not in SOURCES:
            problems.append(f"toolchain {tc.id}: source {shown(tc.source)} is not one of "
                            f"{', '.join(SOURCES)}")
        if not _SHA256_RE.match(tc.sha256):
            problems.append(f"toolchain {tc.id}: sha256 must be 64 lower-case hex digits")
        if not _URL_RE.match(tc.url):
            problems.append(f"toolchain {tc.id}: url {shown(tc.url)} is not printable ASCII")
        for text in (tc.module_zip_hash, tc.module_mod_hash):
            if text and not _H1_RE.fullmatch(text):
                problems.append(f"toolchain {tc.id}: module hash {shown(text)} is not an h1: "
                                "hash")
        if bool(tc.module_zip_hash) != bool(tc.module_mod_hash):
            problems.append(f"toolchain {tc.id}: module hashes must come as a pair")
        root = manifest.member(tc.root)
        if root is None or root.type != "dir":
            problems.append(f"toolchain {tc.id}: its GOROOT {tc.root} is not a listed directory")
    for t in manifest.targets:
        goos, _, goarch = t.partition("-")
        if check_target(goos, goarch):
            problems.append(f"target {shown(t)} is not an os-arch Go builds for")
    if manifest.sumdb is not None:
        problems += check_record(manifest.sumdb)
    if manifest.gotoolchain not in GOTOOLCHAIN_CHOICES + ("",):
        problems.append(f"gotoolchain {shown(manifest.gotoolchain)} is not one of "
                        f"{', '.join(GOTOOLCHAIN_CHOICES)}")
    for mod in manifest.modules:
        for text in (mod.path, mod.version, mod.zip_hash, mod.mod_hash):
            if len(text) > 512 or not text.isprintable():
                problems.append(f"module {shown(mod.path)}@{shown(mod.version)}: a field is not "
                                "printable text of at most 512 characters")
                break
    return problems


def _same_name_key(path: str) -> str:
    """Unicode's canonical caseless match (NFD(casefold(NFD(x)))): two paths with one key are
    one file on a case-insensitive or normalizing file system (APFS, HFS+, NTFS, FAT)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", path).casefold())


def _tree_problem(m: Member, ids: Dict[str, Toolchain], sizes: Dict[str, int],
                  sumdb: Shapes) -> Optional[str]:
    """Where a member may live: `toolchains/<listed id>/go/...`, `goproxy/<module file>` or
    the checksum database data in `goproxy/sumdb/<name>/`, each in its exact shape."""
    parts = m.path.split("/")
    if parts[0] == "toolchains":
        if len(parts) == 1 or (len(parts) == 2 and parts[1] in ids) or (
                len(parts) >= 3 and parts[1] in ids and parts[2] == "go"):
            if len(parts) <= 3 and m.type != "dir":
                return f"{m.path}: must be a directory"
            if len(parts) == 4 and parts[3] == "go.env" and (
                    m.type not in ("file", "hardlink")
                    or sizes.get(m.target if m.type == "hardlink" else m.path, 0)
                    > DEFAULT_LIMITS.go_env_bytes):
                return (f"{m.path}: the installer rewrites go.env; it must be a regular file of "
                        f"at most {DEFAULT_LIMITS.go_env_bytes} bytes")
            return None
        return f"{m.path}: not inside a listed toolchain (toolchains/<id>/go)"
    if parts[0] == "goproxy":
        if m.path == SUMDB_DIR or m.path.startswith(SUMDB_DIR + "/"):
            return sumdb.problem(m.path, m.type)
        if len(parts) == 1 or m.type == "dir":
            return None if m.type == "dir" else f"{m.path}: must be a directory"
        if m.type not in ("file", "hardlink"):
            return f"{m.path}: only plain files may go into the module proxy"
        try:
            parse_proxy_file("/".join(parts[1:]))
        except ModulePathError as exc:
            return f"{m.path}: not a GOPROXY module file ({exc})"
        return None
    if parts[0] == SBOM_DIR:
        if m.path == SBOM_DIR:
            return None if m.type == "dir" else f"{m.path}: must be a directory"
        if m.path not in SBOM_FILES or m.type != "file":
            return f"{m.path}: sbom/ holds only the files {', '.join(SBOM_FILES)}"
        if m.size > DEFAULT_LIMITS.sbom_bytes:
            return f"{m.path}: {m.size} bytes, beyond the {DEFAULT_LIMITS.sbom_bytes} byte limit"
        return None
    return f"{m.path}: not under toolchains/, goproxy/ or sbom/"


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
        key = _same_name_key(m.path)
        other = folded.get(key)
        if other is not None and other != m.path:
            # Would overwrite each other where the file system folds case or normalizes names.
            if other.lower() == m.path.lower():
                problems.append(f"{m.path}: collides with {other} ignoring case")
            else:
                problems.append(f"{m.path}: collides with {other} ignoring case and Unicode "
                                f"normalization ({ascii(m.path)} and {ascii(other)} are one "
                                "name on macOS and Windows file systems)")
        folded.setdefault(key, m.path)
        if m.type not in MEMBER_TYPES:
            problems.append(f"{m.path}: unknown type {m.type!r}")
        if not 0 <= m.mode <= 0o777:
            problems.append(f"{m.path}: mode {m.mode:o} has bits beyond 0777")
        elif m.mode & 0o002 and m.type != "symlink":  # a symlink's own mode means nothing
            problems.append(f"{m.path}: mode {m.mode:o} is world-writable (any user of this "
                            "machine could change what `go` runs; the builder writes 0644 and "
                            "0755)")
        if m.type == "file":
            if not 0 <= m.size <= limits.member_bytes:
                problems.append(f"{m.path}: size {m.size} outside 0..{limits.member_bytes}")
            if not _SHA256_HEX.fullmatch(m.sha256):
                problems.append(f"{m.path}: sha256 must be 64 lower-case hex digits")
            total += m.size
        elif m.type == "hardlink":
            first = seen.get(m.target)
            if first is None or first.type != "file":
                problems.append(f"{m.path}: hard link to {m.target!r}, which is not an earlier "
                                "file member")
        seen[m.path] = m
    if total > limits.total_bytes:
        problems.append(f"content totals {total} bytes, beyond the {limits.total_bytes} limit")
    if problems:
        return problems  # the checks below rely on every path being well formed
    ids = {tc.id: tc for tc in manifest.toolchains}
    sizes = {m.path: m.size for m in manifest.members if m.type == "file"}
    sumdb = Shapes(manifest.sumdb, ((path, version) for path, version, _, _
                                    in manifest.sumdb_records()))
    for m in manifest.members:
        parent = m.path.rpartition("/")[0]
        if parent and parent not in seen:
            problems.append(f"{m.path}: parent directory {parent} is not listed")
        elif parent and seen[parent].type != "dir":
            problems.append(f"{m.path}: parent {parent} is not a directory")
        problem = _tree_problem(m, ids, sizes, sumdb)
        if problem:
            problems.append(problem)
        if m.type == "symlink":
            problem = check_link_target(
                m.path, m.target, lambda p: seen[p].type if p in seen else None,
                content_root(m.path))
            if problem:
                problems.append(problem)
    return problems


def sums_text(manifest: Manifest) -> bytes:
    """SHA256SUMS for every file member, in `sha256sum -c` format."""
    lines = [f"{m.sha256}  {m.path}\n" for m in manifest.members if m.type == "file"]
    return "".join(lines).encode()
