"""Build rescue.pyz: the offline installer plus the native wheels it needs, in one zipapp."""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from bundler import pyz_lzma, pyz_sbom
from bundler.pyz_annotations import quote_annotations
from bundler.pyz_bytecode import bytecode
from manifests.errors import NotReadyError, TrustError
from manifests.files import atomic_writer
from manifests.sbom import PYZ_PACKAGE, pyz_member

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = Path(__file__).resolve().with_name("pyz_bootstrap.py")
SOURCE_PACKAGES = ("installer", "manifests", "keys")  # never bundler/: it is the connected side
TRUSTED_MEMBER = "installer/trusted/allowed_signers"
INDEX_MEMBER = "_native/index.json"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp: builds are byte-identical


@dataclass(frozen=True)
class Pin:
    version: str
    native: bool  # has .so files: unpacked at start-up, since zipimport cannot load them
    keep: Tuple[str, ...]  # path prefixes copied from the wheel
    drop: Tuple[str, ...] = ()  # path prefixes left out although kept above


# The one table of what the pyz carries. cffi 2.0.0 and click 8.1.8 are the last to support 3.9
# (cffi 2.0.0 has cp314 wheels too); cryptography ships abi3 wheels, so one per arch serves all.
PINS: Dict[str, Pin] = {
    "zstandard": Pin("0.25.0", True, ("zstandard/",),
                     drop=("zstandard/_cffi.",)),  # the cffi backend is for PyPy only
    "cryptography": Pin("50.0.2", True, ("cryptography/",)),
    # cryptography's Rust module imports only _cffi_backend, never the cffi package
    "cffi": Pin("2.0.0", True, ("_cffi_backend.",)),
    "click": Pin("8.1.8", False, ("click/",)),
    "typing_extensions": Pin("4.16.0", False, ("typing_extensions.py",)),
    # click imports colorama for every echo to a Windows console (click/_compat.py)
    "colorama": Pin("0.4.6", False, ("colorama/",), drop=("colorama/tests/",)),
}
# CPython 3.6-3.8 (RHEL 8, SLES 15, Amazon Linux 2, Ubuntu 20.04): the newest release of each
# pin with wheels for them. cryptography 40.0.2 is cp36-abi3, so one copy per arch serves all
# three; click 8.0.4 is the last for 3.6, and 3.6 gets the `dataclasses` backport. A pin that
# differs from PINS is unpacked with the native parts, ahead of the zip on sys.path: a pure
# module at the zip root would shadow the standard library's on every Python.
OLD_PYTHON_PINS: Dict[str, Dict[str, Pin]] = {
    "3.6": {"zstandard": replace(PINS["zstandard"], version="0.20.0"),
            "cryptography": replace(PINS["cryptography"], version="40.0.2"),
            "cffi": replace(PINS["cffi"], version="1.15.1"),
            "click": replace(PINS["click"], version="8.0.4"),
            "dataclasses": Pin("0.8", False, ("dataclasses.py",))},
    "3.7": {"zstandard": replace(PINS["zstandard"], version="0.21.0"),
            "cryptography": replace(PINS["cryptography"], version="40.0.2"),
            "cffi": replace(PINS["cffi"], version="1.15.1")},
    "3.8": {"zstandard": replace(PINS["zstandard"], version="0.23.0"),
            "cryptography": replace(PINS["cryptography"], version="40.0.2"),
            "cffi": replace(PINS["cffi"], version="1.17.1")},
}
# cryptography takes 3.5 MB a copy: aarch64 builds for 3.6-3.8 would take the pyz past 25 MB.
OLD_PYTHON_ARCHS = ("x86_64",)
# `pip download --python-version 3.9` means 3.9.0, which cryptography excludes: give full versions.
FULL_VERSIONS = {"3.6": "3.6.15", "3.7": "3.7.17", "3.8": "3.8.18", "3.9": "3.9.18",
                 "3.10": "3.10.13", "3.11": "3.11.7", "3.12": "3.12.1", "3.13": "3.13.0",
                 "3.14": "3.14.0"}
