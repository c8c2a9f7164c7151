"""One invariant at a time: damage ONE counter or record of a copy of a real fixture.

check must name the specific code and exit 1; ``--repair`` must bring the stream back to
no invariant finding (scan-level layout findings stay), and a second repair plans nothing.
"""

from __future__ import annotations

import json

import pytest
from check_helpers import NS, check_json, codes, damage, find, put, read_meta, repair, set_meta, set_value
from conftest import run_cli, unpack

from kvfix.analysis.invariants import CHECK_CODES
from kvfix.codec.keys import InternalKey
from kvfix.codec.metadata import StreamId

ORDERS = b"orders"


def _billing(c) -> bool:
    return c.key.group == b"billing"


def _consumer(name: bytes):
    return lambda c: c.key.group == b"billing" and c.key.consumer == name


def _size(db):
    set_meta(db, ORDERS, size=7)


def _first(db):
    m = read_meta(db, ORDERS)
    set_meta(db, ORDERS, first_entry_id=StreamId(m.stream.first_entry_id.ms, 9))


def _last(db):
    set_meta(db, ORDERS, last_entry_id=StreamId(1, 1))


def _lgid_low(db):
    set_meta(db, ORDERS, last_generated_id=read_meta(db, ORDERS).stream.first_entry_id)


def _max_deleted_high(db):
    lg = read_meta(db, ORDERS).stream.last_generated_id
    set_meta(db, ORDERS, max_deleted_entry_id=StreamId(lg.ms + 10, 0))


def _group_number(db):
    set_meta(db, ORDERS, group_number=3)


def _consumer_number(db):
    set_value(db, ORDERS, "group", _billing, consumer_number=5)


def _group_pending(db):
    set_value(db, ORDERS, "group", _billing, pending_number=4)


def _last_delivered_ahead(db):
    lg = read_meta(db, ORDERS).stream.last_generated_id
    set_value(db, ORDERS, "group", lambda c: c.key.group == b"audit", last_delivered_id=StreamId(lg.ms + 1000, 0))


def _consumer_pending(db):
    set_value(db, ORDERS, "consumer", _consumer(b"worker-2"), pending_number=3)


def _pel_owner(db):
    set_value(db, ORDERS, "pel", _billing, consumer=b"ghost")


def _consumer_value_short(db):
    full, c = find(db, ORDERS, "consumer", _consumer(b"worker-1"))
    put(db, "stream", full, c.value.encode()[:23])


DAMAGES = {
    "STREAM_SIZE_MISMATCH": _size,
    "STREAM_FIRST_ID_MISMATCH": _first,
    "STREAM_LAST_ID_MISMATCH": _last,
    "STREAM_ID_ORDER": _lgid_low,
    "STREAM_ID_ORDER/max_deleted": _max_deleted_high,
    "GROUP_COUNT_MISMATCH": _group_number,
    "GROUP_CONSUMER_COUNT_MISMATCH": _consumer_number,
    "GROUP_PENDING_MISMATCH": _group_pending,
    "GROUP_LAST_ID_AHEAD": _last_delivered_ahead,
    "CONSUMER_PENDING_MISMATCH": _consumer_pending,
    "PEL_OWNER_MISSING": _pel_owner,
    "BAD_VALUE_LENGTH": _consumer_value_short,
}


@pytest.mark.parametrize("fixture", ["prefixed-basic", "legacy-basic"])
@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damage_found_and_repaired(tmp_path, fixture, case):
    path = unpack(fixture, tmp_path)
    _, clean = check_json(path, "--fail-on", "error")
    damage(path, DAMAGES[case])
    code, report = check_json(path, "--fail-on", "error")
    expected = case.split("/")[0]
    assert code == 1
    mine = [f for f in report["findings"] if f["code"] == expected]
    assert mine and all(f["key"] == "orders" and f["severity"] == "error" for f in mine)
    assert all("expected" in f["details"] and "found" in f["details"] for f in mine)

    rc, repaired = repair(path, "--fail-on", "error")
    assert repaired["repair"]["written_streams"] == 1
    assert repaired["repair"]["planned"][0]["writes"]
    assert not codes(repaired) & set(CHECK_CODES)
    code, after = check_json(path, "--fail-on", "error")
    assert not codes(after) & set(CHECK_CODES)
    assert codes(after) == codes(clean)  # the scan-level findings the real data had, no more
    assert code == rc == (1 if fixture == "legacy-basic" else 0)  # legacy: SCAN_COLLISION stays
    _, again = repair(path, "--dry-run")
    assert again["repair"]["planned"] == []


