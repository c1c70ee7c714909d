"""The two error roots every rescue component raises: untrusted input, or a machine not ready."""

from __future__ import annotations


class RescueError(Exception):
    """Base of every error rescue reports to a user; the CLI turns it into text and an exit code."""

    exit_code = 1


class TrustError(RescueError):
    """A bundle, signature or upstream byte cannot be trusted (tampering, corruption, mismatch)."""

    exit_code = 3


class NotReadyError(RescueError):
    """This machine cannot do the job as asked: permissions, disk space, a missing tool or input."""

    exit_code = 2


class ChecklistError(RescueError):
    """The installed toolchain failed the emergency checklist; the previous state stays active."""

    exit_code = 4


SECURITY_NOTE = (
    "SECURITY ERROR\n"
    "This bundle or upstream does not match what was signed or pinned. It may be corrupt\n"
    "(a bad copy, a failing USB stick) or it may have been tampered with. Nothing was installed.\n"
    "Copy the bundle again from the build host and compare its sha256 with the build log;\n"
    "if it still fails, do not install it and tell the person who built it."
)
