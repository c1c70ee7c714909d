"""A slice of the bundle's content: its planned members and how to read their bytes again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, List, Optional, Tuple

from bundler.archives import Entry
from manifests.model import Member

# Re-reads one upstream's non-directory entries in the order they were planned.
Reopen = Callable[[], Iterator[Tuple[Entry, Optional[BinaryIO]]]]


@dataclass
class Part:
    """Members planned by hashing an upstream once, and `reopen` to stream them again for
    packing; `prefix` joins an entry's name to its member path."""

    members: List[Member]
    reopen: Reopen
    prefix: str
