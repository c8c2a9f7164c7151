"""SIGINT and SIGTERM: one behaviour for both (systemd, docker and kill stop with SIGTERM).

Outside a deferred section either raises :class:`~kvfix.errors.Interrupted`, so context
managers clean up (temporary directories, the lock, rocksdict's file).  Inside one (a
write batch, the flush) the signal is remembered and the writer stops at the next
safe point.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from kvfix.errors import Interrupted

NAMES: dict[int, str] = {int(signal.SIGINT): "SIGINT (Ctrl-C)", int(signal.SIGTERM): "SIGTERM"}


class Signals:
    def __init__(self) -> None:
        self.received: int | None = None
        self._deferring = 0

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Our handlers for the duration of one command (the previous ones come back after)."""
        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._handler)
        except ValueError:  # not the main thread (an embedding program): leave its handlers
            pass
        self.received = None
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.received = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._deferring:
            self.received = self.received or signum
            return
        raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside a deferred section: a part that a signal may cut short (a verification read)."""
        saved, self._deferring = self._deferring, 0
        try:
            yield
        finally:
            self._deferring = saved

    def raise_if_received(self) -> None:
        if self.received is not None:
            signum, self.received = self.received, None
            raise Interrupted(signum)

    def name(self) -> str:
        return NAMES.get(self.received or 0, "a signal")


SIGNALS = Signals()
