"""Go module paths and versions: x/mod's validity rules, case-escaping and semver ordering."""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, List, Optional, Tuple

from manifests.pycompat import isascii

# The rules below follow golang.org/x/mod/module and x/mod/semver. They decide which names may
# become directories on the isolated host, so they err on Go's side: anything Go refuses, we
# refuse with Go's wording, and nothing Go accepts is refused.


class ModulePathError(ValueError):
    """A module path, version or escaped form that Go itself would reject."""


_MODULE, _IMPORT, _FILE = "module", "import", "file"
_FILE_PUNCT = "!#$%&()+,-.=@[]^_{}~ "
_BAD_WINDOWS_NAMES = ("CON", "PRN", "AUX", "NUL") + tuple(
    f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)
)


def _char_ok(r: str, kind: str) -> bool:
    if r < "\x80":
        if "0" <= r <= "9" or "A" <= r <= "Z" or "a" <= r <= "z":
            return True
        if kind == _FILE:
            return r in _FILE_PUNCT
        return r in "-._~" or (kind == _IMPORT and r == "+")
    # Only file names may hold non-ASCII, and then only letters (Go's unicode.IsLetter).
    return kind == _FILE and unicodedata.category(r).startswith("L")


def _check_elem(elem: str, kind: str) -> Optional[str]:
    if elem == "":
        return "empty path element"
    if elem.count(".") == len(elem):
        return f"invalid path element {_q(elem)}"
    if elem[0] == "." and kind == _MODULE:
        return "leading dot in path element"
    if elem[-1] == ".":
        return "trailing dot in path element"
    for r in elem:
        if not _char_ok(r, kind):
            return f"invalid char {_qr(r)}"
    short = elem.split(".", 1)[0]
    if short.upper() in _BAD_WINDOWS_NAMES:
        return f"{_q(short)} disallowed as path element component on Windows"
    if kind != _FILE:
        tilde = short.rfind("~")
        if 0 <= tilde < len(short) - 1 and isascii(short[tilde + 1:]) and \
                short[tilde + 1:].isdigit():
            return "trailing tilde and digits in path element"
    return None


def _check_path(path: str, kind: str) -> Optional[str]:
    if path == "":
        return "empty string"
    if any("\ud800" <= c <= "\udfff" for c in path):  # undecodable bytes (surrogateescape)
        return "invalid UTF-8"
    if path[0] == "-" and kind != _FILE:
        return "leading dash"
    if "//" in path:
        return "double slash"
    if path[-1] == "/":
        return "trailing slash"
    for elem in path.split("/"):
        err = _check_elem(elem, kind)
        if err:
            return err
    return None


def _q(s: str) -> str:
    """Go's %q for the ASCII-printable strings these messages mostly carry."""
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c.isprintable():
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


def _qr(r: str) -> str:
    """Go's %q for a rune."""
    return "'\\''" if r == "'" else "'" + _q(r)[1:-1].replace('\\"', '"') + "'"


def split_path_version(path: str) -> Tuple[str, str, bool]:
    """(prefix, "/vN" or ".vN" major suffix, ok), as x/mod SplitPathVersion."""
    if path.startswith("gopkg.in/"):
        i = len(path)
        if path.endswith("-unstable"):
            i -= len("-unstable")
        while i > 0 and path[i - 1].isdigit():
            i -= 1
        if i <= 1 or path[i - 1] != "v" or path[i - 2] != ".":
            return path, "", False
        prefix, major = path[: i - 2], path[i - 2:]
        if len(major) <= 2 or (major[2] == "0" and major != ".v0"):
            return path, "", False
        return prefix, major, True
    i, dot = len(path), False
    while i > 0 and (path[i - 1] in "0123456789."):
        dot = dot or path[i - 1] == "."
        i -= 1
    if i <= 1 or i == len(path) or path[i - 1] != "v" or path[i - 2] != "/":
        return path, "", True
    prefix, major = path[: i - 2], path[i - 2:]
    if dot or len(major) <= 2 or major[2] == "0" or major == "/v1":
        return path, "", False
    return prefix, major, True


