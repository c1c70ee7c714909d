"""`rescue doctor` against crafted HOMEs, PATHs and start-up files: every finding, its message,
its evidence and fix, and the exit status (0 clean, 1 warnings only, 4 breaks builds)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from installer import doctor
from installer.cli import main
from tests.support import bundles, craft, prefixes
from tests.support.deadline import deadline
from tests.support.users import STOCK_PYTHON, User

SYSTEM_PATH = "/usr/bin:/bin"


def fake_goroot(where: Path, version: str = "go1.21.13", *, sdk: bool = True,
                go_env: str = "GOPROXY=https://proxy.golang.org,direct\nGOSUMDB=sum.golang.org\n"
                ) -> Path:
    """A GOROOT whose bin/go answers like craft's fake go (settings from env, then go.env)."""
    (where / "bin").mkdir(parents=True)
    go = where / "bin" / "go"
    go.write_text(craft.FAKE_GO.format(version=version, goos="linux", goarch="amd64", builds=""))
    go.chmod(0o755)
    (where / "go.env").write_text(go_env)
    (where / "VERSION").write_text(f"{version}\ntime 2024-08-06T00:00:00Z\n")
    if sdk:
        (where / "src" / "runtime").mkdir(parents=True)
        (where / "pkg" / "tool").mkdir(parents=True)
    return where


@pytest.fixture
def prefix(tmp_path: Path, signing: bundles.Signing) -> Path:
    """A fresh install of a tiny signed fake toolchain (an SDK-shaped tree)."""
    P = prefixes.install_fakes(tmp_path, signing, ["go1.21.13"], sdk=True)
    return P


