"""Which RocksDB wrote a database, from its newest OPTIONS file, against the one kvfix links.

RocksDB reads files written by older releases; a newer writer may use formats an older
reader does not know (a newer SST format_version, MANIFEST or WAL records).  kvfix names
the writer's version when it is newer than its own, and never writes into such a
directory: what it wrote back would be read by that newer server with options and a
format it did not choose.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: The RocksDB inside the pinned rocksdict (pyproject: rocksdict==0.3.29).
KVFIX_ROCKSDB = (9, 8, 4)

_VERSION = re.compile(rb"^\s*rocksdb_version=(\d+)\.(\d+)\.(\d+)\s*$", re.M)


@dataclass(frozen=True)
class Writer:
    version: tuple[int, int, int]
    options_file: str

    @property
    def text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def newer_than_kvfix(self) -> bool:
        return self.version > KVFIX_ROCKSDB


def kvfix_rocksdb() -> str:
    return ".".join(map(str, KVFIX_ROCKSDB))


def writer_of(db_path: Path) -> Writer | None:
    """The version in the newest ``OPTIONS-<n>`` file, or None when there is none to read."""
    names = [n for n in os.listdir(db_path) if n.startswith("OPTIONS-") and n[8:].isdigit()]
    for name in sorted(names, key=lambda n: int(n[8:]), reverse=True):
        try:
            with open(db_path / name, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        m = _VERSION.search(head)
        if m:
            return Writer((int(m[1]), int(m[2]), int(m[3])), name)
    return None