def check_module_path(path: str) -> None:
    """Raise ModulePathError unless `path` is a module path Go accepts (x/mod CheckPath)."""
    err = _check_path(path, _MODULE)
    if not err:
        first = path.split("/", 1)[0]
        if first == "":
            err = "leading slash"
        elif "." not in first:
            err = "missing dot in first path element"
        elif path[0] == "-":
            err = "leading dash in first path element"
        else:
            for r in first:
                if not (r in "-." or "0" <= r <= "9" or "a" <= r <= "z"):
                    err = f"invalid char {_qr(r)} in first path element"
                    break
        if not err and not split_path_version(path)[2]:
            err = "invalid version"
    if err:
        raise ModulePathError(f"malformed module path {_q(path)}: {err}")


def check_file_path(path: str) -> Optional[str]:
    """The reason Go's CheckFilePath refuses `path` (a name inside a module), or None."""
    err = _check_path(path, _FILE)
    return f"malformed file path {_q(path)}: {err}" if err else None


def _escape(s: str) -> str:
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in s)


def escape_path(path: str) -> str:
    """The case-escaped form of a module path used in proxy URLs and cache paths."""
    check_module_path(path)  # also rules out "!" and non-ASCII, which escaping relies on
    return _escape(path)


def escape_version(version: str) -> str:
    """The case-escaped form of a version (`v1.0.0-RC1` -> `v1.0.0-!r!c1`)."""
    if _check_elem(version, _FILE) or "!" in version or not isascii(version):
        raise ModulePathError(f"version {_q(version)} invalid: disallowed version string")
    return _escape(version)


def _unescape(escaped: str) -> Optional[str]:
    out, bang = [], False
    for r in escaped:
        if r >= "\x80":
            return None
        if bang:
            bang = False
            if not "a" <= r <= "z":
                return None
            out.append(r.upper())
        elif r == "!":
            bang = True
        elif "A" <= r <= "Z":
            return None  # a raw upper-case letter would make two spellings of one path
        else:
            out.append(r)
    return None if bang else "".join(out)


def unescape_path(escaped: str) -> str:
    path = _unescape(escaped)
    if path is None:
        raise ModulePathError(f"invalid escaped module path {_q(escaped)}")
    try:
        check_module_path(path)
    except ModulePathError as e:
        raise ModulePathError(f"invalid escaped module path {_q(escaped)}: {e}") from None
    return path


def unescape_version(escaped: str) -> str:
    version = _unescape(escaped)
    if version is None:
        raise ModulePathError(f"invalid escaped version {_q(escaped)}")
    err = _check_elem(version, _FILE)
    if err:
        raise ModulePathError(f"invalid escaped version {_q(version)}: {err}")
    return version


# --- semver (x/mod/semver) ---------------------------------------------------------------

_NUM = r"(0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(-{_IDENT}(?:\.{_IDENT})*)?(\+{_IDENT}(?:\.{_IDENT})*)?)?)?"
)
_PSEUDO = re.compile(
    r"v[0-9]+\.(0\.0-|[0-9]+\.[0-9]+-([^+]*\.)?0\.)[0-9]{14}-[A-Za-z0-9]+"
    r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)

_Parsed = Tuple[int, int, int, str, str]


def _parse(v: str) -> Optional[_Parsed]:
    m = _SEMVER.fullmatch(v)
    if not m:
        return None
    major, minor, patch, pre, build = m.groups()
    if pre:
        # Numeric prerelease identifiers may not have leading zeros.
        for ident in pre[1:].split("."):
            if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
                return None
    return int(major), int(minor or 0), int(patch or 0), pre or "", build or ""


def is_valid_semver(v: str) -> bool:
    return _parse(v) is not None


def canonical_version(v: str) -> str:
    """x/mod CanonicalVersion: semver.Canonical keeping a `+incompatible` suffix; "" if invalid."""
    p = _parse(v)
    if p is None:
        return ""
    out = f"v{p[0]}.{p[1]}.{p[2]}{p[3]}"
    return out + "+incompatible" if p[4] == "+incompatible" else out


def major(v: str) -> str:
    p = _parse(v)
    return f"v{p[0]}" if p else ""


def is_pseudo_version(v: str) -> bool:
    return v.count("-") >= 2 and is_valid_semver(v) and _PSEUDO.fullmatch(v) is not None


def _prerelease_key(pre: str) -> tuple:
    if not pre:
        return (1, ())  # a release sorts after all its prereleases
    # Numeric identifiers sort numerically and before alphanumeric ones (semver 2.0 rule 11).
    return (0, tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre[1:].split(".")))


