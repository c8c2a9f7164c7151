"""Helpers for the check tests: damage one value of a copy of a real fixture, read-write.

Everything goes through kvfix.store.opening.open_writable and the codec's encoders, the way a
buggy server (or a bad disk) would leave one counter or one record wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from conftest import run_cli

from kvfix.codec.keys import InternalKey, MetadataKey
from kvfix.codec.metadata import Metadata, decode_metadata
from kvfix.codec.stream import Classified, classify
from kvfix.store.database import Database
from kvfix.store.opening import open_writable

NS = b"__namespace"


def meta_key(key: bytes, ns: bytes = NS) -> bytes:
    return MetadataKey(ns, key).encode()


def read_meta(db: Database, key: bytes, ns: bytes = NS) -> Metadata:
    raw = db.get("metadata", meta_key(key, ns))
    assert raw is not None, key
    return decode_metadata(raw)


def put(db: Database, cf: str, key: bytes, value: bytes | None) -> None:
    db.write([(cf, key, value)])
    db.flush_all()


def records(db: Database, key: bytes, ns: bytes = NS) -> list[tuple[bytes, Classified]]:
    """(full key, classification) of every record of the live incarnation of a stream."""
    meta = read_meta(db, key, ns)
    prefix = InternalKey(ns, key, meta.version, b"").prefix()
    it = db.iterator("stream")
    it.seek(prefix)
    out = []
    while it.valid() and it.key().startswith(prefix):
        out.append((it.key(), classify(it.key()[len(prefix) :], it.value())))
        it.next()
    return out


def find(db: Database, key: bytes, role: str, pred: Callable[[Classified], bool] = lambda c: True, ns: bytes = NS):
    """The first record of a role (entry, group, consumer, pel) matching pred: (full key, Classified)."""
    for full, c in records(db, key, ns):
        if c.key is not None and c.key.kind.role == role and pred(c):
            return full, c
    raise AssertionError(f"no {role} record in {key!r}")


def set_meta(db: Database, key: bytes, ns: bytes = NS, **changes) -> None:
    """Rewrite a stream's metadata: size=... or stream tail fields (first_entry_id=...)."""
    meta = read_meta(db, key, ns)
    size = changes.pop("size", meta.size)
    tail = dataclasses.replace(meta.stream, **changes)
    put(db, "metadata", meta_key(key, ns), dataclasses.replace(meta, size=size, stream=tail).encode())


def set_value(db: Database, key: bytes, role: str, pred, **changes) -> None:
    """Rewrite one group/consumer/PEL value with the codec's encoder."""
    full, c = find(db, key, role, pred)
    put(db, "stream", full, dataclasses.replace(c.value, **changes).encode())


def damage(path: Path, fn: Callable[[Database], None]) -> None:
    with open_writable(path) as db:
        fn(db)


def check_json(path: Path, *args: str) -> tuple[int, dict]:
    res = run_cli("check", path, "--format", "json", *args)
    return res.exit_code, json.loads(res.stdout)


def codes(report: dict, min_severity: str = "info") -> set[str]:
    rank = {"info": 0, "warning": 1, "error": 2}
    return {f["code"] for f in report["findings"] if rank[f["severity"]] >= rank[min_severity]}


def repair(path: Path, *args: str) -> tuple[int, dict]:
    res = run_cli("check", path, "--repair", "--yes", "--no-backup", "--format", "json", *args)
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)
