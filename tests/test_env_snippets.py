"""`. P/env.sh` and `source P/env.fish`, sourced for real: the emergency go first on PATH exactly
once, and the wired Go settings exported over stale ones."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from installer import wiring
from installer.prefix import Layout


@pytest.mark.parametrize("shell", ["sh", "bash", "fish"])
def test_env_snippet_sourced_twice_puts_go_first_once_and_beats_stale_exports(
        shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    prefix = tmp_path / "it's a $prefix"  # quoting must hold
    prefix.mkdir()
    wiring.write_shell_snippets(Layout(prefix))
    bin_dir = f"{prefix}/current/bin"
    if shell == "fish":
        snippet = str(prefix / "env.fish")
        argv = ["fish", "-c", 'source $argv[1]; source $argv[1]; string join : $PATH; '
                'echo $GOPROXY $GOSUMDB $GOTOOLCHAIN; set -q GOROOT; or echo no-goroot',
                snippet]
    else:
        snippet = str(prefix / "env.sh")
        argv = [shell, "-c", '. "$1"; . "$1"; echo "$PATH"; echo $GOPROXY $GOSUMDB '
                '$GOTOOLCHAIN; [ -z "${GOROOT+x}" ] && echo no-goroot', shell, snippet]
    # The emergency bin already sits later on PATH (an earlier source, then a PATH change).
    env = {"PATH": f"/usr/bin:{bin_dir}:/bin:{prefix}/bin", "GOPROXY": "https://stale.example.com",
           "GOSUMDB": "sum.golang.org", "GOTOOLCHAIN": "go1.23.0+auto", "GOROOT": "/old/go"}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    url = f"file://{tmp_path}/it's%20a%20$prefix/goproxy"  # percent-encoded for go's url.Parse
    assert out.stdout.splitlines() == [f"{bin_dir}:{prefix}/bin:/usr/bin:/bin",
                                       f"{url} off auto", "no-goroot"]


def test_env_sh_keeps_an_empty_or_missing_path_usable(tmp_path: Path) -> None:
    wiring.write_shell_snippets(Layout(tmp_path))
    out = subprocess.run(["/bin/sh", "-c", f'unset PATH; . {tmp_path}/env.sh; . '
                          f'{tmp_path}/env.sh; echo "[$PATH]"'], env={},
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == f"[{tmp_path}/current/bin:{tmp_path}/bin]\n", out.stderr


@pytest.mark.parametrize("goroot_set", [True, False], ids=["goroot-set", "goroot-unset"])
@pytest.mark.parametrize("shell", ["sh", "dash", "bash", "zsh", "fish"])
def test_sourcing_env_snippet_succeeds_so_a_chained_go_command_runs(
        shell: str, goroot_set: bool, tmp_path: Path, goroot: Path) -> None:
    """`source env.fish` returned 4 when GOROOT was unset (`set -e` of an unset variable), so
    `source env.fish; and go build` skipped the build. Every shell, either way, returns 0."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    prefix = tmp_path / "P"
    prefix.mkdir()
    (prefix / "current").symlink_to(goroot)  # the real go, as P/current is after an install
    wiring.write_shell_snippets(Layout(prefix))
    if shell == "fish":
        argv = ["fish", "-c", "source $argv[1]; echo status=$status; source $argv[1]; and "
                "go version", str(prefix / "env.fish")]
    else:
        argv = [shell, "-c", '. "$1"; echo status=$?; . "$1" && go version', shell,
                str(prefix / "env.sh")]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if goroot_set:
        env["GOROOT"] = "/old/go"
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (
        0, "status=0\ngo version go1.21.13 linux/amd64\n"), out.stderr