PYTHONS = tuple(FULL_VERSIONS)
# glibc 2.17+ reaches widest; manylinux1 (glibc 2.5) only for cffi 1.15.1's x86_64 wheel (3.6/3.7).
PLATFORMS = ("manylinux2014_{arch}", "manylinux_2_17_{arch}", "manylinux1_{arch}")
# A target named like a wheel platform tag is that platform alone (Windows: no glibc range).
WINDOWS_TARGETS = ("win_amd64",)


def _platforms(arch: str) -> Tuple[str, ...]:
    return (arch,) if arch in WINDOWS_TARGETS else tuple(p.format(arch=arch) for p in PLATFORMS)


_WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<ver>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
                       r"-(?P<plat>[^-]+)\.whl$")


class ZipappError(NotReadyError):
    """The pyz could not be built (a wheel is missing, tampered with or undownloadable)."""


@dataclass
class ZipappReport:
    output: Path
    size: int
    build_id: str
    combos: List[Tuple[str, str]] = field(default_factory=list)  # (python, arch)
    sbom_files: List[Path] = field(default_factory=list)  # rescue.pyz.spdx.json, .cdx.json


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def pins_for(python: str) -> Dict[str, Pin]:
    """What the pyz carries for one Python version."""
    return {**PINS, **OLD_PYTHON_PINS.get(python, {})}


def _wheel_rank(filename: str, project: str, python: str, arch: str) -> Optional[Tuple[int, int]]:
    """Sort key of a compatible wheel (lower is better), or None when it does not fit."""
    m = _WHEEL_RE.match(filename)
    if (not m or _norm(m["name"]) != _norm(project)
            or m["ver"] != pins_for(python)[project].version):
        return None
    minor = int(python.split(".")[1])
    plats = set(_platforms(arch)) | {"any"}
    if not plats & set(m["plat"].split(".")):
        return None
    best = None
    for py in m["py"].split("."):
        for abi in m["abi"].split("."):
            if py in ("py3", f"py3{minor}") and abi == "none":
                rank = (2, 0)
            elif py == f"cp3{minor}" and abi in (f"cp3{minor}", f"cp3{minor}m"):  # m: 3.6, 3.7
                rank = (0, 0)
            elif abi == "abi3" and py.startswith("cp3") and int(py[3:]) <= minor:
                rank = (1, int(py[3:]))  # the oldest abi3 build, so one copy serves every Python
            else:
                continue
            best = rank if best is None or rank < best else best
    return best


def _select(wheelhouse: Path, project: str, python: str, arch: str) -> Optional[Path]:
    ranked = [(r, p.name) for p in wheelhouse.glob("*.whl")
              if (r := _wheel_rank(p.name, project, python, arch)) is not None]
    return wheelhouse / min(ranked)[1] if ranked else None


def _download(wheelhouse: Path, projects: Sequence[str], python: str, arch: str) -> None:
    minor = python.split(".")[1]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--no-deps", "--implementation", "cp",
           "--python-version", FULL_VERSIONS[python],
           "--abi", f"cp3{minor}", "--abi", f"cp3{minor}m", "--abi", "abi3", "--abi", "none",
           "-d", str(wheelhouse)]
    for plat in _platforms(arch):
        cmd += ["--platform", plat]
    cmd += [f"{p}=={pins_for(python)[p].version}" for p in projects]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ZipappError(f"downloading wheels for cp3{minor}-{arch}: pip exited "
                          f"{proc.returncode}\n{proc.stderr.strip()}")


