"""migrate at any size: the plan is a bounded summary, and a large stream is never held whole.

A stream with more group records than ``HELD_RECORDS`` is summed up while it is read and
read again when its writes are shown or made; these tests lower the thresholds so a
small database takes that path, and check it gives the same plan, the same plan file
and the same database as the held path, conflicts and crashes included.
"""

from __future__ import annotations

import json

import pytest
from conftest import dump_all, run_cli, unpack
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue, PelKey, PelValue, encode_subkey
from kvfix.migrations import PlanOptions, for_target, layout_records
from kvfix.migrations.layout_records import StreamRecords, classify_chunk, record_hash
from kvfix.migrations.run import MigrationJob, execute
from kvfix.store.files import fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import resolve
from kvfix.synth import SynthDB, SynthStream, group_value

BASE = 1_795_775_557_000


def big_stream(key: bytes = b"big", pel: int = 600, layouts: tuple[str, ...] = ("legacy",)) -> SynthStream:
    """One stream whose groups hold ``pel`` PEL records each, in each of ``layouts``."""
    ids = [StreamId(BASE + i, 0) for i in range(pel)]
    s = SynthStream(key, entries=[(x, (b"f", b"v")) for x in ids])
    for layout in layouts:
        for g in (b"billing", b"audit"):
            s.groups.append((layout, g, group_value(ids[-1], consumers=1, pending=pel, entries_read=pel)))  # type: ignore[arg-type]
            s.consumers.append((layout, g, b"w1", ConsumerValue(pel, BASE, BASE)))  # type: ignore[arg-type]
            s.pel.extend((layout, g, x, PelValue(BASE, 1, b"w1")) for x in ids)  # type: ignore[misc]
    return s


def small_streams(n: int) -> list[SynthStream]:
    return [SynthStream(b"s%03d" % i, groups=[("legacy", b"g", group_value())]) for i in range(n)]


@pytest.fixture
def low_thresholds(monkeypatch):
    """Streams of more than 10 group records are read again; parts of 20 ops."""
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)


def _migrate(d, options: PlanOptions | None = None):
    """What ``kvfix migrate --yes --no-backup`` runs (library form): (plan, result)."""
    migration, options = for_target("prefixed"), options or PlanOptions()
    data = resolve(d)
    with HeldLock(data.db) as lock:
        files = fingerprint(data.db)
        with open_read_only(data, lock=lock) as db:
            plan = migration.plan(db, options)
        job = MigrationJob(migration, plan, options)
        return plan, execute(data, lock, job, planned_files=files, backup_to=None)


def test_a_plan_holds_no_stream_only_the_worst_few(tmp_path):
    d = SynthDB(streams=[*small_streams(60), big_stream()]).write(tmp_path / "db")
    migration = for_target("prefixed")
    seen = []
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions(), limit=3, on_stream=lambda sp: seen.append(sp.key))
    assert not hasattr(plan, "streams")
    assert plan.counts["streams_to_migrate"] == len(seen) == 61
    assert [line.key for line in plan.top] == [b"big", b"s000", b"s001"]  # the most rewrites first
    assert plan.top[0].rewrites == 2 * (600 + 2)
    assert plan.counts["rewrites"] == 60 + 2 * 602


def test_a_large_stream_is_summed_up_while_read_and_read_again_when_written(tmp_path, low_thresholds):
    d = SynthDB(streams=[big_stream(), *small_streams(3)]).write(tmp_path / "db")
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plans = {sp.key: sp for sp in migration.stream_plans(db, PlanOptions())}
        big = plans[b"big"]
        assert big.records.held is None and big.records.count == 1204  # not kept
        assert plans[b"s000"].records.held is not None  # a small stream is
        assert sum(1 for _ in big.rewrites()) == big.rewrite_count == 1204
        parts = list(big.parts(20))
    assert len(parts) > 100 and all(len(p) <= 20 for p in parts)
    *records, last = parts
    puts = [op for op in last if op[0] == "stream" and op[2] is not None]
    group_head = big.prefix + b"\xff" * 8 + b"\x01"
    assert len(puts) == 2 and all(op[1].startswith(group_head) for op in puts)  # the group records last
    assert all(op[1].startswith(big.prefix) for part in records for op in part)


