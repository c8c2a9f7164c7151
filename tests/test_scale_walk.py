"""The default (fast) walk finds exactly what a full walk finds, and reads no entries.

The fast walk seeks over every subkey whose first u64 lies in (NAME_LIMIT, 2^64-1): only
plain entries can sit there.  These tests build adversarial databases (explicit small
entry ids, legacy groups of many name lengths whose alias ids fall between real entries,
entries at ms = 2^64-1 beside prefixed records, several namespaces, cluster slots, stale
versions of the same key) and compare the fast walk with the deep walk record by record,
and fast scan with deep scan report by report.  Counting, not timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfix.analysis.keyspace import survey_keyspace
from kvfix.analysis.scan import scan_database
from kvfix.analysis.walk import NAME_LIMIT, BadKey, Garbage, Visit, walk_keyspace
from kvfix.codec.ints import U64_MAX, read_u64
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue, EntryKey, PelValue, subkey_readings
from kvfix.render.scan_report import scan_json
from kvfix.store.opening import open_read_only
from kvfix.synth import BASE_VERSION, BulkSpec, SynthDB, SynthStream, bulk_load, group_value

NAMESPACES = (b"__namespace", b"tenant-a", b"t", b"\xffns")


def _adversarial_stream(key: bytes, namespace: bytes, seed: int, version: int = BASE_VERSION) -> SynthStream:
    s = SynthStream(key, namespace=namespace, version=version)
    item = (b"f", b"v")
    # explicit small ids 1-1 .. 5000-x: around every alias id a legacy record can take
    for ms in (*range(1, 80), 255, 256, 300, 1000, 4999, 5000):
        for seq in (0, 1, 2) if ms < 20 else (seed,):
            s.entries.append((StreamId(ms, seq), item))
    # the NAME_LIMIT boundary and XADD * timestamps beyond it
    for ms in (NAME_LIMIT - 1, NAME_LIMIT, NAME_LIMIT + 1, 1_700_000_000_000, 1_700_000_000_001):
        s.entries.append((StreamId(ms, seed), item))
    # entries at ms = 2^64-1, sorting among the prefixed records
    for seq in (0, 1, 2, U64_MAX):
        s.entries.append((StreamId(U64_MAX, seq), (b"max", b"ms")))
    # legacy groups of many name lengths: alias ids (len, next 8 bytes) between the entries
    names = [b"", b"a", b"g" * 7, b"g" * 8, b"grp-%d" % seed, b"x" * 17, b"y" * 79, b"z" * 300]
    for i, name in enumerate(names):
        s.groups.append(("legacy", name, group_value(StreamId(5, i), consumers=1, pending=1)))
        s.consumers.append(("legacy", name, b"c%d" % i, ConsumerValue(1, 10, 10)))
        s.consumers.append(("legacy", name, b"", ConsumerValue(0, 10, 0)))  # empty name: PEL-shaped too
        s.pel.append(("legacy", name, StreamId(1_700_000_000_000, seed), PelValue(10, 1, b"c%d" % i)))
    # prefixed records too (mixed layout, and a conflict with a legacy group)
    for name in (b"", b"grp-%d" % seed, b"p" * 40):
        s.groups.append(("prefixed", name, group_value(StreamId(7, 0))))
        s.consumers.append(("prefixed", name, b"pc", ConsumerValue(0, 1, 1)))
        s.pel.append(("prefixed", name, StreamId(3, 0), PelValue(1, 0, b"pc")))
    # records that fit nothing, in the regions the fast walk reads
    s.raw_records.append((b"\x00", b"short"))  # zero-padded alias 0: in the region the fast walk reads
    s.raw_records.append((b"\x00" * 8 + b"junk", b""))
    s.raw_records.append((b"\xff" * 8 + b"\x09junk", b"x"))
    s.raw_records.append((b"\x00" * 7 + b"\x05" + b"abc", b"bad value"))  # legacy-shaped, truncated
    return s


def adversarial_db(path: Path, cluster: bool) -> Path:
    synth = SynthDB(cluster=cluster)
    for n, ns in enumerate(NAMESPACES):
        for k in range(3):
            key = b"s%d{tag}" % k if k == 2 else b"s%d" % k
            # a stale incarnation first (older version: its records stay, metadata is replaced)
            synth.streams.append(_adversarial_stream(key, ns, seed=n * 10 + k, version=BASE_VERSION - 5))
            synth.streams.append(_adversarial_stream(key, ns, seed=n * 10 + k))
    # an orphan (no metadata): written raw under a prefix no metadata names
    orphan = SynthStream(b"orphan", namespace=b"tenant-a")
    orphan.entries.append((StreamId(1, 1), (b"a", b"b")))
    orphan.groups.append(("legacy", b"og", group_value()))
    from kvfix.codec.keys import InternalKey

    for sub, value in orphan.records():
        slot = synth.slot(orphan.key)
        synth.raw.append(
            ("stream", InternalKey(orphan.namespace, orphan.key, orphan.version, sub, slot).encode(), value)
        )
    return synth.write(path)


def _flat(db, cluster: bool, deep: bool) -> list:  # type: ignore[no-untyped-def]
    """The walk's events with each live stream's records as (subkey, value) pairs after its prefix."""
    out: list = []
    n = 0
    for x in walk_keyspace(db, survey_keyspace(db, cluster), deep):
        if isinstance(x, Visit):
            out.append(x.raw)
            n = len(x.raw)
        elif isinstance(x, list):
            out.extend((k[n:], v) for k, v in x)
        else:
            out.append(x)
    return out


def _walk(path: Path, cluster: bool, deep: bool) -> list:
    with open_read_only(path) as db:
        return _flat(db, cluster, deep)


def _is_prefix(x: object) -> bool:
    return isinstance(x, bytes)


def _skippable(sub: bytes, value: bytes) -> bool:
    """What only the deep walk may read: records at NAME_LIMIT < alias ms < 2^64-1 that no
    reading makes a group record (plain entries, or junk among the entries)."""
    if not NAME_LIMIT < read_u64(sub) < U64_MAX:
        return False
    return all(isinstance(k, EntryKey) for k in subkey_readings(sub))


@pytest.mark.parametrize("cluster", [False, True])
def test_fast_walk_reads_everything_but_plain_entries(tmp_path: Path, cluster: bool) -> None:
    path = adversarial_db(tmp_path / "db", cluster)
    fast = _walk(path, cluster, deep=False)
    deep = _walk(path, cluster, deep=True)
    assert [x for x in fast if _is_prefix(x)] == [x for x in deep if _is_prefix(x)]
    assert len([x for x in deep if _is_prefix(x)]) == len(NAMESPACES) * 3
    assert not any(isinstance(x, BadKey) for x in deep)
    # dead versions and the orphan: counted whole, the same in both walks
    garbage = [x for x in deep if isinstance(x, Garbage)]
    assert garbage == [x for x in fast if isinstance(x, Garbage)]
    assert sorted(g.owner for g in garbage) == ["orphan"] + ["stale"] * len(NAMESPACES) * 3
    # Same records per live prefix, except plain entries between NAME_LIMIT and 2^64-1.
    expected = [x for x in deep if not isinstance(x, tuple) or not _skippable(*x)]
    assert fast == expected
    skipped = len(deep) - len(fast)
    assert skipped == len(NAMESPACES) * 3 * 3  # NAME_LIMIT+1 and two timestamps, in every live prefix


@pytest.mark.parametrize("cluster", [False, True])
def test_fast_scan_finds_what_deep_scan_finds(tmp_path: Path, cluster: bool) -> None:
    path = adversarial_db(tmp_path / "db", cluster)
    with open_read_only(path) as db:
        fast = scan_json(scan_database(db, deep=False, now_ms=0), with_pel=True, records=True)
        deep = scan_json(scan_database(db, deep=True, now_ms=0), with_pel=True, records=True)
    assert fast["db"] == deep["db"]
    assert len(fast["streams"]) == len(NAMESPACES) * 3
    for fs, ds in zip(fast["streams"], deep["streams"], strict=True):
        fr, dr = fs.pop("records"), ds.pop("records")
        assert fs == ds  # groups, consumers, PEL, collisions, layout
        for k in fr:
            if k != "entry":
                assert fr[k] == dr[k], k
        assert fr["entry"] < dr["entry"]

    # Findings: identical (stale incarnations are counted record by record in both modes).
    assert fast["findings"] == deep["findings"]
    assert {f["code"] for f in deep["findings"]} >= {
        "LEGACY_LAYOUT",
        "SCAN_COLLISION",
        "MIXED_LAYOUT",
        "LAYOUT_CONFLICT",
        "AMBIGUOUS_RECORD",
        "UNDECODABLE_RECORD",
        "MAX_MS_ENTRY",
        "ROLLBACK_HAZARD",
        "STALE_RECORDS",
        "ORPHAN_RECORD",
    }
    assert fast["garbage"] == deep["garbage"]


def _records_read(path: Path) -> tuple[int, int]:
    with open_read_only(path) as db:
        items = _flat(db, False, deep=False)
    return sum(isinstance(x, tuple) for x in items), sum(_is_prefix(x) for x in items)


def test_fast_walk_reads_no_more_records_when_entries_grow(tmp_path: Path) -> None:
    spec = BulkSpec(streams=3, entries=1_000, groups=7, consumers=2, pel=50, batch_records=50_000)
    small = bulk_load(tmp_path / "small", spec)
    big = bulk_load(tmp_path / "big", BulkSpec(**{**spec.__dict__, "entries": 20_000}))
    assert big["entries"] == 20 * small["entries"]
    read_small, prefixes_small = _records_read(tmp_path / "small")
    read_big, prefixes_big = _records_read(tmp_path / "big")
    group_records = small["groups"] + small["consumers"] + small["pel"]
    assert prefixes_small == prefixes_big == 3
    assert read_small == read_big == group_records  # legacy records only, not one entry
    # and the deep walk does read them all
    with open_read_only(tmp_path / "big") as db:
        deep = sum(isinstance(x, tuple) for x in _flat(db, False, deep=True))
    assert deep == group_records + big["entries"]


def test_fast_walk_prefixed_layout_reads_only_group_records(tmp_path: Path) -> None:
    spec = BulkSpec(streams=2, entries=5_000, groups=3, consumers=1, pel=9, layout="prefixed")
    counts = bulk_load(tmp_path / "db", spec)
    read, _ = _records_read(tmp_path / "db")
    assert read == counts["groups"] + counts["consumers"] + counts["pel"]
    with open_read_only(tmp_path / "db") as db:
        fast = scan_database(db, deep=False, now_ms=0)
        deep = scan_database(db, deep=True, now_ms=0)
    assert fast.summary()["records_prefixed_pel"] == deep.summary()["records_prefixed_pel"] == 18
    assert deep.summary()["records_entry"] == 10_000
    assert fast.summary()["records_entry"] == 0


def test_junk_among_entries_is_found_by_deep_only(tmp_path: Path) -> None:
    """The documented limit of the fast walk: a record that is no group record in any reading
    and sits among the entries (alias ms above NAME_LIMIT) is seen by --deep only."""
    s = SynthStream(b"s")
    s.entries = [(StreamId(1_700_000_000_000 + i, 0), (b"f", b"v")) for i in range(10)]
    s.raw_records.append((b"\x00\x01", b"short"))  # zero-padded alias 2^48
    s.raw_records.append((StreamId(1_700_000_000_003, 1).encode(), b"\x05ab"))  # entry with a bad value
    s.groups.append(("legacy", b"g", group_value()))
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    with open_read_only(path) as db:
        fast = scan_database(db, deep=False, now_ms=0).summary()
        deep = scan_database(db, deep=True, now_ms=0).summary()
    assert fast["records_legacy_group"] == deep["records_legacy_group"] == 1
    assert (fast["records_unknown"], deep["records_unknown"]) == (0, 2)