def _compare_key(v: str) -> tuple:
    p = _parse(v)
    if p is None:
        return (0,)  # every invalid version is equal and below every valid one
    return (1, p[0], p[1], p[2], _prerelease_key(p[3]))


def compare(a: str, b: str) -> int:
    """semver.Compare: -1, 0 or +1; build suffixes (incl. +incompatible) are ignored."""
    ka, kb = _compare_key(a), _compare_key(b)
    return (ka > kb) - (ka < kb)


def semver_key(v: str) -> tuple:
    """Sort key matching semver.Sort: semver order, ties broken by the string."""
    return (_compare_key(v), v)


def sort_versions(versions: Iterable[str]) -> List[str]:
    return sorted(versions, key=semver_key)


def max_version(versions: Iterable[str]) -> str:
    """The highest version by semver order (MVS picks this among all requirements)."""
    return max(versions, key=semver_key)


def check_module_version(path: str, version: str) -> None:
    """Raise ModulePathError unless path@version is what Go's module.Check accepts."""
    check_module_path(path)
    if canonical_version(version) != version:
        raise ModulePathError(
            f"{path}@{version}: version {_q(version)} invalid: not a canonical semantic version"
        )
    _, path_major, _ = split_path_version(path)
    build_incompatible = _parse(version)[4] == "+incompatible"  # type: ignore[index]
    m = major(version)
    if path_major:
        want = path_major[1:].replace("-unstable", "")
        if (m == want or (version.startswith("v0.0.0-") and want == "v1")) \
                and not build_incompatible:
            return
        raise ModulePathError(
            f"{path}@{version}: version {_q(version)} invalid: should be {want}, not {m}"
        )
    if build_incompatible and m in ("v0", "v1"):
        raise ModulePathError(
            f"{path}@{version}: version {_q(version)} invalid: +incompatible suffix not allowed"
            f" for major version {m}"
        )
    if m not in ("v0", "v1") and not build_incompatible:
        raise ModulePathError(
            f"{path}@{version}: version {_q(version)} invalid: should be v0 or v1, not {m}"
        )


# --- GOPROXY layout -------------------------------------------------------------------------

PROXY_FILE_KINDS = (".info", ".mod", ".zip")


def parse_proxy_file(rel: str) -> Tuple[str, Optional[str], str]:
    """`<escaped module>/@v/<file>` -> (module, version or None for `list`, file name).

    The only files a file GOPROXY holds; anything else is refused by both sides.
    """
    head, sep, name = rel.rpartition("/@v/")
    if not sep or "/" in name:
        raise ModulePathError(f"{_q(rel)} is not <module>/@v/<file>")
    module = unescape_path(head)
    if name == "list":
        return module, None, name
    for ext in PROXY_FILE_KINDS:
        if name.endswith(ext) and len(name) > len(ext):
            return module, unescape_version(name[:-len(ext)]), name
    raise ModulePathError(f"unexpected file {_q(name)} (list, .info, .mod or .zip)")


# --- GOPRIVATE / GONOPROXY / GONOSUMDB patterns (x/mod module.MatchPrefixPatterns) --------

def glob_regex(glob: str) -> re.Pattern[str] | None:
    """Go's path.Match pattern as a regex (`*` and `?` never cross `/`); None if malformed."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= len(glob):
                return None
            out.append(re.escape(glob[i]))
        elif c == "[":
            j = glob.find("]", i + 2)
            if j < 0:
                return None
            body = glob[i + 1: j]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return None


def matching_pattern(globs: str, target: str) -> str | None:
    """The first GOPRIVATE-style glob matching a prefix of target (x/mod MatchPrefixPatterns)."""
    for glob in globs.split(","):
        glob = glob.strip().rstrip("/")
        if not glob:
            continue
        n = glob.count("/")
        elems = target.split("/")
        if len(elems) < n + 1:
            continue  # a glob with N slashes needs N+1 path elements to compare against
        rx = glob_regex(glob)
        if rx is not None and rx.fullmatch("/".join(elems[: n + 1])):
            return glob
    return None


def match_prefix_patterns(globs: str, target: str) -> bool:
    return matching_pattern(globs, target) is not None
