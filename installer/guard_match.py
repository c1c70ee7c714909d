"""The guard's output matcher, run as a child process per guard command: reads the command's
output in chunks, keeps a bounded head and tail of it in the log, and finds the first line a
failure pattern matches, within the guard timeout even when a pattern backtracks forever.

Standard library only: it runs as `python3 -I -S -c` from the pyz or the source tree.
Protocol: argv JSON {patterns, seconds, budget, tail, done_fd}; stdin the output; stdout the log
(appended); one JSON line on stderr at the end: {hit, pattern, failish, last, bytes, stuck}.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sys
from typing import Any, Dict, List, Optional, Tuple

CHUNK = 1 << 20  # also the longest line matched whole: a longer one is matched in pieces
SHOWN = 300  # characters of a line that go into the report
FAILISH = re.compile(r"FAIL|(?i:error)")


class OutOfTime(Exception):
    """The guard timeout passed while this process was still reading or matching."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise OutOfTime()  # sre checks for signals as it backtracks: this ends a runaway match


def first_line(pattern: re.Pattern, text: str) -> Optional[Tuple[int, str]]:
    """The first non-blank line of `text` (whole lines joined by newlines) that `pattern`
    matches on its own, as (offset, line). One search runs over the whole chunk (fast in C);
    a match is confirmed on its line alone, so a match across lines is never a hit."""
    pos = 0
    while pos <= len(text):
        m = pattern.search(text, pos)
        if m is None:
            return None
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.start())
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip() and pattern.search(line):
            return start, line
        pos = end + 1
    return None


class Matcher:
    def __init__(self, patterns: List[str], budget: int, tail: int) -> None:
        self.patterns = [(p, re.compile(p, re.MULTILINE)) for p in patterns]
        self.budget, self.tail_bytes = budget, tail
        self.written = self.total = 0
        self.tail = b""
        self.result: Dict[str, Any] = {"hit": None, "pattern": None, "failish": None,
                                       "last": None, "bytes": 0, "stuck": None}
        self.matching: Optional[str] = None  # the pattern being searched with, for `stuck`

    def keep(self, data: bytes) -> None:
        """The head of the output up to the budget goes to the log; the tail is remembered."""
        self.total += len(data)
        room = self.budget - self.written
        if room > 0:
            _write(data[:room])
            self.written += min(room, len(data))
        self.tail = (self.tail + data)[-self.tail_bytes:] if self.tail_bytes else b""

    def match(self, whole: bytes) -> None:
        text = whole.decode("utf-8", "replace")
        if text.strip():
            self.result["last"] = text.rstrip().rsplit("\n", 1)[-1].strip()[:SHOWN]
        if self.result["failish"] is None:
            found = first_line(FAILISH, text)
            if found:
                self.result["failish"] = found[1].strip()[:SHOWN]
        if self.result["hit"] is not None:
            return  # the first hit is the verdict; the rest is only logged
        best: Optional[Tuple[int, str, str]] = None
        for source, pattern in self.patterns:
            self.matching = source
            found = first_line(pattern, text)
            if found and (best is None or found[0] < best[0]):
                best = (found[0], found[1], source)
        self.matching = None
        if best:
            self.result["hit"], self.result["pattern"] = best[1].strip()[:SHOWN], best[2]

    def finish(self) -> None:
        """Say how much the log left out, then the tail it did not hold."""
        missing = self.total - self.written
        if missing > 0:
            tail = self.tail[-missing:]
            skipped = missing - len(tail)
            if skipped:
                _write(f"\n[... {skipped} bytes of output not kept: a guard log keeps the first "
                       f"{self.budget} and the last {len(tail)} of each command]\n".encode())
            _write(tail)
        self.result["bytes"] = self.total


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def run(matcher: Matcher, done_fd: int) -> None:
    """Read until EOF, or, once `done_fd` says the command's group is gone, until the pipe
    holds nothing more (a process that left the group may keep it open for ever)."""
    carry, done = b"", False
    while True:
        ready = select.select([0] if done else [0, done_fd], [], [], 0 if done else None)[0]
        if 0 not in ready:
            if done:
                break
            done = True
            continue
        data = os.read(0, CHUNK)
        if not data:
            break
        matcher.keep(data)
        buf = carry + data
        cut = buf.rfind(b"\n")
        if cut < 0 and len(buf) < CHUNK:
            carry = buf
            continue
        whole, carry = (buf, b"") if cut < 0 else (buf[:cut], buf[cut + 1:])
        matcher.match(whole)
    if carry:
        matcher.match(carry)


def main(arg: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # rescue handles Ctrl-C and ends this process
    params = json.loads(arg)
    matcher = Matcher(params["patterns"], params["budget"], params["tail"])
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, params["seconds"])
    try:
        run(matcher, params["done_fd"])
        signal.setitimer(signal.ITIMER_REAL, 0)
    except OutOfTime:
        matcher.result["stuck"] = matcher.matching or ""
    signal.setitimer(signal.ITIMER_REAL, 0)
    matcher.finish()
    sys.stderr.write(json.dumps(matcher.result) + "\n")
