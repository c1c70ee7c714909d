"""The builder's private signing key: one others can read is refused before any download; a
passphrase-protected one is asked for on a terminal, hidden, or read from RESCUE_KEY_PASSPHRASE
in CI; a wrong passphrase is named as wrong, wherever it came from."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.support import bundles
from tests.support.goproxy_server import FixtureModule, ProxyServer, write_modules
from tests.support.modbundles import modules_table

ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = "correct horse"
MODULE = FixtureModule("example.com/keyed", "v1.0.0",
                       {"keyed.go": "package keyed\n\nfunc Name() string { return \"k\" }\n"})


@pytest.fixture(scope="module")
def encrypted_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("bcrypt")
    key = tmp_path_factory.mktemp("enc") / "release"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", "release",
                    "-f", str(key)], check=True, capture_output=True, timeout=60)
    return key


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    with ProxyServer(write_modules(tmp_path_factory.mktemp("proxy"), [MODULE])) as srv:
        yield srv


def build_argv(tmp_path: Path, key: Path, proxy: ProxyServer) -> List[str]:
    spec = bundles.write_spec(tmp_path / "spec.toml", key, "http://127.0.0.1:9", versions="[]",
                              extra=modules_table(proxy.url, require=[MODULE.key]))
    return [sys.executable, "-m", "bundler.cli", "build", str(spec), "-o",
            str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]


def on_a_terminal(argv: List[str], answer: str, env: dict, timeout: float = 60
                  ) -> Tuple[int, str, str]:
    """Run argv with a pseudo-terminal as its controlling terminal; type `answer` once the
    passphrase prompt shows. Returns (exit code, screen up to the prompt, screen after)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its own session, the pty its terminal (as a login shell has)
        os.chdir(ROOT)
        os.execve(argv[0], argv, env)
    before, after, typed = b"", b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        if typed:
            after += chunk
            continue
        before += chunk
        if b"Passphrase for signing key" in before and before.rstrip().endswith(b":"):
            os.write(fd, answer.encode() + b"\r")
            typed = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), before.decode(), after.decode()


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RESCUE_KEY_PASSPHRASE"}
    return {**env, "TERM": "dumb", "SOURCE_DATE_EPOCH": str(int(time.time())), **extra}


def test_encrypted_key_asks_for_its_passphrase_on_a_terminal_without_echoing_it(
        encrypted_key: Path, proxy: ProxyServer, tmp_path: Path) -> None:
    code, before, after = on_a_terminal(build_argv(tmp_path, encrypted_key, proxy), PASSPHRASE,
                                        child_env())
    assert f"Passphrase for signing key {encrypted_key}:" in before
    assert code == 0, before + after
    assert PASSPHRASE not in after  # hidden input: the terminal never shows what was typed
    assert "wrote " in after and list((tmp_path / "out").glob("*.rescue.tar.zst"))


def test_wrong_passphrase_typed_at_the_prompt_is_refused_by_name(
        encrypted_key: Path, proxy: ProxyServer, tmp_path: Path) -> None:
    code, _before, after = on_a_terminal(build_argv(tmp_path, encrypted_key, proxy), "not it",
                                         child_env())
    assert code == 2, after
    assert (f"rescue: reading signing key {encrypted_key}: the passphrase typed at the prompt "
            "is wrong") in after
    assert not list(tmp_path.glob("out/*.tar.zst"))  # refused before anything was built


def test_ci_gives_the_passphrase_in_the_environment_and_is_never_prompted(
        encrypted_key: Path, proxy: ProxyServer, tmp_path: Path) -> None:
    done = subprocess.run(build_argv(tmp_path, encrypted_key, proxy), cwd=ROOT,
                          env=child_env(RESCUE_KEY_PASSPHRASE=PASSPHRASE),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Passphrase" not in done.stderr + done.stdout


def test_encrypted_key_without_a_terminal_or_the_variable_says_how_to_give_it(
        encrypted_key: Path, proxy: ProxyServer, tmp_path: Path) -> None:
    done = subprocess.run(build_argv(tmp_path, encrypted_key, proxy), cwd=ROOT,
                          env=child_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"rescue: reading signing key {encrypted_key}: the key is encrypted with a passphrase; "
        "set the RESCUE_KEY_PASSPHRASE environment variable to it, or run on a terminal to be "
        "asked for it"), done.stderr


def test_wrong_passphrase_in_the_environment_is_refused_by_name(
        encrypted_key: Path, proxy: ProxyServer, tmp_path: Path) -> None:
    done = subprocess.run(build_argv(tmp_path, encrypted_key, proxy), cwd=ROOT,
                          env=child_env(RESCUE_KEY_PASSPHRASE="not it"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(f"rescue: reading signing key {encrypted_key}: the passphrase "
                                  "in RESCUE_KEY_PASSPHRASE is wrong"), done.stderr


def test_build_refuses_a_group_readable_signing_key_before_any_download(
        proxy: ProxyServer, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bundler import cli as bundler_cli
    from keys import sshkey

    key = tmp_path / "keys" / "release"
    key.parent.mkdir()
    sshkey.generate_keypair(key, "release")
    key.chmod(0o640)
    served = len(proxy.requests)
    code = bundler_cli.main(build_argv(tmp_path, key, proxy)[3:])
    assert code == 2
    assert capsys.readouterr().err.startswith(
        f"rescue: reading signing key {key}: permissions 0640 are too open; the key must be "
        f"readable by its owner only: run `chmod 600 {key}`")
    assert len(proxy.requests) == served
