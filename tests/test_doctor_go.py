"""`rescue doctor` on the go version a project asks for and on settings that skip Go's checks:
each message is held against what the real go 1.21.13 says and does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from installer import doctor, doctor_go
from installer.wiring import source_line
from tests.support import bundles, prefixes
from tests.support.users import STOCK_PYTHON, User
from tests.test_doctor import SYSTEM_PATH, of, run_doctor

NEWER = "go1.22.10.linux-amd64"


@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing) -> Path:
    """go1.21.13 (a fake go) installed and current, and go1.22.10 installed beside it."""
    P = prefixes.install_fakes(tmp_path, signing, ["go1.21.13"], sdk=True)
    (P / "versions" / NEWER).mkdir()
    return P


@pytest.fixture
def shell(tmp_path: Path, prefix: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home, etc = tmp_path / "home", tmp_path / "etc"
    home.mkdir()
    etc.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{prefix / 'current' / 'bin'}:{SYSTEM_PATH}")
    monkeypatch.setenv(doctor.ETC_ENV, str(etc))
    for key in ("GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOFLAGS",
                "GONOSUMCHECK", "GOENV", "GOWORK"):
        monkeypatch.delenv(key, raising=False)
    # The wiring says auto; these tests are about a shell that keeps go from switching.
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    return home


def use_fix(version: str, prefix: Path, exact: bool = False) -> str:
    """doctor's fix when an installed toolchain serves the project (`exact`: the one go looks
    for)."""
    use = f"make it current: python3 rescue.pyz use {version} --prefix {prefix}"
    if exact:
        return (f"{source_line(prefix)} (puts P/bin/{version} on PATH with GOTOOLCHAIN=auto, "
                f"so go switches to it), or {use}")
    return (f"{use}; or name it in go.mod (`toolchain {version}`): GOTOOLCHAIN=auto then "
            f"switches to P/bin/{version} after {source_line(prefix)}")


def bring_fix(want: str, prefix: Path, plat: str = "") -> str:
    """doctor's fix when no installed toolchain serves the project."""
    return (f"bring a bundle with {want} or newer{plat} (a spec listing it in versions) and "
            f"install it: then go switches to it by itself after {source_line(prefix)} "
            f"(GOTOOLCHAIN=auto, P/bin on PATH), or make it current: python3 rescue.pyz use "
            f"{want} --prefix {prefix}")


def project(where: Path, text: str, name: str = "go.mod") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / name).write_text(text)
    return where


