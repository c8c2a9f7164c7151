"""Errors that end a kvfix run with a one-line message and a documented exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130


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


class WriteRefused(KvfixError):
    """A write was not started: no confirmation, a conflict, or a failed precondition."""


class VerifyFailed(KvfixError):
    """A write went through but the re-read database does not show what was planned."""
