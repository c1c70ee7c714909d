"""bundler/'s modules form layers: none imports another that (directly or not) imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(f"bundler.{p.stem}" for p in (ROOT / "bundler").glob("*.py")
                 if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The bundler modules `module` imports, at module level or inside a function."""
    path = ROOT / (module.replace(".", "/") + ".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "bundler":
                found.update(f"bundler.{a.name}" for a in node.names)
            elif node.module.startswith("bundler."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bundler."))
    return found & set(MODULES)


def test_no_bundler_module_imports_one_that_imports_it_back() -> None:
    graph = {m: _imports(m) for m in MODULES}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        for dep in sorted(graph[m]):
            if dep in path:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(m)

    done: set[str] = set()
    for m in MODULES:
        if m not in done:
            visit(m, [m])
    assert cycles == []


def test_each_bundler_module_imports_alone() -> None:
    # Each import starts with none of our packages loaded: an import that works only after
    # another module was loaded first is a hidden cycle or a missing import.
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in OURS]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    ).replace("OURS", repr(("bundler", "installer", "keys", "manifests")))
    proc = subprocess.run([sys.executable, "-c", script, *MODULES], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
