"""The error type every rescue component raises, under two roots: untrusted input, or a machine
that is not ready. Only the CLI turns errors into text, JSON and exit codes."""

from __future__ import annotations

import re
from typing import Dict, Optional

SECURITY_NOTE = (
    "SECURITY ERROR\n"
    "This bundle or upstream does not match what was signed or pinned. It may be corrupt\n"
    "(a bad copy, a failing USB stick) or it may have been tampered with. Nothing was installed.\n"
    "Copy the bundle again from the build host and compare its sha256 with the build log;\n"
    "if it still fails, do not install it and tell the person who built it."
)

# "verifying member X: ...", "reading bundle /p: ...", "installing into /p: ...": a gerund, an
# optional noun or preposition, then the subject.
_HEAD = re.compile(
    r"\A(?P<op>[a-z]+ing(?: (?:[a-z_.]+(?: store| signature)?))?)(?: (?P<subj>.+))?\Z")
_NOUNS = {"bundle", "member", "manifest", "spec", "trust", "module", "modules", "toolchain",
          "toolchains", "key", "index", "upstream", "into", "from", "to", "for", "the", "goproxy",
          "archive", "wheel", "prefix", "signature", "lock", "go.sum", "state", "project",
          "store"} | {
    f"the_{n}" for n in ("bundle", "prefix", "manifest", "checklist", "module", "modules")}


class RescueError(Exception):
    """Base of every error rescue reports to a user.

    The message reads "OPERATION SUBJECT: what happened; what to do". The fields say the same
    for scripts (`--json`): the operation, its subject, what was expected and what was found,
    and a hint. `tampering` adds the SECURITY ERROR paragraph, once, when the error is shown.
    """

    exit_code = 1

    def __init__(self, message: str, *, operation: Optional[str] = None,
                 subject: Optional[str] = None, expected: str = "", got: str = "",
                 hint: str = "", tampering: bool = False) -> None:
        super().__init__(message)
        self.message = message
        head = message.split("\n", 1)[0].split(": ", 1)[0].replace("the ", "the_", 1)
        found = _HEAD.match(head) if not head.startswith(("something", "nothing")) else None
        if found and found.group("op").split(" ")[-1] not in _NOUNS:
            # The second word was the start of the subject ("locking /p", "checking x").
            op, _, rest = found.group("op").partition(" ")
            found_op, found_subj = op, " ".join(filter(None, [rest, found.group("subj")]))
        elif found:
            found_op, found_subj = found.group("op"), found.group("subj") or ""
        else:
            found_op, found_subj = "", ""
        self.operation = operation if operation is not None else found_op.replace("the_", "the ")
        self.subject = subject if subject is not None else found_subj.replace("the_", "the ")
        self.expected, self.got, self.hint = expected, got, hint
        self.tampering = tampering

    def __str__(self) -> str:
        return self.message + (f"\n\n{SECURITY_NOTE}" if self.tampering else "")

    def to_dict(self) -> Dict[str, object]:
        return {"type": self.kind, "operation": self.operation, "subject": self.subject,
                "expected": self.expected, "got": self.got, "hint": self.hint,
                "message": self.message, "security_error": self.tampering}

    @property
    def kind(self) -> str:
        return {3: "untrusted", 2: "not-ready", 4: "checklist-failed",
                130: "interrupted"}.get(self.exit_code, "error")


class TrustError(RescueError):
    """A bundle, signature or upstream byte cannot be trusted (tampering, corruption, mismatch)."""

    exit_code = 3


class NotReadyError(RescueError):
    """This machine cannot do the job as asked: permissions, disk space, a missing tool or input."""

    exit_code = 2


class ChecklistError(RescueError):
    """The installed toolchain failed the emergency checklist; the previous state stays active."""

    exit_code = 4


class Interrupted(RescueError):
    """Ctrl-C or SIGTERM: what was done is undone, and the message says what is current."""

    exit_code = 130
