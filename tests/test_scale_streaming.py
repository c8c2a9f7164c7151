"""scan and check stream their reports: what the CLI writes one stream at a time equals what
the library builds from every stream kept, on fixtures and on shapes that cross the walk's
chunk boundaries (PEL runs of 10,000, dead versions on both sides of a live one, orphans).

The CLI's default scan counts PEL records without keeping them; the library keeps them:
both must give the same document (minus per-record arrays the default does not print).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURE_NAMES, run_cli, unpack
from test_scale_walk import adversarial_db

from kvfix.analysis.check import check_database
from kvfix.analysis.scan import scan_database
from kvfix.render.check_report import check_json
from kvfix.render.jsonout import dump
from kvfix.render.scan_report import scan_json
from kvfix.store.opening import open_read_only
from kvfix.synth import BulkSpec, bulk_load


def _library(path: Path, command: str, *, deep: bool = False, pretty: bool = False) -> str:
    import io

    out = io.StringIO()
    with open_read_only(path) as db:
        if command == "scan":
            doc = scan_json(scan_database(db, deep=deep), lazy=True, records=False)
        else:
            doc = check_json(check_database(db), records=False)
    dump(doc, out, pretty=pretty)
    return out.getvalue()


def _cli(path: Path, command: str, *args: str) -> str:
    result = run_cli(command, str(path), "--format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def _shapes(tmp: Path) -> list[Path]:
    paths = [adversarial_db(tmp / "adv", False), adversarial_db(tmp / "adv-cluster", True)]
    spec = BulkSpec(streams=3, entries=30_000, groups=3, consumers=2, pel=30_000, batch_records=100_000)
    bulk_load(tmp / "pel", spec)  # 10,000 PEL records a group: runs across chunks of 4,096
    bulk_load(tmp / "prefixed", BulkSpec(**{**spec.__dict__, "layout": "prefixed", "pel": 9_000}))
    return [*paths, tmp / "pel", tmp / "prefixed"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("shapes")
    fixtures = [unpack(name, tmp / name) for name in FIXTURE_NAMES]
    return fixtures + _shapes(tmp)


@pytest.mark.parametrize("pretty", [False, True])
def test_streamed_scan_json_equals_the_kept_one(shapes: list[Path], pretty: bool) -> None:
    for path in shapes:
        args = ("--pretty",) if pretty else ()
        assert _cli(path, "scan", *args) == _library(path, "scan", pretty=pretty), path
        assert _cli(path, "scan", "--deep", *args) == _library(path, "scan", deep=True, pretty=pretty), path


def test_streamed_check_json_equals_the_kept_one(shapes: list[Path]) -> None:
    for path in shapes:
        assert _cli(path, "check") == _library(path, "check"), path


def test_a_pel_counted_not_kept_sums_up_the_same(shapes: list[Path]) -> None:
    pel = next(p for p in shapes if p.name == "pel")
    doc = json.loads(_cli(pel, "scan"))
    groups = [g for s in doc["streams"] for g in s["groups"]]
    assert sum(g["pel_records"] for g in groups) == 3 * 30_000
    for g in groups:
        (bucket,) = [c for c in g["collisions"] if c["kind"] == "legacy_pel"]
        assert bucket["records"] == g["pel_records"] == 10_000
        assert bucket["first_alias_id"] == bucket["last_alias_id"]  # one group's PEL: one alias id
    with_pel = json.loads(_cli(pel, "scan", "--pel"))
    assert [len(g["pel"]) for s in with_pel["streams"] for g in s["groups"]] == [10_000] * 9


def _is_entry(key: bytes) -> bool:
    from kvfix.codec.keys import decode_internal_key
    from kvfix.codec.stream import EntryKey, subkey_readings

    sub = decode_internal_key(key, False).subkey
    return len(sub) == 16 and all(isinstance(k, EntryKey) for k in subkey_readings(sub))


def test_check_counting_pel_records_equals_check_keeping_them(
    shapes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check drops PEL records as it counts them (owners, entry lookups in batches during the
    walk, through a cache that fills up here); keeping them, it looks up each group's."""
    from check_helpers import damage, put

    import kvfix.analysis.check as check_module
    from kvfix.analysis.check import check_streams

    monkeypatch.setattr(check_module, "PROBE_CACHE", 1_000)
    monkeypatch.setattr(check_module, "PROBE_BATCH", 700)

    def both(path: Path) -> tuple[dict, dict]:
        docs = []
        for keep in (False, True):
            kept: list = []
            with open_read_only(path) as db:
                report = check_streams(db, kept.append, keep_pel=keep)
            report.streams = kept
            report.scan.streams = [sc.report for sc in kept]
            docs.append(json.loads(json.dumps(check_json(report, records=True, lazy=False))))
        return docs[0], docs[1]

    for path in shapes:
        dropped, kept = both(path)
        assert dropped == kept, path
    # a PEL whose entries were deleted (XDEL leaves PEL records behind): found either way
    pel = next(p for p in shapes if p.name == "pel")
    copy = tmp_path / "pel"
    import shutil

    shutil.copytree(pel, copy)
    with open_read_only(copy) as db:
        entry_keys = [k for chunk in db.chunks("stream") for k, _ in chunk if _is_entry(k)]
    gone = entry_keys[:50] + entry_keys[50:30_000:97]
    damage(copy, lambda db: [put(db, "stream", k, None) for k in gone])
    dropped, kept = both(copy)
    assert dropped == kept
    deleted = [f for f in dropped["findings"] if f["code"] == "PEL_ENTRY_DELETED"]
    assert sum(f["details"]["records"] for f in deleted) == len(gone)  # each entry in one group's PEL
    assert dropped["summary"]["errors"] > 0