def _wheels_for(wheelhouse: Path, python: str, arch: str) -> Dict[str, Path]:
    """The pinned wheels for one (python, arch), downloading only those not cached yet."""
    pins = pins_for(python)
    missing = [p for p in pins if _select(wheelhouse, p, python, arch) is None]
    if missing:
        _download(wheelhouse, missing, python, arch)
    found = {p: _select(wheelhouse, p, python, arch) for p in pins}
    absent = sorted(p for p, w in found.items() if w is None)
    if absent:
        raise ZipappError(f"selecting wheels for cp3{python.split('.')[1]}-{arch}: pip gave no "
                          f"compatible wheel for {', '.join(absent)}")
    return {p: w for p, w in found.items() if w is not None}


def _record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_files(wheel: Path, pin: Pin) -> Iterator[Tuple[str, bytes]]:
    """The kept files of a wheel, each checked against the wheel's RECORD before use."""
    with zipfile.ZipFile(wheel) as zf:
        records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise ZipappError(f"reading {wheel.name}: expected one RECORD, found {len(records)}")
        expected = {row[0]: row[1] for row in csv.reader(io.StringIO(zf.read(records[0]).decode()))
                    if len(row) >= 2}
        for name in sorted(zf.namelist()):
            if (name.endswith("/") or not name.startswith(pin.keep) or name.startswith(pin.drop)
                    or name.endswith((".pyi", "py.typed"))):
                continue
            data = zf.read(name)
            if expected.get(name) != _record_digest(data):
                raise TrustError(f"verifying {wheel.name}: {name}: hash does not match RECORD\n"
                                 f"\trecord:     {expected.get(name)}\n"
                                 f"\tdownloaded: {_record_digest(data)}", tampering=True)
            yield name, data


def _strip_tool(arch: str) -> Optional[str]:
    # The host's plain `strip` knows only its own architecture; cross binutils are named by triple.
    names = [f"{arch}-linux-gnu-strip", "llvm-strip"]
    if os.uname().machine == arch:
        names.append("strip")
    return next((t for t in map(shutil.which, names) if t), None)


def _strip(data: bytes, arch: str) -> bytes:
    """Drop debug info and the static symbol table from a shared object when a strip for its
    arch exists (zstandard: -90%, cryptography: -20%); the dynamic symbols it links by stay."""
    tool = _strip_tool(arch)
    if tool is None:
        return data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lib.so"
        path.write_bytes(data)
        if subprocess.run([tool, "--strip-unneeded", str(path)], capture_output=True).returncode:
            return data  # an unusable tool costs only size: ship the file as the wheel has it
        return path.read_bytes()


def _source_files() -> Iterator[Tuple[str, bytes]]:
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*")):
            rel = path.relative_to(REPO)
            # Skip bytecode and dotfiles/editor leftovers: only sources and package data ship.
            if (path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc"
                    and not path.name.startswith(".") and not path.name.endswith("~")):
                data = path.read_bytes()
                if path.suffix == ".py":  # so that CPython 3.6-3.8 can import it too
                    data = quote_annotations(data, rel.as_posix())
                yield rel.as_posix(), data


