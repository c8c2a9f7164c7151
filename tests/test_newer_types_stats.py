"""stats on the encodings Kvrocks added after 2.10, and SELECT database numbers beside namespaces."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from stats_inspect_data import NS, Builder
from test_newer_types_data import HEAP_ITEMS, newer_database, write

from kvfix.analysis.stats import collect_stats
from kvfix.analysis.stats_model import StatsFilter
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.store.opening import open_read_only

NOW = 1_795_000_000_000


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "cluster"])
def newer(request, tmp_path_factory):
    return newer_database(tmp_path_factory.mktemp("newer-stats") / "db", cluster=request.param)


def _stats(path, **kw):
    with open_read_only(path) as db:
        return collect_stats(db, top_n=100, now_ms=NOW, **kw)


def test_hash_field_expiration_counts(newer):
    h = _stats(newer).namespaces[NS]["hash"]
    assert h.keys == 4 and h.records == 3 + 1 + 1 + 1
    assert h.detail == {"field_expiration_keys": 3, "fields_with_ttl": 2, "fields_expired": 1}


def test_timeseries_counts(newer):
    ts = _stats(newer).namespaces[NS]["timeseries"]
    assert ts.keys == 4 and ts.records == 2 + 2 + 1 + 1 + 1 + 1
    # ts: 2 chunks (3 samples), ts_noindex: 1 (1), ts_packed: 1 compressed (4 by its header).
    assert ts.detail == {"chunks": 4, "samples": 8, "chunks_compressed": 1, "labels": 3, "rules": 1}


def test_topk_counts(newer):
    r = _stats(newer)
    tk = r.namespaces[NS]["topk"]
    per_key = 3 + len(HEAP_ITEMS)
    assert tk.keys == 2 and tk.records == 2 * per_key and "unknown(14)" not in r.namespaces[NS]
    assert tk.detail == {"buckets_records": 2, "heap_records": 2, "heap_size_records": 2, "heap_item_records": 6}
    assert {t.key for t in r.top_by_records if t.type_name == "topk"} == {b"tk", b"tk16"}
    assert not any(f.code == "UNKNOWN_TYPE" for f in r.findings)
    assert _stats(newer, filters=StatsFilter(types=frozenset({"topk"}))).totals().keys == 2


def test_label_index_is_counted_per_namespace(newer):
    r = _stats(newer)
    assert r.label_index == {NS: [2, r.label_index[NS][1]]} and r.label_index_undecodable == 1
    assert {f.code for f in r.findings} == {"UNDECODABLE_INDEX_KEY"}
    assert _stats(newer, filters=StatsFilter(namespace=b"db3")).label_index == {}


def test_json_is_additive_and_names_databases(newer):
    res = run_cli("stats", newer, "--format", "json", "--top", "100")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == 1
    nss = doc["namespaces"]
    assert (nss["__namespace"]["database"], nss["db3"]["database"], nss["db01"]["database"]) == (0, 3, None)
    assert nss["__namespace"]["types"]["hash"]["detail"]["fields_expired"] == 1
    assert "detail" not in nss["db3"]["types"]["string"]
    assert nss["__namespace"]["total"]["detail"]["samples"] == 8
    top = {t["key"]: t for t in doc["top"]}
    assert top["in-db3"]["database"] == 3 and top["in-db01"]["database"] is None
    assert doc["label_index"]["__namespace"]["records"] == 2 and doc["label_index_undecodable"] == 1
    assert "sensor" not in res.stdout and "kitchen" not in res.stdout  # label names/values never shown


def test_tables_show_databases_and_details(newer):
    for fmt in ("plain", "markdown", "rich", "grid", "html"):
        res = run_cli("stats", newer, "--format", fmt)
        assert res.exit_code == 0, res.output
    assert "| database" in run_cli("stats", newer, "--format", "markdown").stdout
    res = run_cli("stats", newer, "--format", "plain")
    assert "Type details" in res.stdout and "fields_expired" in res.stdout
    assert "TimeSeries label index" in res.stdout


def test_no_database_column_without_db_namespaces(tmp_path):
    b = Builder()
    b.string(b"a", b"1")
    b.string(b"b", b"2", ns=b"tenant")
    res = run_cli("stats", write(b, tmp_path / "db"), "--format", "markdown")
    assert res.exit_code == 0 and "| database" not in res.stdout and "Type details" not in res.stdout


def test_undecoded_hash_encodings_are_counted_and_named(tmp_path):
    b = Builder()
    v = b.version()
    b.meta(b"pr2402", Metadata(KeyType.HASH, True, 0, v, 1, extra_flags=0x40))
    b.sub(b"pr2402", v, b"f", b"\x00" * 8 + b"v")
    v2 = b.version()
    b.meta(b"odd", Metadata(KeyType.HASH, True, 0, v2, 1, tail=b"\x07"))
    b.sub(b"odd", v2, b"f", b"v")
    r = _stats(write(b, tmp_path / "db"))
    h = r.namespaces[NS]["hash"]
    assert h.keys == 2 and h.records == 2 and h.detail == {"undecoded_keys": 2}
    assert {f.code for f in r.findings} == {"UNDECODED_HASH_ENCODING"}