def test_a_deep_scan_split_inside_a_stream_counts_dropped_pel_records_on_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's scan keeps no PEL record; a second process's half of a split stream must
    still add its PEL counts and collisions (and check's owners) to the first half's."""
    import kvfix.analysis.scan as scan_module
    from kvfix.analysis.walk import Half
    from kvfix.codec.ints import u64
    from kvfix.codec.keys import internal_prefix
    from kvfix.synth import BASE_VERSION, DEFAULT_NS

    bulk_load(tmp_path / "db", BulkSpec(streams=1, entries=6_000, groups=4, consumers=2, pel=6_000))
    one = _cli(tmp_path / "db", "scan", "--deep")
    with open_read_only(tmp_path / "db") as db:
        mkey = next(k for chunk in db.chunks("metadata") for k, _ in chunk)
        raw = internal_prefix(DEFAULT_NS, b"stream:00000", BASE_VERSION, None)
        run = [k for chunk in db.chunks("stream") for k, _ in chunk if k.startswith(raw + u64(9) + b"group-001")]
    assert len(run) > 1_000  # the group record, its consumers and its PEL records
    for inside in (raw + u64(9), run[len(run) // 2], raw + b"\xff" * 8):  # the middle of one group's PEL
        half = Half(mkey, True, inside)
        monkeypatch.setattr(scan_module, "_split_point", lambda *a, s=half, **k: s)
        assert _cli(tmp_path / "db", "scan", "--deep") == one, inside


def test_groups_whose_pels_overlap_share_lookups_through_a_full_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of one stream often name the same entries: a run of PEL records half looked up
    already, half not, when the cache is full, still finds every deleted entry."""
    import kvfix.analysis.check as check_module
    from kvfix.analysis.check import check_streams
    from kvfix.codec.metadata import StreamId
    from kvfix.codec.stream import LEGACY, ConsumerValue, PelValue
    from kvfix.synth import SynthDB, SynthStream, group_value

    monkeypatch.setattr(check_module, "PROBE_CACHE", 1_000)
    ids = [StreamId(1_795_775_557_000 + i, 0) for i in range(6_000)]
    gone = set(ids[::7])
    spans = {b"a": ids[:2_000], b"b": ids[:4_000], b"c": ids[1_000:6_000]}  # b half cached after a
    s = SynthStream(
        b"s",
        entries=[(i, (b"f", b"v")) for i in ids if i not in gone],
        groups=[(LEGACY, g, group_value(ids[-1], 1, len(span))) for g, span in spans.items()],
        consumers=[(LEGACY, g, b"c", ConsumerValue(len(span), 0, 0)) for g, span in spans.items()],
        pel=[(LEGACY, g, i, PelValue(0, 1, b"c")) for g, span in spans.items() for i in span],
        size=len(ids) - len(gone),
    )
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    for keep in (False, True):
        kept: list = []
        with open_read_only(path) as db:
            check_streams(db, kept.append, keep_pel=keep)
        (sc,) = kept
        found = {name: set(v) for (_, name), v in sc.facts.deleted_pel_ids.items()}
        assert found == {g: gone & set(span) for g, span in spans.items()}, keep


@pytest.mark.parametrize("layout", ["legacy", "prefixed"])
def test_small_streams_answer_pel_lookups_from_their_own_chunk(tmp_path: Path, layout: str) -> None:
    """A small stream comes in one chunk, its PEL records before (legacy) or after (prefixed)
    its entries: their entries are looked up in that chunk, deleted ones found, and ids
    outside the chunk's keys (below the first entry, above the last) go to the database."""
    from kvfix.analysis.check import check_streams
    from kvfix.codec.metadata import StreamId
    from kvfix.codec.stream import ConsumerValue, PelValue
    from kvfix.synth import SynthDB, SynthStream, group_value

    streams, expected = [], {}
    for s in range(6):
        ids = [StreamId(1_795_775_557_000 + 10 * i + s, s) for i in range(12)]
        gone = set(ids[s % 3 :: 4]) | {ids[0]} if s % 2 else set(ids[s % 3 :: 4])
        outside = [StreamId(5, 0), StreamId(1_895_775_557_000, 1)]  # never written: one each side
        pel_ids = ids[::2] + ids[1::3] + outside
        name = b"g%d" % s
        streams.append(
            SynthStream(
                b"s%d" % s,
                entries=[(i, (b"f", b"v")) for i in ids if i not in gone],
                groups=[(layout, name, group_value(ids[-1], 1, len(pel_ids)))],
                consumers=[(layout, name, b"c", ConsumerValue(len(pel_ids), 0, 0))],
                pel=[(layout, name, i, PelValue(0, 1, b"c")) for i in sorted(set(pel_ids))],
                size=len(ids) - len(gone),
            )
        )
        expected[b"s%d" % s] = sorted((gone & set(pel_ids)) | set(outside))
    path = SynthDB(streams=streams).write(tmp_path / "db")
    for keep in (False, True):
        kept: list = []
        with open_read_only(path) as db:
            check_streams(db, kept.append, keep_pel=keep)
        found = {sc.report.key: [i for v in sc.facts.deleted_pel_ids.values() for i in v] for sc in kept}
        assert found == expected, keep


def test_pretty_json_memory_does_not_grow_with_streams(tmp_path: Path) -> None:
    """json's indented encoder makes a reference cycle per call and walks pause the cyclic
    GC: --pretty held about 7 KB a stream until the walk's end (23 MB more here).  What
    grows now is the streams' findings, which wait in memory up to 8 MB (ElementSpool)."""
    import os
    import tracemalloc

    from kvfix.analysis.scan import scan_streams
    from kvfix.render.scan_report import ScanJsonWriter

    def peak(n: int) -> int:
        bulk_load(tmp_path / str(n), BulkSpec(streams=n, entries=3, groups=1, consumers=1, pel=1))
        tracemalloc.start()
        try:
            with open(os.devnull, "w") as out, open_read_only(tmp_path / str(n)) as db:
                writer = ScanJsonWriter(out, False, False, True)
                report = scan_streams(db, sink=writer, on_begin=writer.begin, keep_findings=20, workers=1)
                writer.finish(report)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    base = peak(300)
    assert peak(3_000) - base < 10_000_000


@pytest.mark.parametrize("every", [1, 3, 10])
def test_pel_lookups_by_range_read_answer_dense_and_sparse_pels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    """A run of PEL ids is answered by reading the keys between its first and last id, up to
    RANGE_KEYS keys per id; a sparse PEL's range is longer, so the ids past what was read go
    to point reads.  Every deleted entry is found either way."""
    import kvfix.analysis.check as check_module
    from kvfix.analysis.check import check_streams
    from kvfix.codec.metadata import StreamId
    from kvfix.codec.stream import LEGACY, PREFIXED, ConsumerValue, PelValue
    from kvfix.synth import SynthDB, SynthStream, group_value

    monkeypatch.setattr(check_module, "PROBE_BATCH", 500)
    ids = [StreamId(1_795_775_557_000 + i, i % 3) for i in range(6_000)]
    gone = set(ids[5::11])
    pel = ids[::every]
    streams = [
        SynthStream(
            b"s-" + layout.encode(),
            entries=[(i, (b"f", b"v")) for i in ids if i not in gone],
            groups=[(layout, b"g", group_value(ids[-1], 1, len(pel)))],
            consumers=[(layout, b"g", b"c", ConsumerValue(len(pel), 0, 0))],
            pel=[(layout, b"g", i, PelValue(0, 1, b"c")) for i in pel],
            size=len(ids) - len(gone),
        )
        for layout in (LEGACY, PREFIXED)
    ]
    path = SynthDB(streams=streams).write(tmp_path / "db")
    for keep in (False, True):
        kept: list = []
        with open_read_only(path) as db:
            check_streams(db, kept.append, keep_pel=keep)
        for sc in kept:
            assert sc.facts.deleted_pel_ids == {(sc.report.key[2:].decode(), b"g"): sorted(gone & set(pel))}, keep
