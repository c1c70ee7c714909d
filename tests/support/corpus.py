"""The attack corpus's harness: a world around a prefix, an install run from outside with its
peak memory, and hostile bundles made byte by byte (raw tar records, raw zstd frames, SSHSIG
signatures the builder would never make)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import zstandard

from keys import sshkey, sshsig
from tests.support import tamper

ROOT = Path(__file__).resolve().parents[2]
Tree = Dict[str, Tuple[str, ...]]


# --- running the installer from outside --------------------------------------------------

@dataclass
class Run:
    code: int
    out: str
    err: str
    peak_mb: float  # the child's own peak RSS
    seconds: float


# A fresh, small wrapper spawns the child and reaps it with wait4. Measured from the test
# process itself, the child's peak would include the test worker's: Linux carries the
# spawning process's high-water mark over into the child at exec.
_WRAPPER = """import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(argv: Sequence[str], env: Dict[str, str], timeout: float = 120) -> Run:
    """Run `argv` under the wrapper; its exit code, output, peak RSS and wall time."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result"
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        with open(os.devnull, "rb") as devnull, open(out, "wb") as o, open(err, "wb") as e:
            cmd = [sys.executable, "-I", "-S", "-c", _WRAPPER, str(result),
                   shutil.which(argv[0]) or argv[0], *argv[1:]]
            proc = subprocess.Popen(cmd, stdin=devnull, stdout=o, stderr=e, env=env, cwd=ROOT,
                                    start_new_session=True)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        code, kb = (result.read_text().split() if result.exists() else ("-9", "0"))
        return Run(int(code), out.read_text("utf-8", "replace"),
                   err.read_text("utf-8", "replace"), int(kb) / 1024,
                   time.monotonic() - started)


# --- the world around a prefix -------------------------------------------------------------

class World:
    """A directory holding the bundle, a prefix (installed or not yet there) and, beside them,
    a canary tree an attacker would like to reach: the child's HOME and TMPDIR live in it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.bundles = base / "bundles"
        self.canary = base / "canary"
        for d in (self.bundles, self.canary / "home", self.canary / "tmp",
                  self.canary / "go" / "bin"):
            d.mkdir(parents=True)
        (self.canary / "file").write_text("untouched\n")
        (self.canary / "go" / "go.env").write_text("GOPROXY=https://proxy.golang.org\n")
        (self.canary / "go" / "bin" / "go").write_text("#!/bin/sh\n")
        (self.canary / "link").symlink_to("file")

    def env(self) -> Dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.canary / "home"),
                "TMPDIR": str(self.canary / "tmp"), "LANG": "C.UTF-8", "GOENV": "off",
                "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}

    def install(self, bundle: Path, prefix: Path, trust: Path) -> Run:
        return run_measured([sys.executable, "-m", "installer.cli", "install", str(bundle),
                             "--prefix", str(prefix), "--trust", str(trust)], self.env())


def tree(root: Path) -> Tree:
    """Every path under root: type, mode, content hash and link count, or link target."""
    return tamper.snapshot(root)


def copy_prefix(src: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    return dest


def remove(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


# --- raw tar records -----------------------------------------------------------------------

def block(data: bytes) -> bytes:
    """`data` padded to whole 512-byte tar blocks."""
    return data + b"\0" * (-len(data) % 512)


def record(info: tarfile.TarInfo, data: Optional[bytes] = None,
           fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """One tar member as bytes, in `fmt` (GNU_FORMAT writes long names as L/K records)."""
    if data is not None:
        info.size = len(data)
    return info.tobuf(fmt, "utf-8", "surrogateescape") + (block(data) if data else b"")


def raw_header(name: bytes, kind: bytes, size: int, mode: int = 0o644,
               linkname: bytes = b"") -> bytes:
    """A ustar header written field by field: any name bytes, any type, any size."""
    head = bytearray(512)
    head[0:len(name)] = name
    head[100:108] = f"{mode:07o}\0".encode()
    head[108:116] = head[116:124] = b"0000000\0"
    head[124:136] = f"{size:011o}\0".encode() if size < 8 ** 11 else _base256(size)
    head[136:148] = b"00000000000\0"
    head[156:157] = kind
    head[157:157 + len(linkname)] = linkname
    head[257:265] = b"ustar\x0000"
    head[148:156] = b" " * 8
    head[148:156] = f"{sum(head):06o}\0 ".encode()
    return bytes(head)


def _base256(n: int) -> bytes:
    return b"\x80" + n.to_bytes(11, "big")


def pax_records(**fields: str) -> bytes:
    """PAX `length key=value\\n` records; the length counts itself."""
    out = b""
    for key, value in fields.items():
        body = f" {key}={value}\n".encode()
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return out


def pax_header(records: bytes, kind: bytes = b"x") -> bytes:
    return raw_header(b"././@PaxHeader", kind, len(records)) + block(records)


END = b"\0" * 1024


def items_bytes(items: Iterable[tamper.Item]) -> bytes:
    return b"".join(record(info, data) for info, data in items)


def write_zstd(dest: Path, chunks: Iterable[bytes], level: int = 1) -> Path:
    cctx = zstandard.ZstdCompressor(level=level)
    with open(dest, "wb") as raw, cctx.stream_writer(raw, closefd=False) as zst:
        for chunk in chunks:
            zst.write(chunk)
    return dest


def head_items(manifest: bytes, signature: bytes, sums: bytes) -> List[tamper.Item]:
    return [(tamper.file_info(name), data) for name, data in (
        ("manifest.json", manifest), ("manifest.sig", signature), ("SHA256SUMS", sums))]


def huge_window_frame() -> bytes:
    """A zstd frame header asking for a 2^31-byte window, then one raw block: the window is
    memory a decoder would allocate before it checks a byte of content."""
    magic = struct.pack("<I", 0xFD2FB528)
    descriptor = bytes([0x00])  # no checksum, no dictionary, not single-segment, no size
    window = bytes([(31 - 10) << 3])  # exponent 21: 2^(10 + 21)
    block_header = (1 | (0 << 1) | (16 << 3)).to_bytes(3, "little")  # last, raw, 16 bytes
    return magic + descriptor + window + block_header + b"A" * 16


# --- signatures the builder never makes ----------------------------------------------------

def sign_as(key: Path, data: bytes, namespace: str = sshsig.NAMESPACE,
            hash_name: str = sshsig.HASH_ALGORITHM) -> bytes:
    """An armored SSHSIG by `key` with any namespace and any hash algorithm name."""
    private = sshkey.load_private_key(key)
    digest = hashlib.new(hash_name, data).digest()
    signed = (sshsig.MAGIC + sshkey.ssh_string(namespace) + sshkey.ssh_string(b"")
              + sshkey.ssh_string(hash_name) + sshkey.ssh_string(digest))
    raw = private.sign(signed)
    blob = (sshsig.MAGIC + struct.pack(">I", sshsig.VERSION)
            + sshkey.ssh_string(sshkey.public_key_of(private).wire_blob())
            + sshkey.ssh_string(namespace) + sshkey.ssh_string(b"")
            + sshkey.ssh_string(hash_name)
            + sshkey.ssh_string(sshkey.ssh_string(sshkey.KEY_TYPE) + sshkey.ssh_string(raw)))
    return armor(blob)


def armor(blob: bytes) -> bytes:
    text = base64.b64encode(blob).decode("ascii")
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return ("\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----",
                       ""])).encode()


def dearmor(armored: bytes) -> bytes:
    inner = b"".join(armored.strip().splitlines()[1:-1])
    return base64.b64decode(inner)
