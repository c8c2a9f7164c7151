"""Bounded collections for reports over any number of streams: the first N in some order."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class TopRows(Generic[T]):
    """The rows of the first ``limit`` items in key order (all with limit 0), offered one by one.

    A bounded heap: an item's row is built only if its key makes the cut so far, so a
    million streams cost a comparison each and ``limit`` rows.  Keys are tuples of ints,
    unique per item (they end with the item's position).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.offered = 0
        self._heap: list[tuple[tuple[int, ...], tuple[int, ...], T]] = []

    def wants(self, key: tuple[int, ...]) -> bool:
        """An item with this key would be kept (then call :meth:`add`)."""
        return self.limit == 0 or len(self._heap) < self.limit or tuple(-k for k in key) > self._heap[0][0]

    def offer(self, key: tuple[int, ...], row: Callable[[], T]) -> None:
        self.offered += 1
        if self.wants(key):
            self._keep(key, row())

    def absorb(self, later: TopRows[T]) -> None:
        """Take in another one's kept rows (their keys unique among ours: a second process's)."""
        for _, key, row in later._heap:
            if self.wants(key):
                self._keep(key, row)
        self.offered += later.offered

    def _keep(self, key: tuple[int, ...], row: T) -> None:
        entry = (tuple(-k for k in key), key, row)
        if self.limit and len(self._heap) >= self.limit:
            heapq.heapreplace(self._heap, entry)
        else:
            heapq.heappush(self._heap, entry)

    def rows(self) -> list[T]:
        return [row for _, _, row in sorted(self._heap, key=lambda e: e[1])]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last one shorter), in order; nothing for no items."""
    part: list[T] = []
    for item in items:
        part.append(item)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part