def real_go(go_bin: Path, cwd: Path, home: Path, **env: str) -> str:
    """What the real go says in `cwd`, offline (unshare -n), with a clean HOME."""
    full = {"PATH": f"{go_bin.parent}:{SYSTEM_PATH}", "HOME": str(home),
            "GOPATH": str(home / "go"), "GOFLAGS": "", **env}
    out = subprocess.run(["unshare", "-n", str(go_bin), "list", "-m"], cwd=cwd, env=full,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0, out.stdout
    return out.stderr


# --- go.mod requires a newer go ------------------------------------------------------------


def test_doctor_explains_requires_go_and_names_the_installed_toolchain_that_serves(
        prefix: Path, shell: Path, tmp_path: Path, go_bin: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.22 // the language\n")
    said = real_go(go_bin, app, shell, GOTOOLCHAIN="local")
    assert said == "go: go.mod requires go >= 1.22 (running go 1.21.13; GOTOOLCHAIN=local)\n"

    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert code == 4
    [f] = of(doc, "go-version-needed")
    assert f == {
        "check": "go-version-needed", "severity": "error",
        "message": "go.mod requires go >= 1.22 (running go 1.21.13; GOTOOLCHAIN=local): the "
                   "project's `go 1.22` line asks for a newer go than go1.21.13, and "
                   "GOTOOLCHAIN=local keeps go from switching; installed here and new enough: "
                   "go1.22.10",
        "evidence": f"{app}/go.mod:3: go 1.22",
        "fix": use_fix("go1.22.10", prefix)}


def test_doctor_names_the_go_version_to_bring_when_no_installed_toolchain_serves(
        prefix: Path, shell: Path, tmp_path: Path, go_bin: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A toolchain line older than the go line changes nothing: go 1.99 is what is needed.
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.99\n\ntoolchain go1.22.10\n")
    said = real_go(go_bin, app, shell, GOTOOLCHAIN="local")
    assert said == "go: go.mod requires go >= 1.99 (running go 1.21.13; GOTOOLCHAIN=local)\n"
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert code == 4
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"] == (
        "go.mod requires go >= 1.99 (running go 1.21.13; GOTOOLCHAIN=local): the project's "
        "`go 1.99` line asks for a newer go than go1.21.13, and GOTOOLCHAIN=local keeps go "
        "from switching; no installed toolchain is go 1.99 or newer (installed: go1.21.13, "
        "go1.22.10)")
    assert f["evidence"] == f"{app}/go.mod:3: go 1.99; {app}/go.mod:5: toolchain go1.22.10"
    assert f["fix"] == bring_fix("go1.99.0", prefix, " for linux-amd64")


def test_go_list_failing_on_a_newer_go_line_points_at_the_version_finding(
        tmp_path: Path, goroot: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home, etc = tmp_path / "home", tmp_path / "etc"
    for d in (home, etc):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(doctor.ETC_ENV, str(etc))
    monkeypatch.setenv("PATH", f"{goroot}/bin:{SYSTEM_PATH}")
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.99\n")
    code, doc, _ = run_doctor(tmp_path / "P", capsys, "--project", str(app))
    assert code == 4
    [listed] = of(doc, "go list -m all", "error")
    assert listed["message"] == (
        f"`go list -m all` failed in {app}: go: go.mod requires go >= 1.99 (running go 1.21.13; "
        "GOTOOLCHAIN=local); the project asks for another go than this one")
    assert listed["fix"] == "see the go-version-needed finding"
    [need] = of(doc, "go-version-needed", "error")
    assert need["message"].endswith("no installed toolchain is go 1.99 or newer (installed: "
                                    "none)")
    assert need["fix"].startswith("bring a bundle with go1.99.0 or newer (a spec listing")


def test_toolchain_line_prefers_its_exact_version_among_those_that_serve(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (prefix / "versions" / "go1.23.4.linux-amd64").mkdir()
    (prefix / "versions" / "go1.22.10.windows-amd64").mkdir()  # another platform: never named
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.22.1\ntoolchain go1.22.10\n")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"].endswith("installed here and new enough: go1.22.10, go1.23.4")
    assert f["fix"] == use_fix("go1.22.10", prefix)
    # Without the line, the newest that serves.
    project(app, "module example.com/app\n\ngo 1.22.1\n")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"].endswith("installed here and new enough: go1.23.4, go1.22.10")
    assert f["fix"] == use_fix("go1.23.4", prefix)
    # A project the current go serves: nothing to say.
    project(app, "module example.com/app\n\ngo 1.21\ntoolchain go1.22.10\n")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert not of(doc, "go-version-needed")


def test_switching_gotoolchain_names_the_toolchain_go_looks_for_and_why_it_fails_offline(
        prefix: Path, shell: Path, tmp_path: Path, go_bin: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.21\ntoolchain go1.22.10\n")
    empty = tmp_path / "proxy"
    empty.mkdir()
    said = real_go(go_bin, app, shell, GOTOOLCHAIN="auto", GOPROXY=f"file://{empty}",
                   GOSUMDB="off")
    assert "go: download go1.22.10 for linux/amd64: toolchain not available\n" in said
    monkeypatch.setenv("GOTOOLCHAIN", "auto")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert code == 4
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"] == (
        "go.mod asks for go1.22.10, so GOTOOLCHAIN=auto makes go switch to it, but no "
        "go1.22.10 is on PATH; offline, go stops with: download go1.22.10 for linux/amd64: "
        "toolchain not available; installed here and new enough: go1.22.10")
    assert f["fix"] == use_fix("go1.22.10", prefix, exact=True)

    # A `go 1.22` line names go1.22.0 (the first release of a language version has `.0`).
    project(app, "module example.com/app\n\ngo 1.22\n")
    said = real_go(go_bin, app, shell, GOTOOLCHAIN="path")
    assert said == 'go: cannot find "go1.22.0" in PATH\n'
    monkeypatch.setenv("GOTOOLCHAIN", "path")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"] == (
        "go.mod asks for go1.22.0, so GOTOOLCHAIN=path makes go switch to it, but no go1.22.0 "
        'is on PATH; go stops with: cannot find "go1.22.0" in PATH; installed here and new '
        "enough: go1.22.10")

    # The named toolchain on PATH: go switches to it, nothing breaks.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "go1.22.0").symlink_to(go_bin)
    monkeypatch.setenv("PATH", f"{prefix / 'current' / 'bin'}:{SYSTEM_PATH}:{bindir}")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert of(doc, "go-version-needed") == [{
        "check": "go-version-needed", "severity": "info", "fix": "",
        "message": f"go switches to go1.22.0 (GOTOOLCHAIN=path), found on PATH at "
                   f"{bindir}/go1.22.0", "evidence": f"{app}/go.mod:3: go 1.22"}]


def test_auto_switch_from_the_toolchain_module_in_the_file_proxy_is_no_error_unless_sumdb_asked(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The real go switching from such a proxy: tests/test_toolchain_switch_offline.py.
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.21\ntoolchain go1.22.10\n")
    held = prefix / "goproxy" / "golang.org" / "toolchain" / "@v"
    held.mkdir(parents=True)
    (held / "v0.0.1-go1.22.10.linux-amd64.zip").write_bytes(b"")
    monkeypatch.setenv("GOTOOLCHAIN", "auto")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert of(doc, "go-version-needed") == [{
        "check": "go-version-needed", "severity": "info", "fix": "",
        "message": f"go switches to go1.22.10 (GOTOOLCHAIN=auto): the file proxy "
                   f"{prefix}/goproxy holds golang.org/toolchain v0.0.1-go1.22.10.linux-amd64",
        "evidence": f"{app}/go.mod:3: go 1.21; {app}/go.mod:4: toolchain go1.22.10"}]

    monkeypatch.setenv("GOSUMDB", "sum.golang.org")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"] == (
        "go.mod asks for go1.22.10, so GOTOOLCHAIN=auto makes go switch to it; the file proxy "
        f"{prefix}/goproxy holds golang.org/toolchain v0.0.1-go1.22.10.linux-amd64, but go "
        "checks that module with the checksum database sum.golang.org, which it cannot reach "
        "offline; installed here and new enough: go1.22.10")
    assert f["fix"] == use_fix("go1.22.10", prefix, exact=True)
    # Exempted by GONOSUMDB, or served by the proxy's own checksum database: it switches.
    monkeypatch.setenv("GONOSUMDB", "golang.org/toolchain")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert of(doc, "go-version-needed", "info")
    monkeypatch.delenv("GONOSUMDB")
    (prefix / "goproxy" / "sumdb" / "sum.golang.org").mkdir(parents=True)
    (prefix / "goproxy" / "sumdb" / "sum.golang.org" / "supported").write_bytes(b"")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(app))
    assert of(doc, "go-version-needed", "info")


def test_project_file_is_found_as_go_finds_it_and_never_read_through_a_link(
        prefix: Path, shell: Path, tmp_path: Path, go_bin: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    work = project(tmp_path / "work", "go 1.98\n\nuse ./m\n", "go.work")
    mod = project(work / "m", "module example.com/m\n\ngo 1.21\n")
    said = real_go(go_bin, mod, shell, GOTOOLCHAIN="local")
    assert said == "go: ../go.work requires go >= 1.98 (running go 1.21.13; GOTOOLCHAIN=local)\n"
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(mod))
    [f] = of(doc, "go-version-needed", "error")
    assert f["message"].startswith("../go.work requires go >= 1.98 (running go 1.21.13; "
                                   "GOTOOLCHAIN=local)")
    assert f["evidence"] == f"{work}/go.work:1: go 1.98"
    monkeypatch.setenv("GOWORK", "off")  # go reads the go.mod then
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(mod))
    assert not of(doc, "go-version-needed")

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "go.mod").symlink_to(mod / "go.mod")
    code, doc, _ = run_doctor(prefix, capsys, "--project", str(linked))
    assert of(doc, "go-version-needed") == [{
        "check": "go-version-needed", "severity": "warning", "fix": "",
        "message": "go.mod not read: it is a symbolic link (doctor never reads through one); "
                   "doctor cannot say which go version the project needs",
        "evidence": f"{linked}/go.mod"}]


