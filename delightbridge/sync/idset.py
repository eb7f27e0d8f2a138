"""A set of Gmail ids in 8 bytes each, for what an import remembers of a whole mailbox.

Gmail's message and thread ids are 16 hexadecimal digits: a 64-bit number. A Python
``set`` of them as strings costs about 100 bytes an id (the string and its slot), so
the ids an import keeps (threads fetched whole, messages fetched alone, threads
written) grew its memory by about 9 MB at 100,000 messages (BENCHMARKS.md, memory).
:class:`IdSet` keeps them as numbers in a sorted ``array`` (8 bytes an id), with the
latest few thousand in a small set until they are merged in. Exact: an id that is not
16 lowercase hex digits (Gmail's and the simulator's always are) is kept as it is.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import chain

#: Ids kept in the small set before they are merged into the sorted array (or an
#: eighth of the array, if more: merges then stay few as the set grows).
MERGE_EVERY = 4096
_HEX = frozenset("0123456789abcdef")


def _number(value: str) -> int | None:
    if len(value) == 16 and _HEX.issuperset(value):
        return int(value, 16)
    return None


class IdSet:
    """The set operations an import needs (add, ``in``, ``|=``, ``len``), compactly."""

    __slots__ = ("_other", "_recent", "_sorted")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()
        self._other: set[str] = set()
        self.update(values)

    def add(self, value: str) -> None:
        number = _number(value)
        if number is None:
            self._other.add(value)
        elif not self._in_sorted(number):
            self._recent.add(number)
            if len(self._recent) >= max(MERGE_EVERY, len(self._sorted) // 8):
                self._merge()

    def update(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    def __ior__(self, values: Iterable[str]) -> IdSet:
        self.update(values)
        return self

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        number = _number(value)
        if number is None:
            return value in self._other
        return number in self._recent or self._in_sorted(number)

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent) + len(self._other)

    def __iter__(self) -> Iterator[str]:
        self._merge()
        yield from (f"{n:016x}" for n in self._sorted)
        yield from self._other

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdSet | set | frozenset):
            return set(self) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like set

    def __repr__(self) -> str:
        return f"IdSet({len(self)} ids)"

    def _in_sorted(self, number: int) -> bool:
        index = bisect_left(self._sorted, number)
        return index < len(self._sorted) and self._sorted[index] == number

    def _merge(self) -> None:
        if self._recent:
            # Two sorted runs: Timsort merges them in one pass, in C.
            self._sorted = array("Q", sorted(chain(self._sorted, sorted(self._recent))))
            self._recent = set()
