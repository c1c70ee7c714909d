"""`snapshot sync` and `pull`: this host's records committed to a Git repository's
snapshots/HOST/ID.json (new ones only, never forced), and other hosts' records brought back,
each read bounded and checked like a local one."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any, Dict, List, Optional, Tuple

from installer import snapshot_pulled, snapshot_store
from installer.prefix import Layout
from installer.snapshot_check import is_id
from installer.snapshot_git import Git, GitFailed, scratch, shown_url
from manifests.errors import NotReadyError, RescueError, TrustError
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

TOP = "snapshots"
LIMITS = DEFAULT_LIMITS
# (host, id, blob sha, size) of one record in the repository.
Record = Tuple[str, str, str, int]


def blob_id(data: bytes) -> str:
    """The id git gives these bytes as a file: equal ids, equal records."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --- the repository's side ----------------------------------------------------------------

def _tip(git: Git, url: str, branch: str) -> Optional[str]:
    """The branch's commit on the server, fetched (shallow) into the scratch repository; None
    while the branch does not exist yet."""
    ref = f"refs/heads/{branch}"
    out = git.run("ls-remote", "--", url, ref, limit=64 * 1024).decode("ascii", "replace")
    tips = [line.split("\t")[0] for line in out.splitlines() if line.endswith("\t" + ref)]
    if not tips:
        return None
    git.run("fetch", "-q", "--no-tags", "--depth=1", "--", url, f"+{ref}:refs/remotes/{ref}")
    return git.run("rev-parse", "--verify", "-q", f"refs/remotes/{ref}^{{commit}}"
                   ).decode("ascii").strip()


def survey_repo(git: Git, tip: str, where: str) -> Tuple[List[Record], List[Dict[str, Any]]]:
    """(the records under snapshots/, the entries that are not records: links, odd names, files
    past the size limit). `snapshots` that is not a directory is refused whole."""
    top = git.run("ls-tree", "-z", tip, "--", TOP).split(b"\0")
    for entry in filter(None, top):
        mode = entry.split(b" ", 1)[0]
        if mode != b"040000":
            kind = "a symbolic link" if mode == b"120000" else "not a directory"
            raise NotReadyError(
                f"reading repository {where}: its {TOP} is {kind}; rescue reads records only "
                f"from a real {TOP}/ directory. Replace it there (`git rm {TOP}`, commit, push), "
                "or pass the right --git", operation="reading repository", subject=where)
    out = git.run("ls-tree", "-r", "-z", "-l", tip, "--", TOP + "/")
    records: List[Record] = []
    odd: List[Dict[str, Any]] = []
    for n, entry in enumerate(e for e in out.split(b"\0") if e):
        if n >= LIMITS.snapshot_repo_entries:
            raise NotReadyError(
                f"reading repository {where}: its {TOP}/ holds more than "
                f"{LIMITS.snapshot_repo_entries} entries, more than rescue reads; prune it",
                operation="reading repository", subject=where)
        head, _, raw = entry.partition(b"\t")
        mode, _kind, sha, size = head.decode("ascii", "replace").split()
        path = raw.decode("utf-8", "surrogateescape")
        parts = path.split("/")
        bad = ""
        if len(parts) != 3 or not parts[2].endswith(".json"):
            if parts[-1].startswith("."):
                continue  # .gitkeep and the like: not records, harmless
            bad = f"it is not {TOP}/HOST/ID.json"
        elif not snapshot_pulled.is_host(parts[1]):
            bad = "its directory is not a host name (letters, digits and `._-`)"
        elif not is_id(parts[2][:-len(".json")]):
            bad = "its name is not a snapshot id"
        elif mode == "120000":
            bad = "it is a symbolic link, which rescue never follows"
        elif mode not in ("100644", "100755"):
            bad = "it is not a regular file"
        elif int(size) > LIMITS.snapshot_file_bytes:
            bad = (f"it holds {size} bytes, more than the {LIMITS.snapshot_file_bytes} a real "
                   "snapshot can")
        if bad:
            odd.append({"file": f"{where}:{shown(path)}", "exit_code": 2, "message": (
                f"reading snapshot {where}:{shown(path)}: {bad}; remove it from the "
                "repository (`git rm`), then run the command again")})
            continue
        records.append((parts[1], parts[2][:-len(".json")], sha, int(size)))
    return records, odd


def _read_blob(git: Git, sha: str) -> bytes:
    return git.run("cat-file", "blob", sha, limit=LIMITS.snapshot_file_bytes)


# --- sync ---------------------------------------------------------------------------------

def _commit(git: Git, tip: Optional[str], host: str, new: Dict[str, bytes]) -> str:
    """A commit on `tip` adding snapshots/HOST/ID.json for each new record (built in a private
    index: no work tree, so nothing of the repository is ever checked out here)."""
    git.run("read-tree", *((tip,) if tip else ("--empty",)))
    lines = []
    for sid, data in sorted(new.items()):
        sha = git.run("hash-object", "-w", "--stdin", stdin=data).decode("ascii").strip()
        lines.append(f"100644 {sha}\t{TOP}/{host}/{sid}.json\n")
    git.run("update-index", "--add", "--index-info", stdin="".join(lines).encode())
    tree = git.run("write-tree").decode("ascii").strip()
    message = (f"snapshots from {host}: {len(new)} new\n\n"
               + "".join(f"{sid}\n" for sid in sorted(new)))
    return git.run("commit-tree", tree, *(("-p", tip) if tip else ()), "-m", message
                   ).decode("ascii").strip()


