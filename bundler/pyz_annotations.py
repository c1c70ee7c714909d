"""Rewrite an offline module for the pyz so CPython 3.6 imports it: annotations become strings."""

from __future__ import annotations

import ast
from typing import List

# The source keeps `from __future__ import annotations` (3.7+) and modern annotations such as
# `int | None`; the pyz carries the same module with every annotation quoted, which is what
# PEP 563 makes of them at run time anyway, so 3.9-3.14 see the same `__annotations__`
# (dataclasses read field types as strings either way). Every line keeps its number, so a
# traceback from the pyz points at the line of the source in the repository.
OLDEST = (3, 6)


class AnnotationRewriteError(ValueError):
    """A module the rewrite cannot keep line-for-line (a programmer error in the source)."""


def _annotations(tree: ast.AST) -> List[ast.expr]:
    found: List[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None and arg.annotation is not None:
                    found.append(arg.annotation)
            if node.returns is not None:
                found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return found


def _future_imports(tree: ast.Module, name: str) -> List[ast.stmt]:
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            if [a.name for a in node.names] == ["annotations"]:
                out.append(node)
            elif "annotations" in [a.name for a in node.names]:
                raise AnnotationRewriteError(f"{name}:{node.lineno}: import `annotations` from "
                                             "__future__ on a line of its own")
    return out


def _quoted(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return repr(node.value)  # already a string: keep it one
    text = repr(ast.unparse(node))
    lines = (node.end_lineno or node.lineno) - node.lineno
    # A multi-line annotation stays as many lines: the newlines go inside parentheses.
    return f"({text}{chr(10) * lines})" if lines else text


def quote_annotations(source: bytes, name: str) -> bytes:
    """`source` with the future import blanked and each annotation replaced by a string."""
    tree = ast.parse(source, name)
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:
        return starts[line - 1] + col  # ast's columns count UTF-8 bytes: so do we

    spans = [(offset(n.lineno, n.col_offset), offset(n.end_lineno or n.lineno,
                                                     n.end_col_offset or 0), _quoted(n))
             for n in _annotations(tree)]
    spans += [(offset(n.lineno, n.col_offset), offset(n.end_lineno or n.lineno,
                                                      n.end_col_offset or 0), "")
              for n in _future_imports(tree, name)]
    out = source
    for begin, end, text in sorted(spans, reverse=True):
        out = out[:begin] + text.encode() + out[end:]
    try:
        ast.parse(out, name, feature_version=OLDEST)
    except SyntaxError as exc:
        raise AnnotationRewriteError(f"{name}:{exc.lineno}: not Python 3.6 syntax after "
                                     f"quoting annotations: {exc.msg}") from exc
    if out.count(b"\n") != source.count(b"\n"):
        raise AnnotationRewriteError(f"{name}: quoting annotations changed the line count")
    return out
