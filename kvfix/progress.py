"""Progress for long work: a rich bar on a terminal, nothing in pipes and CI."""

from __future__ import annotations

import os
import sys
from types import TracebackType


class Progress:
    """Silent by default; :func:`progress_for` returns a live one on a terminal."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def update(self, *, streams: int | None = None, records: int | None = None, total_streams: int | None = None) -> None:
        return None


class RichProgress(Progress):
    def __init__(self, description: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RP, TextColumn, TimeElapsedColumn

        self._bar = RP(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("streams · {task.fields[records]:,} records · {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(description, total=None, records=0, rate=0.0)

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def update(self, *, streams: int | None = None, records: int | None = None, total_streams: int | None = None) -> None:
        fields: dict[str, object] = {}
        if records is not None:
            elapsed = self._bar.tasks[0].elapsed or 0.0
            fields.update(records=records, rate=records / elapsed if elapsed > 0 else 0.0)
        self._bar.update(self._task, completed=streams, total=total_streams, **fields)


def wants_progress() -> bool:
    if os.environ.get("CI") or os.environ.get("KVFIX_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress_for(description: str, enabled: bool | None = None) -> Progress:
    if enabled is None:
        enabled = wants_progress()
    return RichProgress(description) if enabled else Progress()
