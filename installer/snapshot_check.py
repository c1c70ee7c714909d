"""What a snapshot file must hold before any field of it is used (pure: a parsed document in, the
first problem out), and the sums it must agree with."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from manifests.limits import DEFAULT_LIMITS
from manifests.text import SHOWN_CHARS, shown

FORMAT = 1
# An id becomes a file name: letters, digits and `._+-`, starting with a letter or digit.
ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,159}\Z")
CREATED = "%Y-%m-%dT%H:%M:%SZ"
_CREATED_RE = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_ROOT_HASH_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_HEX64_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_MODE_RE = re.compile(r"\A[0-7]{4}\Z")
# The fields each kind of GOROOT entry has, no more: all of them feed the root hash.
ENTRY_FIELDS = {"file": {"path", "type", "mode", "size", "sha256"},
                "dir": {"path", "type", "mode"}, "other": {"path", "type", "mode"},
                "symlink": {"path", "type", "target"}}


class _Bad(Exception):
    pass


def _val(value: Any) -> str:
    """A value from the file in a message: text quoted by `shown`, anything else as (ASCII)
    JSON, cut like `shown` cuts."""
    if isinstance(value, str):
        return shown(value)
    text = json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def is_id(text: str) -> bool:
    return bool(ID_RE.match(text)) and ".." not in text


def problem(doc: Any) -> Optional[str]:
    """What makes `doc` unusable as a snapshot (None when nothing does)."""
    try:
        _document(doc)
    except _Bad as exc:
        return str(exc)
    return None


def contradiction(doc: Dict[str, Any]) -> Optional[Tuple[str, str, str]]:
    """(what, recorded, computed) when the file's sums disagree with its own file list: edited
    after `snapshot create` wrote it. Only for a document `problem` passed."""
    g = doc["goroot"]
    files: List[Dict[str, Any]] = g["files"]
    computed = root_hash(files)
    if computed != g["root_hash"]:
        return (f"its root_hash is not the hash of the {len(files)} entries it lists",
                g["root_hash"], computed)
    count = sum(1 for e in files if e["type"] == "file")
    if count != g["file_count"]:
        return ("its file_count is not the number of files it lists", str(g["file_count"]),
                str(count))
    size = sum(e.get("size", 0) for e in files)
    if size != g["bytes"]:
        return "its bytes are not the sum of the sizes it lists", str(g["bytes"]), str(size)
    return None


def root_hash(files: List[Dict[str, Any]]) -> str:
    """One sha256 over every entry: equal trees, equal hashes (paths JSON-quoted, so no name
    can forge a line)."""
    h = hashlib.sha256()
    for e in sorted(files, key=lambda e: e["path"]):
        h.update(" ".join([e["type"], e.get("mode", ""), str(e.get("size", "")),
                           e.get("sha256", ""), json.dumps(e.get("target", "")),
                           json.dumps(e["path"])]).encode("utf-8", "surrogateescape") + b"\n")
    return "sha256:" + h.hexdigest()


# --- the shape, field by field ----------------------------------------------------------------

def _document(doc: Any) -> None:
    if not isinstance(doc, dict) or "format" not in doc:
        raise _Bad(f"it is not a rescue snapshot (a JSON object with format {FORMAT})")
    fmt = doc["format"]
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > FORMAT:
        raise _Bad(f"it is format {fmt}, written by a newer rescue (this one reads {FORMAT})")
    if fmt != FORMAT or isinstance(fmt, bool):
        raise _Bad(f"its format {_val(fmt)} is not {FORMAT}")
    _fields(doc, "", ("id", "tag", "tag_kind", "created", "host", "user", "ci", "prefix",
                      "toolchain", "goroot", "go", "paths", "modules", "bundle"))
    if not isinstance(doc["id"], str) or not is_id(doc["id"]):
        raise _Bad(f"its id {_val(doc['id'])} is not a snapshot id (letters, digits and `._+-`)")
    _text(doc, "tag", "", none=True)
    if doc["tag_kind"] not in (None, "semver", "text"):
        raise _Bad(f"its tag_kind {_val(doc['tag_kind'])} is not semver, text or null")
    _created(doc["created"])
    _text(doc, "host", "")
    _text(doc, "prefix", "")
    _text(doc, "toolchain", "")
    user = _obj(doc, "user", "", ("name", "uid"))
    _text(user, "name", "user.")
    if user["uid"] is not None and not _count(user["uid"]):
        raise _Bad(f"its user.uid {_val(user['uid'])} is not a number")
    if doc["ci"] is not None:
        _strings(doc, "ci", "")
    _goroot(_obj(doc, "goroot", "", ("path", "root_hash", "file_count", "bytes", "files")))
    go = _obj(doc, "go", "", ("version", "env", "error"))
    _text(go, "version", "go.", none=True)
    _text(go, "error", "go.", none=True)
    _strings(go, "env", "go.")
    paths = _obj(doc, "paths", "", ())
    for key in paths:
        _text(paths, key, "paths.", none=True)
    _modules(doc["modules"])
    if doc["bundle"] is not None:
        b = _obj(doc, "bundle", "", ("name", "channel", "sequence", "manifest_sha256",
                                     "signer", "installed_at"))
        for key in ("name", "channel", "manifest_sha256", "signer", "installed_at"):
            _text(b, key, "bundle.", none=True)
        if b["sequence"] is not None and not _count(b["sequence"]):
            raise _Bad(f"its bundle.sequence {_val(b['sequence'])} is not a number")


def _fields(obj: Dict[str, Any], where: str, names: Tuple[str, ...]) -> None:
    missing = [n for n in names if n not in obj]
    if missing:
        raise _Bad(f"its {where or 'record'} has no {', '.join(missing)}")


def _obj(parent: Dict[str, Any], key: str, where: str, names: Tuple[str, ...]
         ) -> Dict[str, Any]:
    value = parent[key]
    if not isinstance(value, dict):
        raise _Bad(f"its {where}{key} is {_kind(value)}, not an object")
    _fields(value, where + key, names)
    return value


def _text(obj: Dict[str, Any], key: str, where: str, none: bool = False) -> None:
    value = obj[key]
    if not (isinstance(value, str) or (none and value is None)):
        raise _Bad(f"its {where}{key} is {_kind(value)}, not text")


def _strings(obj: Dict[str, Any], key: str, where: str) -> None:
    value = _obj(obj, key, where, ())
    for k, v in value.items():
        if not isinstance(v, str):
            raise _Bad(f"its {where}{key}.{shown(k)} is {_kind(v)}, not text")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false",
            type(None): "null"}.get(type(value), "a number")


def _created(value: Any) -> None:
    ok = isinstance(value, str) and bool(_CREATED_RE.match(value))
    try:
        ok = ok and bool(datetime.strptime(value, CREATED))
    except ValueError:
        ok = False
    if not ok:
        raise _Bad(f"its created {_val(value)} is not a UTC time like 2026-11-28T14:23:07Z")


def _goroot(g: Dict[str, Any]) -> None:
    _text(g, "path", "goroot.")
    if not isinstance(g["root_hash"], str) or not _ROOT_HASH_RE.match(g["root_hash"]):
        raise _Bad(f"its goroot.root_hash {_val(g['root_hash'])} is not sha256: and 64 "
                   "lower-case hex digits")
    for key in ("file_count", "bytes"):
        if not _count(g[key]):
            raise _Bad(f"its goroot.{key} {_val(g[key])} is not a number")
    if not isinstance(g["files"], list):
        raise _Bad(f"its goroot.files is {_kind(g['files'])}, not a list")
    seen = set()
    for i, e in enumerate(g["files"]):
        _entry(e, f"goroot.files[{i}]")
        if e["path"] in seen:
            raise _Bad(f"its goroot.files lists {shown(e['path'])} twice")
        seen.add(e["path"])


def _entry(e: Any, where: str) -> None:
    if not isinstance(e, dict):
        raise _Bad(f"its {where} is {_kind(e)}, not an object")
    kind = e.get("type")
    want = ENTRY_FIELDS.get(kind) if isinstance(kind, str) else None
    if want is None:
        raise _Bad(f"its {where}.type {_val(e.get('type'))} is not file, dir, symlink or "
                   "other")
    if set(e) != want:
        raise _Bad(f"its {where} ({e['type']}) has the fields {', '.join(sorted(e))}, not "
                   f"{', '.join(sorted(want))}")
    path = e["path"]
    if not isinstance(path, str) or not clean_path(path):
        raise _Bad(f"its {where}.path {_val(path)} is not a clean relative path")
    if "mode" in e and not (isinstance(e["mode"], str) and _MODE_RE.match(e["mode"])):
        raise _Bad(f"its {where}.mode {_val(e['mode'])} is not four octal digits")
    if "size" in e and not _count(e["size"]):
        raise _Bad(f"its {where}.size {_val(e['size'])} is not a number")
    if "sha256" in e and not (isinstance(e["sha256"], str) and _HEX64_RE.match(e["sha256"])):
        raise _Bad(f"its {where}.sha256 {_val(e['sha256'])} is not 64 lower-case hex digits")
    if "target" in e and not (isinstance(e["target"], str) and e["target"] and "\0" not in
                              e["target"] and len(e["target"]) <= DEFAULT_LIMITS.path_chars):
        raise _Bad(f"its {where}.target {_val(e['target'])} is not a link target")


def clean_path(path: str) -> bool:
    """A path inside the GOROOT as `snapshot create` writes it: relative, `/`-separated, no
    empty, `.` or `..` element, no NUL, no longer than any path rescue accepts."""
    return (0 < len(path) <= DEFAULT_LIMITS.path_chars and "\0" not in path
            and not path.startswith("/")
            and all(part not in ("", ".", "..") for part in path.split("/")))


def _modules(mods: Any) -> None:
    if not isinstance(mods, list):
        raise _Bad(f"its modules is {_kind(mods)}, not a list")
    seen = set()
    for i, m in enumerate(mods):
        if not isinstance(m, dict):
            raise _Bad(f"its modules[{i}] is {_kind(m)}, not an object")
        _fields(m, f"modules[{i}]", ("module", "zip_hash", "mod_hash", "bundle"))
        for key in ("module", "zip_hash", "mod_hash"):
            _text(m, key, f"modules[{i}].")
        _text(m, "bundle", f"modules[{i}].", none=True)
        if m["module"] in seen:
            raise _Bad(f"its modules list {shown(m['module'])} twice")
        seen.add(m["module"])
