"""inspect on the encodings Kvrocks added after 2.10: hash field expiration, TimeSeries, TopK."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from stats_inspect_data import FUTURE_MS, PAST_MS, Builder
from test_newer_types_data import AVG_RULE, HEAP_ITEMS, TOPK, TS_CHUNKS, TS_LABELS, newer_database, write

from kvfix.analysis.inspect import inspect_key
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.store.opening import open_read_only

NOW = 1_795_000_000_000


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "cluster"])
def newer(request, tmp_path_factory):
    return newer_database(tmp_path_factory.mktemp("newer") / "db", cluster=request.param)


def _inspect(path, key, **kw):
    with open_read_only(path) as db:
        return inspect_key(db, key, now_ms=NOW, **kw)


def test_hash_field_expiration_is_decoded(newer):
    rep = _inspect(newer, b"hfe")
    assert rep.problems == [] and rep.state == "live"
    assert rep.tail.persist == 1 and (rep.tail.lower, rep.tail.upper) == (PAST_MS, FUTURE_MS)
    fields = {r.data["field"]: r.data for r in rep.records}
    assert all(r.kind == "field" for r in rep.records) and rep.counts["default"].undecoded == 0
    assert fields[b"p"]["expire_ms"] is None and not fields[b"p"]["expired"]
    assert fields[b"live"]["expire_ms"] == FUTURE_MS and not fields[b"live"]["expired"]
    assert fields[b"gone"]["expired"] and fields[b"gone"]["value"] == b"earlier"
    # value is what HGETALL answers: the expired field is left out.
    assert rep.value == {b"p": b"persistent", b"live": b"later"}
    assert any("1 of them expired" in n for n in rep.notes)


def test_hash_field_expiration_cross_checks(newer):
    bad = _inspect(newer, b"hfe_bad_persist")
    assert any("persist 0 but 1" in p for p in bad.problems)
    stale = _inspect(newer, b"hfe_stale_size")
    assert stale.problems == [] and any("HLEN REPAIR" in n for n in stale.notes)
    assert _inspect(newer, b"plain").value == {b"f": b"v"}


def test_hash_field_expiration_json(newer):
    res = run_cli("inspect", newer, "hfe", "--format", "json", "--raw")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    tail = doc["metadata"]["tail"]
    assert tail["mode"] == 1 and tail["persist"] == 1 and tail["upper_at"].startswith("2100-01-01")
    live = next(r for r in doc["records"] if r["field"] == "live")
    assert live["kind"] == "field" and live["expire_ms"] == FUTURE_MS and live["expire_at"].startswith("2100")
    assert bytes.fromhex(live["raw_value_hex"])[8:] == b"later"
    assert doc["value"] == {"p": "persistent", "live": "later"}


def test_timeseries_is_decoded(newer):
    rep = _inspect(newer, b"ts")
    assert rep.problems == []
    assert rep.value == {"chunks": 2, "samples": 3, "labels": TS_LABELS, "rules": [b"ts_avg"]}
    chunks = [r for r in rep.records if r.kind == "chunk"]
    assert [r.data["chunk_id"] for r in chunks] == sorted(TS_CHUNKS)
    assert [tuple(s) for r in chunks for s in r.data["samples"]] == [s for v in TS_CHUNKS.values() for s in v]
    rule = next(r for r in rep.records if r.kind == "downstream")
    assert rule.data["aggregator"] == "avg" and rule.data["bucket_duration"] == AVG_RULE.bucket_duration
    assert rule.data["u64_auxs"] == [2] and rule.data["f64_auxs"] == [5.75]
    assert any("label index: all 2 labels" in n for n in rep.notes)
    assert _inspect(newer, b"ts_avg").tail.source_key == b"ts"


def test_timeseries_problems_and_raw_chunks(newer):
    noindex = _inspect(newer, b"ts_noindex")
    assert any("no entry in the index column family" in p for p in noindex.problems)
    packed = _inspect(newer, b"ts_packed")
    assert packed.records[0].data["compressed"] and packed.records[0].data["samples"] == []
    assert any("compressed timeseries chunks" in n for n in packed.notes)
    res = run_cli("inspect", newer, "ts", "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["metadata"]["tail"]["duplicate_policy_name"] == "last"
    assert {r["kind"] for r in doc["records"]} == {"chunk", "label", "downstream"}
    assert doc["value"]["labels"] == {"sensor": "a-1", "room": "kitchen"}


def test_topk_is_recognised_and_classified(newer):
    rep = _inspect(newer, b"tk")
    assert rep.metadata.type_name == "topk" and rep.metadata.known_type and rep.state == "live"
    assert rep.tail == TOPK and rep.problems == []
    kinds = [r.kind for r in rep.records]
    assert kinds.count("topk_heap_item") == len(HEAP_ITEMS) and "topk_buckets" in kinds
    assert next(r for r in rep.records if r.kind == "topk_heap_size").data["number"] == 3
    assert _inspect(newer, b"tk16").tail.width_bits == 16
    for fmt in ("json", "plain"):
        res = run_cli("inspect", newer, "tk", "--format", fmt)
        assert res.exit_code == 0 and "topk" in res.stdout


def test_undecodable_records_are_named_not_misdecoded(tmp_path):
    b = Builder()
    v = b.version()
    b.meta(b"ts_bad", Metadata(KeyType.TIMESERIES, True, 0, v, 1, tail=b"\x00" * 30))
    b.sub(b"ts_bad", v, b"\x00" + b"\x00" * 8, b"\x00\x00\x00\x00\x00\x00\x00\x05short")
    b.sub(b"ts_bad", v, b"\x09odd", b"")
    v2 = b.version()
    b.meta(b"hfe_short", Metadata(KeyType.HASH, True, 0, v2, 1, tail=b"\x01" + b"\x00" * 24))
    b.sub(b"hfe_short", v2, b"f", b"1234")  # shorter than the 8-byte expiry prefix
    path = write(b, tmp_path / "db")
    rep = _inspect(path, b"ts_bad")
    assert [r.kind for r in rep.records] == ["undecodable", "undecodable"]
    assert any("5 sample bytes" in p for p in rep.problems) and any("type 9" in p for p in rep.problems)
    short = _inspect(path, b"hfe_short")
    assert short.records[0].kind == "undecodable" and short.problems
