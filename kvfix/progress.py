"""Progress for long work: a rich bar on a terminal, nothing in pipes and CI."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType


class Progress:
    """Silent by default; :func:`progress_for` returns a live one on a terminal."""

    live = False
    #: What the bar says it is doing (the current phase's description).
    description = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def update(
        self, *, streams: int | None = None, records: int | None = None, total_streams: int | None = None
    ) -> None:
        return None

    def phase(self, description: str) -> None:
        """Start the next phase of the same work (planning, writing, verifying): counts from zero."""
        return None


class RichProgress(Progress):
    live = True

    def __init__(self, description: str, stderr: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RP

        self._bar = RP(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("streams · {task.fields[records]:,} records · {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            console=Console(stderr=stderr),
            transient=True,
        )
        self._task = self._bar.add_task(description, total=None, records=0, rate=0.0)
        self.description = description

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def phase(self, description: str) -> None:
        self._bar.reset(self._task, description=description, total=None, records=0, rate=0.0)
        self.description = description

    def update(
        self, *, streams: int | None = None, records: int | None = None, total_streams: int | None = None
    ) -> None:
        if records is None:
            self._bar.update(self._task, completed=streams, total=total_streams)
            return
        elapsed = self._bar.tasks[0].elapsed or 0.0
        rate = records / elapsed if elapsed > 0 else 0.0
        self._bar.update(self._task, completed=streams, total=total_streams, records=records, rate=rate)


def wants_progress() -> bool:
    """A terminal on stderr or stdout, and neither CI nor KVFIX_NO_PROGRESS set."""
    if os.environ.get("CI") or os.environ.get("KVFIX_NO_PROGRESS"):
        return False
    return sys.stderr.isatty() or sys.stdout.isatty()


def progress_for(description: str, enabled: bool | None = None) -> Progress:
    """The bar goes to stderr when that is a terminal, else to stdout (transient: it is
    erased before the command prints its report there)."""
    if enabled is None:
        enabled = wants_progress()
    return RichProgress(description, stderr=sys.stderr.isatty() or not sys.stdout.isatty()) if enabled else Progress()


class Ticker:
    """Calls progress.update at most every ``interval`` seconds; free when progress is silent.

    Walks call it per chunk or per stream, so a bar never costs a per-record call.
    """

    __slots__ = ("interval", "next", "progress", "total")

    def __init__(self, progress: Progress, total: int | None, interval: float = 0.1) -> None:
        self.progress = progress if progress.live else None
        self.total = total
        self.interval = interval
        self.next = 0.0

    def __call__(self, streams: int, records: int) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.interval
            self.progress.update(streams=streams, records=records, total_streams=self.total)
