"""Run one build step under bubblewrap: the prefix read-only, no network, the caller's own uid."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from installer import versions, wiring
from installer.prefix import Layout, refuse_links
from manifests.errors import Interrupted, NotReadyError
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

# What a build reads from the host, read-only: programs, libraries, /etc (users, TLS roots).
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Taken from the caller's environment; everything else starts clean.
PASSED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "USER", "LOGNAME", "GOFLAGS",
              "CGO_ENABLED")
INSTALL_BWRAP = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; "
                 "RHEL/Fedora: `dnf install bubblewrap`) and run again")
USERNS_OFF = ("this kernel does not let an unprivileged user make a user namespace; as root "
              "allow it (`sysctl -w user.max_user_namespaces=15000`; Debian kernels before 6.x "
              "also `sysctl -w kernel.unprivileged_userns_clone=1`; Ubuntu 24.04+: an AppArmor "
              "profile for bwrap), or ask the agent's administrator to")


def find_bwrap(what: str) -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise NotReadyError(f"running {what}: bwrap (bubblewrap) is not on PATH; "
                            + INSTALL_BWRAP, operation="running", subject=what)
    return found


def prefix_layout(root: Path, what: str) -> Layout:
    """The prefix at its real path (what the sandbox binds), with a current toolchain."""
    if not root.is_dir():
        raise NotReadyError(f"running {what}: no prefix at {shown(root)}; pass the --prefix "
                            "you installed into", operation="running", subject=what)
    layout = Layout(Path(os.path.realpath(str(root))))
    refuse_links(layout)
    if versions.checked_current(layout) is None:
        raise NotReadyError(f"running {what}: no toolchain is current in {shown(root)}; "
                            "install a bundle, or make one current with `use VERSION`",
                            operation="running", subject=what)
    problem = wiring.prefix_problem(layout.root)
    if problem:
        raise NotReadyError(f"running {what}: the prefix {shown(layout.root)}: {problem}",
                            operation="running", subject=what)
    return layout


def work_dir(given: Optional[Path], what: str) -> Tuple[Path, bool]:
    """(the private work dir, whether to remove it afterwards): a new 0700 temp dir, or
    --workdir DIR kept between runs (GOCACHE stays warm), which must be the caller's own, 0700,
    and not a link, so no other user reads or plants anything in the build's HOME or cache."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="rescue-exec-")), True
    path = Path(os.path.abspath(str(given)))
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise NotReadyError(f"running {what}: cannot make the work dir {shown(path)}: "
                            f"{exc.strerror}; pass a --workdir you can write",
                            operation="running", subject=what) from None
    st = os.lstat(str(path))
    if not stat.S_ISDIR(st.st_mode):
        raise NotReadyError(f"running {what}: the work dir {shown(path)} is not a directory "
                            "(a link is never followed); pass another --workdir",
                            operation="running", subject=what)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise NotReadyError(
            f"running {what}: the work dir {shown(path)} is owned by uid {st.st_uid} with mode "
            f"{stat.S_IMODE(st.st_mode):04o}; it holds the build's HOME and caches, so it must "
            f"be yours and 0700: `chmod 700 {path}` (as its owner), or pass another --workdir",
            operation="running", subject=what)
    return Path(os.path.realpath(str(path))), False


