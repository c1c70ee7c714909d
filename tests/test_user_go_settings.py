"""The user's own Go settings (exported variables, the GOENV file) against the offline wiring:
the checklist sees them as the user's `go` will, and `. P/env.sh` beats them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

from installer import usersettings, wiring
from installer.prefix import Layout
from tests.support import gobin
from tests.support.deadline import deadline
from tests.support.users import User

TOOLCHAIN = "go1.21.13.linux-amd64"
REPO = Path(__file__).resolve().parent.parent


def _own(user: User, path: Path) -> None:
    """Make path and every directory between the user's home and it theirs."""
    while path != user.home.parent:
        os.chown(path, user.uid, user.uid)
        path = path.parent


def write_goenv_file(user: User, text: str) -> Path:
    path = user.home / ".config" / "go" / "env"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    _own(user, path)
    return path


def hello(user: User) -> Path:
    d = user.work / "hello"
    d.mkdir()
    (d / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (d / "main.go").write_text('package main\n\nfunc main() { println("ok") }\n')
    for p in (d, d / "go.mod", d / "main.go"):
        os.chown(p, user.uid, user.uid)
    return d


def install(user: User, rescue: List[str], bundle: Path, prefix: Path, *extra: str,
            **env: str) -> subprocess.CompletedProcess:
    return user.run([*rescue, "install", str(bundle), "--prefix", str(prefix), *extra],
                    offline=True, env=user.env(**env))


# --- the checklist, through `python3 -I rescue.pyz install`, as root and as uid 65534 --------


def test_clean_environment_passes_with_every_setting_as_wired(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    prefix = user.home / "P"
    done = install(user, rescue, user.give(toolchain_bundle), prefix, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert list(checks) == ["go version", "go env GOROOT", "go env GOPROXY", "go env GOSUMDB",
                            "go env GOTOOLCHAIN", "go list std"]
    assert all(c["ok"] and not c["warn"] and not c["detail"] for c in checks.values())
    assert checks["go env GOPROXY"]["got"] == f"file://{prefix}/goproxy"
    assert checks["go env GOSUMDB"]["got"] == "off"
    assert checks["go env GOTOOLCHAIN"]["got"] == "auto"


def test_goenv_file_gotoolchain_and_goproxy_fail_the_checklist_and_keep_the_previous(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    bundle = user.give(toolchain_bundle)
    prefix = user.home / "P"
    assert install(user, rescue, bundle, prefix).returncode == 0
    goenv = write_goenv_file(user, "# go env -w wrote this\nGOTOOLCHAIN=go1.23.0+auto\n"
                                   "GOPROXY=https://proxy.example.com\n")

    again = install(user, rescue, bundle, prefix)
    print(again.stdout, again.stderr)  # the messages, as the operator sees them
    assert again.returncode == 4, again.stderr
    out = again.stdout
    assert "  FAIL go env GOPROXY      https://proxy.example.com\n" in out
    assert f"expected: file://{prefix}/goproxy" in out
    assert ("go would fetch modules over the network (https://proxy.example.com) instead of "
            "from the bundles' proxy") in out
    assert (f"set in your GOENV file {goenv} line 3 (GOPROXY=https://proxy.example.com)\n"
            in out)
    assert "fix: go env -u GOPROXY\n" in out
    assert (f"or, for one shell: . {prefix}/env.sh  (exports GOPROXY=file://{prefix}/goproxy)"
            in out)
    assert "  FAIL go env GOTOOLCHAIN  go1.23.0+auto\n" in out
    assert ("go would run go1.23.0 for every command, which no installed bundle carries: every "
            'go command stops with "toolchain not available"') in out
    assert f"set in your GOENV file {goenv} line 2 (GOTOOLCHAIN=go1.23.0+auto)" in out
    assert "fix: go env -u GOTOOLCHAIN\n" in out
    assert "ok   go env GOSUMDB" in out
    assert ("the emergency checklist failed (go env GOPROXY, go env GOTOOLCHAIN); the previous "
            "toolchain stays active") in again.stderr
    assert os.readlink(prefix / "current") == f"versions/{TOOLCHAIN}"

    fresh = user.home / "fresh"
    assert install(user, rescue, bundle, fresh).returncode == 4
    assert not (fresh / "current").exists()

    # The FAIL is real: with that GOENV file the user's `go build` goes for the network ...
    proj = hello(user)
    env = user.env(PATH=f"{prefix / 'current' / 'bin'}:/usr/bin:/bin")
    plain = user.run(["go", "build", "."], offline=True, env=env, cwd=proj)
    assert plain.returncode != 0
    assert "go: downloading go1.23.0" in plain.stderr
    # ... and `. P/env.sh`, which exports the wired values, beats the file for that shell.
    sourced = user.run(["sh", "-c", f". {prefix}/env.sh && go build -o hello . && ./hello"],
                       offline=True, env=env, cwd=proj)
    assert sourced.returncode == 0, sourced.stderr
    assert sourced.stderr == "ok\n"

    # A GOENV file go waits on (a FIFO): every go command would hang, so the checklist fails
    # at once, naming the file and the way out, instead of after its 300 s timeout.
    goenv.unlink()
    os.mkfifo(goenv)
    _own(user, goenv)
    with deadline(150, "install"):
        hung = install(user, rescue, bundle, prefix)
    assert hung.returncode == 4, hung.stderr
    assert (f"  FAIL go env GOENV  {goenv}: it is a FIFO (named pipe), not a regular "
            "file\n") in hung.stdout
    assert "expected: a GOENV file go can read" in hung.stdout
    assert ("go reads it whole before every command, so every go command waits on it "
            "without end") in hung.stdout
    assert f"fix: rm {goenv}, then set again only what you need with go env -w" in hung.stdout
    assert os.readlink(prefix / "current") == f"versions/{TOOLCHAIN}"


def test_exported_go_variables_fail_the_checklist_with_unset_as_the_fix(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    prefix = user.home / "P"
    done = install(user, rescue, user.give(toolchain_bundle), prefix,
                   GOPROXY="https://proxy.example.com,direct", GOSUMDB="sum.golang.org",
                   GOFLAGS="-mod=mod")
    print(done.stdout, done.stderr)
    assert done.returncode == 4, done.stderr
    out = done.stdout
    assert "  FAIL go env GOPROXY      https://proxy.example.com,direct\n" in out
    assert ("go would fetch modules over the network (https://proxy.example.com, direct)"
            in out)
    assert ("exported in the environment (GOPROXY=https://proxy.example.com,direct)\n"
            in out)
    assert "fix: unset GOPROXY  (and remove the export from your shell profile)\n" in out
    assert "  FAIL go env GOSUMDB      sum.golang.org\n" in out
    assert ("go would ask the checksum database 'sum.golang.org' over the network about any "
            "module missing from go.sum") in out
    assert "fix: unset GOSUMDB" in out
    assert f". {prefix}/env.sh  (exports GOSUMDB=off)" in out
    assert "  FAIL go env GOFLAGS      -mod=mod\n" in out
    assert "expected: (not set)" in out
    assert "-mod=mod lets go add modules that go.sum does not pin" in out
    assert "fix: unset GOFLAGS" in out
    assert "env.sh  (exports GOFLAGS" not in out, "env.sh does not touch GOFLAGS"
    assert "ok   go env GOTOOLCHAIN" in out
    assert not prefix.joinpath("current").exists()


def test_harmless_settings_only_warn_and_the_install_goes_on(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    goenv = write_goenv_file(user, "GOPROXY=off\nGOTOOLCHAIN=local\n")
    prefix = user.home / "P"
    done = install(user, rescue, user.give(toolchain_bundle), prefix,
                   GOFLAGS="-modcacherw", GONOSUMDB="corp.example.com")
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "  WARN go env GOPROXY      off\n" in out
    assert "modules come only from your module cache" in out
    assert f"set in your GOENV file {goenv} line 1 (GOPROXY=off)" in out
    assert "  WARN go env GOTOOLCHAIN  local\n" in out
    assert ("go never switches per go.mod: a project that needs a newer go fails even when "
            "this prefix carries it") in out
    assert "  WARN go env GOFLAGS      -modcacherw\n" in out
    assert "  WARN go env GONOSUMDB    corp.example.com\n" in out
    assert "no effect on the network while GOSUMDB=off" in out
    assert os.readlink(prefix / "current") == f"versions/{TOOLCHAIN}"
    assert "GOPRIVATE" not in out and "GONOPROXY" not in out


# --- GOPRIVATE/GONOPROXY against the modules P/goproxy carries: the checklist in-process -----


def _checklist_offline(prefix: Path, home: Path, **env: str) -> List[dict]:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from installer import checklist\n"
        "from installer.prefix import Layout\n"
        f"checks = checklist.run(Path({str(gobin.goroot())!r}), 'go1.21.13', 'linux', 'amd64',"
        f" Layout(Path({str(prefix)!r})), env=dict(__import__('os').environ))\n"
        "print(json.dumps([c.to_dict() for c in checks]))\n")
    # The wired values exported, as `. P/env.sh` does: this GOROOT's go.env is upstream's.
    wired = wiring.go_settings(Layout(prefix))
    full = {"PATH": "/usr/bin:/bin", "HOME": str(home), **wired, **env}
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", script], env=full, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_goprivate_matching_a_carried_module_fails_and_one_matching_none_warns(
        tmp_path: Path) -> None:
    prefix = tmp_path / "P"
    (prefix / "goproxy" / "corp.example.com" / "!lib" / "@v").mkdir(parents=True)
    (prefix / "goproxy" / "golang.org" / "x" / "text" / "@v").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()

    checks = {c["name"]: c for c in _checklist_offline(prefix, home, GOPRIVATE="corp.example.*")}
    private = checks["go env GOPRIVATE"]
    assert not private["ok"]
    assert private["detail"][0] == ("go would fetch corp.example.com/Lib directly from version "
                                    "control over the network, not from the bundles' proxy")
    assert private["detail"][1:] == [
        "exported in the environment (GOPRIVATE=corp.example.*)",
        "fix: unset GOPRIVATE  (and remove the export from your shell profile)"]
    assert "go env GONOPROXY" not in checks, "derived from GOPRIVATE: reported once, there"

    checks = {c["name"]: c for c in _checklist_offline(prefix, home, GONOPROXY="other.org/*")}
    assert checks["go env GONOPROXY"]["ok"] and checks["go env GONOPROXY"]["warn"]
    assert checks["go env GONOPROXY"]["detail"][0].startswith("matches no module the bundles")

    # Exactly what `. P/env.sh` gives: no findings at all.
    checks = _checklist_offline(prefix, home)
    assert all(c["ok"] and not c["warn"] for c in checks), checks


def test_match_prefix_patterns_follows_go() -> None:
    m = usersettings.match_prefix_patterns
    assert m("corp.example.com", "corp.example.com/a/b")
    assert m("*.example.com", "corp.example.com/a")
    assert not m("*.example.com", "example.com/a")
    assert m("corp.example.com/a/", "corp.example.com/a/b")
    assert not m("corp.example.com/a/b/c", "corp.example.com/a")
    assert m("x.org,corp.*/li?", "corp.com/lib/v2")
    assert m("corp.*", "corp.x/y") and not m("corp.*", "corp/x")
    assert not m("", "anything")


def test_goenv_file_is_read_as_go_reads_it(tmp_path: Path) -> None:
    f = tmp_path / "env"
    f.write_bytes(b"# GOPROXY=commented\n goproxy=x\nGOPROXY=a\nlower=1\nGOPROXY=b\nGOFLAGS\n"
                  b"GOSUMDB=off=really\n")
    assert usersettings.env_file_lines(f) == {"GOPROXY": (5, "b"),
                                              "GOSUMDB": (7, "off=really")}
    assert usersettings.env_file_lines(tmp_path / "missing") == {}
