"""inspect on synthetic keys of every type, both encodings, expired/dead, unknown and newer encodings, hostile names."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import run_cli
from stats_inspect_data import FUTURE_MS, HOSTILE_KEYS, NS, PAST_MS, Builder, rich_database

from kvfix.analysis.inspect import inspect_key
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.codec.types import HASH_FIELD_EXPIRE_FLAG
from kvfix.store.opening import open_read_only

NOW = 1_795_000_000_000
SCHEMAS = Path(__file__).parent.parent / "schemas"


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "cluster"])
def rich(request, tmp_path_factory):
    return rich_database(tmp_path_factory.mktemp("rich") / "db", cluster=request.param)


def _inspect(path, key, **kw):
    with open_read_only(path) as db:
        return inspect_key(db, key, now_ms=NOW, **kw)


def test_values_of_every_type(rich):
    assert _inspect(rich, b"s64").value == b"hello"
    assert _inspect(rich, b"h").value == {b"f1": b"v1", b"f2": b"v2", b"f3": b"v3"}
    assert _inspect(rich, b"st").value == [b"", b"m1", b"m2"]
    assert _inspect(rich, b"l").value == [b"one", b"two", b"three", b"four"]
    z = _inspect(rich, b"z")
    assert z.value == [[b"neg", -2.5], [b"zero", 0.0], [b"pos", 7.25], [b"big", 1e300]]
    assert z.problems == []
    bm = _inspect(rich, b"bm")
    assert bm.value == {"bytes": 1025, "bits_set": 10}
    assert [r.data["offset"] for r in bm.records] == [0, 1024]
    assert bm.records[0].data["bits"] == [0, 15]
    assert _inspect(rich, b"si").value == [1, 5, 99]
    js = _inspect(rich, b"js")
    assert js.value == {"a": [1, 2, {"b": None}]} and js.tail.format_name == "json"
    bloom = _inspect(rich, b"bloom")
    assert bloom.tail.base_capacity == 100 and bloom.tail.error_rate == 0.01
    assert bloom.counts["default"].live == 1 and bloom.counts["default"].undecoded == 1
    assert _inspect(rich, b"hll").tail.encoding_name == "dense"
    assert _inspect(rich, b"td").tail.maximum == 9.0
    assert _inspect(rich, b"ts").tail.chunk_size == 4096


def test_expiry_encoding_and_states(rich):
    s32 = _inspect(rich, b"s32")
    assert not s32.metadata.is_64bit and s32.pttl == -1 and s32.value == b"old"
    h32 = _inspect(rich, b"h32")
    assert not h32.metadata.is_64bit and h32.pttl == FUTURE_MS - NOW and h32.value == {b"a": b"1"}
    exp = _inspect(rich, b"s_expired")
    assert exp.state == "expired" and exp.pttl == -2 and exp.metadata.expire_ms == PAST_MS
    dead = _inspect(rich, b"h_dead")
    assert dead.state == "dead" and dead.pttl == -2
    ttl = _inspect(rich, b"s_ttl")
    assert ttl.state == "live" and ttl.pttl == FUTURE_MS - NOW


def test_dead_versions_are_counted_not_shown(rich):
    h = _inspect(rich, b"h")
    assert h.counts["default"].dead_version == 1 and h.counts["default"].live == 3
    assert all(r.data["field"] != b"old" for r in h.records)
    s = _inspect(rich, b"s64")
    assert s.counts["default"].dead_version == 1 and s.records == []


def test_unknown_types(rich):
    for key, type_id in ((b"unknown14", 14), (b"unknown15", 15)):
        rep = _inspect(rich, key)
        assert rep.metadata.type_id == type_id and not rep.metadata.known_type
        assert any("not one this kvfix knows" in n for n in rep.notes)
    res = run_cli("inspect", rich, "unknown15", "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["metadata"]["type"] == "unknown(15)" and doc["metadata"]["undecoded_tail_hex"] == b"whatever".hex()


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys(rich, key):
    res = run_cli("inspect", rich, "--key-hex", key.hex(), "--format", "json", "--raw")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert bytes.fromhex(doc["key_hex"]) == key
    assert doc["records"][0]["field_hex"] == b"\x1b[2J[bold]f".hex()
    assert doc["records"][0]["value_hex"] == b"\x00\xff[red]v".hex()
    for fmt in ("rich", "plain", "markdown", "grid"):
        res = run_cli("inspect", rich, "--key-hex", key.hex(), "--format", fmt, "--raw")
        assert res.exit_code == 0
        assert "\x1b" not in res.stdout and "\x00" not in res.stdout
    # The escaped form kvfix prints is accepted back as KEY.
    from kvfix.textsafe import show

    assert run_cli("inspect", rich, show(key), "--format", "json").exit_code == 0


def test_hostile_namespace(rich):
    res = run_cli("inspect", rich, "\\x1b]0;title\\x07", "--namespace", "\\x1b[31mns[red]", "--format", "plain")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout


def test_newer_encodings_are_recognised_not_misdecoded(tmp_path):
    b = Builder()
    v = b.version()
    # Hash field expiration (2026): flag bit 0x40 and values with an expire prefix.
    b.meta(b"hfe", Metadata(KeyType.HASH, True, 0, v, 1, extra_flags=HASH_FIELD_EXPIRE_FLAG))
    b.sub(b"hfe", v, b"f", b"\x00\x00\x01\x9a\x00\x00\x00\x00value")
    # A hash metadata with an unknown tail (persistent-field tracking) and no flag.
    v2 = b.version()
    b.meta(b"hfe2", Metadata(KeyType.HASH, True, 0, v2, 1, tail=b"\x00\x00\x00\x00\x00\x00\x00\x01"))
    b.sub(b"hfe2", v2, b"f", b"x")
    # A zset whose column families disagree.
    b.zset(b"zbad", {b"a": 1.0}, skew=True)
    # A list whose indexes have a hole.
    v3 = b.version()
    from kvfix.codec.metadata import ListTail
    from kvfix.codec.types import encode_list_index

    b.meta(b"lhole", Metadata(KeyType.LIST, True, 0, v3, 2, list=ListTail(10, 12)))
    b.sub(b"lhole", v3, encode_list_index(10), b"a")
    b.sub(b"lhole", v3, encode_list_index(13), b"b")
    # HLL with an encode type Kvrocks does not know.
    v4 = b.version()
    b.meta(b"hll2", Metadata(KeyType.HYPERLOGLOG, True, 0, v4, 0, tail=b"\x01"))
    path = b.db.write(tmp_path / "db")
    hfe = _inspect(path, b"hfe")
    assert hfe.value is None and any("hash field expiration" in n for n in hfe.notes)
    assert hfe.records[0].kind == "raw" and hfe.counts["default"].undecoded == 1
    hfe2 = _inspect(path, b"hfe2")
    assert hfe2.value is None and hfe2.records[0].kind == "raw"
    zbad = _inspect(path, b"zbad")
    assert any("disagree" in p for p in zbad.problems)
    assert any("head..tail" in p for p in _inspect(path, b"lhole").problems)
    hll2 = _inspect(path, b"hll2")
    assert hll2.tail is None and hll2.tail_error
    res = run_cli("inspect", path, "hfe", "--format", "json")
    assert json.loads(res.stdout)["records"][0]["kind"] == "raw"


def test_zero_limit_and_stream_key(rich, tmp_path):
    rep = _inspect(rich, b"l", limit=0)
    assert rep.records == [] and rep.truncated and rep.counts["default"].live == 4
    res = run_cli("inspect", rich, "l", "--limit", "1", "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["truncated"] and len(doc["records"]) == 1 and doc["records"][0]["item"] == "one"


def test_namespaces(rich):
    assert _inspect(rich, b"t", namespace=b"tenant_a").value == b"tenant"
    assert _inspect(rich, b"t") is None
    assert _inspect(rich, b"s64", namespace=NS) is not None


def test_json_integers_beyond_2_53_are_strings(tmp_path):
    """Damaged counters and big ids: a JSON number up to 2^53-1, a decimal string beyond (schema 2)."""
    big = 2**60
    b = Builder()
    b.hash(b"h", {b"f": b"v"}, expire_ms=big, size=big)
    b.sortedint(b"si", [7, big])
    b.bitmap(b"bm", {big: b"\x01"}, size=big)
    path = b.db.write(tmp_path / "db")
    schema = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "inspect.schema.json").read_text()))
    docs = {}
    for key in ("h", "si", "bm"):
        res = run_cli("inspect", path, key, "--format", "json")
        assert res.exit_code == 0, res.stderr
        docs[key] = doc = json.loads(res.stdout)
        schema.validate(doc)
        assert doc == json.loads(res.stdout, parse_int=float), key  # nothing a double rounds
    h = docs["h"]["metadata"]
    assert (h["size"], h["expire_ms"], h["version"]) == (str(big), str(big), str(_inspect(path, b"h").metadata.version))
    assert isinstance(h["pttl"], str) and int(h["pttl"]) > 2**53
    assert docs["si"]["value"] == [7, str(big)] and [r["id"] for r in docs["si"]["records"]] == [7, str(big)]
    frag = docs["bm"]["records"][0]
    assert docs["bm"]["value"]["bytes"] == str(big) and frag["offset"] == str(big) and frag["bits"] == [str(big * 8)]
