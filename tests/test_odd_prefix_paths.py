"""Prefix paths with odd characters: what go would misread is refused before anything is
written, the rest is percent-encoded in the file:// GOPROXY, and every printed `. P/env.sh` is
safe to paste (issue 16 items 5 and 6)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

from bundler.build import BuildResult
from installer import checklist, doctor
from installer.prefix import Layout
from tests.support import bundles, craft
from tests.support.clirun import run
from tests.support.goproxy_server import RealGoProject
from tests.support.users import User

TOOLCHAIN = "go1.21.13.linux-amd64"
SYSTEM_PATH = "/usr/bin:/bin"
# Every character here breaks a bare file:// URL (`#` `?` `%`), a shell line (`$(...)`, a
# backtick, `'`) or both (a space); `%41` would silently become `A` if left unencoded.
ODD = "odd #?%41 %zz $(touch PWNED) `touch PWNED` it's"
ODD_IN_URL = "odd%20%23%3F%2541%20%25zz%20$(touch%20PWNED)%20%60touch%20PWNED%60%20it's"
GO_LIST_SEPARATOR = ("which go reads as a GOPROXY list separator: the offline proxy's file:// "
                     "URL would split into a network proxy")



def fake_bundle(tmp_path: Path, signing: bundles.Signing) -> Path:
    c = craft.Craft()
    c.toolchain()
    return c.write(tmp_path / "fake.tar.zst", signing.key)


def pwned(where: Path) -> List[str]:
    return sorted(p.name for p in where.rglob("PWNED*"))


# --- refused: what go would split, misread or cannot build from -----------------------------


def test_prefix_with_a_comma_is_refused_before_goproxy_can_reach_the_network(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    """With `,` in P, go would read file:///…/a and https://b/P/goproxy: a network proxy,
    while the checklist compared strings and said ok."""
    parent = user.work / "a,b"
    done = user.run([*rescue, "install", str(user.give(toolchain_bundle)),
                     "--prefix", str(parent / "P")], offline=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (f"rescue: installing into '{parent}/P': the path holds a comma "
                           f"(','), {GO_LIST_SEPARATOR}; choose another --prefix without it\n")
    assert not parent.exists()


@pytest.mark.parametrize("char,said", [
    ("|", f"a vertical bar ('|'), {GO_LIST_SEPARATOR}"),
    (":", "a colon (':'), which splits PATH, so `. env.sh` could not put P/current/bin on it"),
    ("\\", "a backslash ('\\\\'), which go reads as a glob escape in the GOROOT, so it cannot "
           "build its own standard library"),
    ("\n", "a control character or line break ('\\n'), which the line-based places the path "
           "goes (go.env, `go env` output, messages) cannot carry"),
    ("\r", "a control character or line break ('\\r'), which the line-based places the path "
           "goes (go.env, `go env` output, messages) cannot carry"),
    ("\t", "a control character or line break ('\\t'), which the line-based places the path "
           "goes (go.env, `go env` output, messages) cannot carry"),
    ("\x1b", "a control character or line break ('\\x1b'), which the line-based places the "
             "path goes (go.env, `go env` output, messages) cannot carry"),
    ("\x7f", "a control character or line break ('\\x7f'), which the line-based places the "
             "path goes (go.env, `go env` output, messages) cannot carry"),
    ("\u2028", "a control character or line break ('\\u2028'), which the line-based places "
               "the path goes (go.env, `go env` output, messages) cannot carry"),
    ("\udcff", "a byte that is not UTF-8 ('\\udcff'), which go.env, a UTF-8 text file, "
               "cannot hold"),
], ids=["bar", "colon", "backslash", "newline", "cr", "tab", "esc", "del", "u2028", "non-utf8"])
def test_prefix_go_or_path_would_misread_is_refused_before_anything_is_written(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        char: str, said: str) -> None:
    """`|` splits GOPROXY like `,`; `:` splits PATH (the checklist passed, `go` was then not
    found); a backslash broke `go list std` with an unrelated embed error; a newline would
    inject lines into go.env."""
    bundle = fake_bundle(tmp_path, signing)
    work = tmp_path / "work"
    work.mkdir()
    prefix = work / f"a{char}b" / "P"
    code, out, err = run(["install", bundle, "--prefix", prefix, "--trust", signing.signers],
                         capsys)
    assert code == 2, out + err
    assert err == (f"rescue: installing into {str(prefix)!r}: the path holds {said}; "
                   "choose another --prefix without it\n")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("name", ["a?b", "a*b", "a[b]", "a b", "a%b", "x=y"])
def test_prefix_with_characters_go_can_take_installs(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        name: str) -> None:
    """Only what cannot be carried is refused: glob characters go quotes itself, and what the
    URL encoding covers, install."""
    code, out, err = run(["install", fake_bundle(tmp_path, signing), "--prefix",
                          tmp_path / name / "P", "--trust", signing.signers], capsys)
    assert code == 0, out + err


# --- percent-encoded: module builds work from P/goproxy, with the real go, offline ----------


def test_module_build_works_from_a_prefix_whose_path_holds_url_and_shell_characters(
        user: User, rescue: List[str], full_bundle: BuildResult, real: RealGoProject) -> None:
    """`#` and `?` made go refuse the URL ("non-path elements"), `%` failed to parse or was
    decoded into another path, so every module build failed though the checklist said ok."""
    parent = user.work / ODD
    parent.mkdir()
    os.chown(parent, user.uid, user.uid)
    prefix = parent / "P"
    done = user.run([*rescue, "install", str(user.give(full_bundle.path)), "--prefix",
                     str(prefix), "--json"], offline=True)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    want = f"file://{user.work}/{ODD_IN_URL}/P/goproxy"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["go env GOPROXY"] == {"name": "go env GOPROXY", "ok": True, "expected": want,
                                        "got": want, "warn": False, "detail": []}
    assert report["ok"]

    project = user.give(real.project)
    env = user.env(PATH=f"{prefix / 'current' / 'bin'}:{SYSTEM_PATH}",
                   GOCACHE=str(user.home / "gocache"), GOMODCACHE=str(user.home / "fresh"),
                   GOFLAGS="-modcacherw", CGO_ENABLED="0")

    def go(*args: str) -> str:
        out = user.run(["go", *args], cwd=project, env=env, offline=True)
        assert out.returncode == 0, f"go {' '.join(args)}:\n{out.stdout}{out.stderr}"
        return out.stdout

    assert go("env", "GOPROXY") == want + "\n"
    go("build", "./...")
    assert "all modules verified" in go("mod", "verify")
    assert pwned(user.work) == []


# --- the checklist judges the list go parses ------------------------------------------------


def test_exported_goproxy_with_a_second_file_entry_fails_the_checklist(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ours,file:///elsewhere` was a WARN: go reads modules no bundle signed from there."""
    prefix = tmp_path / "P"
    ours = f"file://{prefix}/goproxy"
    monkeypatch.setenv("GOPROXY", f" {ours} ,file:///srv/elsewhere|off")
    code, out, err = run(["install", fake_bundle(tmp_path, signing), "--prefix", prefix,
                          "--trust", signing.signers], capsys)
    print(out, err)
    assert code == 4, out + err
    assert (f"  FAIL go env GOPROXY       {ours} ,file:///srv/elsewhere|off\n"
            f"                           expected: {ours}\n"
            "                           the GOPROXY list holds file:///srv/elsewhere besides "
            "the bundles' proxy: go would read modules from there, which no signed bundle "
            "checked\n") in out
    assert not (prefix / "current").exists()