def test_large_and_held_paths_write_the_same_database(tmp_path, monkeypatch):
    streams = [big_stream(), *small_streams(5)]
    held = SynthDB(streams=streams).write(tmp_path / "held")
    reread = SynthDB(streams=streams).write(tmp_path / "reread")
    plan_a, result_a = _migrate(held)
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)
    plan_b, result_b = _migrate(reread)
    assert result_a.verified and result_b.verified and result_b.applied.complete
    assert plan_a.writes_sha256 == plan_b.writes_sha256 and plan_a.counts == plan_b.counts
    a, b = dump_all(held), dump_all(reread)
    assert a["stream"] == b["stream"] and a["metadata"] == b["metadata"]


@pytest.mark.parametrize("keep", ["keep-prefixed", "keep-legacy"])
def test_a_large_conflict_drops_the_losing_side_read_again(tmp_path, monkeypatch, keep):
    """A group in both layouts with different records: the losing side is deleted record by record."""
    s = big_stream(pel=300, layouts=("legacy", "prefixed"))
    s.pel = [p for p in s.pel if not (p[0] == "prefixed" and p[2].ms % 2)]  # the prefixed side lost half its PEL
    held = SynthDB(streams=[s]).write(tmp_path / "held")
    reread = SynthDB(streams=[s]).write(tmp_path / "reread")
    options = PlanOptions(on_conflict=keep)  # type: ignore[arg-type]
    plan_a, result_a = _migrate(held, options)
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)
    plan_b, result_b = _migrate(reread, options)
    assert result_a.verified and result_b.verified, (result_a.problems, result_b.problems)
    assert plan_a.counts == plan_b.counts and plan_b.counts["conflicts"] == 2
    assert plan_b.counts["drops"] == (2 * 302 if keep == "keep-prefixed" else 2 * 152)
    assert dump_all(held)["stream"] == dump_all(reread)["stream"]
    [conflict, _] = plan_b.conflicts
    assert "pending entries: legacy=300 prefixed=150" in conflict.conflict.differences


def test_identical_sides_are_recognised_by_their_hashes(tmp_path, low_thresholds):
    s = big_stream(pel=50, layouts=("legacy", "prefixed"))
    d = SynthDB(streams=[s]).write(tmp_path / "db")
    plan, result = _migrate(d)  # --on-conflict refuse: identical sides are no conflict to refuse
    assert result.verified and plan.counts["unresolved_conflicts"] == 0
    assert [c.conflict.resolution for c in plan.conflicts] == ["identical", "identical"]
    assert plan.counts["drops"] == 2 * 52 and plan.counts["rewrites"] == 0