def environment(layout: Layout, work: Path, extra: Sequence[Tuple[str, str]]) -> Dict[str, str]:
    """The build's environment: the prefix's go first on PATH and its offline settings (as
    env.sh exports them, GOROOT unset so go finds its own tree), HOME, caches and TMPDIR in the
    work dir, a few of the caller's locale settings, then --env NAME=VALUE."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update({
        "PATH": f"{layout.current / 'bin'}:{layout.root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work / "home"),
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "gopath"),
        "TMPDIR": str(work / "tmp"),
    })
    env.update(wiring.go_settings(layout))
    env.update(dict(extra))
    return env


def bwrap_argv(bwrap: str, layout: Layout, project: Path, work: Path, env: Dict[str, str],
               status_fd: int, cmd: Sequence[str]) -> List[str]:
    """Later mounts cover earlier ones: the system read-only, then the project and work dirs
    (which may sit under /tmp, a fresh tmpfs, or under /usr), then the prefix read-only last,
    so a project dir that holds the prefix cannot make it writable. (A project dir of `/` or
    of a system dir itself is refused before.)"""
    argv = [bwrap, "--unshare-user", "--disable-userns", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
            # A new session: the build cannot push keystrokes into the caller's terminal.
            "--new-session", "--cap-drop", "ALL", "--json-status-fd", str(status_fd),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in SYSTEM_DIRS:
        if os.path.islink(top):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--bind", str(project), str(project), "--bind", str(work), str(work)]
    argv += ["--ro-bind", str(layout.root), str(layout.root), "--chdir", str(project),
             "--clearenv"]
    for name, value in sorted(env.items()):
        argv += ["--setenv", name, value]
    return argv + ["--", *cmd]


def run(root: Path, cmd: Sequence[str], workdir: Optional[Path],
        extra_env: Sequence[Tuple[str, str]]) -> int:
    """CMD's exit code (a signal's as 128+N, as a shell shows it); a sandbox that could not be
    made raises NotReadyError (exit 2) naming why."""
    what = shown(" ".join(cmd), DEFAULT_LIMITS.quoted_output_chars)
    bwrap = find_bwrap(what)
    layout = prefix_layout(root, what)
    project = Path(os.path.realpath(os.getcwd()))
    if str(project) in ("/",) + SYSTEM_DIRS:
        raise NotReadyError(f"running {what}: the current directory is {project}, which would "
                            "make the system's own files writable to the build; cd to your "
                            "project first", operation="running", subject=what)
    if project == layout.root or layout.root in project.parents:
        raise NotReadyError(f"running {what}: the current directory {shown(project)} is inside "
                            "the prefix, which the build only reads; cd to your project first",
                            operation="running", subject=what)
    work, remove = work_dir(workdir, what)
    try:
        for sub in ("home", "cache", "gopath", "tmp"):
            (work / sub).mkdir(mode=0o700, exist_ok=True)
        env = environment(layout, work, extra_env)
        seen = [project, work, layout.root, *(Path(d) for d in SYSTEM_DIRS)]
        _check_found(cmd[0], env["PATH"], what, seen)
        read_end, write_end = os.pipe()
        try:
            argv = bwrap_argv(bwrap, layout, project, work, env, write_end, cmd)
            return _run_bwrap(argv, read_end, write_end, what)
        finally:
            os.close(read_end)
    finally:
        if remove:
            _remove(work)


def _check_found(name: str, path: str, what: str, seen: Sequence[Path]) -> None:
    """The command is looked up here, where the answer can name the fix: a name on the
    sandbox's PATH, a path (relative to the project) under a directory the sandbox shows, at
    the same place. Otherwise bwrap's own exit 1 would pass for the command's."""
    if "/" not in name:
        if shutil.which(name, path=path) is None:
            raise NotReadyError(f"running {what}: {shown(name)} is not on the sandbox's PATH "
                                f"({path}); give its path, or set PATH with --env",
                                operation="running", subject=what)
        return
    full = Path(os.path.abspath(os.path.join(str(seen[0]), name)))  # seen[0]: the project
    shown_dirs = ", ".join(str(d) for d in seen)
    if not any(full == d or d in full.parents for d in seen):
        raise NotReadyError(f"running {what}: {shown(str(full))} is outside what the sandbox "
                            f"shows ({shown_dirs}); copy it into the project, or run one "
                            "on the sandbox's PATH", operation="running", subject=what)
    if not (os.path.isfile(full) and os.access(full, os.X_OK)):
        raise NotReadyError(f"running {what}: {shown(str(full))} is not an executable file; "
                            "give the path of one, relative to the project or absolute",
                            operation="running", subject=what)


def _run_bwrap(argv: List[str], read_end: int, write_end: int, what: str) -> int:
    try:
        proc = subprocess.Popen(argv, pass_fds=(write_end,))
    finally:
        os.close(write_end)  # only bwrap holds it now
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()  # bwrap's child dies with it (--die-with-parent)
        proc.wait()
        raise Interrupted(f"running {what}: interrupted; the build was stopped") from None
    status = _status(read_end)
    if "exit-code" in status:
        return int(status["exit-code"])  # type: ignore[call-overload]
    if "child-pid" in status:  # started, then bwrap itself died: pass its code on
        return code
    raise NotReadyError(f"running {what}: bwrap could not make the sandbox "
                        f"(exit {code}; {_probe(argv[0])}", operation="running", subject=what)


def _status(fd: int) -> Dict[str, object]:
    """bwrap's JSON status documents ({"child-pid": N}, then {"exit-code": N}), merged; read
    without waiting for EOF (a daemon the build left behind may still hold the pipe)."""
    os.set_blocking(fd, False)
    data = b""
    while len(data) < 64 * 1024:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    merged: Dict[str, object] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            merged.update(doc)
    return merged


def _probe(bwrap: str) -> str:
    """Why bwrap fails here: the smallest sandbox, its error captured."""
    try:
        done = subprocess.run([bwrap, "--unshare-user", "--unshare-net", "--ro-bind", "/", "/",
                               "--", "/bin/true"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap does not run: {exc}); " + INSTALL_BWRAP
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0:
        return f"bwrap says: {shown(said[-1] if said else '')}); " + USERNS_OFF
    return ("its message is above); check that the command exists inside the sandbox, which "
            "sees only /usr, /etc, the prefix, the current directory and the work dir")


def _remove(tree: Path) -> None:
    """The temp work dir, go's read-only module cache included."""
    for dirpath, _dirs, _files in os.walk(str(tree)):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(str(tree), ignore_errors=True)