@pytest.mark.parametrize("value", ["{ours}", " {ours}/ ,", "{ours},off", "{ours}|off,direct"])
def test_goproxy_that_go_parses_to_the_bundles_proxy_alone_passes(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    prefix = tmp_path / "P"
    monkeypatch.setenv("GOPROXY", value.format(ours=f"file://{prefix}/goproxy"))
    code, out, err = run(["install", fake_bundle(tmp_path, signing), "--prefix", prefix,
                          "--trust", signing.signers], capsys)
    assert code == 0, out + err
    assert "  ok   go env GOPROXY" in out


@pytest.mark.parametrize("value,why", [
    ("{ours},proxy.example.com", "go would fetch modules over the network "
                                 "(https://proxy.example.com) instead of from the bundles' proxy"),
    ("{ours}|direct", "go would fetch modules over the network (direct) instead of from the "
                      "bundles' proxy"),
    ("file:///srv/other", "the GOPROXY list holds file:///srv/other: go would read modules "
                          "from there, which no signed bundle checked"),
    (",", "the list names no proxy at all: go refuses to fetch any module"),
])
def test_goproxy_list_with_any_other_entry_fails_and_says_which(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch, value: str, why: str) -> None:
    prefix = tmp_path / "P"
    monkeypatch.setenv("GOPROXY", value.format(ours=f"file://{prefix}/goproxy"))
    code, out, err = run(["install", fake_bundle(tmp_path, signing), "--prefix", prefix,
                          "--trust", signing.signers], capsys)
    assert code == 4, out + err
    assert "  FAIL go env GOPROXY" in out
    assert why in out


def test_go_env_tampered_to_add_a_second_proxy_fails_the_checklist_with_the_real_go(
        tmp_path: Path, signing: bundles.Signing, toolchain_bundle: Path,
        capsys: pytest.CaptureFixture) -> None:
    prefix = tmp_path / "P"
    code, out, err = run(["install", toolchain_bundle, "--prefix", prefix, "--trust",
                          signing.signers], capsys)
    assert code == 0, out + err
    go_env = prefix / "versions" / TOOLCHAIN / "go.env"
    ours = f"file://{prefix}/goproxy"
    go_env.chmod(0o644)
    go_env.write_text(go_env.read_text().replace(f"GOPROXY={ours}\n",
                                                 f"GOPROXY={ours},file:///tmp/planted\n"))
    go_env.chmod(0o444)
    layout = Layout(prefix)
    checks = {c.name: c for c in checklist.run(layout.version_dir(TOOLCHAIN), "go1.21.13",
                                               "linux", "amd64", layout)}
    got = checks["go env GOPROXY"]
    assert not got.ok
    assert got.got == f"{ours},file:///tmp/planted"
    assert got.detail == (
        "the GOPROXY list holds file:///tmp/planted besides the bundles' proxy: go would read "
        "modules from there, which no signed bundle checked",
        "not set in your environment or GOENV file; the GOROOT's go.env was changed?",
        f"or, for one shell: . {prefix}/env.sh  (exports GOPROXY={ours})")


# --- every printed `. P/env.sh` is quoted: pasting it runs nothing else ---------------------


def pasted(line: str, shell: str, cwd: Path, user: User) -> subprocess.CompletedProcess:
    """`line` pasted into `shell -c`, then the go and the GOPROXY the shell has."""
    return user.run([shell, "-c", line + ' && go version && printf "%s\\n" "$GOPROXY"'],
                    cwd=cwd, env=user.env(PATH=SYSTEM_PATH), offline=True)


def test_pasted_use_it_with_line_sources_env_sh_and_runs_no_command_substitution(
        user: User, rescue: List[str], toolchain_bundle: Path) -> None:
    """A prefix with `$(...)` or a backtick printed bare ran them when the operator pasted
    "use it with:  . P/env.sh"."""
    parent = user.work / "x" / "$(touch PWNED)" / "`touch PWNED2`"
    parent.mkdir(parents=True)
    for d in (parent, parent.parent, parent.parent.parent):
        os.chown(d, user.uid, user.uid)
    prefix = parent / "P"
    done = user.run([*rescue, "install", str(user.give(toolchain_bundle)), "--prefix",
                     str(prefix)], offline=True)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.endswith(f"; use it with:  . '{prefix}/env.sh'"), last
    line = last.split("use it with:  ", 1)[1]
    here = user.work / "paste"
    here.mkdir()
    os.chown(here, user.uid, user.uid)
    for shell in ("sh", "bash", "dash"):
        out = pasted(line, shell, here, user)
        assert out.returncode == 0, f"{shell}: {out.stderr}"
        assert out.stdout == (f"go version go1.21.13 linux/amd64\n"
                              f"file://{user.work}/x/$(touch%20PWNED)/%60touch%20PWNED2%60/"
                              "P/goproxy\n"), shell
        assert pwned(user.work) == [], shell


def test_checklist_and_doctor_fix_lines_run_no_command_substitution_when_pasted(
        tmp_path: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The checklist's "or, for one shell: . P/env.sh" and doctor's fix are pasted too."""
    prefix = tmp_path / "$(touch PWNED)" / "P"
    bundle = fake_bundle(tmp_path, signing)
    assert run(["install", bundle, "--prefix", prefix, "--trust", signing.signers],
               capsys)[0] == 0
    quoted = f". '{prefix}/env.sh'"
    monkeypatch.setenv("GOSUMDB", "sum.golang.org")
    code, out, _ = run(["install", bundle, "--prefix", prefix, "--trust", signing.signers],
                       capsys)
    assert code == 4
    assert f"or, for one shell: {quoted}  (exports GOSUMDB=off)\n" in out
    monkeypatch.delenv("GOSUMDB")

    home, etc = tmp_path / "home", tmp_path / "etc"
    home.mkdir()
    etc.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    monkeypatch.setenv(doctor.ETC_ENV, str(etc))
    code, out, _ = run(["doctor", "--prefix", prefix, "--json"], capsys)
    [fix] = [f["fix"] for f in json.loads(out)["findings"] if f["check"] == "path-go"]
    assert fix == quoted
    here = tmp_path / "paste"
    here.mkdir()
    for shell in ("sh", "bash"):
        out = subprocess.run([shell, "-c", fix + ' && printf "%s\\n" "$GOSUMDB"'], cwd=here,
                             env={"PATH": SYSTEM_PATH}, capture_output=True, text=True,
                             timeout=60)
        assert (out.returncode, out.stdout) == (0, "off\n"), out.stderr
        assert pwned(tmp_path) == [], shell


def test_doctor_reinstall_fix_quotes_the_prefix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    prefix = tmp_path / "`touch PWNED`" / "P"
    prefix.mkdir(parents=True)
    go_dir = tmp_path / "other" / "bin"
    go_dir.mkdir(parents=True)
    shutil.copy("/bin/true", go_dir / "go")
    for name, value in (("HOME", str(tmp_path)), ("PATH", f"{go_dir}:{SYSTEM_PATH}"),
                        (doctor.ETC_ENV, str(tmp_path / "etc"))):
        monkeypatch.setenv(name, value)
    code, out, _ = run(["doctor", "--prefix", prefix, "--json"], capsys)
    [fix] = [f["fix"] for f in json.loads(out)["findings"]
             if f["check"] == "path-go" and f["severity"] == "error"]
    assert fix == f"python3 rescue.pyz install BUNDLE --prefix '{prefix}'"
