"""The build step that lets CPython 3.6 import the offline modules: annotations become strings,
and every line keeps its number so a traceback from the pyz points at the repository's line."""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest

from bundler.pyz_annotations import AnnotationRewriteError, quote_annotations
from bundler.zipapp import REPO, SOURCE_PACKAGES

MODULE = b'''"""Doc."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional


@dataclasses.dataclass
class Rec:
    name: str
    size: int | None = None
    table: Dict[str,
                int] = dataclasses.field(default_factory=dict)


def f(a: Optional[Rec], *rest: int, key: "Rec" = None, **kw: str) -> Dict[
        str, int]:
    local: list[int] = []
    raise ValueError(a)
'''


def test_annotations_become_strings_and_lines_keep_their_numbers() -> None:
    out = quote_annotations(MODULE, "m.py")
    assert b"from __future__" not in out
    assert out.count(b"\n") == MODULE.count(b"\n")
    assert b"    size: 'int | None' = None\n" in out
    assert b"def f(a: 'Optional[Rec]', *rest: 'int', key: 'Rec' = None, **kw: 'str') -> (" in out
    ast.parse(out, feature_version=(3, 6))  # `int | None` and `list[int]` are only text now
    ns: dict = {}
    exec(compile(out, "m.py", "exec", dont_inherit=True), ns)  # not this file's future
    # What PEP 563 gives on 3.7+: the same field types, as strings.
    assert [(f.name, f.type) for f in dataclasses.fields(ns["Rec"])] == [
        ("name", "str"), ("size", "int | None"), ("table", "Dict[str, int]")]
    assert ns["f"].__annotations__["return"] == "Dict[str, int]"
    with pytest.raises(ValueError) as e:
        ns["f"](None)
    assert e.traceback[-1].lineno + 1 == 20  # `raise ValueError(a)`, as in the source


def test_future_import_shared_with_another_name_is_refused() -> None:
    with pytest.raises(AnnotationRewriteError, match="m.py:1: import `annotations`"):
        quote_annotations(b"from __future__ import annotations, division\n", "m.py")


def test_syntax_newer_than_36_is_refused_at_build_time() -> None:
    with pytest.raises(AnnotationRewriteError, match="m.py:2: not Python 3.6 syntax"):
        quote_annotations(b"x = 1\nif (y := x):\n    pass\n", "m.py")


def test_every_offline_module_keeps_its_lines_and_definitions() -> None:
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            source = path.read_bytes()
            out = quote_annotations(source, str(path.relative_to(REPO)))

            def places(tree: ast.AST) -> list:
                return [(type(n).__name__, n.lineno) for n in ast.walk(tree)
                        if isinstance(n, ast.stmt) and getattr(n, "module", "") != "__future__"]

            assert places(ast.parse(out)) == places(ast.parse(source)), path


# Calls that exist only from 3.7-3.9 on, with what the offline side uses instead. A real
# interpreter finds them too (tests/test_old_pythons.py), but only on the paths it runs.
NEWER_THAN_36 = {
    r"capture_output=|\btext=True": "**CAPTURE_TEXT from manifests.pycompat (3.7)",
    r"\.isascii\(\)": "isascii() from manifests.pycompat (3.7)",
    r"functools\.cache\b": "functools.lru_cache(maxsize=None) (3.9)",
    r"\.remove(prefix|suffix)\(": "a slice after startswith/endswith (3.9)",
    r"\.is_relative_to\(": "a try around relative_to (3.9)",
    r"missing_ok=|dirs_exist_ok=": "a try around the call (3.8)",
    r"\bcompresslevel=|shlex\.join|cached_property|fromisoformat|\btime_ns\(|nullcontext":
        "what 3.6 has (3.7/3.8)",
    r"\bcontextvars\b|\bimportlib\.resources\b|\bbreakpoint\(": "what 3.6 has (3.7)",
}


def test_offline_source_calls_nothing_newer_than_36() -> None:
    found = []
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name == "pycompat.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                found += [f"{path.relative_to(REPO)}:{number}: use {use}"
                          for pattern, use in NEWER_THAN_36.items() if re.search(pattern, code)]
    assert found == []
