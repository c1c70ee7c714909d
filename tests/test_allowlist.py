"""Issue 19 item 5, the allowlist: `allowlist --format fapolicyd` checked against the real
fapolicyd-cli (Debian bookworm's 1.1.7, extracted by scripts/get-fapolicyd, never installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Set

import pytest

from installer.allowlist import escape_path
from tests.support import bundles, craft
from tests.support.clirun import run
from tests.support.gobin import cache_root

# Read at import: an autouse fixture hides CI from the tests themselves.
IN_CI = os.environ.get("CI") == "true"
TC = "go1.21.13.linux-amd64"
FAPOLICYD = cache_root() / "fapolicyd"
FAPOLICYD_CLI = FAPOLICYD / "usr/sbin/fapolicyd-cli"


def install_fake(tmp_path: Path, signing: bundles.Signing, prefix: Path) -> Path:
    """A crafted go1.21.13 (a link, an executable, a file with a space in its name) in prefix."""
    c = craft.Craft()
    root = c.toolchain()
    c.dir(f"{root}/lib").file(f"{root}/lib/time zone%.txt", b"UTC\n")
    c.symlink(f"{root}/bin/gofmt", "go")
    bundle = c.write(tmp_path / "fake.tar.zst", signing.key)
    from installer import cli

    assert cli.main(["install", str(bundle), "--prefix", str(prefix), "--trust",
                     str(signing.signers)]) == 0
    return prefix


@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing) -> Path:
    # A space and a `%` in the prefix: both must be escaped the way fapolicyd does.
    return install_fake(tmp_path, signing, tmp_path / "agent go %20")


def allowlist(prefix: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
              *extra: object) -> tuple:
    return run(["allowlist", "--format", "fapolicyd", "--prefix", prefix, "--trust",
                signing.signers, *extra], capsys)


def trust_lines(data: bytes) -> Set[bytes]:
    return {line for line in data.splitlines() if line and not line.startswith(b"#")}


def fapolicyd_cli(etc_upper: Path, *args: str) -> subprocess.CompletedProcess:
    """fapolicyd-cli with /etc/fapolicyd in a private overlay: what it writes under
    /etc/fapolicyd/trust.d lands in `etc_upper`, and the machine's /etc is untouched."""
    if not FAPOLICYD_CLI.exists():
        if IN_CI:
            pytest.fail(f"no {FAPOLICYD_CLI}: scripts/setup runs scripts/get-fapolicyd")
        pytest.skip("no fapolicyd-cli (scripts/get-fapolicyd)")
    (etc_upper / "fapolicyd" / "trust.d").mkdir(parents=True, exist_ok=True)
    scratch = etc_upper.parent / (etc_upper.name + ".work")
    scratch.mkdir(exist_ok=True)
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-Urm"]
    script = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && '
              'shift 2 && exec "$@"')
    env = {"PATH": "/usr/bin:/bin",
           "LD_LIBRARY_PATH": str(FAPOLICYD / "usr/lib/x86_64-linux-gnu")}
    return subprocess.run([*unshare, "sh", "-c", script, "sh", str(etc_upper), str(scratch),
                           str(FAPOLICYD_CLI), *args], env=env, capture_output=True,
                          timeout=120)


def test_allowlist_is_what_fapolicyd_itself_writes_and_reads_back_unchanged(
        prefix: Path, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    ours = tmp_path / "go-emergency.trust"
    code, out, err = allowlist(prefix, signing, capsys, "-o", ours)
    assert code == 0, err
    assert f"wrote {ours} (fapolicyd, 4 files)" in err
    data = ours.read_bytes()
    upper = tmp_path / "etc-upper"
    done = fapolicyd_cli(upper, "--file", "add", str(prefix / "versions" / TC),
                         "--trust-file", "theirs")
    assert done.returncode == 0, done.stderr
    theirs = (upper / "fapolicyd/trust.d/theirs").read_bytes()
    assert trust_lines(data) == trust_lines(theirs)
    assert b"/agent%20go%20%2520/versions/" + TC.encode() + b"/lib/time%20zone%25.txt 4 " \
        in data
    # fapolicyd's own reader: `--file update` parses every line, opens each path, and rewrites
    # the file with the size and hash it finds. Ours comes back as it was.
    shutil.copy(ours, upper / "fapolicyd/trust.d/ours")
    done = fapolicyd_cli(upper, "--file", "update", "--trust-file", "ours")
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert trust_lines((upper / "fapolicyd/trust.d/ours").read_bytes()) == trust_lines(data)


def test_allowlist_names_real_paths_never_current_nor_a_link(
        signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # A prefix kept on another disk, P a link to it: fapolicyd matches the path the kernel
    # reports for an exec, with every link resolved.
    real = tmp_path / "disk" / "agent go %20"
    real.mkdir(parents=True)
    linked = install_fake(tmp_path, signing, _link(tmp_path / "P", real))
    code, out, err = allowlist(linked, signing, capsys, "-o", "-")
    assert code == 0, err
    paths = [line.split(b" ")[0] for line in trust_lines(os.fsencode(out))]
    top = escape_path(os.fsencode(str(real))) + f"/versions/{TC}/".encode()
    assert sorted(paths) == [top + name for name in (b"VERSION", b"bin/go", b"go.env",
                                                     b"lib/time%20zone%25.txt")]
    # fapolicyd reads %-escapes only in a file that starts with this line (else `%20` is
    # literal and a path with a space names nothing).
    assert out.startswith("# AUTOGENERATED FILE VERSION 2\n# rescue allowlist:")


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def test_allowlist_never_vouches_for_a_file_no_bundle_put_there(
        prefix: Path, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    bin_dir = prefix / "versions" / TC / "bin"
    bin_dir.chmod(0o755)
    (bin_dir / "backdoor").write_bytes(b"#!/bin/sh\n")
    (bin_dir / "backdoor").chmod(0o755)
    bin_dir.chmod(0o555)
    ours = tmp_path / "trust"
    code, out, err = allowlist(prefix, signing, capsys, "-o", ours)
    assert code == 3
    assert ("1 added against the signed manifests (first: 'versions/go1.21.13.linux-amd64/bin/"
            "backdoor'); 1 executable(s) that no bundle installed, e.g. 'versions/go1.21.13."
            "linux-amd64/bin/backdoor': treat this machine as compromised") in err
    assert not ours.exists() and "backdoor" not in out


def test_allowlist_refuses_a_prefix_fapolicyd_cannot_name(
        prefix: Path, signing: bundles.Signing, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    # The installer refuses such a prefix; a link to one moved there later is caught here.
    moved = tmp_path / "odd\vplace"
    prefix.rename(moved)
    linked = tmp_path / "P"
    linked.symlink_to(moved)
    code, out, err = allowlist(linked, signing, capsys)
    assert code == 2
    assert ("holds b'\\x0b', which a fapolicyd trust file cannot carry (its reader splits "
            "lines there); move the prefix to a path without it") in err
    assert out == ""


def test_allowlist_of_an_empty_or_missing_prefix_says_what_to_do(
        signing: bundles.Signing, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = allowlist(tmp_path / "nowhere", signing, capsys)
    assert code == 2 and "no such prefix; pass the --prefix you installed into" in err
    (tmp_path / "empty" / "versions").mkdir(parents=True)
    code, _, err = allowlist(tmp_path / "empty", signing, capsys)
    assert code == 2 and "no toolchain is installed there; install a bundle first" in err


def test_fapolicyd_escapes_only_space_tab_and_percent() -> None:
    assert escape_path(b"/a b\tc%d#e\\f\xff") == b"/a%20b%09c%25d#e\\f\xff"
