"""check --salvage over a damaged entry block: RocksDB fails a whole MultiGet when one key's
read fails, so the batch is read again key by key; an entry that cannot be read is no
answer (a read error), never a deleted entry (PEL_ENTRY_DELETED)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfix.analysis.check import check_database
from kvfix.codec.keys import internal_prefix
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import LEGACY, ConsumerValue, PelValue
from kvfix.errors import ReadError
from kvfix.store.opening import open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value

T = 1_795_775_557_000
N = 3_000


def _value(i: int) -> bytes:
    return b"entry-%06d:" % i + bytes((i * 7 + k * 13) % 251 for k in range(150))


def _sst(db: Path) -> Path:
    ssts = sorted(db.glob("*.sst"), key=lambda p: p.stat().st_size)
    return ssts[-1]  # the stream family's file: by far the largest


def _damaged(tmp_path: Path) -> Path:
    """One stream of N entries, a legacy PEL naming each, four bytes flipped in one entry block."""
    ids = [StreamId(T + i, 0) for i in range(N)]
    s = SynthStream(
        b"s",
        entries=[(x, (b"f", _value(i))) for i, x in enumerate(ids)],
        groups=[(LEGACY, b"g", group_value(ids[-1], 1, N))],
        consumers=[(LEGACY, b"g", b"c", ConsumerValue(N, T, T))],
        pel=[(LEGACY, b"g", x, PelValue(T, 1, b"c")) for x in ids],  # legacy PEL: read before the entries
    )
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    sst = _sst(path)
    data = bytearray(sst.read_bytes())
    at = data.find(b"entry-%06d:" % 2_000)
    assert at > 0, "values are stored uncompressed here"
    for k in range(at, at + 4):  # one bad data block among the entries' ~200
        data[k] ^= 0xFF
    sst.write_bytes(bytes(data))
    return path


def test_salvage_does_not_report_readable_entries_as_deleted(tmp_path: Path) -> None:
    path = _damaged(tmp_path)
    with open_read_only(path, salvage=True) as db:
        report = check_database(db)
        assert db.read_errors  # the damage is met: a partial report
        (sc,) = report.streams
        reported = [i for v in sc.facts.deleted_pel_ids.values() for i in v]
        rep = sc.report
        prefix = internal_prefix(rep.namespace, rep.key, rep.version, rep.slot)
        readable = [i for i in reported if db.get("stream", prefix + i.encode()) is not None]
    assert readable == [], f"{len(readable)} of {len(reported)} reported-deleted entries read back fine"
    assert reported == []  # none was deleted: the damaged block's entries are unreadable, not gone
    assert rep.records["entry"] < N  # the walk lost the damaged block's entries too (partial)


def test_without_salvage_a_failed_batch_read_stops_check(tmp_path: Path) -> None:
    path = _damaged(tmp_path)
    with open_read_only(path) as db, pytest.raises(ReadError):
        check_database(db)
