"""Read go.sum pins and the `module`/`require` directives of a go.mod."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from manifests.errors import NotReadyError
from manifests.modpath import ModulePathError, canonical_version, check_module_path

# Go drops go.sum lines carrying this hash: an old bug wrote it for modules without go.mod.
EMPTY_GOMOD_HASH = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="


@dataclass(frozen=True)
class SumLine:
    path: str
    version: str
    kind: str  # "zip" for `M V h1:`, "mod" for `M V/go.mod h1:`
    hash: str
    where: str  # "file:line", for messages


@dataclass
class GoSum:
    lines: list[SumLine] = field(default_factory=list)

    def hashes(self) -> dict[tuple[str, str, str], SumLine]:
        return {(s.path, s.version, s.kind): s for s in self.lines}


def _valid_h1(h: str) -> bool:
    if not h.startswith("h1:"):
        return False
    try:
        return len(base64.b64decode(h[3:], validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def parse_gosum(data: bytes, filename: str = "go.sum") -> GoSum:
    """Parse go.sum, reporting every malformed line as `file:line: problem`."""
    out = GoSum()
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotReadyError(f"malformed go.sum:\n{filename}: not UTF-8 text") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        f = line.split()
        where = f"{filename}:{lineno}"
        if not f:
            continue
        if len(f) != 3:
            problems.append(f"{where}: wrong number of fields {len(f)}")
            continue
        path, version, h = f
        if h == EMPTY_GOMOD_HASH:
            continue
        kind = "zip"
        if version.endswith("/go.mod"):
            version, kind = version[: -len("/go.mod")], "mod"
        try:
            check_module_path(path)
        except ModulePathError as e:
            problems.append(f"{where}: {e}")
            continue
        if canonical_version(version) != version:
            problems.append(f"{where}: {path}: invalid version {version!r}")
            continue
        if not _valid_h1(h):
            problems.append(f"{where}: {path}@{version}: hash {h!r} is not an h1: hash")
            continue
        out.lines.append(SumLine(path, version, kind, h, where))
    if problems:
        raise NotReadyError("malformed go.sum:\n" + "\n".join(problems))
    return out


@dataclass(frozen=True)
class Require:
    path: str
    version: str
    indirect: bool = False


@dataclass
class GoMod:
    module: str | None = None
    requires: list[Require] = field(default_factory=list)


def _tokens(line: str, where: str) -> tuple[list[str], str]:
    """Split one go.mod line into tokens and its trailing `//` comment."""
    toks: list[str] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c in " \t\r":
            i += 1
        elif line.startswith("//", i):
            return toks, line[i + 2:].strip()
        elif c in "()":
            toks.append(c)
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while j < len(line) and line[j] != '"':
                if line[j] == "\\" and j + 1 < len(line):
                    j += 1
                buf.append(line[j])
                j += 1
            if j >= len(line):
                raise NotReadyError(f"{where}: unterminated quoted string")
            toks.append("".join(buf))
            i = j + 1
        elif c == "`":
            j = line.find("`", i + 1)
            if j < 0:
                raise NotReadyError(f"{where}: unterminated raw string")
            toks.append(line[i + 1: j])
            i = j + 1
        else:
            j = i
            while j < len(line) and line[j] not in " \t\r()\"`" and not line.startswith("//", j):
                j += 1
            toks.append(line[i:j])
            i = j
    return toks, ""


def _is_indirect(comment: str) -> bool:
    return comment == "indirect" or comment.startswith("indirect;")


def parse_gomod(data: bytes, filename: str = "go.mod") -> GoMod:
    """The `module` path and `require` lines of a go.mod (other directives are skipped).

    Requirements of dependencies are all MVS needs: Go ignores replace and exclude outside
    the main module.
    """
    out = GoMod()
    block: str | None = None
    text = data.decode("utf-8", "replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{filename}:{lineno}"
        toks, comment = _tokens(line, where)
        if not toks:
            continue
        if block is not None:
            if toks == [")"]:
                block = None
                continue
            verb, args = block, toks
        elif len(toks) == 2 and toks[1] == "(":
            block = toks[0]
            continue
        else:
            verb, args = toks[0], toks[1:]
        if verb == "module":
            if len(args) != 1:
                raise NotReadyError(f"{where}: usage: module module/path")
            out.module = args[0]
        elif verb == "require":
            if len(args) != 2:
                raise NotReadyError(f"{where}: usage: require module/path v1.2.3")
            out.requires.append(Require(args[0], args[1], _is_indirect(comment)))
    if block is not None:
        raise NotReadyError(f"{filename}: unterminated {block} block")
    return out
