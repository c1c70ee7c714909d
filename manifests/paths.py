"""Member path rules: what a bundle may name, so that no entry can land outside its tree."""

from __future__ import annotations

import posixpath
from typing import Optional

from manifests.limits import DEFAULT_LIMITS, Limits

# Names Windows cannot create, and characters that change meaning in shells or on other OSes.
_FORBIDDEN_CHARS = set('\\:*?"<>|') | {chr(c) for c in range(32)} | {"\x7f"}


def check_member_path(path: str, limits: Limits = DEFAULT_LIMITS) -> Optional[str]:
    """Return why `path` is not an acceptable member name, or None when it is."""
    if not path:
        return "empty member path"
    if len(path) > limits.path_chars:
        return f"{path[:80]}...: path longer than {limits.path_chars} characters"
    if path.startswith("/"):
        return f"{path}: absolute path"
    parts = path.split("/")
    if len(parts) > limits.path_depth:
        return f"{path}: deeper than {limits.path_depth} levels"
    for part in parts:
        if part in ("", ".", ".."):
            # `..` climbs out of the staging dir; empty and `.` parts make two names for one file.
            return f"{path}: path element {part!r} is not allowed"
        bad = _FORBIDDEN_CHARS.intersection(part)
        if bad:
            return f"{path}: contains forbidden character {sorted(bad)[0]!r}"
    return None


def check_link_target(path: str, target: str) -> Optional[str]:
    """A symlink may only point inside the bundle's tree, and only relatively."""
    if not target or target.startswith("/"):
        return f"{path}: symlink target {target!r} must be a relative path"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        return f"{path}: symlink target {target!r} leaves the bundle tree"
    return None
