"""Go's tamper-evident log (golang.org/x/mod/sumdb/tlog): RFC 6962 hashes, proofs, tree notes."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

from manifests.pycompat import isascii

HASH_SIZE = 32
EMPTY_HASH = hashlib.sha256(b"").digest()  # RFC 6962's hash of the empty tree
TREE_PREFIX = "go.sum database tree\n"

# Reads the hashes at the given stored hash indexes (in the order asked), or raises.
HashReader = Callable[[Sequence[int]], List[bytes]]


class TlogError(ValueError):
    """A record, proof or tree note that does not hold; the text is x/mod's wording."""


@dataclass(frozen=True)
class Tree:
    """A tree head: its size (records) and root hash."""

    n: int
    hash: bytes

    def note_text(self) -> str:
        return f"{TREE_PREFIX}{self.n}\n{base64.b64encode(self.hash).decode()}\n"


def record_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _maxpow2(n: int) -> Tuple[int, int]:
    """(k, l): the largest power of two k = 1<<l smaller than n."""
    level = 0
    while (1 << (level + 1)) < n:
        level += 1
    return 1 << level, level


def stored_hash_index(level: int, n: int) -> int:
    """Where hash (level, n) sits in the dense storage order (Crosby and Wallach, 3.3)."""
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


def split_stored_hash_index(index: int) -> Tuple[int, int]:
    """The (level, n) whose stored_hash_index is `index`."""
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n adds 1 + trailing_zeros(n+1) hashes.
        x = index_n + 1 + _trailing_zeros(n + 1)
        if x > index:
            break
        n += 1
        index_n = x
    level = index - index_n
    return level, n >> level


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def stored_hash_count(n: int) -> int:
    if n == 0:
        return 0
    count = stored_hash_index(0, n - 1) + 1
    i = n - 1
    while i & 1:
        count += 1
        i >>= 1
    return count


def stored_hashes(n: int, data: bytes, read: HashReader) -> List[bytes]:
    """The hashes to store, from index stored_hash_index(0, n), when record n is appended."""
    h = record_hash(data)
    hashes = [h]
    m = _trailing_zeros(n + 1)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(m))]
    old = read(indexes)
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        hashes.append(h)
    return hashes


def sub_tree_index(lo: int, hi: int, need: List[int]) -> List[int]:
    """Append the stored indexes that make up the hash of records [lo, hi)."""
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        assert lo & (k - 1) == 0, "tlog: bad math in sub_tree_index"
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def sub_tree_hash(lo: int, hi: int, hashes: List[bytes]) -> Tuple[bytes, List[bytes]]:
    """The hash of records [lo, hi) from the hashes sub_tree_index named, and the leftovers."""
    count = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        count += 1
        lo += k
    h = hashes[count - 1]
    for i in range(count - 2, -1, -1):
        h = node_hash(hashes[i], h)
    return h, hashes[count:]


def tree_hash(n: int, read: HashReader) -> bytes:
    if n == 0:
        return EMPTY_HASH
    indexes = sub_tree_index(0, n, [])
    hashes = read(indexes)
    if len(hashes) != len(indexes):
        raise TlogError(f"tlog: ReadHashes({len(indexes)} indexes) = {len(hashes)} hashes")
    h, rest = sub_tree_hash(0, n, list(hashes))
    assert not rest, "tlog: bad index math in tree_hash"
    return h


def _leaf_proof_index(lo: int, hi: int, n: int, need: List[int]) -> List[int]:
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_index(lo, lo + k, n, need)
        sub_tree_index(lo + k, hi, need)
    else:
        sub_tree_index(lo, lo + k, need)
        _leaf_proof_index(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: List[bytes]) -> Tuple[List[bytes], List[bytes]]:
    if lo + 1 == hi:
        return [], hashes
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        proof, hashes = _leaf_proof(lo, lo + k, n, hashes)
        th, hashes = sub_tree_hash(lo + k, hi, hashes)
    else:
        th, hashes = sub_tree_hash(lo, lo + k, hashes)
        proof, hashes = _leaf_proof(lo + k, hi, n, hashes)
    return proof + [th], hashes


def prove_record(t: int, n: int, read: HashReader) -> List[bytes]:
    """The audit path showing the tree of size t holds record n."""
    if t < 0 or n < 0 or n >= t:
        raise TlogError("tlog: invalid inputs in ProveRecord")
    indexes = _leaf_proof_index(0, t, n, [])
    if not indexes:
        return []
    proof, rest = _leaf_proof(0, t, n, list(read(indexes)))
    assert not rest, "tlog: bad index math in prove_record"
    return proof


def _run_record_proof(p: List[bytes], lo: int, hi: int, n: int, leaf: bytes) -> bytes:
    if lo + 1 == hi:
        if p:
            raise TlogError("invalid transparency proof")
        return leaf
    if not p:
        raise TlogError("invalid transparency proof")
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        return node_hash(_run_record_proof(p[:-1], lo, lo + k, n, leaf), p[-1])
    return node_hash(p[-1], _run_record_proof(p[:-1], lo + k, hi, n, leaf))


def check_record(proof: List[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Raise unless `proof` shows that the tree (t, th) has record n with hash h."""
    if t < 0 or n < 0 or n >= t:
        raise TlogError("tlog: invalid inputs in CheckRecord")
    if _run_record_proof(proof, 0, t, n, h) != th:
        raise TlogError("invalid transparency proof")


def parse_tree(text: str) -> Tree:
    """The tree head in a note's text: `go.sum database tree\\n<N>\\n<base64 hash>\\n...`."""
    if not text.startswith(TREE_PREFIX) or text.count("\n") < 3 or len(text) > 1_000_000:
        raise TlogError("malformed tree note")
    lines = text.split("\n", 3)
    if not (isascii(lines[1]) and lines[1].isdigit()) or lines[1] != str(int(lines[1])) \
            or int(lines[1]) >= 1 << 63:
        raise TlogError("malformed tree note")
    try:
        h = base64.b64decode(lines[2], validate=True) if isascii(lines[2]) else b""
    except binascii.Error:
        h = b""
    if len(h) != HASH_SIZE:
        raise TlogError("malformed tree note")
    return Tree(int(lines[1]), h)


def valid_record_text(text: str) -> bool:
    """Record text: no control characters but newline, no blank line, ends with a newline."""
    return text.endswith("\n") and "\n\n" not in text and \
        not any(c < " " and c != "\n" for c in text)


def format_record(record_id: int, text: str) -> bytes:
    """A record as a lookup answer carries it: `<id>\\n<text>\\n` (a blank line ends it)."""
    if not valid_record_text(text):
        raise TlogError("malformed record data")
    return f"{record_id}\n{text}\n".encode()


def parse_record(msg: bytes) -> Tuple[int, str, bytes]:
    """(id, text, rest) from a lookup answer; rest is the signed tree note."""
    head, sep, body = msg.partition(b"\n")
    if not sep or not head.isdigit() or len(head) > 19 or head != str(int(head)).encode():
        raise TlogError("malformed record data")
    end = body.find(b"\n\n")
    if end < 0:
        raise TlogError("malformed record data")
    try:
        text = body[:end + 1].decode("utf-8")
    except UnicodeDecodeError:
        raise TlogError("malformed record data") from None
    if not valid_record_text(text):
        raise TlogError("malformed record data")
    return int(head), text, body[end + 2:]