def test_plan_files_are_the_same_whichever_path_made_them(tmp_path, monkeypatch):
    d = SynthDB(streams=[big_stream(), *small_streams(3)]).write(tmp_path / "db")
    held, reread = tmp_path / "held.jsonl", tmp_path / "reread.jsonl"
    assert run_cli("migrate", d, "--dry-run", "--save-plan", held).exit_code == 0
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)
    assert run_cli("migrate", d, "--dry-run", "--save-plan", reread).exit_code == 0
    assert held.read_bytes() == reread.read_bytes()
    header, *lines = held.read_text().splitlines()
    summary = json.loads(header)["summary"]
    assert json.loads(header)["lines"] == len(lines) == 1204 + 3 + summary["metadata_updates"]
    applied = run_cli("migrate", d, "--plan", reread, "--yes", "--no-backup", "--format", "json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["result"]["verified"] is True


def test_records_listing_and_json_records_come_from_the_reread(tmp_path, low_thresholds):
    d = SynthDB(streams=[big_stream(pel=40)]).write(tmp_path / "db")
    text = run_cli("migrate", d, "--dry-run", "--records", "--format", "plain")
    assert text.exit_code == 0 and text.stdout.count(" legacy_pel ") == 80
    doc = json.loads(run_cli("migrate", d, "--dry-run", "--records", "--format", "json").stdout)
    [s] = doc["streams"]
    assert len(s["rewrites"]) == s["counts"]["rewrites"] == 2 * 42
    pretty = json.loads(run_cli("migrate", d, "--dry-run", "--records", "--format", "json", "--pretty").stdout)
    assert pretty == doc


def test_fixtures_plan_the_same_on_either_path(tmp_path, monkeypatch):
    for name in ("legacy-basic", "upgraded-mixed"):
        d = unpack(name, tmp_path / name)
        with open_read_only(d) as db:
            a = for_target("prefixed").plan(db, PlanOptions(on_conflict="keep-prefixed"))
        with monkeypatch.context() as m:
            m.setattr(layout_records, "HELD_RECORDS", 1)
            with open_read_only(d) as db:
                b = for_target("prefixed").plan(db, PlanOptions(on_conflict="keep-prefixed"))
        assert a == b


_METADATA = int.from_bytes(b"METADATA", "big")
_PEL_VALUES = st.sampled_from([PelValue(BASE, 1, b"w1").encode(), PelValue(0, 0, b"").encode(), b"\x00" * 5, b""])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["legacy", "prefixed"]),
            st.sampled_from([b"g", b"", b"gg", b"\x00\x00\x00\x00\x00\x00\x00\x00"]),
            st.sampled_from([0, 1, 2, 2**64 - 1]),
            st.sampled_from([0, 1, _METADATA]),  # ms 0 and seq "METADATA": an empty-named consumer too
            _PEL_VALUES,
        ),
        max_size=40,
    )
)
@example(
    [("legacy", b"g", 1, 0, PelValue(0, 0, b"").encode()), ("legacy", b"g", 0, _METADATA, PelValue(0, 0, b"").encode())]
)
def test_pel_runs_read_as_record_by_record(rows):
    """A chunk read with the PEL-run shortcut gives exactly the records, kinds, groups and
    side sums of reading it one record at a time (key order, as the walk reads it)."""
    prefix = b"\x05prefix"
    pairs = {
        prefix + encode_subkey(PelKey(layout, group, StreamId(ms, seq))): value  # type: ignore[arg-type]
        for layout, group, ms, seq, value in rows
    }
    for chunk in (sorted(pairs.items()), list(pairs.items())):  # key order, and any order
        _same_records_either_way(chunk, len(prefix), prefix)


def _same_records_either_way(chunk: list[tuple[bytes, bytes]], n: int, prefix: bytes) -> None:
    whole = classify_chunk(chunk, n, {})
    one_by_one = [classify_chunk([pair], n, {}) for pair in chunk]
    assert [(r.sub, r.value, r.kind, r.group) for r in whole.records] == [
        (r.sub, r.value, r.kind, r.group) for c in one_by_one for r in c.records
    ]
    assert whole.undecodable == sum(c.undecodable for c in one_by_one)
    assert whole.ambiguous == sum(c.ambiguous for c in one_by_one)
    sr = StreamRecords(None, prefix)  # type: ignore[arg-type]
    sr.add(whole.records)
    expected: dict[tuple[bytes, str], int] = {}
    for r in whole.records:
        key = (r.group, r.layout)
        expected[key] = (expected.get(key, 0) + record_hash(r.sub, r.kind, r.value)) % (1 << 128)
    assert {k: s.sum for k, s in sr.sides.items()} == expected


@pytest.mark.parametrize("to", ["prefixed", "legacy"])
def test_a_large_stream_last_in_the_family_with_no_entries(tmp_path, low_thresholds, monkeypatch, to):
    """Its region reads run to the end of the column family while its parts are written: the
    end-of-data check must see the database as the reads do, not the records just written."""
    from kvfix.migrations import run

    monkeypatch.setattr(run, "BATCH_RECORDS", 20)  # a synced batch per part
    s = big_stream(key=b"\xffzz-last", pel=300)
    s.entries = []  # nothing past the group records: the reads reach the family's end
    d = SynthDB(streams=[*small_streams(2), s]).write(tmp_path / "db")
    if to == "legacy":
        assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    res = run_cli("migrate", d, "--yes", "--no-backup", "--to", to, "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["result"]["verified"] is True
