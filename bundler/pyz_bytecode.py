"""Bytecode for the pyz's Python files, compiled by this interpreter, so a matching stock
Python imports the installer without compiling it first."""

from __future__ import annotations

import base64
import json
import posixpath
import subprocess
import sys
from typing import Dict

# Run in a fresh `python -I`: marshal's output can depend on what else the process holds
# (shared, interned objects), and a fresh process makes it the same build after build.
_COMPILE = r"""
import base64, importlib.util, json, marshal, sys
out = {}
for name, text in sorted(json.load(sys.stdin).items()):
    source = base64.b64decode(text)
    code = compile(source, name, "exec", dont_inherit=True)
    # A checked hash-based pyc (PEP 552): valid for exactly this source, whatever its zip time.
    flags = (0b11).to_bytes(4, "little")
    pyc = importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source)
    out[name] = base64.b64encode(pyc + marshal.dumps(code)).decode()
json.dump({"tag": sys.implementation.cache_tag, "pyc": out}, sys.stdout)
"""


def bytecode(files: Dict[str, bytes]) -> Dict[str, bytes]:
    """A `.pyc` member for every `.py` in `files`: beside it at the zip's root, where zipimport
    looks (a Python of another version ignores it and compiles the source), and in
    `__pycache__/` inside the native parts, which are unpacked to a directory first. Those
    are not part of the native parts' id: a cache only, each checked against its source."""
    sources = {n: base64.b64encode(d).decode() for n, d in files.items()
               if n.endswith(".py") and n != "__main__.py"}
    done = subprocess.run([sys.executable, "-I", "-c", _COMPILE], input=json.dumps(sources),
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    tag = result["tag"]
    out: Dict[str, bytes] = {}
    for name, pyc in result["pyc"].items():
        if name.startswith("_native/"):
            folder, base = posixpath.split(name)
            member = f"{folder}/__pycache__/{base[:-3]}.{tag}.pyc"
        else:
            member = name + "c"
        out[member] = base64.b64decode(pyc)
    return out
