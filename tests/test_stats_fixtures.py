"""stats against every real fixture: key counts per namespace and type equal the manifest's keyspace."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import FIXTURE_NAMES, manifest, run_cli, unpack

from kvfix.analysis.inspect import inspect_key
from kvfix.analysis.stats import collect_stats
from kvfix.analysis.stats_model import StatsFilter
from kvfix.store.opening import open_read_only


def _expected(name: str) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for ns, keys in manifest(name)["keyspace"].items():
        for entry in keys.values():
            out[(ns, entry["type"])] += 1
    return out


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("stats-fixtures")
    return {name: unpack(name, base) for name in FIXTURE_NAMES}


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_json_counts_equal_manifest_keyspace(unpacked, name):
    res = run_cli("stats", unpacked[name], "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == 1
    got = Counter()
    for ns, body in doc["namespaces"].items():
        for type_name, counts in body["types"].items():
            got[(ns, type_name)] += counts["keys"]
            assert counts["expired"] == 0 and counts["dead"] == 0
            assert set(counts) >= {"keys", "expired", "dead", "records", "bytes"}
    assert +got == _expected(name)
    assert doc["db"]["cluster_slots"] == manifest(name)["cluster"]
    # Every live key of the manifest is in the top list (there are fewer than 10 per namespace... or all of them).
    all_keys = {(ns, k) for ns, keys in manifest(name)["keyspace"].items() for k in keys}
    if len(all_keys) <= 10:
        assert {(t["namespace"], t["key"]) for t in doc["top"]} == all_keys
        assert {(t["namespace"], t["key"]) for t in doc["top_by_records"]} == all_keys
    for t in doc["top"]:
        assert set(t) >= {"namespace", "key", "key_hex", "type", "records", "bytes"}
        assert bytes.fromhex(t["key_hex"]).decode() == t["key"]
        assert t["type"] == manifest(name)["keyspace"][t["namespace"]][t["key"]]["type"]
    assert isinstance(doc["garbage"], dict)
    for body in doc["garbage"].values():
        assert set(body) >= {"records", "bytes"}


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_records_agree_with_manifest_and_inspect(unpacked, name):
    """Per key: records = hash fields, list items, set members, zset members twice; streams as inspect counts."""
    with open_read_only(unpacked[name]) as db:
        report = collect_stats(db, top_n=1000)
        ks = manifest(name)["keyspace"]
        assert len(report.top_by_records) == sum(len(keys) for keys in ks.values())
        for t in report.top_by_records:
            entry = ks[t.namespace.decode()][t.key.decode()]
            per_member = {"string": 0, "hash": 1, "list": 1, "set": 1, "zset": 2}.get(entry["type"])
            if per_member is not None:
                assert t.records == per_member * (len(entry["value"]) if per_member else 0)
            else:
                rep = inspect_key(db, t.key, namespace=t.namespace)
                assert rep is not None and t.records == sum(c.live for c in rep.counts.values())
                assert t.bytes == len(rep.raw_metadata_key) + len(rep.raw_metadata) + sum(
                    c.bytes for c in rep.counts.values()
                )


def test_namespace_and_type_filters(unpacked):
    with open_read_only(unpacked["legacy-namespaces"]) as db:
        only_a = collect_stats(db, filters=StatsFilter(namespace=b"tenant_a"))
        assert list(only_a.namespaces) == [b"tenant_a"]
        assert only_a.namespaces[b"tenant_a"]["stream"].keys == 1
        none = collect_stats(db, filters=StatsFilter(types=frozenset({"hash"})))
        assert none.totals().keys == 0 and none.top_by_bytes == []
    with open_read_only(unpacked["legacy-basic"]) as db:
        streams = collect_stats(db, filters=StatsFilter(types=frozenset({"stream"})))
        assert streams.totals().keys == 3 and set(streams.namespaces[b"__namespace"]) == {"stream"}
        matched = collect_stats(db, filters=StatsFilter(match=b"[ot]*"))  # orders, tags
        assert sorted(t.key for t in matched.top_by_bytes) == [b"orders", b"tags"]
        assert matched.totals().keys == 2


@pytest.mark.parametrize("fmt", ["rich", "plain", "markdown", "json", "grid"])
def test_every_format_runs(unpacked, fmt):
    res = run_cli("stats", unpacked["legacy-cluster"], "--format", fmt, "--top", "2")
    assert res.exit_code == 0, res.output
    assert "{u1}:events" in res.stdout.replace("\\{", "{").replace("\\}", "}")
