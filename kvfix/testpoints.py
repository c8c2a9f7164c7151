"""Points a test can stop a real kvfix process at, by progress rather than by time.

``KVFIX_TEST_STOP_AT=phase`` or ``phase:N`` (for example ``batch:3``): on reaching that
point the process stops itself (SIGSTOP); the test, waiting on it, then sends a signal,
fills the disk or takes the lock, and continues it (SIGCONT).  Unset, this costs one
comparison per point.
"""

from __future__ import annotations

import os
import signal

_AT = os.environ.get("KVFIX_TEST_STOP_AT")


def reached(phase: str, n: int | None = None) -> None:
    if _AT is not None and (phase == _AT or f"{phase}:{n}" == _AT):
        os.kill(os.getpid(), signal.SIGSTOP)
