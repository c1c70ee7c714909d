"""rescue.pyz start-up: unpack this Python's native parts to a cache, then run the installer."""

# Copied into the pyz as __main__.py. Stdlib only, Python 3.6+, never re-executes another Python.
# Pure-Python code is imported straight from the zip; zipimport cannot load .so files, so the
# native packages for the running (Python, arch) are unpacked once into a content-addressed dir.

import atexit
import importlib
import json
import os
import shutil
import stat
import sys
import tempfile
import warnings
import zipfile

NATIVE_DIR = None  # where the native parts were loaded from (read by `selftest`)
BUILD_ID = None
HINT = ("Set RESCUE_NATIVE_DIR to a directory you can write to, on a filesystem that allows "
        "executables (not mounted noexec).")


SUPPORTED = ((3, 6), (3, 14))


def _fail(message):
    # Every start-up failure is this machine's (its Python, its disks): exit 2, "not ready".
    sys.stderr.write("rescue: " + message + "\n")
    raise SystemExit(2)


def _readable(tags):
    """cp39-x86_64 before cp310-x86_64: by Python version as numbers, then machine."""
    def key(tag):
        py, _, machine = tag.partition("-")
        return (int(py[2]), int(py[3:] or 0), machine)
    return ", ".join(sorted(tags, key=key)) or "nothing"


def _tag():
    if sys.platform == "win32":
        # sysconfig reads the build's own name (win-amd64); platform.machine() asks WMI.
        import sysconfig

        return f"cp{sys.version_info[0]}{sys.version_info[1]}-" + \
            sysconfig.get_platform().replace("-", "_")
    machine = os.uname().machine.lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.maxsize <= 2**32:
        machine += "-32bit"  # a 32-bit Python on a 64-bit kernel cannot load these wheels
    return f"cp{sys.version_info[0]}{sys.version_info[1]}-{machine}"


def _candidates(archive):
    explicit = os.environ.get("RESCUE_NATIVE_DIR")
    if explicit:
        yield explicit, True
    elif sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"),
                                                               "AppData", "Local")
        yield os.path.join(local, "rescue", "native"), False
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        yield os.path.join(cache, "rescue", "native"), False
    yield os.path.join(os.path.dirname(os.path.abspath(archive)), ".rescue-native"), False
    try:
        fresh = tempfile.mkdtemp(prefix="rescue-native-")
    except OSError:
        return
    atexit.register(shutil.rmtree, fresh, True)  # Linux lets a loaded .so be deleted
    yield fresh, False


def _unpack(zf, base, target):
    """Return the unpacked dir for target under base; build it by temp dir + atomic rename."""
    final = os.path.join(base, target["id"])
    os.makedirs(base, exist_ok=True)
    if hasattr(os, "statvfs") and os.statvfs(base).f_flag & getattr(os, "ST_NOEXEC", 8):
        raise OSError("mounted noexec")
    if not os.path.isdir(final):
        tmp = tempfile.mkdtemp(prefix=target["id"] + ".tmp-", dir=base)
        try:
            for part in target["parts"]:
                prefix = "_native/" + part + "/"
                for name in zf.namelist():
                    if not name.startswith(prefix) or name.endswith("/"):
                        continue
                    dest = os.path.join(tmp, *name[len(prefix):].split("/"))
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with zf.open(name) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.chmod(dest, 0o755 if dest.endswith((".so", ".pyd")) else 0o644)
            try:
                os.rename(tmp, final)  # atomic: a dir seen under its final name is complete
            except OSError:
                if not os.path.isdir(final):  # else another process won the race: use its copy
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    st = os.stat(final)
    # Code in here runs as us: refuse a dir someone else could have planted or changed. (Windows
    # has no uid in a stat; the per-user LOCALAPPDATA is the user's own by its ACL.)
    if hasattr(os, "getuid") and (st.st_uid != os.getuid()
                                  or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        raise OSError(f"owned by uid {st.st_uid} or writable by others")
    return final


def _load(final, probe):
    sys.path.insert(0, final)
    try:
        importlib.import_module(probe)
    except ImportError as exc:  # e.g. "failed to map segment from shared object" on noexec
        sys.path.remove(final)
        sys.modules.pop(probe, None)
        raise OSError(str(exc)) from exc


def _utf8_locale():
    """CPython 3.7 turns the plain C locale into UTF-8 (PEP 538; RHEL 8's 3.6 has it too); a
    stock 3.6 keeps ASCII, so click refuses to start and any non-ASCII name breaks: do the same."""
    import codecs
    import io
    import locale

    if (sys.version_info >= (3, 7)
            or codecs.lookup(locale.getpreferredencoding(False)).name != "ascii"):
        return
    for name in ("C.UTF-8", "C.utf8", "en_US.UTF-8"):
        try:
            locale.setlocale(locale.LC_CTYPE, name)
        except locale.Error:
            continue
        os.environ["LC_CTYPE"] = name  # as PEP 538 does: what setlocale(LC_CTYPE, "") reads
        for stream, errors in (("stdout", "surrogateescape"), ("stderr", "backslashreplace")):
            old = getattr(sys, stream)
            old.flush()
            setattr(sys, stream, io.TextIOWrapper(old.detach(), encoding="utf-8", errors=errors,
                                                  line_buffering=True))
        return
    _fail("this Python 3.6 runs in an ASCII locale and this machine has no UTF-8 locale to "
          "switch to; run it as `LC_ALL=C.UTF-8 python3 rescue.pyz ...` (or any UTF-8 locale "
          "that `locale -a` lists)")


def _setup():
    global NATIVE_DIR, BUILD_ID
    archive = getattr(__loader__, "archive", None) or sys.argv[0]
    with zipfile.ZipFile(archive) as zf:
        index = json.loads(zf.read("_native/index.json").decode("utf-8"))
        BUILD_ID = index["build_id"]
        tag = _tag()
        target = index["targets"].get(tag)
        if target is None or not SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]:
            built = _readable(index["targets"])
            _fail("this rescue.pyz needs CPython 3.6-3.14 on the machines it was built for; "
                  f"this is {tag} ({sys.executable}). It carries: {built}. Run it with one of "
                  "those, e.g. `python3.11 rescue.pyz ...`")
        try:
            import lzma  # noqa: F401  (the native parts are LZMA members)
        except ImportError:
            _fail(f"this Python ({sys.executable}) has no lzma module, which rescue.pyz needs "
                  "to unpack its native parts: install your system's Python lzma support "
                  "(the xz library it was built against), or run the pyz with another python3")
        tried = []
        for base, explicit in _candidates(archive):
            try:
                final = _unpack(zf, base, target)
                _load(final, target["probe"])
            except OSError as exc:
                reason = exc.strerror or str(exc)
                tried.append(f"  {base}: {reason}")
                if explicit:
                    sys.stderr.write(f"rescue: RESCUE_NATIVE_DIR={base} unusable ({reason}), "
                                     "falling back\n")
                continue
            NATIVE_DIR = final
            return
    _fail(f"cannot unpack the native parts for {tag}; tried:\n" + "\n".join(tried) + "\n" + HINT)


if __name__ == "__main__":
    _utf8_locale()
    _setup()
    # cryptography 40 (the newest for 3.6-3.8) warns on every start that 3.6 is old: the
    # operator cannot act on it, and the stock python3 of RHEL 8 is what they have.
    warnings.filterwarnings("ignore", message=r"Python 3\.\d+ is no longer supported")
    from installer.cli import main

    raise SystemExit(main(prog_name="python3 " + os.path.basename(sys.argv[0] or "rescue.pyz")))
