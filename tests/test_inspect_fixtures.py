"""inspect of every key of every real fixture agrees with what the server answered (manifest keyspace)."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURE_NAMES, manifest, run_cli, unpack
from stats_inspect_data import manifest_value

from kvfix.analysis.inspect import inspect_key
from kvfix.store.opening import open_read_only

CASES = [(name, ns, key) for name in FIXTURE_NAMES for ns, keys in manifest(name)["keyspace"].items() for key in keys]


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("inspect-fixtures")
    return {name: unpack(name, base) for name in FIXTURE_NAMES}


def _expected_value(entry):
    t, v = entry["type"], entry["value"]
    if t == "string":
        return manifest_value(v)
    if t == "hash":
        return {manifest_value(k): manifest_value(x) for k, x in v.items()}
    if t in ("list", "set"):
        return [manifest_value(x) for x in v]
    if t == "zset":
        return [[manifest_value(m), float(s)] for m, s in v]
    return v


@pytest.mark.parametrize(("name", "ns", "key"), CASES, ids=[f"{n}:{ns}:{k}" for n, ns, k in CASES])
def test_inspect_agrees_with_server(unpacked, name, ns, key):
    entry = manifest(name)["keyspace"][ns][key]
    with open_read_only(unpacked[name]) as db:
        rep = inspect_key(db, key.encode(), namespace=ns.encode())
    assert rep is not None
    assert rep.metadata is not None and rep.metadata.type_name == entry["type"]
    assert rep.pttl == entry["pttl"] == -1
    assert rep.state == "live"
    assert rep.cluster == manifest(name)["cluster"]
    if entry["type"] == "stream":
        assert rep.metadata.size == entry["value"]["xlen"]
        assert rep.value["xlen"] == entry["value"]["xlen"]
    else:
        assert rep.value == _expected_value(entry)
        assert rep.problems == []
    if entry["type"] == "zset":
        assert any("agree" in n for n in rep.notes)


@pytest.mark.parametrize(("name", "ns", "key"), CASES[:3] + [c for c in CASES if c[0] == "legacy-namespaces"])
def test_cli_json(unpacked, name, ns, key):
    args = ["inspect", unpacked[name], key, "--format", "json", "--raw"]
    if ns != "__namespace":
        args += ["--namespace", ns]
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    entry = manifest(name)["keyspace"][ns][key]
    assert doc["schema"] == 2 and doc["key"] == key and doc["namespace"] == ns
    assert doc["metadata"]["type"] == entry["type"]
    assert doc["metadata"]["pttl"] == entry["pttl"]
    assert doc["metadata"]["created_at"] is None or doc["metadata"]["created_at"].startswith("20")
    for rec in doc["records"]:
        assert "raw_key_hex" in rec and "raw_value_hex" in rec
        assert bytes.fromhex(rec["raw_key_hex"]).find(key.encode()) > 0


def test_legacy_basic_content(unpacked):
    with open_read_only(unpacked["legacy-basic"]) as db:
        rep = inspect_key(db, b"queue")
        assert [r.data["position"] for r in rep.records] == [0, 1, 2]
        orders = inspect_key(db, b"orders")
    kinds = [r.kind for r in orders.records]
    assert kinds.count("entry") == 6
    assert kinds.count("group") == 2
    assert "consumer" in kinds and "pel" in kinds
    pel = [r.data for r in orders.records if r.kind == "pel"]
    expected = manifest("legacy-basic")["expected_pending"]["__namespace"]["orders"]
    got = {}
    for p in pel:
        got.setdefault(p["group"].decode(), []).append([p["id"], p["consumer"].decode(), p["delivery_count"]])
    assert {g: sorted(v) for g, v in got.items()} == {g: sorted(v) for g, v in expected.items() if v}


def test_limit_truncates(unpacked):
    with open_read_only(unpacked["legacy-basic"]) as db:
        rep = inspect_key(db, b"orders", limit=2)
    assert rep.truncated and len(rep.records) == 2
    assert rep.counts["stream"].live == 13


def test_missing_key_exits_1(unpacked):
    res = run_cli("inspect", unpacked["legacy-basic"], "nope")
    assert res.exit_code == 1
    assert "no such key" in res.stderr
    assert res.stdout == ""
    res = run_cli("inspect", unpacked["legacy-basic"], "orders", "--namespace", "tenant_a")
    assert res.exit_code == 1


def test_key_hex_and_cluster(unpacked):
    res = run_cli("inspect", unpacked["legacy-cluster"], "--key-hex", b"{u2}:events".hex(), "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["slot"] is not None and doc["key"] == "{u2}:events"
    res = run_cli("inspect", unpacked["legacy-cluster"], "x", "--key-hex", "00")
    assert res.exit_code == 2
