"""The OpenSSH allowed_signers trust store (`man ssh-keygen`, ALLOWED SIGNERS): parse and edit."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from keys.sshkey import PublicKey, WireError, decode_public_key, parse_public_line
from manifests.errors import NotReadyError
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS

DEFAULT_NAMESPACES = ("rescue-manifest",)
# A trust store lists a handful of keys; a huge one is a mistake, not a store.

# Key types OpenSSH knows; such lines are valid for ssh-keygen but not usable by rescue.
_OTHER_KEY_TYPES = (
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
)
_OPTION_NAMES = ("cert-authority", "namespaces", "valid-after", "valid-before")
_TIME = re.compile(r"(\d{8})(\d{4})?(\d{2})?(Z)?")


@dataclass(frozen=True)
class AllowedSigner:
    """One usable line of an allowed_signers file."""

    principals: Tuple[str, ...]
    public_key: PublicKey
    namespaces: Optional[Tuple[str, ...]]  # None: every namespace
    valid_after: Optional[datetime]
    valid_before: Optional[datetime]
    line: int

    def describe(self) -> str:
        """`SHA256:... (alice@example.org, comment)`, the way messages name a signer."""
        names = ",".join(self.principals)
        if self.public_key.comment:
            names += f", {self.public_key.comment}"
        return f"{self.public_key.key_id} ({names})"

    def to_dict(self) -> dict:
        """How every command reports a signer (`signer` in the JSON schema)."""
        return {"key_id": self.public_key.key_id, "principals": list(self.principals),
                "comment": self.public_key.comment}

    def permits_namespace(self, namespace: str) -> bool:
        """OpenSSH match_pattern_list: `*`/`?` wildcards, a matching `!pattern` denies."""
        if self.namespaces is None:
            return True
        allowed = False
        for pattern in self.namespaces:
            negated = pattern.startswith("!")
            if _pattern_matches(pattern[1:] if negated else pattern, namespace):
                if negated:
                    return False
                allowed = True
        return allowed


def _pattern_matches(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


@dataclass(frozen=True)
class SkippedLine:
    """A valid line rescue cannot use (cert-authority, a non-ed25519 key), reported not fatal."""

    line: int
    reason: str


# --- parsing ---------------------------------------------------------------------------------


def _take_token(text: str, pos: int) -> Tuple[str, int]:
    """One whitespace-delimited token starting at pos; double quotes may hold spaces."""
    start = pos
    quoted = False
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and quoted and pos + 1 < len(text):
            pos += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in " \t" and not quoted:
            break
        pos += 1
    if quoted:
        raise WireError("unterminated double quote")
    return text[start:pos], pos


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _unquote(value: str, name: str) -> str:
    # OpenSSH requires the quotes (opt_dequote); accepting bare values would write files it rejects.
    if len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
        raise WireError(f'option {name} needs a double-quoted value, like {name}="..."')
    return value[1:-1].replace('\\"', '"')


def _split_options(text: str) -> List[str]:
    parts: List[str] = []
    current = ""
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_time(value: str) -> datetime:
    """YYYYMMDD[HHMM[SS]][Z]: UTC with Z, else local time, as ssh-keygen reads it."""
    m = _TIME.fullmatch(value)
    if not m:
        raise WireError(f"time {value!r} is not YYYYMMDD[HHMM[SS]][Z]")
    digits = m.group(1) + (m.group(2) or "0000") + (m.group(3) or "00")
    try:
        naive = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise WireError(f"time {value!r} is not a real date") from None
    return naive.replace(tzinfo=timezone.utc) if m.group(4) else naive.astimezone()


def _parse_options(text: str) -> dict:
    opts: dict = {}
    for part in _split_options(text):
        name, eq, value = part.partition("=")
        name = name.lower()  # OpenSSH matches option names case-insensitively
        if name not in _OPTION_NAMES:
            raise WireError(f"unknown option {part!r} (known: {', '.join(_OPTION_NAMES)})")
        if name in opts:
            raise WireError(f"option {name} given twice")
        if name == "cert-authority":
            if eq:
                raise WireError("option cert-authority takes no value")
            opts[name] = True
        elif name == "namespaces":
            names = tuple(n for n in _unquote(value, name).split(",") if n)
            if not names:
                raise WireError('namespaces="" names no namespace')
            opts[name] = names
        else:
            opts[name] = parse_time(_unquote(value, name))
    after, before = opts.get("valid-after"), opts.get("valid-before")
    if after is not None and before is not None and before <= after:
        raise WireError("valid-before is not later than valid-after")
    return opts


def _parse_line(text: str, number: int) -> Union[AllowedSigner, SkippedLine]:
    principals_token, pos = _take_token(text, 0)
    principals_text = principals_token
    if principals_text.startswith('"'):
        principals_text = principals_text[1:-1]
    principals = tuple(p for p in principals_text.split(",") if p)
    if not principals:
        raise WireError("no principal before the key")
    pos = _skip_space(text, pos)
    token, end = _take_token(text, pos)
    opts: dict = {}
    if re.split(r"[=,]", token, maxsplit=1)[0].lower() in _OPTION_NAMES:
        opts = _parse_options(token)
        pos = _skip_space(text, end)
    rest = text[pos:].split(None, 2)
    if len(rest) < 2:
        raise WireError("expected 'principals [options] keytype base64 [comment]'")
    key_type = rest[0]
    if opts.get("cert-authority"):
        return SkippedLine(number, "cert-authority keys are not supported by rescue")
    if key_type in _OTHER_KEY_TYPES or key_type.endswith("-cert-v01@openssh.com"):
        return SkippedLine(number, f"key type {key_type} is not supported (ssh-ed25519 only)")
    if key_type != "ssh-ed25519":
        raise WireError(f"{key_type!r} is neither an option nor a known key type")
    key = decode_public_key(key_type, rest[1], rest[2].strip() if len(rest) == 3 else "")
    return AllowedSigner(
        principals=principals,
        public_key=key,
        namespaces=opts.get("namespaces"),
        valid_after=opts.get("valid-after"),
        valid_before=opts.get("valid-before"),
        line=number,
    )


@dataclass(frozen=True)
class Revoked:
    key_id: str
    date: str  # YYYY-MM-DD
    reason: str = ""


class TrustStore(List[AllowedSigner]):
    """The trusted signers, and the rules rescue adds as comments, which ssh-keygen ignores:
    `# rescue-threshold 2` (every channel) or `# rescue-threshold stable 3` (one): how many
    distinct keys must sign; `# rescue-policy N`: this store's version, for rotation;
    `# rescue-revoked SHA256:... 2026-11-20 lost laptop`: a key that no longer counts."""

    def __init__(self, signers: Sequence[AllowedSigner] = (),
                 thresholds: Optional[Dict[str, int]] = None, version: int = 0,
                 revoked: Sequence[Revoked] = (), text: str = "") -> None:
        super().__init__(signers)
        self.text = text  # as read: kept beside an adopted successor, for `verify`
        self.thresholds: Dict[str, int] = dict(thresholds or {})
        self.version = version
        self.revoked: Dict[str, Revoked] = {r.key_id: r for r in revoked}

    def threshold(self, channel: str) -> int:
        return self.thresholds.get(channel, self.thresholds.get("", 1))


def _says_what(source: str) -> bool:
    """A source that names itself ("the trust store built into rescue.pyz", "the trust policy
    version 2 adopted ..."), not a file path."""
    return source.startswith("the ")


def store_name(source: str) -> str:
    """A trust store as a message names it, once: "the trust store PATH" for a file."""
    return source if _says_what(source) else f"the trust store {source}"


def store_line(source: str, number: int) -> str:
    """Line `number` of a trust store: "PATH:3" for a file, "SOURCE, line 3" otherwise."""
    return f"{source}, line {number}" if _says_what(source) else f"{source}:{number}"


def _unreadable(source: str, number: Optional[int], why: str) -> NotReadyError:
    where = store_line(source, number) if number else source
    label = where if _says_what(source) else f"trust store {where}"
    return NotReadyError(f"reading {label}: {why}", operation="reading trust store",
                         subject=where)


_THRESHOLD_RE = re.compile(r"#\s*rescue-threshold\b(.*)\Z")
_POLICY_RE = re.compile(r"#\s*rescue-policy\b(.*)\Z")
_REVOKED_RE = re.compile(r"#\s*rescue-revoked\b(.*)\Z")
_DATE_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")


def _version(line: str, number: int, source: str) -> Optional[int]:
    found = _POLICY_RE.match(line)
    if not found:
        return None
    words = found.group(1).split()
    if len(words) != 1 or not words[0].isdigit():
        raise _unreadable(source, number, f"{line!r}: write `# rescue-policy N`, N the "
                          "policy's version (a whole number)")
    return int(words[0])


def _revoked(line: str, number: int, source: str) -> Optional[Revoked]:
    found = _REVOKED_RE.match(line)
    if not found:
        return None
    words = found.group(1).split()
    if len(words) < 2 or not words[0].startswith("SHA256:") or not _DATE_RE.match(words[1]):
        raise _unreadable(source, number, f"{line!r}: write "
                          "`# rescue-revoked SHA256:KEYID YYYY-MM-DD [reason]`")
    return Revoked(words[0], words[1], " ".join(words[2:]))


def _threshold(line: str, number: int, source: str) -> Optional[Tuple[str, int]]:
    found = _THRESHOLD_RE.match(line)
    if not found:
        return None
    words = found.group(1).split()
    count = words[-1] if words else ""
    channel = words[0] if len(words) == 2 else ""
    if len(words) not in (1, 2) or not count.isdigit() or int(count) < 1 or int(count) > 16:
        raise _unreadable(source, number, f"{line!r}: write `# rescue-threshold K` or "
                          "`# rescue-threshold CHANNEL K` with K from 1 to 16")
    return channel, int(count)


def parse(
    text: str,
    source: str = "allowed_signers",
    skipped: Optional[List[SkippedLine]] = None,
) -> TrustStore:
    """Parse an allowed_signers file; lines rescue cannot use are appended to `skipped`.

    A malformed line is an error (NotReadyError naming source:line), as it is for ssh-keygen:
    a trust store that is half read is a trust store nobody understands."""
    signers: List[AllowedSigner] = []
    thresholds: Dict[str, int] = {}
    version = 0
    revoked: List[Revoked] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            rule = _threshold(line, number, source)
            if rule:
                thresholds[rule[0]] = rule[1]
            version = _version(line, number, source) or version
            gone = _revoked(line, number, source)
            if gone:
                revoked.append(gone)
            continue
        if not line:
            continue
        try:
            result = _parse_line(line, number)
        except WireError as e:
            raise _unreadable(source, number, str(e)) from None
        if isinstance(result, SkippedLine):
            if skipped is not None:
                skipped.append(result)
        else:
            signers.append(result)
    keys = len({s.public_key.key_id for s in signers} - {r.key_id for r in revoked})
    for channel, count in thresholds.items():
        if count > keys:
            raise _unreadable(
                source, None, "the threshold "
                f"{'for channel ' + channel + ' ' if channel else ''}is {count} signatures, but "
                f"the store has {keys} distinct key(s); no bundle could ever be installed")
    return TrustStore(signers, thresholds, version, revoked, text)


def format_line(
    principal: str,
    public_key: PublicKey,
    namespaces: Optional[Sequence[str]] = DEFAULT_NAMESPACES,
) -> str:
    """One allowed_signers line, e.g. `alice namespaces="rescue-manifest" ssh-ed25519 AAAA... c`."""
    if not principal or any(c in principal for c in ' \t\r\n"') or principal.startswith("#"):
        raise NotReadyError(
            f"adding signer {principal!r}: a principal is one word (no spaces, quotes or "
            "leading #), e.g. an email address"
        )
    if "\n" in public_key.comment or "\r" in public_key.comment:
        raise NotReadyError(f"adding signer {principal!r}: the key comment must be one line")
    parts = [principal]
    if namespaces:
        for ns in namespaces:
            if not ns or any(c in ns for c in ',"\\ \t\r\n'):
                raise NotReadyError(f"adding signer {principal!r}: invalid namespace {ns!r}")
        parts.append(f'namespaces="{",".join(namespaces)}"')
    parts.append(public_key.openssh_line())
    return " ".join(parts)


# --- file helpers ----------------------------------------------------------------------------


def _read(path: Path) -> str:
    doing = f"reading trust store {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(DEFAULT_LIMITS.trust_store_bytes + 1)
    except FileNotFoundError:
        raise NotReadyError(
            f"{doing}: no such file; add a builder's public key with `rescue keys trust`"
        ) from None
    except OSError as e:
        raise NotReadyError(f"{doing}: {e.strerror}") from None
    if len(data) > DEFAULT_LIMITS.trust_store_bytes:
        raise NotReadyError(f"{doing}: larger than {DEFAULT_LIMITS.trust_store_bytes} bytes, "
                            "not a trust store")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotReadyError(f"{doing}: not UTF-8 text") from None


def load(path: Path, skipped: Optional[List[SkippedLine]] = None) -> TrustStore:
    return parse(_read(Path(path)), str(path), skipped)


def _write_atomic(path: Path, text: str) -> None:
    # A crash leaves the old store or the new one; the store keeps its mode.
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    write_atomic(path, text, mode)


def entry_for(path: Path, key: PublicKey) -> Optional[AllowedSigner]:
    """The store's first line for `key`, or None (also when there is no store yet)."""
    path = Path(path)
    if not path.exists():
        return None
    return next((s for s in parse(_read(path), str(path)) if s.public_key == key), None)


def add_signer(
    path: Path,
    principal: str,
    public_line: str,
    namespaces: Optional[Sequence[str]] = DEFAULT_NAMESPACES,
) -> AllowedSigner:
    """Append a signer to the trust store (created if missing); refuse a key already in it."""
    path = Path(path)
    key = parse_public_line(public_line)
    line = format_line(principal, key, namespaces)
    existing = _read(path) if path.exists() else ""
    for signer in parse(existing, str(path)):
        if signer.public_key == key:
            raise NotReadyError(
                f"adding signer {principal}: key {key.key_id} is already in {path} "
                f"(line {signer.line}, as {','.join(signer.principals)}); remove it first "
                "to change it"
            )
    if existing and not existing.endswith("\n"):
        existing += "\n"
    if not path.parent.is_dir():
        raise NotReadyError(f"adding signer {principal}: directory {path.parent} does not exist")
    try:
        _write_atomic(path, existing + line + "\n")
    except OSError as e:
        raise NotReadyError(f"adding signer {principal}: writing {path}: {e.strerror}") from None
    return parse(line, str(path))[0]


def remove_signer(path: Path, key_id_or_principal: str) -> int:
    """Remove every line whose key id or one of whose principals matches; returns how many."""
    path = Path(path)
    text = _read(path)
    drop = {
        s.line
        for s in parse(text, str(path))
        if key_id_or_principal in (s.public_key.key_id, *s.principals)
    }
    if drop:
        kept = [ln for n, ln in enumerate(text.splitlines(True), start=1) if n not in drop]
        try:
            _write_atomic(path, "".join(kept))
        except OSError as e:
            raise NotReadyError(
                f"removing signer {key_id_or_principal}: writing {path}: {e.strerror}"
            ) from None
    return len(drop)


_PUBLIC_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-", "sk-ssh-ed25519@", "ssh-dss ")


def not_a_trust_store(text: str) -> Optional[str]:
    """Why `text` is a key file rather than an allowed_signers file (the usual mix-up), or None."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if "PRIVATE KEY-----" in first:
        return ("this is a PRIVATE key: never carry it to the isolated host. Pass the "
                "allowed_signers file instead (on the build host: `rescue keys trust KEY.pub "
                "--store allowed_signers`)")
    if first.startswith(_PUBLIC_PREFIXES):
        return ("this is a public key, not an allowed_signers file; make one with `rescue keys "
                "trust FILE.pub --store allowed_signers`, or write the line `NAME "
                f"{first.split()[0]} AAAA...` (a principal, then the key)")
    return None
