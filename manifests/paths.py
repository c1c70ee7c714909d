"""Member path rules: what a bundle may name, so that no entry can land outside its tree."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from typing import Callable, Optional

from manifests.limits import DEFAULT_LIMITS, Limits
from manifests.pycompat import isascii
from manifests.text import shown

# Names Windows cannot create, and characters that change meaning in shells or on other OSes.
_FORBIDDEN_CHARS = set('\\:*?"<>|') | {chr(c) for c in range(32)} | {"\x7f"}
# Unicode controls, format characters (bidi overrides, zero-width), surrogates, unassigned code
# points and line/paragraph separators: they make a name print as another name.
_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


_ASCII_BAD = re.compile(r'[\\:*?"<>|\x00-\x1f\x7f]')


def _bad_char(part: str) -> Optional[str]:
    if isascii(part):  # nearly every name: one regex instead of a loop in Python
        found = _ASCII_BAD.search(part)
        return found.group() if found else None
    for ch in part:
        if ch in _FORBIDDEN_CHARS or (
                ord(ch) > 0x7f and unicodedata.category(ch) in _FORBIDDEN_CATEGORIES):
            return ch
    return None


def check_member_path(path: str, limits: Limits = DEFAULT_LIMITS) -> Optional[str]:
    """Return why `path` is not an acceptable member name, or None when it is."""
    if not path:
        return "empty member path"
    if len(path) > limits.path_chars:
        return f"{shown(path)}: path longer than {limits.path_chars} characters"
    if path.startswith("/"):
        return f"{shown(path)}: absolute path"
    parts = path.split("/")
    if len(parts) > limits.path_depth:
        return f"{shown(path)}: deeper than {limits.path_depth} levels"
    # One regex over a clean ASCII path (nearly all) instead of one per element.
    clean = isascii(path) and not _ASCII_BAD.search(path)
    for part in parts:
        if part in ("", ".", ".."):
            # `..` climbs out of the staging dir; empty and `.` parts make two names for one file.
            return f"{shown(path)}: path element {part!r} is not allowed"
        bad = None if clean else _bad_char(part)
        if bad is not None:
            return f"{shown(path)}: contains forbidden character {bad!r}"
    return None


def check_link_target(path: str, target: str, kind_of: Callable[[str], Optional[str]],
                      root: str) -> Optional[str]:
    """A symlink may only point inside its own tree (`root`), relatively, and only through
    directories: never through another symlink, whose own target would climb further than a
    lexical check counts. `kind_of(p)` is the member type listed for `p` (None: not listed).

    With every step a real directory, the lexical resolution is the one the kernel makes.
    """
    if not target or target.startswith("/"):
        return f"{shown(path)}: symlink target {shown(target)} must be a relative path"
    if _bad_char(target.replace("/", "")) is not None or len(target) > DEFAULT_LIMITS.path_chars:
        return f"{shown(path)}: symlink target {shown(target)} has a forbidden character"
    here = posixpath.dirname(path).split("/") if "/" in path else []
    parts = target.split("/")
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        if part == "..":
            if not here:
                return f"{shown(path)}: symlink target {shown(target)} leaves the bundle tree"
            here.pop()
            continue
        here.append(part)
        if i == len(parts) - 1:
            break  # the link's own end may be a file, a missing name or another checked link
        kind = kind_of("/".join(here))
        if kind != "dir":
            what = "another symlink" if kind == "symlink" else (
                "a file" if kind else "a name the bundle does not list")
            return (f"{shown(path)}: symlink target {shown(target)} passes through "
                    f"{shown('/'.join(here))}, {what}; only directories may lie on the way")
    resolved = "/".join(here)
    if resolved != root and not resolved.startswith(root + "/"):
        return f"{shown(path)}: symlink target {shown(target)} leaves its own tree {root}"
    return None
