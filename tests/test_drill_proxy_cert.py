"""`rescue drill proxy-cert`: the private-CA failure rehearsed end to end through the real CLI,
offline but for loopback, with no Go toolchain; exit 0 when detected and recovered, else 4."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = "drill       result  detected by                      detect s  recovered by"


def rescue(args: List[str], tmp_path: Path, env: Dict[str, str] | None = None,
           wrap: List[str] | None = None) -> subprocess.CompletedProcess:
    """The CLI as an operator runs it; its temp files under tmp_path; no Go on PATH."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_CERT", "HTTP",
                                                                     "NO_PROXY"))}
    base.update(TMPDIR=str(tmpdir), PATH="/usr/bin:/bin", HOME=str(tmp_path / "home"))
    return subprocess.run([*(wrap or []), sys.executable, "-m", "bundler.cli", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def test_drill_detects_the_unknown_ca_and_recovers_with_ca_bundle(tmp_path: Path) -> None:
    done = rescue(["drill", "proxy-cert"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(HEADER), done.stdout
    assert re.match(r'proxy-cert  ok      rescue build: certificate check  \d+\.\d\d      '
                    r'ca_bundle = "ca.pem" in the spec  \d+\.\d\d$', lines[1]), lines[1]
    assert re.match(r"proxy-cert: the failing build said: connecting to 127\.0\.0\.1:\d+: its "
                    r"TLS certificate is not signed by a CA this machine trusts; if it is your "
                    r"private CA", lines[2]), lines[2]
    # Throw-away means thrown away: the CA, key, proxy and bundles are gone.
    assert list((tmp_path / "tmp").iterdir()) == []


def test_drill_json_reports_steps_and_times_in_the_shared_shape(tmp_path: Path) -> None:
    done = rescue(["drill", "proxy-cert", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["ok"], doc["exit_code"], doc["error"]) == (True, 0, None)
    [d] = doc["drills"]
    assert d["name"] == "proxy-cert" and d["ok"] is True and d["skipped"] == ""
    assert [s["phase"] for s in d["steps"]] == ["inject", "detect", "recover", "check"]
    assert all(s["ok"] for s in d["steps"])
    url = re.search(r"https://127\.0\.0\.1:\d+", d["steps"][0]["action"]).group(0)
    assert d["steps"][1]["detail"].startswith(f"connecting to {url[len('https://'):]}: its TLS "
                                              "certificate is not signed by a CA")
    assert 0 < d["detect_seconds"] < 10 and 0 < d["recover_seconds"] < 30
    assert d["detected_by"] and d["recovered_by"] == 'ca_bundle = "ca.pem" in the spec'


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="needs unshare and ip for a network namespace")
def test_drill_needs_no_network_beyond_loopback(tmp_path: Path) -> None:
    # A fresh network namespace: loopback only, no route anywhere else, no DNS.
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("this user may not create a network namespace")
    cmd = " ".join([sys.executable, "-m", "bundler.cli", "drill", "proxy-cert", "--json"])
    done = rescue([], tmp_path, wrap=["unshare", "-rn", "sh", "-c",
                                      f"ip link set lo up && exec {cmd}", "--"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["drills"][0]["ok"] is True


def test_drill_goes_direct_to_loopback_past_the_operators_https_proxy(tmp_path: Path) -> None:
    dead_proxy = "http://127.0.0.1:9"  # nothing listens: a request through it would fail
    done = rescue(["drill", "proxy-cert", "--json"], tmp_path,
                  env={"HTTPS_PROXY": dead_proxy, "https_proxy": dead_proxy,
                       "ALL_PROXY": dead_proxy})
    assert done.returncode == 0, done.stdout + done.stderr


def test_drill_that_cannot_detect_the_fault_exits_4_naming_the_step(tmp_path: Path) -> None:
    # A broken SSL_CERT_FILE fails every build for another reason: not the fault drilled.
    missing = tmp_path / "no-such-ca.pem"
    done = rescue(["drill", "proxy-cert", "--json"], tmp_path,
                  env={"SSL_CERT_FILE": str(missing)})
    assert done.returncode == 4, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["ok"], doc["exit_code"], doc["error"]["type"]) == (False, 4, "checklist-failed")
    [d] = doc["drills"]
    assert d["ok"] is False and d["detected_by"] == "" and d["recover_seconds"] is None
    expected = (f"drilling proxy-cert: the detect step did not go as expected: rescue build "
                f"without-ca.toml: setting up TLS: SSL_CERT_FILE={missing}: no such file")
    assert doc["error"]["message"].startswith(expected)
    assert done.stderr.startswith(f"rescue: {expected}"), done.stderr
    table = rescue(["drill", "proxy-cert"], tmp_path, env={"SSL_CERT_FILE": str(missing)})
    assert table.returncode == 4
    assert table.stdout.splitlines()[1].startswith("proxy-cert  FAILED  -")
