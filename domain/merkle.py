"""Building the proofs of an RFC 9162 Merkle tree kept as its complete subtrees.

The tree over leaves ``0 … n-1`` is stored as *nodes*: ``(level, index)`` is the root of the
complete subtree over leaves ``index·2^level … (index+1)·2^level - 1`` (level 0 holds the leaf
hashes). Nodes never change once their subtree is complete, so a proof is a matter of naming the
nodes it needs (``*_nodes``), reading them in one go, and combining them (``*_proof``).

Every hash of a range the RFC's recursion names is the right fold of that range's complete
subtrees, largest first (``parts``). Checking proofs is ``domain.evidence``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from domain.errors import TreeTooSmall
from domain.evidence import EMPTY_ROOT, node_hash

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)


def parts(start: int, end: int) -> list[Node]:
    """The complete subtrees that make up leaves ``[start, end)``, largest first (``start`` is
    aligned as in every range RFC 9162's recursion names)."""
    found: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        found.append((level, start >> level))
        start += 1 << level
    return found


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """RFC 9162's ``MTH(D[start:end])`` from the stored nodes."""
    if start == end:
        return EMPTY_ROOT
    hashes = [nodes[node] for node in parts(start, end)]
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes make up the inclusion proof of leaf ``index`` (RFC 9162
    §2.1.3.1), nearest the leaf first."""
    if not 0 <= index < size:
        raise TreeTooSmall(f"leaf {index} is not in a tree of {size}")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        split = _split(end - start)
        if index < start + split:
            ranges.append((start + split, end))
            end = start + split
        else:
            ranges.append((start, start + split))
            start += split
    return list(reversed(ranges))


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The ranges whose hashes make up the proof that tree ``second`` extends tree ``first``
    (RFC 9162 §2.1.4.1)."""
    if not 0 < first <= second:
        raise TreeTooSmall(f"no consistency proof from {first} to {second}")
    ranges: list[Range] = []
    start, end, whole = 0, second, True
    while first != end:
        split = _split(end - start)
        if first - start <= split:
            ranges.append((start + split, end))
            end = start + split
        else:
            ranges.append((start, start + split))
            start += split
            whole = False
    if not whole:
        ranges.append((start, end))
    return list(reversed(ranges))


def nodes_of(ranges: Iterable[Range]) -> set[Node]:
    """Every stored node the given ranges need."""
    return {node for start, end in ranges for node in parts(start, end)}


def hashes_of(ranges: Iterable[Range], nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The hash of each range, from the stored nodes."""
    return [range_hash(start, end, nodes) for start, end in ranges]


def _split(count: int) -> int:
    """The largest power of two smaller than ``count`` (``count`` > 1)."""
    return 1 << ((count - 1).bit_length() - 1)


@dataclass
class CompactRange:
    """The complete subtrees of leaves ``[0, size)``, as needed to append: each appended leaf
    merges with its equals, and the nodes completed on the way are handed back to be stored."""

    size: int = 0
    peaks: list[tuple[int, bytes]] = field(default_factory=list)  # (level, hash), largest first

    @classmethod
    def of(cls, size: int, nodes: Mapping[Node, bytes]) -> CompactRange:
        """The compact range of a stored tree of ``size`` leaves."""
        return cls(size, [(level, nodes[(level, i)]) for level, i in parts(0, size)])

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        """Add one leaf hash; return the nodes it completes (itself first)."""
        index = self.size
        completed: list[tuple[Node, bytes]] = [((0, index), leaf)]
        level, current = 0, leaf
        while self.peaks and self.peaks[-1][0] == level:
            _, left = self.peaks.pop()
            level, current = level + 1, node_hash(left, current)
            completed.append(((level, index >> level), current))
        self.peaks.append((level, current))
        self.size += 1
        return completed

    def root(self) -> bytes:
        """The root hash of the tree so far."""
        if not self.peaks:
            return EMPTY_ROOT
        result = self.peaks[-1][1]
        for _, left in reversed(self.peaks[:-1]):
            result = node_hash(left, result)
        return result
