"""Reads that cannot lie: every iteration ends by asking RocksDB whether it ended cleanly.

rocksdict's ``items()`` simply stops at a block whose checksum fails, and an iterator
just turns invalid; only ``status()`` tells a damaged block from the end of the data.
Every reader here checks it when an iteration ends (and after every seek that lands
nowhere).  A failed read raises :class:`~kvfix.errors.ReadError`, or, in salvage mode,
is recorded and read as the end of that range, so the report can say it is partial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from kvfix.textsafe import show

Pair = tuple[bytes, bytes]
#: Turns RocksDB's status text and the key read last into a ReadError (or records it).
OnError = Callable[[str, str, bytes | None], bool]


def status_error(it: Any) -> str | None:
    """RocksDB's status of a finished iterator: None when it ended cleanly."""
    try:
        it.status()
    except Exception as exc:  # rocksdict raises a plain Exception carrying RocksDB's status text
        return " ".join(str(exc).split())
    return None


class CheckedIterator:
    """A seeking iterator whose ``valid()`` is False only at a clean end of data.

    ``key``, ``value``, ``next`` and the seeks are rocksdict's own bound methods (no
    wrapper per call); only ``valid`` is ours.
    """

    __slots__ = ("_cf", "_it", "_on_error", "key", "next", "prev", "seek", "seek_to_first", "seek_to_last", "value")

    def __init__(self, it: Any, cf: str, on_error: OnError) -> None:
        self._it = it
        self._cf = cf
        self._on_error = on_error
        self.key = it.key
        self.value = it.value
        self.next = it.next
        self.prev = it.prev
        self.seek = it.seek
        self.seek_to_first = it.seek_to_first
        self.seek_to_last = it.seek_to_last

    def valid(self) -> bool:
        if self._it.valid():
            return True
        error = status_error(self._it)
        if error is not None:
            self._on_error(self._cf, error, None)
        return False


def chunks(items: Iterator[Pair], size: int, end_check: Callable[[bytes | None], None]) -> Iterator[list[Pair]]:
    """Lists of up to ``size`` pairs to the end of ``items``; ``end_check`` runs at its end."""
    last: bytes | None = None
    while buf := list(islice(items, size)):
        last = buf[-1][0]
        yield buf
        if len(buf) < size:
            break
    end_check(last)


def range_chunks(
    items: Iterator[Pair], end: bytes, size: int, end_check: Callable[[bytes | None], None]
) -> Iterator[list[Pair]]:
    """Lists of the pairs below ``end``; reads at most one pair past it.

    A key compare per record rather than slices cut by bisection: a slice would read past
    the range's end as far as its own length.  Reaching ``end`` proves the range was read
    whole; running out of items first needs the end check.
    """
    last: bytes | None = None
    while True:
        buf: list[Pair] = []
        append = buf.append
        for kv in islice(items, size):
            if kv[0] >= end:
                if buf:
                    yield buf
                return
            append(kv)
        if buf:
            last = buf[-1][0]
            yield buf
        if len(buf) < size:
            end_check(last)
            return


def describe_failure(cf: str, error: str, after: bytes | None) -> str:
    where = f" after key {show(after)}" if after is not None else ""
    return f"column family {cf!r}{where}: {error}"
