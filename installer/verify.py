"""Check installed GOROOTs, P/goproxy and a rebuilt module cache against the signed manifests."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from installer import hostos, state, statefile, toolchain_proxy, trust_policy, versions, wiring
from installer.prefix import Layout
from installer.verify_modules import check_modcache, check_module_hashes
from keys import allowed_signers, sshsig
from keys.allowed_signers import AllowedSigner, store_name
from keys.sshkey import PublicKey
from keys.trust import known_keys
from keys.trust_core import Verified, parse_time, signed_manifest, split_signatures
from manifests import toolchainzip
from manifests.errors import NotReadyError, RescueError, TrustError
from manifests.limits import DEFAULT_LIMITS
from manifests.model import Manifest, Member
from manifests.modpath import unescape_version
from manifests.sumdb_bundle import Sumdb, check_lines
from manifests.sumdb_lookup import lookup_path, parse_lookup
from manifests.sumdb_note import NoteError, parse_verifier
from manifests.text import shown

CHUNK = 1 << 20
# Modes the installer sets, whatever the manifest says (installer/prefix.make_read_only and
# installer/goproxy_merge.PROXY_FILE_MODE).
DIR_MODE, FILE_MODE, EXEC_MODE, PROXY_FILE_MODE = 0o555, 0o444, 0o555, 0o444


@dataclass
class Bundle:
    """A recorded bundle whose kept manifest and signature checked out again."""

    name: str
    sequence: int
    manifest_sha256: str
    signer: str
    manifest: Manifest

    @property
    def label(self) -> str:
        return f"{self.name} #{self.sequence} (manifest sha256 {self.manifest_sha256})"

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "sequence": self.sequence,
                "manifest_sha256": self.manifest_sha256, "signer": self.signer}

    @classmethod
    def of(cls, verified: Verified) -> Bundle:
        """A bundle being read now, whose header just checked out."""
        m = verified.manifest
        return cls(m.name, m.sequence, verified.manifest_sha256,
                   verified.signer.public_key.key_id, m)


@dataclass
class Expect:
    """What one path should be on disk."""

    type: str  # file, dir, symlink
    mode: Optional[int] = None  # None: not checked (proxy directories stay owner-writable)
    sha256: Set[str] = field(default_factory=set)  # any of these (an .info kept from another)
    size: int = 0
    target: str = ""
    bundle: str = ""
    go_env: bool = False  # rewritten by the installer: content recomputed, not hashed
    listing: bool = False  # a merged @v/list: checked by the versions it lists
    versions: Set[str] = field(default_factory=set)  # ... at least these
    # A checksum database lookup: the merge re-composes it with a newer signed head, so it is
    # judged by its record (module, version, zip h1, go.mod h1, database), not by its bytes.
    lookup: Optional[Tuple[str, str, str, str, Sumdb]] = None


@dataclass
class Report:
    prefix: str
    toolchains: List[str] = field(default_factory=list)
    bundles: List[Dict[str, Any]] = field(default_factory=list)
    modcache: Optional[str] = None
    files: int = 0
    bytes: int = 0
    changed: List[Dict[str, Any]] = field(default_factory=list)
    missing: List[Dict[str, Any]] = field(default_factory=list)
    added: List[Dict[str, Any]] = field(default_factory=list)
    unreadable: List[Dict[str, Any]] = field(default_factory=list)
    # Removed (or swapped by `repair`) by another command while being verified: not judged.
    removed_while_verifying: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.added)

    def to_dict(self) -> Dict[str, Any]:
        return {"verify": {k: v for k, v in self.__dict__.items()}}


def load_bundles(layout: Layout, signers: List[AllowedSigner], trust_source: str,
                 toolchain: Optional[str] = None) -> List[Bundle]:
    """Every recorded bundle's kept manifest, its sha256 and its signature checked again; with
    `toolchain`, only the ones recorded as carrying it (each manifest costs a parse)."""
    recorded = state.load(layout).get("bundles", [])
    if toolchain is not None:
        recorded = [b for b in recorded if toolchain in b.get("toolchains", [])]
    if not recorded:
        raise NotReadyError(f"verifying {layout.root}: no bundle is recorded there; pass the "
                            "--prefix you installed into", operation="verifying",
                            subject=str(layout.root))
    # The store in use, then the ones rotations replaced: read once for all bundles.
    stores = [(signers, trust_source)] + [(allowed_signers.parse(text, label), label)
                                          for text, label in trust_policy.earlier(layout)]
    out = []
    for entry in recorded:
        sha = str(entry.get("manifest_sha256", ""))
        what = f"bundle {entry.get('name')} #{entry.get('sequence')} (manifest sha256 {sha})"
        json_path = layout.bundles / f"{sha}.json"
        sig_path = layout.bundles / f"{sha}.sig"
        again = "install that same bundle again (an identical bundle is accepted)"
        data = statefile.read_bytes(json_path, "kept manifest", again,
                                    DEFAULT_LIMITS.manifest_bytes)
        sig = statefile.read_bytes(sig_path, "kept signature", again,
                                   DEFAULT_LIMITS.signature_bytes * 16)
        if data is None or sig is None:
            missing = json_path if data is None else sig_path
            raise NotReadyError(
                f"verifying {what}: {missing} is missing; it was installed by a rescue "
                "that did not keep the signature, or the file was removed. Install that same "
                "bundle again (an identical bundle is accepted) to keep both",
                operation="verifying bundle", subject=str(missing))
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise TrustError(f"verifying {what}: the kept manifest {json_path} was changed "
                             "after install", operation="verifying bundle",
                             subject=str(json_path), expected=f"sha256 {sha}",
                             got=f"sha256 {got}", tampering=True)
        try:
            when = parse_time(str(entry.get("installed_at", "")))
        except TrustError:
            when = datetime.now(timezone.utc)
        sigs = split_signatures(sig)
        try:
            # Was it trusted when installed: a key retired since then still vouches for it.
            signer, manifest = _kept_signature(stores, sigs, data, when)
        except TrustError as exc:
            key = _installing_key_not_trusted(sigs, data, str(entry.get("signer", "")), stores)
            if key is not None:  # a setting, not damage: no SECURITY ERROR paragraph
                raise TrustError(
                    f"verifying {what}: its kept manifest {json_path} is signed by key "
                    f"{key.key_id}, the key that signed it when it was installed, which is not "
                    f"in {store_name(trust_source)} ({known_keys(signers)}); the trust store "
                    "in use is not the one it was installed with. Nothing was changed: pass "
                    "--trust FILE with the store it was installed with, or use the rescue.pyz "
                    "that installed it; if nobody changed the trust store, install the bundle "
                    "again from the build host's copy", operation="verifying bundle",
                    subject=str(json_path)) from None
            raise TrustError(f"verifying {what}: its kept manifest {json_path} fails the "
                             f"signature check: {exc.message}", operation="verifying bundle",
                             subject=str(json_path), tampering=True) from None
        out.append(Bundle(manifest.name, manifest.sequence, sha, signer.public_key.key_id,
                          manifest))
    return out


def _installing_key_not_trusted(sigs: List[bytes], data: bytes, recorded: str,
                                stores: List[Tuple[List[AllowedSigner], str]]
                                ) -> Optional[PublicKey]:
    """The key P/state recorded as the bundle's signer, when a kept signature by it holds over
    these bytes and no store in use lists it: the trust store changed, not the prefix. (A key
    the install never recorded is someone else's signature: that stays tampering.)"""
    listed = {s.public_key.key_id for store, _ in stores for s in store}
    for sig in sigs:
        try:
            key = sshsig.verify(sig, data)
        except TrustError:
            continue
        if key.key_id == recorded and key.key_id not in listed:
            return key
    return None


def _kept_signature(stores: List[Tuple[List[AllowedSigner], str]], sigs: List[bytes],
                    data: bytes, when: datetime) -> Tuple[AllowedSigner, Manifest]:
    """The kept manifest's signatures against the trust store in use, else against a store a
    rotation replaced (its keys vouch for what they signed then), unless since revoked."""
    first: Optional[TrustError] = None
    for store, source in stores:
        try:
            manifest, valid, _ = signed_manifest(sigs, data, store, when, source)
        except TrustError as exc:
            first = first or exc
            continue
        revoked = getattr(stores[0][0], "revoked", {})
        gone = next((revoked[v.public_key.key_id] for v in valid
                     if v.public_key.key_id in revoked), None)
        if gone is not None:
            raise TrustError(f"key {gone.key_id} that signed it was revoked on {gone.date} by "
                             f"{stores[0][1]}")
        return valid[0], manifest
    assert first is not None
    raise first


def _file_mode(member_mode: int) -> int:
    return EXEC_MODE if member_mode & 0o111 else FILE_MODE


def goroot_expectations(bundle: Bundle, tc_id: str) -> Dict[str, Expect]:
    """Path under P/versions/<id> -> what the installer left there."""
    m = bundle.manifest
    tc = next(t for t in m.toolchains if t.id == tc_id)
    root = tc.root + "/"
    out: Dict[str, Expect] = {"": Expect("dir", DIR_MODE, bundle=bundle.label)}
    for mem in m.members:
        if not mem.path.startswith(root):
            continue
        rel = mem.path[len(root):]
        out[rel] = _expect(m, mem, bundle.label, proxy=False)
    if "go.env" in out:
        out["go.env"] = Expect("file", FILE_MODE, bundle=bundle.label, go_env=True)
    return out


def _expect(m: Manifest, mem: Member, label: str, proxy: bool) -> Expect:
    if mem.type == "dir":
        return Expect("dir", None if proxy else DIR_MODE, bundle=label)
    if mem.type == "symlink":
        return Expect("symlink", target=mem.target, bundle=label)
    content = m.member(mem.target) if mem.type == "hardlink" else mem
    assert content is not None  # parse_manifest checked every hard link's target
    mode = PROXY_FILE_MODE if proxy else _file_mode(content.mode)
    return Expect("file", mode, {content.sha256}, content.size, bundle=label)


def proxy_expectations(bundles: List[Bundle], rebuilt: Optional[Dict[str, Dict[str, str]]] = None
                       ) -> Dict[str, Expect]:
    """Path under P/goproxy -> what the merged proxy holds: the union of every bundle's, and
    the toolchain modules the installer rebuilt (`rebuilt`: version -> sha256 of .zip, .info,
    as P/state recorded them once their h1 equalled the signed manifest's)."""
    out: Dict[str, Expect] = {"": Expect("dir")}
    label = toolchain_proxy.REBUILT
    head = toolchain_proxy.MODULE_DIR.as_posix()
    for version, sums in sorted((rebuilt or {}).items()):
        for i in range(1, 4):
            out.setdefault("/".join(head.split("/")[:i]), Expect("dir", bundle=label))
        listing = out.setdefault(f"{head}/list", Expect("file", PROXY_FILE_MODE, bundle=label,
                                                        listing=True))
        listing.versions.add(version)
        mod = toolchainzip.GO_MOD
        for name, sha in ((".zip", sums["zip"]), (".info", sums["info"]),
                          (".mod", hashlib.sha256(mod).hexdigest())):
            out[f"{head}/{version}{name}"] = Expect("file", PROXY_FILE_MODE, {sha}, bundle=label)
    for b in bundles:
        lookups = _lookups_of(b.manifest)
        for mem in b.manifest.members:
            if mem.path != "goproxy" and not mem.path.startswith("goproxy/"):
                continue
            rel = mem.path[len("goproxy/"):] if mem.path != "goproxy" else ""
            new = _expect(b.manifest, mem, b.label, proxy=True)
            new.lookup = lookups.get(rel) if mem.type == "file" else None
            have = out.setdefault(rel, new)
            if rel.endswith("/@v/list") and new.type == "file":
                have.listing = True
                have.versions |= _list_versions(b, mem)
            elif have is not new:
                have.sha256 |= new.sha256  # .info: the first bundle's copy is the one kept
    return out


def _lookups_of(m: Manifest) -> Dict[str, Tuple[str, str, str, str, Sumdb]]:
    """Path under P/goproxy of each lookup the bundle carries -> what it must say."""
    db = m.sumdb
    if db is None:
        return {}
    return {f"sumdb/{db.name}/{lookup_path(path, version)}": (path, version, zh, mh, db)
            for path, version, zh, mh in m.sumdb_records()}


def _list_versions(bundle: Bundle, mem: Member) -> Set[str]:
    """The versions a bundle's @v/list carries, from the versions its manifest lists."""
    module_dir = mem.path[len("goproxy/"):-len("/@v/list")]
    found = set()
    for other in bundle.manifest.members:
        head = f"goproxy/{module_dir}/@v/"
        name = other.path[len(head):] if other.path.startswith(head) else ""
        if name.endswith(".mod"):
            found.add(name[:-4])
    # Escaped versions (`!` for upper case) are what go lists unescaped.
    return {unescape_version(v) for v in found}


@dataclass
class Entry:
    """One path as found on disk, with its content hash once the pool has it."""

    full: str
    kind: str  # file, dir, symlink, other
    mode: int
    size: int
    target: str = ""
    digest: Any = None  # Future of (sha256, first bytes of a small file) or OSError


class Scan:
    """A tree as it is on disk: walked once (no link followed), every regular file handed to
    the hashing pool at once, so hashing runs while the manifests are still being checked."""

    def __init__(self, top: Path, shown_top: str, pool: Optional[ThreadPoolExecutor]) -> None:
        """Without a pool, nothing is hashed: the tree's shape only (verify_shape)."""
        self.top, self.shown_top = top, shown_top
        self.entries: Dict[str, Entry] = {}
        self.unreadable: List[Dict[str, Any]] = []
        self.exists = os.path.lexists(top)
        batch: List[Entry] = []
        for rel, entry in self._walk():
            self.entries[rel] = entry
            if entry.kind == "file" and pool is not None:
                batch.append(entry)
                if len(batch) >= _BATCH:
                    _submit(pool, batch)
                    batch = []
        if batch and pool is not None:
            _submit(pool, batch)

    def _walk(self) -> Iterable[Tuple[str, Entry]]:
        if not self.exists:
            return
        top = str(self.top)
        yield from self._one("", top)
        if hostos.is_link(top):  # a link in a tree's place is reported, never walked
            return
        cut = len(top) + 1
        walk = hostos.walk if hostos.WINDOWS else os.walk  # enters no junction
        for dirpath, dirnames, filenames in walk(top, onerror=self._walk_error):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                yield from self._one(full[cut:].replace(os.sep, "/"), full)

    def _one(self, rel: str, full: str) -> Iterable[Tuple[str, Entry]]:
        try:
            st = os.lstat(full)
            link = stat.S_ISLNK(st.st_mode) or hostos.is_reparse_point(st)  # or a junction
            kind = ("symlink" if link else "dir" if stat.S_ISDIR(st.st_mode)
                    else "file" if stat.S_ISREG(st.st_mode) else "other")
            target = hostos.read_link(full) if kind == "symlink" else ""
        except OSError as exc:
            self.unreadable.append({"path": self.shown(rel), "error": exc.strerror or str(exc)})
            return
        yield rel, Entry(full, kind, stat.S_IMODE(st.st_mode), st.st_size, target)

    def _walk_error(self, exc: OSError) -> None:
        self.unreadable.append({"path": str(exc.filename), "error": exc.strerror or str(exc)})

    def shown(self, rel: str) -> str:
        return f"{self.shown_top}/{rel}" if rel else self.shown_top


_BATCH = 32  # files per pool task: a future per file costs more than hashing a small one


def _submit(pool: ThreadPoolExecutor, batch: List[Entry]) -> None:
    future = pool.submit(lambda: [_hash_file(e.full) for e in batch])
    for i, e in enumerate(batch):
        e.digest = (future, i)


def _hash_file(path: str) -> Any:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            h = hashlib.sha256()
            first = f.read(CHUNK)
            h.update(first)
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
            # A small file's bytes too: @v/list and go.env are judged by their content.
            return h.hexdigest(), first if len(first) <= _SMALL else b""
    except OSError as exc:
        return exc


_SMALL = 64 << 10


class Verifier:
    """Compares scanned trees with expectations and collects every difference."""

    def __init__(self, report: Report, on_bytes: Callable[[int], None], workers: int) -> None:
        self.report = report
        self.on_bytes = on_bytes
        self.workers = workers

    def change(self, shown_path: str, bundle: str, **what: Any) -> None:
        for entry in self.report.changed:
            if entry["path"] == shown_path:
                entry.update(what)
                return
        self.report.changed.append({"path": shown_path, "bundle": bundle, **what})

    def merge(self, part: Report) -> None:
        """What another Verifier found, added to this report."""
        for name in ("changed", "missing", "added", "unreadable"):
            getattr(self.report, name).extend(getattr(part, name))
        self.report.files += part.files
        self.report.bytes += part.bytes

    def _unreadable(self, shown_path: str, exc: OSError) -> None:
        self.report.unreadable.append({"path": shown_path, "error": exc.strerror or str(exc)})

    def compare(self, scan: Scan, expect: Dict[str, Expect],
                layout: Optional[Layout] = None) -> None:
        """Every expected path checked, every other one reported as added."""
        self.report.unreadable += scan.unreadable
        if not scan.exists:
            self.report.missing.append({"path": scan.shown_top, "type": "dir",
                                        "bundle": expect[""].bundle})
            return
        for rel, entry in scan.entries.items():
            self._entry(scan.shown(rel), entry, expect.get(rel), layout)
        for rel in sorted(set(expect) - set(scan.entries)):
            e = expect[rel]
            self.report.missing.append({"path": scan.shown(rel), "type": e.type,
                                        "bundle": e.bundle})

    def _entry(self, shown_path: str, found: Entry, e: Optional[Expect],
               layout: Optional[Layout]) -> None:
        result: Any = None
        if found.kind == "file":
            result = _result(found)
            self.on_bytes(found.size)
        if e is None:
            added: Dict[str, Any] = {"path": shown_path, "type": found.kind,
                                     "mode": f"{found.mode:04o}"}
            if found.kind == "file" and not isinstance(result, OSError):
                added["sha256"] = result[0]
            if found.kind not in ("dir", "symlink") and found.mode & 0o111:
                added["executable"] = True  # serious: something may run it as go's own tool
            self.report.added.append(added)
            return
        if found.kind != e.type:
            self.change(shown_path, e.bundle, type=[e.type, found.kind])
            return
        if e.mode is not None and hostos.mode_differs(found.kind, e.mode, found.mode):
            self.change(shown_path, e.bundle, mode=[f"{e.mode:04o}", f"{found.mode:04o}"])
        if found.kind == "symlink" and found.target != e.target:
            self.change(shown_path, e.bundle, target=[e.target, found.target])
        if found.kind != "file":
            return
        if isinstance(result, OSError):
            self._unreadable(shown_path, result)
            return
        self.report.files += 1
        self.report.bytes += found.size
        digest, data = result
        if e.go_env and layout is not None:
            self._judge_go_env(shown_path, data, e, layout)
        elif e.listing:
            listed = {line.split()[0] for line in data.decode("utf-8", "replace").splitlines()
                      if line.split()}
            if e.versions - listed:
                self.change(shown_path, e.bundle, versions=[sorted(e.versions), sorted(listed)])
        elif e.lookup is not None and digest not in e.sha256:
            self._judge_lookup(shown_path, data, e)
        elif digest not in e.sha256:
            self.change(shown_path, e.bundle, sha256=[sorted(e.sha256)[0], digest])

    def _judge_lookup(self, shown_path: str, data: bytes, e: Expect) -> None:
        """A lookup re-composed with a newer head: the same record, signed by the key, in a
        tree at least as large as the bundle's."""
        assert e.lookup is not None
        module, version, zip_hash, mod_hash, db = e.lookup
        try:
            found = parse_lookup(module, version, data, parse_verifier(db.key))
            check_lines(db.name, module, version, found.lines, zip_hash, mod_hash)
            if found.tree.n < db.size:
                raise TrustError(f"tree#{found.tree.n} is older than the bundle's "
                                 f"tree#{db.size}")
        except (TrustError, NoteError) as exc:
            self.change(shown_path, e.bundle,
                        sumdb=[f"a lookup of {module}@{version} signed by {db.name}",
                               str(exc).split("\n")[0]])

    def _judge_go_env(self, shown_path: str, data: bytes, e: Expect, layout: Layout) -> None:
        try:
            have = data.decode("utf-8")
        except UnicodeDecodeError:
            self.change(shown_path, e.bundle, go_env=["rescue's offline go.env", "not UTF-8"])
            return
        want = expected_go_env(have, layout)
        if have != want:
            diff = [line for line in have.splitlines() if line not in want.splitlines()]
            self.change(shown_path, e.bundle,
                        sha256=[hashlib.sha256(want.encode()).hexdigest(),
                                hashlib.sha256(data).hexdigest()],
                        go_env=["as the installer writes it for this prefix",
                                "; ".join(diff[:3]) or "lines removed or reordered"])


def _result(entry: Entry) -> Any:
    future, i = entry.digest
    return future.result()[i]


def expected_go_env(have: str, layout: Layout) -> str:
    """go.env as the installer writes it (wiring.go_env_text) for this prefix.

    Only the upstream go.env's sha256 is signed, and the installer drops its GOPROXY, GOSUMDB
    and GOTOOLCHAIN lines, so the upstream text is read back from between rescue's header and
    the wired settings. Upstream Go sets no other variable in go.env: a kept line that sets
    one is dropped here, so it shows as a change.
    """
    lines = have.splitlines()
    head = wiring.go_env_text(layout, "").splitlines()[:3]
    body = lines[3:] if lines[:3] == head else lines
    # The settings rescue wrote last (their number changes with the wiring: GONOSUMDB comes
    # and goes), and the blank line before them.
    while body and "=" in body[-1] and not body[-1].lstrip().startswith("#"):
        body.pop()
    if body and not body[-1].strip():
        body.pop()
    kept = [line for line in body
            if not line.strip() or line.lstrip().startswith("#")]
    return wiring.go_env_text(layout, "\n".join(kept))


def select(layout: Layout, version: Optional[str], every: bool) -> List[str]:
    """The toolchain ids to check: VERSION, --all, or the current one."""
    installed = versions.installed_ids(layout)
    if every:
        return installed
    if version:
        want = version if version.startswith("go") else "go" + version
        ids = [i for i in installed if want in (i, i.rsplit(".", 1)[0])]
        if not ids:
            raise NotReadyError(
                f"verifying {version}: no such toolchain in {layout.versions} (installed: "
                f"{', '.join(installed) or 'none'})", operation="verifying", subject=version)
        return ids
    now = versions.current_id(layout)
    if now is None:
        raise NotReadyError(f"verifying {layout.root}: no current toolchain; name one "
                            "(`verify VERSION`) or pass --all", operation="verifying",
                            subject=str(layout.root))
    return [now]


def judge_toolchain(v: Verifier, scan: Scan, bundles: List[Any], tc_id: str,
                    layout: Layout) -> None:
    """Compare one toolchain's tree with the newest recorded bundle that carries it; a tree no
    recorded bundle carries is reported as added, whole."""
    carrier = next((b for b in reversed(bundles)
                    if any(t.id == tc_id for t in b.manifest.toolchains)), None)
    if carrier is None:
        v.report.added.append({"path": scan.shown_top, "type": "dir",
                               "note": "no recorded bundle carries this toolchain"})
    else:
        v.compare(scan, goroot_expectations(carrier, tc_id), layout)


def verify(layout: Layout, signers: List[AllowedSigner], trust_source: str,
           version: Optional[str] = None, every: bool = False,
           modcache_dir: Optional[Path] = None, on_total: Callable[[int], None] = lambda n: None,
           on_bytes: Callable[[int], None] = lambda n: None,
           workers: Optional[int] = None) -> Report:
    """Everything checked, every difference collected: the caller decides the exit code."""
    started = time.monotonic()
    if not layout.root.is_dir():
        raise NotReadyError(f"verifying {layout.root}: no such prefix; pass the --prefix you "
                            "installed into", operation="verifying", subject=str(layout.root))
    # A `current` planted outside the prefix, dangling or a loop is named first: whatever the
    # trees hold, `go` on PATH is not one of them.
    versions.checked_current(layout)
    ids = select(layout, version, every)
    v = Verifier(Report(str(layout.root), modcache=str(modcache_dir) if modcache_dir else None),
                 on_bytes, workers or min(8, 2 * (os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=v.workers) as pool:
        # Walk and start hashing first: the pool hashes while the manifests are checked.
        scans = [(_dir_identity(layout.versions / tc_id),
                  Scan(layout.versions / tc_id, f"versions/{tc_id}", pool)) for tc_id in ids]
        proxy = Scan(layout.goproxy, "goproxy", pool)
        on_total(sum(e.size for s in [s for _, s in scans] + [proxy]
                     for e in s.entries.values() if e.kind == "file"))
        bundles = load_bundles(layout, signers, trust_source)
        v.report.bundles = [b.to_dict() for b in bundles]
        for tc_id, (before, scan) in zip(ids, scans):
            part = Verifier(Report(v.report.prefix), on_bytes, v.workers)
            judge_toolchain(part, scan, bundles, tc_id, layout)
            # Judged only after every hash is in: a tree `remove` renamed away meanwhile is
            # gone, not tampered with (its paths vanished under the walk).
            if before is None or not _same_dir(layout.versions / tc_id, before):
                v.report.removed_while_verifying.append(tc_id)
                continue
            v.report.toolchains.append(tc_id)
            v.merge(part.report)
        if proxy.exists or any(b.manifest.modules for b in bundles):
            v.compare(proxy, proxy_expectations(bundles, toolchain_proxy.recorded(layout)))
    gone = v.report.removed_while_verifying
    if gone and not every:
        raise NotReadyError(
            f"verifying {', '.join(gone)}: another rescue command (remove, prune, repair) "
            "removed or replaced it while it was being verified; run verify again",
            operation="verifying", subject=", ".join(gone))
    check_module_hashes(v, layout.goproxy, bundles)
    if modcache_dir is not None:
        check_modcache(v, modcache_dir, layout.goproxy, bundles)
    v.report.seconds = round(time.monotonic() - started, 2)
    return v.report


def _dir_identity(path: Path) -> Optional[Tuple[int, int]]:
    """(device, inode) of a directory itself, None when it is not there (or not a directory)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _same_dir(path: Path, before: Tuple[int, int]) -> bool:
    return _dir_identity(path) == before


def check_toolchain(layout: Layout, bundle: Bundle, tc_id: str,
                    workers: Optional[int] = None) -> Report:
    """One installed GOROOT against one bundle's manifest (install of a version already there)."""
    v = Verifier(Report(str(layout.root)), lambda n: None,
                 workers or min(8, 2 * (os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=v.workers) as pool:
        scan = Scan(layout.versions / tc_id, f"versions/{tc_id}", pool)
        v.report.toolchains.append(tc_id)
        v.compare(scan, goroot_expectations(bundle, tc_id), layout)
    return v.report


def failure(report: Report) -> RescueError:
    """The error for a report that found differences (3), or only unreadable paths (2)."""
    paths = ([c["path"] for c in report.changed] + [m["path"] for m in report.missing]
             + [a["path"] for a in report.added])
    bundles = sorted({str(x.get("bundle")) for x in report.changed + report.missing
                      if x.get("bundle")})
    if not paths:
        first = report.unreadable[0]
        return NotReadyError(
            f"verifying {report.prefix}: {len(report.unreadable)} path(s) could not be read "
            f"(first: {shown(first['path'])}: {first['error']}); run verify as the prefix's "
            "owner or as root", operation="verifying", subject=report.prefix)
    execs = [a["path"] for a in report.added if a.get("executable")]
    parts = []
    for label, items in (("changed", report.changed), ("missing", report.missing),
                         ("added", report.added)):
        if items:
            parts.append(f"{len(items)} {label}")
    text = (f"verifying {report.prefix}: {', '.join(parts)} against the signed manifests "
            f"(first: {shown(paths[0])})")
    if execs:
        text += (f"; {len(execs)} executable(s) that no bundle installed, e.g. "
                 f"{shown(execs[0])}: treat this machine as compromised until you know who "
                 "put it there")
    if bundles:
        text += ("; the bundle that can restore it: " + "; ".join(bundles)
                 + ". Run `repair BUNDLE` with that bundle (module cache entries and added "
                 "files need none: `repair`)")
    else:
        text += "; `repair` removes what was added"
    return TrustError(text, operation="verifying", subject=report.prefix,
                      expected="every path as signed", got=f"{len(paths)} path(s) differ",
                      tampering=False)
