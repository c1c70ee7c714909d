"""Doctor's Windows findings, judged on Linux from what a real Windows host gives: a user's
PATH, HKCU/HKLM Environment values and App Paths keys (as winreg returns them), and PowerShell
profiles. Wine has no real user's registry or profiles to show (README "Windows")."""

from __future__ import annotations

from installer import doctor_windows
from installer.doctor import ERROR, INFO, WARNING
from installer.doctor_windows import APP_PATHS, USER_ENV, WinFacts

P = "C:\\Users\\ops\\AppData\\Local\\go-emergency"
MINE = P + "\\current\\bin"
PROFILE = "C:\\Users\\ops\\Documents\\WindowsPowerShell\\Microsoft.PowerShell_profile.ps1"


def facts() -> WinFacts:
    path = ["C:\\Program Files\\Go\\bin", "C:\\Users\\ops\\go\\bin", MINE,
            "C:\\WINDOWS\\system32", "C:\\Program Files\\Git\\cmd", "", "tools"]
    return WinFacts(
        path, MINE,
        writable={"C:\\Users\\ops\\go\\bin": True, "C:\\Program Files\\Go\\bin": False,
                  MINE: True, "C:\\WINDOWS\\system32": False},
        has_go={"C:\\Program Files\\Go\\bin": True, "C:\\Go\\bin": True},
        registry={USER_ENV: {"GOROOT": "C:\\Go", "GOPROXY": "https://proxy.golang.org,direct",
                             "Path": "C:\\Go\\bin;C:\\Users\\ops\\AppData\\Local\\Microsoft"
                                     "\\WindowsApps"}},
        app_paths={APP_PATHS[1]: "C:\\Go\\bin\\go.exe"},
        profiles={PROFILE: (
            '$env:Path = "C:\\Go\\bin;$env:Path"\n'
            "# $env:GOROOT = 'C:\\old'   (a comment: not a finding)\n"
            f". '{P}\\env.ps1'\n"
            "[Environment]::SetEnvironmentVariable('GOFLAGS', '-mod=mod', 'User')\n"
            "Set-Item -Path Env:GOTOOLCHAIN -Value go1.23.0\n"
            "if ($env:GOPATH -eq $null) { Write-Host '#' }\n")})


def test_windows_path_entries_with_spaces_or_writable_before_rescues() -> None:
    found = doctor_windows.find_path(facts())
    said = [(f.severity, f.message, f.evidence) for f in found]
    assert said == [
        (WARNING, "PATH entry 'C:\\\\Program Files\\\\Go\\\\bin' contains a space and holds "
         "go.exe: a script that splits PATH unquoted, or an unquoted `C:\\Program Files\\...` "
         "command line, runs something else", "PATH entry 1: 'C:\\\\Program Files\\\\Go\\\\bin'"),
        (WARNING, "PATH entry C:\\Users\\ops\\go\\bin comes before rescue's and is writable by "
         "this user: any program running as you can put a go.exe there that runs instead "
         "(hijack risk)", "PATH entry 2: 'C:\\\\Users\\\\ops\\\\go\\\\bin'"),
        (INFO, "PATH entry 'C:\\\\Program Files\\\\Git\\\\cmd' contains a space",
         "PATH entry 5: 'C:\\\\Program Files\\\\Git\\\\cmd'"),
        (WARNING, "empty PATH entry", "PATH entry 6: ''"),
        (WARNING, "relative PATH entry 'tools': it names a different directory in every "
         "working directory", "PATH entry 7: 'tools'")]
    assert found[1].fix == (f"move 'C:\\\\Users\\\\ops\\\\go\\\\bin' after {MINE!r} on "
                            "PATH, or remove it")


def test_windows_path_compares_case_insensitively() -> None:
    w = facts()
    w.path = [MINE.upper(), "C:\\Users\\ops\\go\\bin"]  # rescue's first: nothing to say
    assert doctor_windows.find_path(w) == []


def test_windows_registry_goroot_wired_settings_path_and_app_paths() -> None:
    found = doctor_windows.find_registry(facts())
    said = [(f.severity, f.message) for f in found]
    assert said == [
        (WARNING, "GOPROXY='https://proxy.golang.org,direct' is set in HKCU\\Environment: "
         "programs started outside a shell that sourced env.ps1 or env.cmd (an IDE, a service) "
         "use it instead of the offline wiring"),
        (ERROR, "GOROOT='C:\\\\Go' is set in HKCU\\Environment: every new process gets it, and "
         "go then uses that tree's standard library and tools instead of its own"),
        (WARNING, "HKCU\\Environment puts C:\\Go\\bin on PATH, which holds another go.exe: new "
         "processes may run it instead of rescue's"),
        (WARNING, "an App Paths entry registers go.exe as 'C:\\\\Go\\\\bin\\\\go.exe': `start "
         "go`, the Run box and ShellExecute open it whatever PATH says")]
    assert found[1].fix == 'reg delete "HKCU\\Environment" /v GOROOT /f'
    assert found[1].evidence == "HKCU\\Environment\\GOROOT = 'C:\\\\Go'"
    assert found[3].fix == f'as an administrator: reg delete "{APP_PATHS[1]}" /f'


def test_windows_powershell_profiles_that_change_path_or_go_settings() -> None:
    found = doctor_windows.find_profiles(facts(), P + "\\env.ps1")
    assert [(f.severity, f.evidence.split(": ", 1)[0]) for f in found] == [
        (WARNING, f"{PROFILE}:1"), (WARNING, f"{PROFILE}:4"), (WARNING, f"{PROFILE}:5")]
    assert found[0].message == (f"PowerShell profile {PROFILE} line 1 changes PATH in every "
                                "PowerShell session: a go or a setting there can win over "
                                "rescue's")
    assert "changes GOFLAGS" in found[1].message and "changes GOTOOLCHAIN" in found[2].message
    assert found[0].fix == f"remove the line, or add `. '{P}\\env.ps1'` after it"


def test_windows_profile_locations_are_the_four_documented_ones_per_powershell() -> None:
    env = {"SystemRoot": "C:\\WINDOWS", "ProgramFiles": "C:\\Program Files",
           "USERPROFILE": "C:\\Users\\ops"}
    assert doctor_windows.profile_paths(env, "C:\\Users\\ops\\OneDrive\\Documents") == [
        "C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\profile.ps1",
        "C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\Microsoft.PowerShell_profile.ps1",
        "C:\\Users\\ops\\OneDrive\\Documents\\WindowsPowerShell\\profile.ps1",
        "C:\\Users\\ops\\OneDrive\\Documents\\WindowsPowerShell\\"
        "Microsoft.PowerShell_profile.ps1",
        "C:\\Program Files\\PowerShell\\7\\profile.ps1",
        "C:\\Program Files\\PowerShell\\7\\Microsoft.PowerShell_profile.ps1",
        "C:\\Users\\ops\\OneDrive\\Documents\\PowerShell\\profile.ps1",
        "C:\\Users\\ops\\OneDrive\\Documents\\PowerShell\\Microsoft.PowerShell_profile.ps1"]
    # Documents not redirected: under the profile directory
    assert doctor_windows.profile_paths(env, None)[2] == (
        "C:\\Users\\ops\\Documents\\WindowsPowerShell\\profile.ps1")
