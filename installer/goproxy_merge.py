"""Merge a staged bundle's `goproxy/` tree into the prefix's shared file GOPROXY, undoably."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from installer.prefix import remove_tree
from manifests.errors import TrustError
from manifests.files import sha256_file, write_atomic
from manifests.modpath import ModulePathError, is_valid_semver, parse_proxy_file, sort_versions

# Proxy files are read-only like a GOROOT's; directories stay writable by their owner only, so
# that later bundles can merge into them.
PROXY_FILE_MODE = 0o444
PROXY_DIR_MODE = 0o755


@dataclass
class MergeJournal:
    """What a merge changed, so that a later failure can take all of it back."""

    files: List[Path] = field(default_factory=list)  # moved in; absent before
    dirs: List[Path] = field(default_factory=list)  # created, parents first
    # Directories moved in whole, each with where it came from in staging.
    trees: List[Tuple[Path, Path]] = field(default_factory=list)
    # Each rewritten list with its bytes and mode before (None: it did not exist).
    lists: List[Tuple[Path, Optional[bytes], int]] = field(default_factory=list)
    added: List[str] = field(default_factory=list)  # module@version with a new file
    kept: List[str] = field(default_factory=list)  # module@version already fully present
    notes: List[str] = field(default_factory=list)

    def rollback(self) -> None:
        """Undo in reverse: lists back to their old bytes, new files and dirs removed."""
        for listing, old, mode in reversed(self.lists):
            if old is None:
                _unlink(listing)
            else:
                write_atomic(listing, old, mode)
        for f in reversed(self.files):
            _unlink(f)
        for tree, staged in reversed(self.trees):
            try:
                os.rename(tree, staged)  # back where it came from, for staging's clean-up
            except OSError:
                remove_tree(tree)
        for d in reversed(self.dirs):
            with contextlib.suppress(OSError):  # not empty: something else put a file there
                d.rmdir()
        self.files, self.dirs, self.lists, self.trees = [], [], [], []


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()




def _versions(data: bytes) -> Set[str]:
    # A list line may carry a second field (a time); only canonical versions are kept.
    out = set()
    for line in data.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if fields and is_valid_semver(fields[0]):
            out.add(fields[0])
    return out


def _parse(rel: str) -> Tuple[str, Optional[str], str]:
    """`<esc m>/@v/<name>` -> (module, version or None for `list`, file name)."""
    try:
        return parse_proxy_file(rel)
    except ModulePathError as e:
        raise TrustError(f"merging goproxy/{rel}: {e}", tampering=True) from None


def _walk(staged: Path, dest: Path) -> Tuple[List[Tuple[str, bool]], List[str]]:
    """Every staged file as (relative path, whether its directory already exists in `dest`),
    and the topmost staged directories `dest` lacks: those move in whole, by one rename."""
    files: List[Tuple[str, bool]] = []
    new_trees: List[str] = []
    pending = [("", True)]
    while pending:
        rel_dir, there = pending.pop()
        with os.scandir(staged / rel_dir if rel_dir else staged) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    child = there and os.path.isdir(dest / rel)
                    if there and not child and not os.path.lexists(dest / rel):
                        new_trees.append(rel)
                    elif there and not child:  # a file where the staged dir goes: refused below
                        child = True
                    pending.append((rel, child))
                elif entry.is_file(follow_symlinks=False):
                    files.append((rel, there))
                else:
                    raise TrustError(f"merging goproxy/{rel}: only plain files may be merged into "
                                     "the module proxy", tampering=True)
    return sorted(files), sorted(new_trees)


def merge(staged: Path, dest: Path) -> MergeJournal:
    """Move `staged` (a verified GOPROXY tree) into `dest`, refusing conflicting copies.

    A file already in `dest` with the same bytes is kept. A `.mod` or `.zip` of the same
    module@version with different bytes is refused before anything changes: two signed
    bundles disagree about what that version is. `.info` files differ harmlessly between
    proxies (timestamps, origin data), so an installed one is kept with a note. Each touched
    `@v/list` becomes the union of old and new versions in semver order. A staged directory
    that `dest` lacks (a module path new to the prefix, or all of them on a first install)
    moves in whole by one rename: no directory or file is made again for it, and nothing of
    it is left to delete from staging.
    """
    journal = MergeJournal()
    moves: List[Tuple[Path, Path]] = []
    lists: Dict[Path, Set[str]] = {}
    new_lists: List[Path] = []  # staged lists that move in with their tree
    state: Dict[str, bool] = {}  # module@version -> has a new file
    files, new_trees = _walk(staged, dest)
    for rel, there in files:
        module, version, name = _parse(rel)
        src, target = staged / rel, dest / rel
        if version is None:
            if there:
                lists.setdefault(target, set()).update(_versions(src.read_bytes()))
            else:
                new_lists.append(src)
            continue
        key = f"{module}@{version}"
        state.setdefault(key, False)
        if not there or not os.path.lexists(target):
            if there:
                moves.append((src, target))
            state[key] = True
            continue
        have, got = sha256_file(target), sha256_file(src)
        if have == got:
            continue
        if name.endswith(".info"):
            journal.notes.append(f"{key}: kept the installed {name} (the bundle's differs; "
                                 ".info files carry no checked content)")
            continue
        raise TrustError(
            f"merging {key} into {dest}: {name} differs from the copy an earlier bundle "
            f"installed\n\tinstalled: sha256 {have}\n\tbundle:    sha256 {got}\n"
            "Two signed bundles disagree about the bytes of one module version; nothing was "
            "changed. Find out which build saw the right bytes before installing.",
            expected=f"sha256 {have}", got=f"sha256 {got}", tampering=True)
    try:
        _make_dirs(dest, journal)
        for rel in new_trees:
            _prepare_tree(staged / rel)
        for src in new_lists:  # normalized as a merged one would be, before it moves in
            data = src.read_bytes()
            new = "".join(v + "\n" for v in sort_versions(_versions(data))).encode()
            if new != data:
                write_atomic(src, new, PROXY_FILE_MODE, durable=False)
        for rel in new_trees:
            os.rename(staged / rel, dest / rel)
            journal.trees.append((dest / rel, staged / rel))
        for src, target in moves:
            _make_dirs(target.parent, journal)
            os.chmod(src, PROXY_FILE_MODE)  # whatever mode the manifest gave it
            os.rename(src, target)
            journal.files.append(target)
        for listing, versions in sorted(lists.items()):
            old = listing.read_bytes() if listing.exists() else None
            _make_dirs(listing.parent, journal)
            union = versions | (_versions(old) if old is not None else set())
            new = "".join(v + "\n" for v in sort_versions(union)).encode()
            if new == old:
                continue
            journal.lists.append((listing, old, listing.stat().st_mode & 0o777 if old else 0))
            write_atomic(listing, new, PROXY_FILE_MODE, durable=False)  # one sync after merge
    except BaseException:
        journal.rollback()
        raise
    journal.added = sorted(k for k, new in state.items() if new)
    journal.kept = sorted(k for k, new in state.items() if not new)
    return journal


def _prepare_tree(root: Path) -> None:
    """Give a staged tree the modes merged files and dirs get, before it moves in whole."""
    os.chmod(root, PROXY_DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), PROXY_DIR_MODE)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), PROXY_FILE_MODE)


def _make_dirs(path: Path, journal: MergeJournal) -> None:
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(mode=PROXY_DIR_MODE)
        journal.dirs.append(d)
