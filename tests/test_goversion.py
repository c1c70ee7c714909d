"""Go's version order and syntax: a release candidate never outranks its release."""

from __future__ import annotations

import pytest

from manifests.goversion import check_target, compare, is_toolchain_version, version_key

# Go's own order (cmd/go/internal/gover tests): language version < beta < rc < .0 < .1.
GO_ORDER = ["go1.9.2", "go1.20rc1", "go1.20", "go1.20.1", "go1.21", "go1.21beta1",
            "go1.21rc1", "go1.21rc2", "go1.21.0", "go1.21.1", "go1.21.13", "go1.22rc1",
            "go1.22.0", "go1.27.3"]


def test_release_candidate_sorts_below_its_release() -> None:
    assert sorted(reversed(GO_ORDER), key=version_key) == GO_ORDER
    assert compare("go1.21rc2", "go1.21.0") < 0
    assert compare("1.21.13", "go1.21.13") == 0
    assert compare("go1.20", "go1.20.0") == 0  # before 1.21 a bare 1.N was the .0 release


@pytest.mark.parametrize("bad", ["go1.²", "go1.21.1rc1", "/tmp/x", "go1.21.13/../../x",
                                 "go1.021", "go2.0", "go1.21.13 ", "go1.21alpha1", "",
                                 "go1.21.13\n"])
def test_only_go_release_spellings_are_versions(bad: str) -> None:
    assert not is_toolchain_version(bad)
    with pytest.raises(ValueError, match="is not a Go version"):
        version_key(bad)


def test_targets_are_a_closed_set() -> None:
    assert check_target("linux", "amd64") is None
    assert "GOARCH 'amd64/../../x'" in (check_target("linux", "amd64/../../x") or "")
    assert "GOOS 'linus'" in (check_target("linus", "amd64") or "")


def test_order_agrees_with_the_real_go_about_its_own_version(go_bin, tmp_path) -> None:
    # The real go 1.21.13 refuses a module whose `go` line is newer than itself (with
    # GOTOOLCHAIN=local): that is Go's own comparison, one side fixed at go1.21.13.
    import subprocess

    from tests.support import gobin

    env = {**gobin.go_env(tmp_path / "home"), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    for line in ["1.21rc2", "1.21", "1.21.0", "1.21.13", "1.21.14", "1.22rc1", "1.22.0", "1.20"]:
        mod = tmp_path / line
        mod.mkdir()
        (mod / "go.mod").write_text(f"module example.com/m\n\ngo {line}\n")
        done = subprocess.run([str(go_bin), "list", "-m"], cwd=mod, env=env,
                              capture_output=True, text=True)
        go_accepts = done.returncode == 0
        assert go_accepts == (compare("go" + line, "go1.21.13") <= 0), (line, done.stderr)
