"""stats on synthetic databases: every type, 32-bit records, expired/dead keys, garbage, unknown types, filters."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stats_inspect_data import HOSTILE_KEYS, NS, Builder, rich_database

from kvfix.analysis.glob import glob_regex
from kvfix.analysis.stats import collect_stats
from kvfix.analysis.stats_model import StatsFilter
from kvfix.store.opening import open_read_only


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "cluster"])
def rich(request, tmp_path_factory):
    return rich_database(tmp_path_factory.mktemp("rich") / "db", cluster=request.param), request.param


def test_counts_per_type(rich):
    path, cluster = rich
    with open_read_only(path) as db:
        r = collect_stats(db, top_n=100)
    assert r.cluster == cluster
    ns = r.namespaces[NS]
    assert (ns["string"].keys, ns["string"].expired, ns["string"].dead) == (3, 1, 0)
    assert (ns["string"].metadata_32bit, ns["string"].metadata_64bit) == (1, 3)
    assert (ns["hash"].keys, ns["hash"].expired, ns["hash"].dead) == (2 + len(HOSTILE_KEYS), 1, 1)
    assert ns["hash"].metadata_32bit == 1
    assert ns["hash"].records == 3 + 1 + 1 + len(HOSTILE_KEYS)  # h, h32, h_expired, hostile ones
    for name, records in [("set", 3), ("list", 4), ("zset", 8), ("bitmap", 2), ("sortedint", 3), ("MBbloom--", 1)]:
        assert (ns[name].keys, ns[name].records) == (1, records), name
    for name in ("ReJSON-RL", "hyperloglog", "TDIS-TYPE", "timeseries", "unknown(14)", "unknown(15)"):
        assert ns[name].keys == 1, name
    assert r.namespaces[b"tenant_a"]["string"].keys == 1
    assert r.namespaces[b"\x1b[31mns[red]"]["hash"].keys == 1
    assert {f.code for f in r.findings} == {"UNKNOWN_TYPE"}
    # Garbage: h's old version and the old hash under string s64 are dead-version; no-metadata is orphan.
    assert r.garbage["default"].dead_version_records == 2
    assert r.garbage["default"].orphan_records == 1
    assert r.garbage["stream"].orphan_records == 1
    assert "zset_score" not in r.garbage
    # propagate is counted, never decoded.
    assert r.cf_totals["propagate"][0] == 1


def test_top_n_is_exact(rich):
    path, _ = rich
    with open_read_only(path) as db:
        full = collect_stats(db, top_n=1000)
        top3 = collect_stats(db, top_n=3)
    assert [t.key for t in top3.top_by_bytes] == [t.key for t in full.top_by_bytes[:3]]
    assert [t.key for t in top3.top_by_records] == [t.key for t in full.top_by_records[:3]]
    assert top3.top_by_records[0].key == b"z" and top3.top_by_records[0].records == 8
    by_bytes = [t.bytes for t in full.top_by_bytes]
    assert by_bytes == sorted(by_bytes, reverse=True)
    keys = {(t.namespace, t.key) for t in full.top_by_bytes}
    assert (NS, b"s_expired") in keys and (NS, b"no-metadata") not in keys
    states = {t.key: t.state for t in full.top_by_bytes}
    assert states[b"s_expired"] == "expired" and states[b"h_expired"] == "expired" and states[b"z"] == "live"


def test_filters(rich):
    path, _ = rich
    with open_read_only(path) as db:
        r = collect_stats(db, filters=StatsFilter(namespace=b"tenant_a"))
        assert list(r.namespaces) == [b"tenant_a"] and r.garbage == {}
        r = collect_stats(db, filters=StatsFilter(types=frozenset({"zset", "list"})))
        assert set(r.namespaces[NS]) == {"zset", "list"}
        assert r.namespaces[NS]["zset"].records == 8
        r = collect_stats(db, filters=StatsFilter(match=b"h*", types=frozenset({"hash"})))
        assert set(r.namespaces[NS]) == {"hash"}
        assert r.namespaces[NS]["hash"].keys == 2  # h, h32 (h_dead dead, h_expired expired)
        assert r.garbage["default"].dead_version_records == 1  # only h's old version
        r = collect_stats(db, filters=StatsFilter(match=b"nul\x00*"))
        assert r.totals().keys == 1


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        (b"*", [b"", b"a\nb"], []),
        (b"h?llo", [b"hello", b"hallo"], [b"hllo", b"heello"]),
        (b"h[ae]llo", [b"hello", b"hallo"], [b"hillo"]),
        (b"h[^e]llo", [b"hallo"], [b"hello"]),
        (b"h[a-b]llo", [b"hallo", b"hbllo"], [b"hcllo"]),
        (b"\\*x", [b"*x"], [b"ax"]),
        (b"a.b", [b"a.b"], [b"axb"]),
        (b"\xff*", [b"\xff\x00"], [b"\xfe"]),
    ],
)
def test_glob(pattern, yes, no):
    rx = glob_regex(pattern)
    assert all(rx.match(k) for k in yes)
    assert not any(rx.match(k) for k in no)


def test_cli_json_shape(rich):
    path, _ = rich
    res = run_cli("stats", path, "--format", "json", "--top", "3", "--type", "hash", "--namespace", "__namespace")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == 1 and doc["filters"]["types"] == ["hash"]
    assert list(doc["namespaces"]) == ["__namespace"]
    assert set(doc["namespaces"]["__namespace"]["types"]) == {"hash"}
    assert len(doc["top"]) == 3 and all(t["type"] == "hash" for t in doc["top"])
    keys = {bytes.fromhex(t["key_hex"]) for t in doc["top"]}
    assert keys <= {b"h", *HOSTILE_KEYS, b"h32", b"h_expired", b"h_dead"}
    res = run_cli("stats", path, "--format", "json", "--match", "\\x1b*")
    doc = json.loads(res.stdout)
    assert doc["total"]["keys"] == 2 and doc["filters"]["match"] == "\\x1b*"


def test_hostile_names_never_reach_the_terminal(rich):
    path, _ = rich
    for fmt in ("rich", "plain", "markdown", "grid", "html"):
        res = run_cli("stats", path, "--format", fmt, "--top", "100")
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.stdout and "\x00" not in res.stdout and "\x07" not in res.stdout
    res = run_cli("stats", path, "--format", "plain", "--top", "100")
    assert "[red]markup[/red]" in res.stdout and "\\x1b[31mred" in res.stdout  # shown literally, escaped


def test_empty_and_32bit_only_database(tmp_path):
    b = Builder()
    b.hash(b"a", {b"f": b"v"}, is_64bit=False)
    b.string(b"b", b"x", is_64bit=False, expire_ms=1_000)
    path = b.db.write(tmp_path / "db")
    with open_read_only(path) as db:
        r = collect_stats(db, top_n=0)
    assert r.top_by_bytes == [] and r.namespaces[NS]["hash"].metadata_32bit == 1
    assert r.namespaces[NS]["string"].expired == 1
    empty = Builder().db.write(tmp_path / "empty")
    res = run_cli("stats", empty, "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["namespaces"] == {}


@settings(max_examples=200, deadline=None)
@example(n=1, keys={(b"ab", b"k"): 1, (b"ab\x00", b"k"): 1})  # a name that begins another wins its tie
@given(
    n=st.integers(0, 6),
    keys=st.dictionaries(st.tuples(st.binary(max_size=3), st.binary(max_size=3)), st.integers(0, 5), max_size=30),
)
def test_top_n_keeps_the_largest_smaller_names_first_on_ties(n, keys):
    """TopN, however the keys come: the n largest by the metric, ties to the smaller (namespace, key)."""
    from kvfix.analysis.stats_model import TopKey, TopN

    items = [TopKey(ns, key, "stream", records, 0, "live") for (ns, key), records in keys.items()]
    top = TopN(n, "records")
    for item in items:
        top.push(item)
    expected = sorted(items, key=lambda t: (-t.records, t.namespace, t.key))[:n]
    assert top.result() == expected
