"""installer/hostos.py: what Windows does differently, judged on Linux with the data a real
Windows host gives (readlink of a junction, stat attributes, CreateJunction's errors). Wine 8
makes no junctions, so the junction path is shown here only (README "Windows")."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from installer import hostos, versions
from installer.prefix import Layout

P = "C:\\Users\\ops\\AppData\\Local\\go-emergency"


@pytest.mark.parametrize("readlink", [
    "\\\\?\\" + P + "\\versions\\go1.21.13.windows-amd64",  # what os.readlink gives
    "\\??\\" + P + "\\versions\\go1.21.13.windows-amd64",  # the raw substitute name
    P.lower() + "\\versions\\go1.21.13.windows-amd64",  # Windows paths ignore case
])
def test_junction_target_reads_as_the_relative_link_a_symlink_holds(readlink: str) -> None:
    assert hostos.relative_target(P, readlink) == "versions/go1.21.13.windows-amd64"


def test_junction_out_of_the_prefix_is_left_absolute_for_current_problem_to_refuse() -> None:
    assert hostos.relative_target(P, "\\\\?\\D:\\planted\\go") == "D:\\planted\\go"
    # a sibling whose name starts like the prefix is not inside it
    assert hostos.relative_target(P, P + "-evil\\versions\\x") == P + "-evil\\versions\\x"


def test_junction_is_a_link_never_a_real_directory(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    # os.lstat of a junction on Windows: S_IFDIR, with FILE_ATTRIBUTE_REPARSE_POINT (0x400) set
    junction = types.SimpleNamespace(st_mode=0o40777, st_file_attributes=0x10 | 0x400)
    plain = types.SimpleNamespace(st_mode=0o40777, st_file_attributes=0x10)
    monkeypatch.setattr(hostos.os, "lstat", lambda p: junction if Path(p).name == "j" else plain)
    assert hostos.is_link(tmp_path / "j") and not hostos.is_real_dir(tmp_path / "j")
    assert hostos.is_real_dir(tmp_path / "d") and not hostos.is_link(tmp_path / "d")


def test_walk_never_enters_a_link(tmp_path: Path) -> None:
    (tmp_path / "t" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("x")
    os.symlink(tmp_path / "outside", tmp_path / "t" / "link")
    walked = [(Path(d).name, sorted(ds), sorted(fs)) for d, ds, fs in hostos.walk(tmp_path / "t")]
    assert walked == [("t", ["sub"], ["link"]), ("sub", [], [])]


class _NotSupported(OSError):
    winerror = 50  # what CreateJunction raises on a file system without reparse points


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """hostos as on Windows, with a CreateJunction whose behaviour the test picks."""
    fake = types.SimpleNamespace(CreateJunction=None)
    monkeypatch.setattr(hostos, "WINDOWS", True)
    monkeypatch.setitem(sys.modules, "_winapi", fake)
    return fake


def test_current_is_a_pointer_file_where_junctions_are_not_supported(
        windows: types.SimpleNamespace, tmp_path: Path) -> None:
    def refuse(target: str, link: str) -> None:
        os.mkdir(link)  # Wine 8 leaves an empty directory behind
        raise _NotSupported(50, "Request not supported")

    windows.CreateJunction = refuse
    layout = Layout(tmp_path)
    (tmp_path / "versions" / "go1.21.13.windows-amd64").mkdir(parents=True)
    (tmp_path / "versions" / "go1.22.10.windows-amd64").mkdir()
    from installer import prefix

    prefix.switch_symlink(layout.current, "versions/go1.21.13.windows-amd64")
    assert layout.current.read_text() == "versions/go1.21.13.windows-amd64\n"
    assert prefix.current_target(layout) == "versions/go1.21.13.windows-amd64"
    assert versions.current_problem(layout) is None
    prefix.switch_symlink(layout.current, "versions/go1.22.10.windows-amd64")  # replaced whole
    assert prefix.current_target(layout) == "versions/go1.22.10.windows-amd64"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".current")] == []
    layout.current.write_text("..\\..\\Windows\n")
    assert versions.current_problem(layout) == (
        "it points to '..\\\\..\\\\Windows', not to versions/<an installed toolchain>")


def test_current_junction_holds_an_absolute_path_and_is_replaced_by_unlinking_it(
        windows: types.SimpleNamespace, tmp_path: Path) -> None:
    made = []

    def junction(target: str, link: str) -> None:  # a junction is an absolute directory link
        assert os.path.isabs(target)
        made.append(target)
        os.symlink(target, link)

    windows.CreateJunction = junction
    link = tmp_path / "current"
    (tmp_path / "versions" / "a").mkdir(parents=True)
    hostos.make_dir_link("versions/a", link)
    assert made == [str(tmp_path / "versions" / "a")]
    tmp = tmp_path / ".current.tmp"
    hostos.make_dir_link("versions/a", tmp)
    hostos.replace_dir_link(tmp, link)
    assert os.readlink(link) == str(tmp_path / "versions" / "a") and not tmp.exists()


def test_mode_on_windows_is_only_a_files_read_only_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostos, "WINDOWS", True)
    assert not hostos.mode_differs("dir", 0o555, 0o777)
    assert not hostos.mode_differs("file", 0o555, 0o444)  # exec bits come from the extension
    assert hostos.mode_differs("file", 0o444, 0o666)  # writable: someone cleared the flag
    monkeypatch.setattr(hostos, "WINDOWS", False)
    assert hostos.mode_differs("dir", 0o555, 0o777)


def test_guarded_switch_is_refused_on_windows_before_anything_changes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from installer import guard
    from manifests.errors import NotReadyError

    monkeypatch.setattr(hostos, "WINDOWS", True)
    with pytest.raises(NotReadyError) as e:
        guard.baseline(guard.Guard([tmp_path]), Layout(tmp_path))
    assert str(e.value) == (
        "guarding the switch: --guard-project and --guard-cmd are not supported on Windows "
        "yet (a guard ends its build's processes by process group); run the command without "
        "them, then build the project yourself")


def test_current_pointer_file_that_cannot_be_read_is_a_current_problem(
        windows: types.SimpleNamespace, tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.current.write_bytes(b"versions/" + b"x" * 600)
    assert versions.current_problem(layout) == "it cannot be read (longer than 512 bytes)"
    layout.current.write_bytes(b"\xff\xfe")
    assert versions.current_problem(layout).startswith("it cannot be read ('utf-8' codec can't")


def test_a_posix_link_target_is_shown_as_it_is(tmp_path: Path) -> None:
    os.symlink("\\\\?\\C:\\x", tmp_path / "l")  # only Windows adds that prefix itself
    assert hostos.read_link(tmp_path / "l") == "\\\\?\\C:\\x"
