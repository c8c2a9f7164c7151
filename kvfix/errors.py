"""Errors that end a kvfix run with a one-line message and a documented exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_CANNOT_RUN = 2
#: Written, but not verified (interrupted or out of space after the last write): run again.
EXIT_UNVERIFIED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class KvfixError(Exception):
    """Could not run: the CLI prints ``kvfix: <message>`` and exits with ``exit_code``."""

    exit_code = EXIT_CANNOT_RUN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PathMissing(KvfixError):
    pass


class NotRocksDB(KvfixError):
    pass


class NotKvrocks(KvfixError):
    pass


class DatabaseLocked(KvfixError):
    pass


class Unreadable(KvfixError):
    pass


class ReadError(Unreadable):
    """A read RocksDB could not complete (checksum mismatch, missing or damaged file).

    Never a silent end of data: a report built on such a read would be partial.
    """


class WriteRefused(KvfixError):
    """A write was not started: no confirmation, a conflict, or a failed precondition."""


class BackupFailed(WriteRefused):
    """The backup could not be made or checked; nothing was written to the data directory."""


class WriteFailed(KvfixError):
    """A write failed part way (disk full, I/O error); the message says how far it got."""


class VerifyFailed(KvfixError):
    """A write went through but the re-read database does not show what was planned."""


class Unverified(KvfixError):
    """Every write went through but verification could not run; the next run verifies."""

    exit_code = EXIT_UNVERIFIED


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM outside a deferred section (SIGTERM behaves like Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunInterrupted(KvfixError):
    """A write run stopped by SIGINT or SIGTERM; the message says how far it got."""

    def __init__(self, message: str, signum: int | None) -> None:
        super().__init__(message)
        import signal

        self.exit_code = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