def test_go_lines_are_read_as_go_reads_them() -> None:
    data = b"module x\n// go 1.50\ngopher 1\n\tgo\t1.22.3 // why\ngo 1.30\ntoolchain go1.22.10\n"
    assert doctor_go.lookup(data, "go") == ("1.22.3", 4)
    assert doctor_go.lookup(data, "toolchain") == ("go1.22.10", 6)
    assert doctor_go.lookup(b"module x\n", "go") == ("", 0)
    mod = doctor_go.ModFile("/p/go.mod", "go.mod", go="1.22")
    assert doctor_go.chosen_toolchain("auto", "go1.21.13", mod) == ("go1.22.0", True)
    assert doctor_go.chosen_toolchain("local", "go1.21.13", mod) == ("go1.21.13", False)
    assert doctor_go.chosen_toolchain("go1.22.10", "go1.21.13", mod) == ("go1.22.10", False)
    assert doctor_go.chosen_toolchain("go1.23.0+auto", "go1.21.13", mod) == ("go1.23.0", False)
    old = doctor_go.ModFile("/p/go.mod", "go.mod", go="1.20")  # before 1.21: no `.0`
    assert doctor_go.chosen_toolchain("go1.19.1+auto", "go1.21.13", old) == ("go1.20", True)


# --- settings that turn Go's own checks off --------------------------------------------------