def _tree_id(files: Dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def _collect_wheels(wheel_cache: Path, targets: Sequence[str], pythons: Sequence[str],
                    say: Callable[[str], None],
                    used: Optional[Dict[str, str]] = None
                    ) -> Tuple[Dict[str, bytes], Dict[str, object], List[Tuple[str, str]]]:
    """Pure files for the zip root, the native index, and the combos, from the pinned wheels;
    `used` gets each wheel read (path -> project), for the pyz's SBOM."""
    used = {} if used is None else used
    files: Dict[str, bytes] = {}
    parts: Dict[str, Dict[str, bytes]] = {}  # wheel stem -> its shipped native files
    index: Dict[str, object] = {}
    combos: List[Tuple[str, str]] = []
    with (wheel_cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # builds sharing a wheelhouse must not see half a wheel
        for arch in targets:
            for python in sorted(pythons, key=lambda v: int(v.split(".")[1])):
                if python in OLD_PYTHON_PINS and arch not in OLD_PYTHON_ARCHS:
                    continue
                tag = f"cp3{python.split('.')[1]}-{arch}"
                say(f"wheels for {tag}")
                stems = []
                pins = pins_for(python)
                for project, wheel in sorted(_wheels_for(wheel_cache, python, arch).items()):
                    used[str(wheel)] = project
                    pin = pins[project]
                    if not pin.native and pin == PINS.get(project):
                        for name, data in _wheel_files(wheel, pin):
                            files.setdefault(name, data)
                        continue
                    stem = wheel.name[:-len(".whl")]
                    if stem not in parts:
                        say(f"unpacking {wheel.name}")
                        parts[stem] = {n: _strip(d, arch) if n.endswith(".so") else d
                                       for n, d in _wheel_files(wheel, pin)}
                    stems.append(stem)
                tree = {f"{s}/{n}": d for s in stems for n, d in parts[s].items()}
                index[tag] = {"id": f"{tag}-{_tree_id(tree)[:16]}", "parts": sorted(stems),
                              "probe": "_cffi_backend"}  # the smallest .so shows a noexec mount
                combos.append((python, arch))
    for stem, tree in parts.items():
        for name, data in tree.items():
            files[f"_native/{stem}/{name}"] = data
    return files, index, combos


def _write(output: Path, files: Dict[str, bytes], lzma_cache: Path) -> None:
    """Write the zip behind a shebang: sorted, fixed times, whole or not at all."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(output, 0o755) as raw:
        raw.write(b"#!/usr/bin/env python3\n")
        # zipimport reads ZIP64 only from 3.13 on: refuse to write it rather than break 3.9.
        with zipfile.ZipFile(raw, "w", allowZip64=False) as zf:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, FIXED_TIME)
                # The native parts are unpacked by the bootstrap's zipfile, not zipimport
                # (deflate only): LZMA keeps the pyz under 25 MB with every platform's wheels.
                native = name.startswith("_native/") and name != "_native/index.json"
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                if native:
                    pyz_lzma.write_member(zf, info, files[name], lzma_cache)
                else:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, files[name], compresslevel=9)


def build_zipapp(output: Path, *, trust_file: Optional[Path], wheel_cache: Path,
                 targets: Sequence[str] = ("x86_64", "aarch64", "win_amd64"),
                 pythons: Sequence[str] = PYTHONS,
                 progress: Optional[Callable[[str], None]] = None) -> ZipappReport:
    """Write a self-contained installer pyz for every (python, arch) combination asked for."""
    say = progress or (lambda _msg: None)
    unknown = sorted(set(pythons) - set(FULL_VERSIONS))
    if unknown:
        raise ZipappError(f"building {output.name}: unsupported Python {', '.join(unknown)}")
    wheel_cache.mkdir(parents=True, exist_ok=True)
    used: Dict[str, str] = {}
    files, index, combos = _collect_wheels(wheel_cache, targets, pythons, say, used)
    files.update(_source_files())
    if trust_file is not None:
        files[TRUSTED_MEMBER] = trust_file.read_bytes()
    files["__main__.py"] = BOOTSTRAP.read_bytes()
    files.update(bytecode(files))
    build_id = _tree_id(files)[:16]
    files[INDEX_MEMBER] = json.dumps({"build_id": build_id, "targets": index},
                                     indent=1, sort_keys=True).encode()
    boms = pyz_sbom.files(build_id, used)
    files.update({f"{PYZ_PACKAGE}/{pyz_member(fmt)}": data for fmt, data in boms.items()})
    say(f"writing {output}")
    _write(output, files, wheel_cache / "lzma")  # beside the wheels they come from
    beside = [pyz_sbom.write_beside(output, fmt, data) for fmt, data in boms.items()]
    return ZipappReport(output=output, size=output.stat().st_size, build_id=build_id,
                        combos=combos, sbom_files=beside)
