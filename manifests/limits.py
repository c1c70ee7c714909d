"""Every size and count limit rescue enforces on untrusted input, in one place."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    manifest_bytes: int = 64 * MiB  # a manifest lists ~10k members per toolchain
    signature_bytes: int = 64 * KiB
    sums_bytes: int = 64 * MiB
    members: int = 2_000_000
    member_bytes: int = 4 * GiB  # largest single file we accept in a bundle
    total_bytes: int = 256 * GiB  # sum of all member sizes
    path_chars: int = 4096
    path_depth: int = 128
    zstd_window_log_max: int = 27  # bundles are written with 26; 27 is what stock `zstd -d` opens
    # Go's own module limits (golang.org/x/mod/zip).
    module_zip_bytes: int = 500 * MiB
    module_unzipped_bytes: int = 500 * MiB
    module_gomod_bytes: int = 16 * MiB
    module_license_bytes: int = 16 * MiB
    # Upstream documents we parse on the connected side.
    index_bytes: int = 64 * MiB
    ca_bundle_bytes: int = 16 * MiB  # a spec's ca_bundle (a whole system bundle is ~250 KiB)
    free_space_margin: int = 64 * MiB  # kept free beyond what an install needs
    # GOPROXY `.info` and `@v/list` documents (Go reads them whole; real ones are tiny).
    module_meta_bytes: int = 16 * MiB
    # Tar PAX records: a long path and link target (each <= path_chars), nothing else.
    pax_header_bytes: int = 64 * KiB
    go_env_bytes: int = 64 * KiB  # a GOROOT's go.env, which the installer rewrites
    goenv_file_bytes: int = 64 * KiB  # the user's GOENV file (`go env -w` writes a few lines)
    # Keys and the trust store (read before anything is trusted).
    trust_store_bytes: int = 1 * MiB
    key_file_bytes: int = 64 * KiB
    public_line_chars: int = 8 * KiB
    # What a prefix keeps (P/state), read back as input: installed.json, pins, policy, journal.
    state_file_bytes: int = 16 * MiB
    history_tail_bytes: int = 4 * MiB  # history.jsonl is read from its end, this much at most
    snapshot_file_bytes: int = 256 * MiB  # a snapshot lists every GOROOT file (~3 MB each)
    # Free space a day-two command (use, pin, rollback) needs for P/state: journal, history.
    state_room_bytes: int = 1 * MiB
    # Checksum database (sumdb) data: keys, signed tree notes, lookup answers, tiles.
    sumdb_key_chars: int = 1 * KiB  # a verifier key is ~60 characters
    sumdb_note_bytes: int = 64 * KiB  # a tree note with x/mod's most (100) signature lines
    sumdb_lookup_bytes: int = 128 * KiB  # record id + go.sum lines + the tree note
    sumdb_records: int = 1_000_000  # lookups one bundle may carry
    # Guarded switches: the output of the operator's commands, and the journal of one switch.
    guard_log_bytes: int = 16 * MiB  # head of a guard run's output kept in its log
    guard_log_tail_bytes: int = 64 * KiB  # and the end of each command's, when the head is cut
    guard_logs_kept: int = 20  # P/state/guard-logs keeps the newest this many
    guard_environ_bytes: int = 4 * MiB  # a process's environment read back when sweeping
    guard_pending_bytes: int = 64 * KiB  # P/state/guard-pending.json (a real one is ~200 bytes)
    # A tool's output or an OS error quoted in one of our messages: its first line, this long.
    quoted_output_chars: int = 300
    step_detail_chars: int = 1000  # a drill step's detail: one of our messages, or go's output
    sumdb_name_chars: int = 255  # a database name is a host[/path]
    sumdb_patterns_chars: int = 4 * KiB  # the GONOSUMDB patterns a manifest records
    # `serve`: what one LAN client may send and hold (go's URLs are < 1 KiB).
    serve_request_line_bytes: int = 8 * KiB  # nginx's default large_client_header_buffers
    serve_idle_seconds: int = 60  # a client that sends or reads nothing this long is dropped
    # An SBOM member, read whole by `sbom` (~1.5 KiB per module: room for 40,000 modules).
    sbom_bytes: int = 64 * MiB
    # Snapshots: the disk marks of the store's file system, and what a shared Git repository
    # of them (`snapshot sync` / `pull`) may hand back.
    snapshot_pause_percent: float = 85.0  # `snapshot create` warns and writes nothing
    snapshot_clean_percent: float = 95.0  # ... and first removes the oldest unpinned, untagged
    snapshot_clean_batch: int = 3  # removed at a time before the disk is measured again
    snapshot_repo_entries: int = 100_000  # paths under snapshots/ one pull reads
    snapshot_git_output_bytes: int = 64 * MiB  # a git listing read back (~100 bytes a path)
    snapshot_git_seconds: int = 300  # one git command (a fetch of a big history included)
    snapshot_push_tries: int = 5  # a push another host's push beat: fetched again, this often


DEFAULT_LIMITS = Limits()