@pytest.fixture
def shell(tmp_path: Path, prefix: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user whose shell has only rescue's go first on PATH, an empty HOME and an empty /etc."""
    home, etc = tmp_path / "home", tmp_path / "etc"
    home.mkdir()
    etc.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{prefix / 'current' / 'bin'}:{SYSTEM_PATH}")
    monkeypatch.setenv(doctor.ETC_ENV, str(etc))
    return home


def run_doctor(P: Path, capsys: pytest.CaptureFixture[str], *extra: str
               ) -> Tuple[int, Dict[str, Any], str]:
    """doctor --json, then doctor for people: (exit code, the one JSON document, the text)."""
    codes = []
    outputs = []
    capsys.readouterr()  # what an earlier call printed
    for as_json in (True, False):
        argv = ["doctor", "--prefix", str(P), *extra] + (["--json"] if as_json else [])
        try:
            codes.append(main(argv))
        except SystemExit as exc:
            codes.append(int(exc.code or 0))
        outputs.append(capsys.readouterr().out)
    assert codes[0] == codes[1]
    doc = json.loads(outputs[0])  # exactly one document: anything else fails to parse
    assert doc["exit_code"] == codes[0] and doc["ok"] == (codes[0] == 0)
    assert doc["error"] is None
    for f in doc["findings"]:
        assert f"{f['check']}: {f['message']}" in outputs[1]
        if f["fix"]:
            assert f"fix: {f['fix']}" in outputs[1]
    print(outputs[1])  # as the operator sees it
    return codes[0], doc, outputs[1]


def of(doc: Dict[str, Any], check: str, severity: str = "") -> List[Dict[str, str]]:
    return [f for f in doc["findings"]
            if f["check"] == check and (not severity or f["severity"] == severity)]


def test_fresh_install_is_clean(prefix: Path, shell: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, text = run_doctor(prefix, capsys)
    assert code == 0, text
    assert {f["severity"] for f in doc["findings"]} == {"info"}
    assert doc["go"] == str(prefix / "current" / "bin" / "go")
    assert doc["current"] == "go1.21.13.linux-amd64"
    assert f"go on PATH #1: {prefix}/current/bin/go (wins)" in text
    assert "go list -m all: not run: pass --project DIR" in text


def test_no_go_on_path_breaks_builds(prefix: Path, shell: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [f] = of(doc, "path-go", "error")
    assert f["message"] == "no go on PATH: the shell finds no go command"
    assert f["fix"] == f". {prefix}/env.sh"


def test_another_go_winning_on_path_is_named_in_order(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = fake_goroot(tmp_path / "usr-local-go", "go1.20.14")
    monkeypatch.setenv("PATH", f"{other}/bin:{prefix}/current/bin:{SYSTEM_PATH}")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    listed = [f["message"] for f in of(doc, "path-go", "info")]
    assert listed == [f"go on PATH #1: {other}/bin/go (wins)",
                      f"go on PATH #2: {prefix}/current/bin/go (shadowed by the first)"]
    [f] = of(doc, "path-go", "error")
    assert f["message"] == (f"the go that wins on PATH is {other}/bin/go, not rescue's "
                            f"{prefix}/current/bin/go")
    assert f["evidence"] == f"PATH entry 1: {other}/bin"
    assert f["fix"].startswith(f". {prefix}/env.sh")
    # That go's own go.env goes to the network: the wiring's settings say so too.
    assert of(doc, "setting GOPROXY", "error") and of(doc, "setting GOTOOLCHAIN", "error")


def test_version_disagreeing_with_goversion_and_goroot(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    odd = fake_goroot(tmp_path / "odd", go_env="GOVERSION=go1.22.0\n")
    (odd / "VERSION").write_text("go1.20.14\n")
    monkeypatch.setenv("PATH", f"{odd}/bin:{SYSTEM_PATH}")
    monkeypatch.setenv("GOROOT", str(odd))
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    messages = [f["message"] for f in of(doc, "go-version", "error")]
    assert "`go version` says go1.21.13 but `go env GOVERSION` says go1.22.0" in messages
    assert (f"{odd}/bin/go is go1.21.13 but its GOROOT {odd} holds go1.20.14: the compiler and "
            "the standard library disagree") in messages


def test_goroot_exported_to_another_tree(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    stale = fake_goroot(tmp_path / "stale", "go1.20.14")
    monkeypatch.setenv("GOROOT", str(stale))
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    goroot = os.path.realpath(prefix / "current")
    errors = {f["message"]: f for f in of(doc, "goroot", "error")}
    runs = errors[f"{prefix}/current/bin/go runs from {goroot} but uses GOROOT {stale}"]
    assert runs["fix"] == "unset GOROOT (go finds its own tree)"
    exported = errors[f"GOROOT is exported in the environment (GOROOT={stale}); the go on PATH "
                      f"lives in {goroot}"]
    assert exported["fix"].startswith("unset GOROOT")
    assert of(doc, "go-version", "error")  # go1.21.13 with go1.20.14's standard library


def test_gopath_inside_goroot(prefix: Path, shell: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    goroot = os.path.realpath(prefix / "current")
    monkeypatch.setenv("GOROOT", goroot)  # the fake go answers GOROOT only from here
    monkeypatch.setenv("GOPATH", f"{goroot}/gopath")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [f] = of(doc, "gopath", "error")
    assert f["message"] == (f"GOPATH {goroot}/gopath is inside GOROOT {goroot}: the module "
                            "cache would go into the read-only SDK")
    assert f["fix"].startswith("unset GOPATH")
    # A GOROOT naming the tree go finds anyway is only worth knowing.
    [same] = of(doc, "goroot")
    assert same["severity"] == "info" and "names the tree go finds by itself" in same["message"]


def test_exported_settings_override_the_offline_wiring(
        prefix: Path, shell: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPROXY", "https://proxy.golang.org,direct")
    monkeypatch.setenv("GOSUMDB", "sum.golang.org")
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("GONOSUMDB", "*")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [proxy] = of(doc, "setting GOPROXY", "error")
    assert proxy["message"].startswith("GOPROXY=https://proxy.golang.org,direct: go would fetch "
                                       "modules over the network")
    assert proxy["evidence"] == ("exported in the environment "
                                 "(GOPROXY=https://proxy.golang.org,direct)")
    assert proxy["fix"].startswith("unset GOPROXY")
    assert f". {prefix}/env.sh" in proxy["fix"]
    assert of(doc, "setting GOSUMDB", "error")
    [flags] = of(doc, "setting GOFLAGS", "error")
    assert "-mod=mod lets go add modules that go.sum does not pin" in flags["message"]
    [nosum] = of(doc, "setting GONOSUMDB", "warning")
    assert nosum["message"] == "GONOSUMDB=*: no effect on the network while GOSUMDB=off"


def test_startup_files_that_set_go_variables_or_put_another_go_on_path(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, etc = shell, tmp_path / "etc"
    sdk = fake_goroot(home / "sdk" / "go1.20.14", "go1.20.14")
    (home / ".bashrc").write_text(
        "# export GOROOT=/commented/out\n"
        f". {prefix}/env.sh\n"
        "export GOROOT=/usr/local/go\n"
        'export PATH="$PATH:/usr/local/go/bin"\n'
        'PATH="$HOME/bin:$PATH"\n')
    (home / ".profile").write_text('export PATH="$HOME/sdk/go1.20.14/bin:$PATH"\n')
    (home / ".config" / "fish").mkdir(parents=True)
    (home / ".config" / "fish" / "config.fish").write_text("set -gx GOPROXY direct\n"
                                                          "fish_add_path /opt/go/bin\n")
    (home / ".zshrc").write_text("path+=($GOROOT/bin)\n")
    (etc / "profile.d").mkdir()
    (etc / "profile.d" / "golang.sh").write_text("export PATH=$PATH:/usr/lib/go-1.19/bin\n"
                                                 "\nexport GO111MODULE=off\n")
    (etc / "environment").write_text('PATH="/usr/local/sbin:/usr/bin"\nGOFLAGS="-mod=mod"\n')
    (etc / "profile").write_text('PATH="/usr/local/bin:/usr/bin:/bin"\n')
    code, doc, text = run_doctor(prefix, capsys)
    assert code == 1, text  # each is a warning: the live environment decides what breaks
    seen = {f["evidence"].split(": ", 1)[0]: f for f in doc["findings"]
            if f["check"].startswith("startup-")}
    bashrc, fish = home / ".bashrc", home / ".config/fish/config.fish"
    assert sorted(seen) == sorted([
        f"{bashrc}:3", f"{bashrc}:4", f"{home}/.profile:1", f"{fish}:1", f"{fish}:2",
        f"{home}/.zshrc:1", f"{etc}/profile.d/golang.sh:1", f"{etc}/profile.d/golang.sh:3",
        f"{etc}/environment:2"])
    assert seen[f"{bashrc}:3"]["message"] == f"{bashrc} line 3 sets GOROOT for every new shell"
    assert seen[f"{bashrc}:3"]["fix"] == f"delete line 3 of {bashrc}, then open a new shell"
    assert seen[f"{bashrc}:4"]["message"] == (f"{bashrc} line 4 puts another Go on PATH "
                                              "(/usr/local/go/bin)")
    assert seen[f"{home}/.profile:1"]["message"].endswith("($HOME/sdk/go1.20.14/bin)")
    assert sdk.exists()
    assert seen[f"{fish}:1"]["message"].endswith("sets GOPROXY for every new shell")
    assert seen[f"{etc}/environment:2"]["message"].endswith("sets GOFLAGS for every new shell")


def test_startup_files_that_are_fifos_are_skipped_and_linked_ones_are_read(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO planted as ~/.bashrc or in /etc/profile.d would hold a plain open for ever;
    a ~/.profile linked from a dotfiles checkout is the user's real one."""
    home, etc = shell, tmp_path / "etc"
    os.mkfifo(home / ".bashrc")
    (etc / "profile.d").mkdir()
    os.mkfifo(etc / "profile.d" / "zz.sh")
    dotfiles = home / "dotfiles" / "profile"
    dotfiles.parent.mkdir()
    dotfiles.write_text("export GOROOT=/usr/local/go\n")
    (home / ".profile").symlink_to(dotfiles)
    with deadline(60):  # a read that waits fails the test rather than hanging the suite
        code, doc, text = run_doctor(prefix, capsys)
    seen = [f["evidence"].split(": ", 1)[0] for f in doc["findings"]
            if f["check"].startswith("startup-")]
    assert seen == [f"{home}/.profile:1"], text


def test_path_entries_that_are_empty_relative_missing_spaced_writable_or_foreign(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    spaced = tmp_path / "my tools"
    shared = tmp_path / "shared"
    foreign = tmp_path / "foreign"
    for d in (spaced, shared, foreign):
        d.mkdir()
    shared.chmod(0o777)
    os.chown(foreign, 65534, 65534)
    monkeypatch.setenv("PATH", ":".join([
        f"{prefix}/current/bin", "", "relative/bin", str(tmp_path / "gone"), str(spaced),
        str(shared), str(foreign), SYSTEM_PATH]))
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 1
    got = {(f["evidence"], f["message"]) for f in of(doc, "path-entry")}
    assert ("PATH entry 2: ''", "empty PATH entry: the current directory is searched, so a `go` "
            "in any directory you cd into wins") in got
    assert ("PATH entry 3: 'relative/bin'", "relative PATH entry 'relative/bin': it names a "
            "different directory in every working directory") in got
    assert (f"PATH entry 4: '{tmp_path}/gone'", f"PATH entry '{tmp_path}/gone' does not exist"
            ) in got
    assert (f"PATH entry 5: '{spaced}'", f"PATH entry '{spaced}' contains a space: scripts "
            "that split PATH unquoted break") in got
    assert (f"PATH entry 6: '{shared}'", f"PATH entry {shared} is writable by every user: "
            "anyone can put a `go` there (hijack risk)") in got
    assert (f"PATH entry 7: '{foreign}'", f"PATH entry {foreign} is owned by uid 65534, "
            "neither you nor root: its owner decides what `go` runs (hijack risk)") in got


def test_goroot_and_prefix_writable_by_others(prefix: Path, shell: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    goroot = Path(os.path.realpath(prefix / "current"))
    prefix.chmod(0o775)
    goroot.chmod(0o757)
    try:
        code, doc, _ = run_doctor(prefix, capsys)
    finally:
        goroot.chmod(0o555)
    assert code == 1
    got = {f["evidence"]: f for f in of(doc, "permissions", "warning")}
    assert set(got) == {str(prefix), str(goroot)}
    assert got[str(prefix)]["message"] == (f"{prefix} is writable by anyone but its owner (mode "
                                           "drwxrwxr-x): another user can change the Go it holds")
    assert got[str(goroot)]["fix"] == f"chmod go-w {goroot}"


def test_overwritten_go_binary_fails_go_version(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    broken = fake_goroot(tmp_path / "copy")
    (broken / "bin" / "go").write_bytes(b"\x7fELF\x02\x01\x01")  # a copy cut short
    monkeypatch.setenv("PATH", f"{broken}/bin:{SYSTEM_PATH}")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [f] = of(doc, "go version", "error")
    assert f["message"] == (f"`go version` failed: cannot run {broken}/bin/go: Exec format "
                            f"error; {broken}/bin/go is not a working go binary: GOROOT/bin/go "
                            "was overwritten (a copy cut short, another program copied over it)")
    assert "rollback" in f["fix"]


def test_goroot_that_is_not_an_sdk_tree_fails_go_env(
        prefix: Path, shell: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    hollow = fake_goroot(tmp_path / "hollow", sdk=False)
    (hollow / "bin" / "go").write_text(
        '#!/bin/sh\ncase "$1" in version) echo "go version go1.21.13 linux/amd64" ;;\n'
        '*) echo "go: cannot find GOROOT directory: /nowhere" >&2; exit 2 ;; esac\n')
    monkeypatch.setenv("PATH", f"{hollow}/bin:{SYSTEM_PATH}")
    code, doc, _ = run_doctor(prefix, capsys)
    assert code == 4
    [sdk] = of(doc, "goroot-sdk", "error")
    assert sdk["message"] == f"GOROOT {hollow} is not a Go SDK tree (no src/runtime or pkg/tool)"
    [env] = of(doc, "go env", "error")
    assert env["message"] == ("`go env` failed: go: cannot find GOROOT directory: /nowhere; "
                              f"GOROOT {hollow} is not an SDK tree")


def test_project_without_go_mod_with_the_real_go(
        tmp_path: Path, goroot: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home, etc, P = tmp_path / "home", tmp_path / "etc", tmp_path / "P"
    for d in (home, etc):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(doctor.ETC_ENV, str(etc))
    monkeypatch.setenv("PATH", f"{goroot}/bin:{SYSTEM_PATH}")
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    monkeypatch.setenv("GOPROXY", "off")
    bare = tmp_path / "bare"
    bare.mkdir()
    code, doc, _ = run_doctor(P, capsys, "--project", str(bare))
    assert code == 4
    [gomod] = of(doc, "gomod", "error")
    assert gomod["message"] == f"no go.mod in {bare} or any directory above it"
    [listed] = of(doc, "go list -m all", "error")
    assert "go.mod file not found" in listed["message"]
    assert listed["message"].endswith(f"no go.mod in {bare} or above")
    assert of(doc, "path-go", "error")[0]["message"].startswith("no rescue toolchain is current")

    proj = tmp_path / "hello"
    proj.mkdir()
    (proj / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    code, doc, _ = run_doctor(P, capsys, "--project", str(proj))
    assert of(doc, "gomod") == [{"check": "gomod", "severity": "info", "fix": "",
                                 "message": f"module file {proj}/go.mod",
                                 "evidence": f"GOMOD in {proj}"}]
    assert not of(doc, "go list -m all") and not of(doc, "go version")


# --- the real Go, through `python3 -I rescue.pyz doctor`, as root and as uid 65534 ---------


def _doctor(user: User, rescue: List[str], P: Path, path: str, *extra: str
            ) -> Tuple[int, Dict[str, Any]]:
    etc = user.work / "etc"
    etc.mkdir(exist_ok=True)
    done = user.run([*rescue, "doctor", "--prefix", str(P), "--json", *extra], offline=True,
                    env=user.env(PATH=path, **{doctor.ETC_ENV: str(etc)}))
    assert "Traceback" not in done.stderr, done.stderr
    print(done.stdout)
    return done.returncode, json.loads(done.stdout)


def test_real_go_doctor_as_every_user_clean_then_polluted(
        user: User, pyz: Path, toolchain_bundle: Path) -> None:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    P = user.home / "P"
    done = user.run([*rescue, "install", str(user.give(toolchain_bundle)), "--prefix", str(P)],
                    offline=True)
    assert done.returncode == 0, done.stderr
    clean = f"{P}/current/bin:{SYSTEM_PATH}"
    hello = user.work / "hello"
    hello.mkdir()
    (hello / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (hello / "main.go").write_text('package main\n\nfunc main() { println("ok") }\n')
    for p in (hello, hello / "go.mod", hello / "main.go"):
        os.chown(p, user.uid, user.uid)

    code, doc = _doctor(user, rescue, P, clean, "--project", str(hello))
    assert code == 0, doc
    assert {f["severity"] for f in doc["findings"]} == {"info"}
    assert of(doc, "gomod")[0]["message"] == f"module file {hello}/go.mod"

    # A `go env -w` the user forgot: the GOENV file line is the evidence.
    goenv = user.home / ".config" / "go" / "env"
    goenv.parent.mkdir(parents=True)
    goenv.write_text("GOTOOLCHAIN=go1.23.0+auto\n")
    for p in (user.home / ".config", goenv.parent, goenv):
        os.chown(p, user.uid, user.uid)
    code, doc = _doctor(user, rescue, P, clean)
    assert code == 4
    [tc] = of(doc, "setting GOTOOLCHAIN", "error")
    assert tc["evidence"] == f"set in your GOENV file {goenv} line 1 (GOTOOLCHAIN=go1.23.0+auto)"
    assert tc["fix"].startswith("go env -u GOTOOLCHAIN")
    goenv.unlink()

    # A copy of the GOROOT whose bin/go was overwritten (by gofmt), first on PATH.
    copy = user.work / "go-copy"
    real_root = os.path.realpath(P / "current")
    assert os.system(f"cp -al {real_root} {copy}") == 0
    os.chmod(copy / "bin", 0o755)
    (copy / "bin" / "go").unlink()  # a new file: the hard link to the live go stays intact
    shutil.copy2(copy / "bin" / "gofmt", copy / "bin" / "go")
    code, doc = _doctor(user, rescue, P, f"{copy}/bin:{clean}")
    assert code == 4
    [v] = of(doc, "go version", "error")
    assert v["message"].startswith("`go version` failed: stat version: no such file")
    assert "GOROOT/bin/go was overwritten" in v["message"]
    assert of(doc, "path-go", "error")[0]["evidence"] == f"PATH entry 1: {copy}/bin"
    assert os.path.getsize(P / "current" / "bin" / "go") != os.path.getsize(copy / "bin" / "go")


# --- the current GOROOT against its signed manifest, and P/current itself ------------------


@pytest.fixture
def signed(tmp_path: Path, signing: bundles.Signing, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An SDK-shaped fake toolchain with src/fmt/print.go and a tool, installed, on PATH."""
    c = craft.Craft(name="dc")
    root = c.toolchain()
    for d in ("src", "src/runtime", "src/fmt", "pkg", "pkg/tool", "pkg/tool/linux_amd64"):
        c.dir(f"{root}/{d}")
    c.file(f"{root}/src/fmt/print.go", b"package fmt\n\nfunc Println() {}\n")
    c.file(f"{root}/pkg/tool/linux_amd64/vet", b"\x7fELF vet\n", 0o755)
    bundle = c.write(tmp_path / "dc.tar.zst", signing.key)
    P = tmp_path / "signed"
    assert main(["install", str(bundle), "--prefix", str(P), "--trust",
                 str(signing.signers)]) == 0
    for d in ("home", "etc"):
        (tmp_path / d).mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", f"{P / 'current' / 'bin'}:{SYSTEM_PATH}")
    monkeypatch.setenv(doctor.ETC_ENV, str(tmp_path / "etc"))
    return P


def test_doctor_finds_a_deleted_stdlib_file_and_points_to_repair(
        signed: Path, signing: bundles.Signing, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.damaged import TC, edit

    trust = ("--trust", str(signing.signers))
    code, doc, _ = run_doctor(signed, capsys, *trust)
    assert code == 0
    [ok] = of(doc, "integrity", "info")
    assert ok["message"] == (f"versions/{TC} matches its signed manifest by path, type, mode "
                             "and size (5 files; `verify` also hashes their content)")
    goroot = signed / "versions" / TC
    edit(goroot / "src/fmt/print.go")
    code, doc, text = run_doctor(signed, capsys, *trust)
    assert code == 4, text
    [f] = of(doc, "integrity", "error")
    assert f["message"] == (f"versions/{TC} differs from its signed manifest: 1 missing (first: "
                            f"'versions/{TC}/src/fmt/print.go'); a missing or changed file "
                            "breaks builds")
    assert f["evidence"] == f"'versions/{TC}/src/fmt/print.go'"
    assert f["fix"].startswith(f"python3 rescue.pyz verify --prefix {signed} (every file "
                               f"hashed), then python3 rescue.pyz repair BUNDLE --prefix "
                               f"{signed} (BUNDLE: dc #1 (manifest sha256 "), f["fix"]
    # A planted tool alone needs no bundle; it is called out as executable.
    edit(goroot / "pkg/tool/linux_amd64/cover", b"#!/bin/sh\necho planted\n")
    (goroot / "pkg/tool/linux_amd64/cover").chmod(0o555)
    code, doc, _ = run_doctor(signed, capsys, *trust)
    [f] = of(doc, "integrity", "error")
    assert f["message"].startswith(f"versions/{TC} differs from its signed manifest: 1 missing, "
                                   "1 added (first: ")
    assert (f"1 executable(s) that no bundle installed, e.g. 'versions/{TC}/pkg/tool/linux_amd64"
            "/cover': treat this machine as compromised") in f["message"]
    # Without a trust store doctor still runs, and says what it did not check.
    code, doc, _ = run_doctor(signed, capsys)
    [skipped] = of(doc, "integrity", "info")
    assert skipped["message"].startswith("the current GOROOT was not checked against its signed "
                                         "manifest: no trust store: pass --trust FILE")


@pytest.mark.parametrize("target", ["outside", "versions/go1.99.0.linux-amd64", "current"])
def test_doctor_names_a_current_link_that_is_not_an_installed_toolchain(
        target: str, signed: Path, tmp_path: Path, signing: bundles.Signing,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.damaged import TC

    current = signed / "current"
    current.unlink()
    if target == "outside":  # a copy of the GOROOT elsewhere: go works, but is not rescue's
        shutil.copytree(signed / "versions" / TC, tmp_path / "elsewhere", symlinks=True)
        target = str(tmp_path / "elsewhere")
    current.symlink_to(target)
    code, doc, text = run_doctor(signed, capsys, "--trust", str(signing.signers))
    assert code == 4, text
    [f] = of(doc, "current-link", "error")
    problem = (f"it points to {target!r}, which is not installed" if target.startswith("versions")
               else f"it points to {target!r}, not to versions/<an installed toolchain>")
    assert f["message"] == (f"{current}: {problem}; the go it leads to is not a toolchain "
                            "rescue installed")
    assert f["fix"] == f"python3 rescue.pyz use VERSION --prefix {signed} (installed: {TC})"
    assert doc["current"] is None and not of(doc, "integrity")


def test_real_go_doctor_finds_a_deleted_stdlib_file_that_breaks_go_build_for_every_user(
        user: User, pyz: Path, toolchain_bundle: Path) -> None:
    rescue = [STOCK_PYTHON, "-I", str(user.give(pyz))]
    P = user.home / "P"
    bundle = user.give(toolchain_bundle)
    assert user.run([*rescue, "install", str(bundle), "--prefix", str(P)],
                    offline=True).returncode == 0
    tc = os.path.basename(os.path.realpath(P / "current"))
    fmt = P / "versions" / tc / "src" / "fmt"
    assert user.run(["sh", "-c", f"chmod u+w {fmt} && rm {fmt}/print.go && chmod u-w {fmt}"]
                    ).returncode == 0
    hello = user.work / "hello"
    hello.mkdir()
    (hello / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (hello / "main.go").write_text('package main\n\nimport "fmt"\n\n'
                                   'func main() { fmt.Println("ok") }\n')
    for p in (hello, hello / "go.mod", hello / "main.go"):
        os.chown(p, user.uid, user.uid)
    clean = f"{P}/current/bin:{SYSTEM_PATH}"
    built = user.run([str(P / "current" / "bin" / "go"), "build", "./..."], cwd=hello,
                     offline=True, env=user.env(PATH=clean, GOFLAGS="-mod=mod"))
    assert built.returncode != 0  # the emergency: go build fails, and doctor must say why

    code, doc = _doctor(user, rescue, P, clean)
    assert code == 4, doc
    [f] = of(doc, "integrity", "error")
    assert f["message"] == (f"versions/{tc} differs from its signed manifest: 1 missing (first: "
                            f"'versions/{tc}/src/fmt/print.go'); a missing or changed file "
                            "breaks builds")
    assert f["fix"].startswith(f"python3 rescue.pyz verify --prefix {P} (every file hashed), "
                               f"then python3 rescue.pyz repair BUNDLE --prefix {P} (BUNDLE: "
                               "rescue-test #1 (manifest sha256 ")
    assert user.run([*rescue, "repair", str(bundle), "--prefix", str(P)],
                    offline=True).returncode == 0
    code, doc = _doctor(user, rescue, P, clean)
    assert code == 0 and of(doc, "integrity", "info"), doc
