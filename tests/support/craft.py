"""Hand-made bundles for attack tests: any manifest, any tar stream, a real SSHSIG signature.

A crafted bundle is what a stolen key or a buggy build host could produce: signed by a trusted
key, yet hostile. Its toolchains are tiny fakes whose `bin/go` answers the emergency checklist,
so a test installs one in well under a second.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from tests.support import tamper

FAKE_GO = """#!/bin/sh
# A stand-in for `go` that answers the emergency checklist like the real one: settings come
# from this GOROOT's go.env unless exported (as the real go's precedence has it).
here=$(cd "$(dirname "$0")/.." && pwd -P)
setting() {{
  eval "v=\\${{$1:-}}"
  [ -n "$v" ] || v=$(sed -n "s/^$1=//p" "$here/go.env")
  printf '%s' "$v"
}}
case "$1 $2" in
  "version ") echo "go version {version} {goos}/{goarch}" ;;
  "env GOROOT") echo "$here" ;;
  "env -json") shift 2; sep="{{"; for k in "$@"; do
      printf '%s\\n  "%s": "%s"' "$sep" "$k" "$(setting "$k")"; sep=","; done; printf '\\n}}\\n' ;;
  "env "*) setting "$2"; echo ;;
  "list std") i=0; while [ $i -lt 150 ]; do echo "pkg$i"; i=$((i+1)); done ;;{builds}
  *) echo "fake go: $*" >&2; exit 2 ;;
esac
"""
BUILDS = """
  "build "*|"mod verify") ;;
  "list -m") echo "example.com/app" ;;"""
UPSTREAM_GO_ENV = b"GOPROXY=https://proxy.golang.org,direct\nGOSUMDB=sum.golang.org\n"


@dataclass
class Craft:
    name: str = "hostile"
    channel: str = "stable"
    sequence: int = 1
    expires: str = "2099-01-01T00:00:00Z"
    toolchains: List[Dict[str, Any]] = field(default_factory=list)
    members: List[Dict[str, Any]] = field(default_factory=list)
    contents: Dict[str, bytes] = field(default_factory=dict)

    def _has(self, path: str) -> bool:
        return any(m["path"] == path for m in self.members)

    def dir(self, path: str, mode: int = 0o755) -> Craft:
        if not self._has(path):
            self.members.append({"path": path, "type": "dir", "mode": mode, "size": 0,
                                 "sha256": "", "target": ""})
        return self

    def file(self, path: str, data: bytes, mode: int = 0o644) -> Craft:
        self.members.append({"path": path, "type": "file", "mode": mode, "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest(), "target": ""})
        self.contents[path] = data
        return self

    def symlink(self, path: str, target: str) -> Craft:
        self.members.append({"path": path, "type": "symlink", "mode": 0o777, "size": 0,
                             "sha256": "", "target": target})
        return self

    def hardlink(self, path: str, target: str, mode: int = 0o644) -> Craft:
        self.members.append({"path": path, "type": "hardlink", "mode": mode, "size": 0,
                             "sha256": "", "target": target})
        return self

    def toolchain(self, version: str = "go1.21.13", goos: str = "linux",
                  goarch: str = "amd64", tree: bool = True, builds: bool = False) -> str:
        """List a fake toolchain (and, with `tree`, its GOROOT); returns the GOROOT path.
        With `builds`, its go also passes a guard's build, `mod verify` and `list -m all`."""
        tc_id = f"{version}.{goos}-{goarch}"
        self.toolchains.append({"version": version, "os": goos, "arch": goarch,
                                "source": "godl", "url": f"https://go.dev/dl/{tc_id}.tar.gz",
                                "sha256": "0" * 64, "size": 1})
        root = f"toolchains/{tc_id}/go"
        if tree:
            self.dir("toolchains").dir(f"toolchains/{tc_id}").dir(root).dir(f"{root}/bin")
            self.file(f"{root}/bin/go",
                      FAKE_GO.format(version=version, goos=goos, goarch=goarch,
                                     builds=BUILDS if builds else "").encode(), 0o755)
            self.file(f"{root}/go.env", UPSTREAM_GO_ENV)
            self.file(f"{root}/VERSION", f"{version}\n".encode())
        return root

    def doc(self) -> Dict[str, Any]:
        return {"builder": "rescue-craft", "channel": self.channel,
                "created": "2026-01-01T00:00:00Z", "expires": self.expires, "format": 1,
                "members": self.members, "modules": [], "name": self.name,
                "sequence": self.sequence, "targets": ["linux-amd64"],
                "toolchains": self.toolchains}

    def items(self) -> List[tamper.Item]:
        """The content members as tar entries, in manifest order."""
        out: List[tamper.Item] = []
        for m in self.members:
            info = tarfile.TarInfo(m["path"])
            info.mode = m["mode"]
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE,
                         "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[m["type"]]
            info.linkname = m["target"]
            out.append((info, self.contents.get(m["path"]) if m["type"] == "file" else None))
        return out

    def write(self, dest: Path, key: Path, *, doc: Optional[Dict[str, Any]] = None,
              items: Optional[List[tamper.Item]] = None,
              manifest: Optional[bytes] = None) -> Path:
        """Sign `doc` (default: this craft's) with `key`; the stream carries `items`."""
        doc = doc if doc is not None else self.doc()
        manifest = manifest if manifest is not None else tamper.canonical(doc)
        head = [(tamper.file_info(name), data) for name, data in (
            ("manifest.json", manifest), ("manifest.sig", tamper.resign(manifest, key)),
            ("SHA256SUMS", tamper.sums(doc)))]
        return tamper.write(dest, head + (items if items is not None else self.items()))