def test_pel_owner_repair_creates_the_consumer(tmp_path):
    path = unpack("prefixed-basic", tmp_path)
    damage(path, _pel_owner)
    _, report = check_json(path)
    assert {"PEL_OWNER_MISSING", "CONSUMER_PENDING_MISMATCH"} <= codes(report)
    repair(path)
    with_ghost = []
    damage(path, lambda db: with_ghost.append(find(db, ORDERS, "consumer", _consumer(b"ghost"))[1].value))
    assert with_ghost[0].pending_number == 1


def test_deleted_pending_entry_is_info_and_stays(tmp_path):
    """XDEL of a pending entry: Redis keeps the PEL record too; repair fixes size, keeps the PEL."""
    path = unpack("prefixed-basic", tmp_path)
    pel_id = []

    def drop_entry(db):
        _, c = find(db, ORDERS, "pel", _billing)
        pel_id.append(c.key.entry_id)
        version = read_meta(db, ORDERS).version
        put(db, "stream", InternalKey(NS, ORDERS, version, c.key.entry_id.encode()).encode(), None)

    damage(path, drop_entry)
    code, report = check_json(path)
    deleted = [f for f in report["findings"] if f["code"] == "PEL_ENTRY_DELETED"]
    assert [f["severity"] for f in deleted] == ["info"]
    assert deleted[0]["details"]["ids"] == [str(pel_id[0])]
    assert "STREAM_SIZE_MISMATCH" in codes(report) and code == 1
    rc, after = repair(path)
    assert rc == 0
    assert codes(after) & set(CHECK_CODES) == {"PEL_ENTRY_DELETED"}
    assert [s["size"] for s in after["streams"] if s["key"] == "orders"] == [5]


def test_bad_entry_value_is_reported_not_repaired(tmp_path):
    path = unpack("prefixed-basic", tmp_path)

    def garble(db):
        full, _ = find(db, ORDERS, "entry")
        put(db, "stream", full, b"\x05ab")  # varint says 5 bytes, 2 follow

    damage(path, garble)
    code, report = check_json(path)
    assert code == 1
    bad = [f for f in report["findings"] if f["code"] == "BAD_VALUE_LENGTH"]
    assert len(bad) == 1 and bad[0]["details"]["kind"] == "entry"
    assert "STREAM_SIZE_MISMATCH" not in codes(report)  # the entry exists; only its value is bad
    rc, after = repair(path)
    assert rc == 1 and "BAD_VALUE_LENGTH" in codes(after)
    [plan] = after["repair"]["planned"]
    assert plan["writes"] == [] and "restore it from a backup" in plan["unrepairable"][0]
    assert after["repair"]["written_streams"] == 0


def test_stale_and_orphan_records_counted_with_bytes(tmp_path):
    path = unpack("prefixed-basic", tmp_path)

    keys: list[bytes] = []

    def add_garbage(db):
        version = read_meta(db, ORDERS).version
        keys.append(InternalKey(NS, ORDERS, version - 1, StreamId(5, 0).encode()).encode())
        keys.append(InternalKey(NS, b"gone", 7, StreamId(6, 0).encode()).encode())
        for key in keys:
            put(db, "stream", key, b"\x01a\x01b")

    damage(path, add_garbage)
    _, report = check_json(path)
    assert {"STALE_RECORDS", "ORPHAN_RECORD"} <= codes(report)
    garbage = report["garbage"]
    stale, orphan = len(keys[0]) + 4, len(keys[1]) + 4  # whole key + value, as stats counts them
    assert garbage["stale"] == {"records": 1, "bytes": stale}
    assert garbage["orphan"] == {"records": 1, "bytes": orphan}
    assert report["summary"]["stale_bytes"] == stale and report["summary"]["orphan_bytes"] == orphan
    stats = run_cli("stats", path, "--format", "json")
    assert stats.exit_code == 0, stats.output
    counted = json.loads(stats.stdout)["garbage"]["stream"]  # stats and check count alike
    assert counted["dead_version"] == garbage["stale"] and counted["orphan"] == garbage["orphan"]
