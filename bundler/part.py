"""A slice of the bundle's content: its members in packing order and how to read their bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable, List

from manifests.model import Member


@dataclass
class Part:
    """Members in the order they are packed (parents before children, a hard link after its
    target), and `open` for a file member's bytes."""

    members: List[Member]
    open: Callable[[Member], BinaryIO]