def _goenv(home: Path, text: str) -> Path:
    f = home / ".config" / "go" / "env"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    return f


def test_checks_turned_off_are_flagged_with_where_each_is_set(
        prefix: Path, shell: Path, goroot: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The real go reads the GOENV file and derives GONOSUMDB from GOPRIVATE (the fake cannot).
    monkeypatch.setenv("PATH", f"{goroot}/bin:{SYSTEM_PATH}")
    goenv = _goenv(shell, "GOFLAGS=-modcacherw\nGOPRIVATE=*\nGONOSUMCHECK=1\n")
    monkeypatch.setenv("GOSUMDB", "off")
    code, doc, _ = run_doctor(prefix, capsys)
    got: Dict[str, Dict[str, str]] = {f["check"]: f for f in doc["findings"]}
    assert got["sumdb-off"] == {
        "check": "sumdb-off", "severity": "warning",
        "message": "GOSUMDB=off: go checks no module that go.sum lacks against the checksum "
                   "database (golang/go#40358 calls this the wrong fix); the prefix's go.env "
                   "sets GOSUMDB for offline use, and yours overrides whatever it sets",
        "evidence": "exported in the environment (GOSUMDB=off)",
        "fix": "unset GOSUMDB  (and remove the export from your shell profile)"}
    assert got["sumdb-skipped"] == {
        "check": "sumdb-skipped", "severity": "warning",
        "message": "GOPRIVATE=*: the pattern '*' matches every module path, so go checks no "
                   "module against the checksum database and fetches every module straight "
                   "from version control, never through a proxy",
        "evidence": f"set in your GOENV file {goenv} line 2 (GOPRIVATE=*)",
        "fix": "go env -u GOPRIVATE or name only your own modules, e.g. go env -w "
               "GOPRIVATE=corp.example.com"}
    assert got["gonosumcheck"] == {
        "check": "gonosumcheck", "severity": "warning",
        "message": "GONOSUMCHECK is set, but go does not read it: it is no go setting (`go env "
                   "-w` refuses it: \"unknown go command variable GONOSUMCHECK\"), so it turns "
                   "no check off; to skip the checksum database for private modules, go reads "
                   "GONOSUMDB or GOPRIVATE",
        "evidence": f"set in your GOENV file {goenv} line 3 (GONOSUMCHECK=1)",
        "fix": "go env -u GONOSUMCHECK"}
    goenv.write_text("")
    monkeypatch.setenv("GONOSUMCHECK", "1")
    monkeypatch.setenv("GONOSUMDB", "corp.example.com")
    monkeypatch.setenv("GOPRIVATE", "*")  # GONOSUMDB of its own: GOPRIVATE no longer decides
    code, doc, _ = run_doctor(prefix, capsys)
    assert of(doc, "gonosumcheck")[0]["evidence"] == "exported in the environment (GONOSUMCHECK=1)"
    assert not of(doc, "sumdb-skipped")
    # Left as the prefix's go.env wires it (off, today): nothing to say.
    monkeypatch.setenv("PATH", f"{prefix}/current/bin:{SYSTEM_PATH}")
    for key in ("GOSUMDB", "GONOSUMCHECK", "GONOSUMDB", "GOPRIVATE", "GOTOOLCHAIN"):
        monkeypatch.delenv(key)
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 0, "a fresh prefix is clean"


def test_a_goroot_go_env_that_skips_the_checksum_database_is_named_by_its_line(
        prefix: Path, shell: Path, capsys: pytest.CaptureFixture[str]) -> None:
    go_env = Path(os.path.realpath(prefix / "current")) / "go.env"
    os.chmod(go_env, 0o644)
    lines = go_env.read_text().count("\n")
    go_env.write_text(go_env.read_text() + "GONOSUMDB=corp.example.com,*/*\n")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 1
    [f] = of(doc, "sumdb-skipped")
    assert f["message"] == ("GONOSUMDB=corp.example.com,*/*: the pattern '*/*' matches every "
                            "module path, so go checks no module against the checksum database")
    assert f["evidence"] == (f"set in the GOROOT's {go_env} line {lines + 1} "
                             "(GONOSUMDB=corp.example.com,*/*)")
    assert f["fix"] == (f"delete line {lines + 1} of {go_env} (or set GONOSUMDB in your GOENV "
                        "file) or name only your own modules, e.g. go env -w "
                        "GONOSUMDB=corp.example.com")
    go_env.write_text(go_env.read_text().replace(",*/*", ""))
    code, doc, _ = run_doctor(prefix, capsys)
    assert not of(doc, "sumdb-skipped")


def test_patterns_that_match_every_module_follow_go_matching() -> None:
    assert doctor_go.global_patterns("*") == ["*"]
    assert doctor_go.global_patterns(" corp.example.com , */* ,*.*") == ["*/*", "*.*"]
    assert doctor_go.global_patterns("corp.example.com,*.corp,github.com") == []
    assert doctor_go.global_patterns("") == []


def test_gonosumcheck_and_goflags_insecure_as_the_real_go_treats_them(
        tmp_path: Path, go_bin: Path, prefix: Path, shell: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PATH": SYSTEM_PATH, "HOME": str(shell), "GOTOOLCHAIN": "local", "GOPROXY": "off",
           "GOFLAGS": "", "GOPATH": str(tmp_path / "gopath")}
    app = project(tmp_path / "app", "module example.com/app\n\ngo 1.21\n")
    (app / "main.go").write_text("package main\n\nfunc main() {}\n")

    def go(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(go_bin), *args], cwd=app, env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    # Go has no GONOSUMCHECK: -w refuses it, and exported it is no go setting at all.
    done = go("env", "-w", "GONOSUMCHECK=1")
    assert (done.returncode, done.stderr) == (1, "go: unknown go command variable GONOSUMCHECK\n")
    assert go("env", "GONOSUMCHECK", GONOSUMCHECK="1").stdout == "\n"
    assert "GONOSUMCHECK" not in go("env", "-json").stdout
    goenv = _goenv(shell, "GONOSUMCHECK=1\n")
    assert go("env", "-u", "GONOSUMCHECK").returncode == 0, "the fix doctor gives works"
    assert goenv.read_text() == ""

    # -insecure: `go get` stops; other commands ignore it; nothing turns TLS checks off.
    done = go("get", "example.com/x", GOFLAGS="-insecure")
    assert (done.returncode, done.stderr) == (
        1, "go: -insecure flag is no longer supported; use GOINSECURE instead\n")
    assert go("build", GOFLAGS="-insecure").returncode == 0

    monkeypatch.setenv("GOFLAGS", "-insecure")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [f] = of(doc, "setting GOFLAGS", "error")
    assert f["message"] == (
        "GOFLAGS=-insecure: -insecure was removed in Go 1.17: every `go get` stops with "
        "\"-insecure flag is no longer supported; use GOINSECURE instead\"; it turns no TLS "
        "check off")
    assert f["evidence"] == "exported in the environment (GOFLAGS=-insecure)"
    assert f["fix"].startswith("unset GOFLAGS  (and remove the export from your shell profile)")


# --- the real Go through `python3 -I rescue.pyz doctor`, as root and as uid 65534 ------------


def test_doctor_on_a_polluted_shell_and_a_project_no_installed_go_serves_as_every_user(
        user: User, pyz: Path, toolchain_bundle: Path, newer_toolchain_bundle: Path) -> None:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    P = user.home / "P"
    for b in (toolchain_bundle, newer_toolchain_bundle):
        done = user.run([*rescue, "install", str(user.give(b)), "--prefix", str(P)],
                        offline=True)
        assert done.returncode == 0, done.stderr
    app = project(user.work / "app", "module example.com/app\n\ngo 1.99\n\ntoolchain go1.22.10\n")
    goenv = _goenv(user.home, "GOPRIVATE=*\n")
    for p in (app, app / "go.mod", user.home / ".config", goenv.parent, goenv):
        os.chown(p, user.uid, user.uid)
    etc = user.work / "etc"
    etc.mkdir()
    env = user.env(PATH=f"{P}/current/bin:{SYSTEM_PATH}", GOSUMDB="off", GONOSUMCHECK="1",
                   GOTOOLCHAIN="local", **{doctor.ETC_ENV: str(etc)})

    said = user.run([str(P / "current" / "bin" / "go"), "list", "-m"], offline=True, env=env,
                    cwd=app)
    assert said.stderr == "go: go.mod requires go >= 1.99 (running go 1.22.10; GOTOOLCHAIN=local)\n"

    done = user.run([*rescue, "doctor", "--prefix", str(P), "--project", str(app), "--json"],
                    offline=True, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    print(done.stdout)
    doc = json.loads(done.stdout)
    assert done.returncode == 4 == doc["exit_code"]
    [need] = of(doc, "go-version-needed")
    assert need == {
        "check": "go-version-needed", "severity": "error",
        "message": "go.mod requires go >= 1.99 (running go 1.22.10; GOTOOLCHAIN=local): the "
                   "project's `go 1.99` line asks for a newer go than go1.22.10, and "
                   "GOTOOLCHAIN=local keeps go from switching; no installed toolchain is go 1.99 "
                   "or newer (installed: go1.21.13, go1.22.10)",
        "evidence": f"{app}/go.mod:3: go 1.99; {app}/go.mod:5: toolchain go1.22.10",
        "fix": bring_fix("go1.99.0", P, " for linux-amd64")}
    [off] = of(doc, "sumdb-off", "warning")
    assert off["evidence"] == "exported in the environment (GOSUMDB=off)"
    assert off["message"].startswith("GOSUMDB=off: go checks no module that go.sum lacks")
    [wide] = of(doc, "sumdb-skipped", "warning")
    assert wide["message"] == (
        "GOPRIVATE=*: the pattern '*' matches every module path, so go checks no module "
        "against the checksum database and fetches every module straight from version "
        "control, never through a proxy")
    assert wide["evidence"] == f"set in your GOENV file {goenv} line 1 (GOPRIVATE=*)"
    [unread] = of(doc, "gonosumcheck", "warning")
    assert unread["evidence"] == "exported in the environment (GONOSUMCHECK=1)"
    assert unread["fix"] == "unset GONOSUMCHECK  (and remove the export from your shell profile)"

    # The project asks for go 1.22 and the current go is 1.21.13: the installed 1.22.10 serves.
    # (The switch itself is judged without that GOENV file: its GOPRIVATE=* fails the checklist.)
    done = user.run([*rescue, "use", "1.21.13", "--prefix", str(P)], offline=True,
                    env=user.env(GOENV="off"))
    assert done.returncode == 0, done.stderr
    project(app, "module example.com/app\n\ngo 1.22\n\ntoolchain go1.22.10\n")
    done = user.run([*rescue, "doctor", "--prefix", str(P), "--project", str(app), "--json"],
                    offline=True, env=env)
    [need] = of(json.loads(done.stdout), "go-version-needed")
    assert need["message"] == (
        "go.mod requires go >= 1.22 (running go 1.21.13; GOTOOLCHAIN=local): the project's "
        "`go 1.22` line asks for a newer go than go1.21.13, and GOTOOLCHAIN=local keeps go "
        "from switching; installed here and new enough: go1.22.10")
    assert need["fix"] == use_fix("go1.22.10", P)