def _no_server_hooks(url: str) -> Tuple[str, ...]:
    """A file:// push runs the receiving side here, as this user, and git hands it none of our
    `-c` settings: its repository's hooks would run unless it is told again."""
    if not url.startswith("file:"):
        return ()
    return ("--receive-pack=git -c core.hooksPath=/dev/null receive-pack",)


def _rejected(exc: GitFailed) -> bool:
    """The push lost a race with another host's (the branch moved): fetch and try again."""
    return any(w in exc.text for w in ("[rejected]", "non-fast-forward", "fetch first",
                                        "failed to update ref", "cannot lock ref"))


def sync(layout: Layout, url: str, host: str, branch: str) -> Dict[str, Any]:
    """Commit this host's records the repository lacks, and push; a push another host's beat is
    fetched again and retried, never forced."""
    where = shown_url(url)
    records, damaged = snapshot_store.stored_bytes(layout)
    try:
        return _sync(url, where, host, branch, records, damaged)
    except GitFailed as exc:
        raise _failed("syncing snapshots to", where, exc) from None


def _sync(url: str, where: str, host: str, branch: str, records: Dict[str, bytes],
          damaged: List[Dict[str, Any]]) -> Dict[str, Any]:
    with scratch(host) as git:
        for attempt in range(1, LIMITS.snapshot_push_tries + 1):
            tip = _tip(git, url, branch)
            found, odd = survey_repo(git, tip, where) if tip else ([], [])
            if odd:
                raise NotReadyError(
                    f"syncing snapshots to {where}: the repository holds {len(odd)} entr"
                    f"{'y' if len(odd) == 1 else 'ies'} that are not records:\n  "
                    + "\n  ".join(o["message"] for o in odd),
                    operation="syncing snapshots to", subject=where)
            theirs = {sid: sha for h, sid, sha, _ in found if h == host}
            new = {sid: data for sid, data in records.items() if sid not in theirs}
            differ = sorted(sid for sid, data in records.items()
                            if sid in theirs and theirs[sid] != blob_id(data))
            result = {"repository": where, "branch": branch, "host": host,
                      "new": sorted(new), "already": len(records) - len(new),
                      "differ": differ, "damaged": [d["file"] for d in damaged],
                      "commit": None, "tries": attempt}
            if not new:
                return result
            commit = _commit(git, tip, host, new)
            try:
                git.run("push", "-q", "--porcelain", *_no_server_hooks(url), "--", url,
                        f"{commit}:refs/heads/{branch}")
            except GitFailed as exc:
                if not _rejected(exc):
                    raise _failed("syncing snapshots to", where, exc) from None
                time.sleep(random.uniform(0.05, 0.3) * attempt)  # let the other host finish
                continue
            result["commit"] = commit
            return result
    raise NotReadyError(
        f"syncing snapshots to {where}: other hosts pushed first {LIMITS.snapshot_push_tries} "
        "times in a row; nothing of this host's was lost, run `snapshot sync` again",
        operation="syncing snapshots to", subject=where)


def _failed(operation: str, where: str, exc: GitFailed) -> NotReadyError:
    return NotReadyError(
        f"{operation} {where}: {exc.message}; check --git and that this host may "
        "read and push there (ssh keys, https credentials in an agent)",
        operation=operation, subject=where)


# --- pull ---------------------------------------------------------------------------------

def pull(layout: Layout, url: str, host: str, branch: str) -> Dict[str, Any]:
    """Other hosts' records, each kept once checked; a refused one never stops the others,
    the error (worst code) names each after the others are kept."""
    where = shown_url(url)
    pulled: List[str] = []
    same = own = 0
    with scratch(host) as git:
        try:
            tip = _tip(git, url, branch)
            found, refused = survey_repo(git, tip, where) if tip else ([], [])
        except GitFailed as exc:
            raise _failed("pulling snapshots from", where, exc) from None
        for h, sid, sha, _size in found:
            if h == host:
                own += 1  # this host's own: the store has them (a local record is never
                continue  # replaced by the repository's copy)
            at = f"{where}:{TOP}/{h}/{sid}.json"
            try:
                data = _read_blob(git, sha)
                snapshot_store.check_bytes(data, at, "ask that host to take a new snapshot "
                                           "and sync it, and remove this one (`git rm`)", sid)
                if snapshot_pulled.keep(layout, h, sid, data, at):
                    pulled.append(f"{h}:{sid}")
                else:
                    same += 1
            except RescueError as exc:
                refused.append({"file": at, "message": exc.message,
                                "exit_code": exc.exit_code})
    result = {"repository": where, "branch": branch, "host": host, "pulled": pulled,
              "already": same, "own": own, "refused": refused, "area":
              str(snapshot_pulled.area(layout)), "branch_found": tip is not None}
    if refused:
        worst = TrustError if any(r["exit_code"] == 3 for r in refused) else NotReadyError
        err = worst(
            f"pulling snapshots from {where}: {len(refused)} record(s) refused, "
            f"{len(pulled)} pulled:\n  " + "\n  ".join(r["message"] for r in refused),
            operation="pulling snapshots from", subject=where)
        err.details = result  # type: ignore[attr-defined]
        raise err
    return result
