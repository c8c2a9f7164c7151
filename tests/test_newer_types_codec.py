"""The encodings Kvrocks added after 2.10: exact bytes, round trips and symmetry under hypothesis.

TopK (type 14), hash field expiration, TimeSeries subkeys/chunks/rules/label index, and the
redis-databases namespace mapping.  Layouts: the docstrings of kvfix.codec.topk, .hash_ttl,
.timeseries and .databases (each names the Kvrocks source file that defines it).
"""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvfix.codec.databases import database_of, namespace_of
from kvfix.codec.errors import CodecError
from kvfix.codec.hash_ttl import (
    FIELD_EXPIRATION_MODE,
    HashFieldExpiryTail,
    HashFieldValue,
    decode_hash_field_value,
    decode_hash_tail,
)
from kvfix.codec.keys import DEFAULT_NAMESPACE
from kvfix.codec.metadata import ALL_TYPE_NAMES, KeyType, Metadata, decode_metadata
from kvfix.codec.timeseries import (
    TSChunk,
    TSChunkKey,
    TSDownstreamKey,
    TSDownstreamRule,
    TSLabelIndexKey,
    TSLabelKey,
    chunk_count,
    decode_chunk,
    decode_downstream_rule,
    decode_label_index_key,
    decode_ts_subkey,
    make_chunk,
)
from kvfix.codec.topk import (
    TOPK_TYPE_ID,
    TopKSubkey,
    TopKTail,
    classify_topk_subkey,
    decode_topk_tail,
    encode_topk_subkey,
)
from kvfix.codec.types import encode_double

SETTINGS = settings(max_examples=150, deadline=None)
u8s = st.integers(0, 255)
u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, 2**64 - 1)
finite = st.floats(allow_nan=False)
names = st.binary(max_size=24)

# --- TopK ----------------------------------------------------------------------------------


def test_topk_tail_exact_bytes():
    t = TopKTail(10, 8, 7, 0.9)
    assert t.encode() == bytes.fromhex("0000000a0000000800000007") + encode_double(0.9)
    assert TopKTail(10, 8, 7, 0.9, width_bits=16).encode()[4:6] == b"\x00\x08"
    assert decode_topk_tail(t.encode()) == t


topk_tails = st.builds(
    TopKTail,
    st.integers(1, 2**32 - 1),
    st.integers(1, 2**16 - 1),
    st.integers(1, 2**32 - 1),
    st.floats(0, 1),
    st.sampled_from([16, 32]),
)


@SETTINGS
@given(topk_tails)
def test_topk_tail_round_trip(t):
    assert decode_topk_tail(t.encode()) == t


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x00" * 19, TopKTail(0, 8, 7, 0.9).encode(), TopKTail(1, 8, 7, 1.5).encode(), b"\x00" * 20],
)
def test_topk_tail_rejects_implausible(bad):
    with pytest.raises(CodecError):
        decode_topk_tail(bad)


def test_topk_metadata_is_topk_only_when_it_fits():
    tail = TopKTail(3, 8, 7, 0.9)
    meta = Metadata(TOPK_TYPE_ID, True, 0, 1 << 11, 0, tail=tail.encode())
    got = decode_metadata(meta.encode())
    assert got == meta and got.type_name == "topk" and got.known_type and got.newer_type
    assert got.encode() == meta.encode() and not got.is_dead()
    m32 = Metadata(TOPK_TYPE_ID, False, 0, 5, 0, tail=tail.encode(), raw_expire=0)
    assert decode_metadata(m32.encode()).type_name == "topk"
    # The made-up record of the existing tests (no version, 24 bytes) is still unknown(14).
    odd = Metadata(14, True, 0, None, None, tail=b"\x00" * 16 + b"\x00" * 7 + b"\x01")
    back = decode_metadata(odd.encode())
    assert back == odd and back.type_name == "unknown(14)" and not back.known_type
    assert ALL_TYPE_NAMES[14] == "topk" and 14 not in {int(t) for t in KeyType}


topk_subkeys = st.one_of(
    st.builds(TopKSubkey, st.sampled_from(["buckets", "heap", "heap_size"])),
    st.builds(TopKSubkey, st.just("heap_item"), u32s),
    st.builds(TopKSubkey, st.sampled_from(["bucket_field", "heap_field"]), u32s, u8s),
)


@SETTINGS
@given(topk_subkeys)
def test_topk_subkey_round_trip(k):
    assert classify_topk_subkey(encode_topk_subkey(k)) == k


@given(st.binary(max_size=8))
def test_topk_classify_never_raises(sub):
    assert classify_topk_subkey(sub).kind in {
        "buckets",
        "heap",
        "heap_size",
        "heap_item",
        "bucket_field",
        "heap_field",
        "unknown",
    }


# --- hash field expiration -----------------------------------------------------------------


def test_hash_ttl_exact_bytes():
    t = HashFieldExpiryTail(FIELD_EXPIRATION_MODE, 2, 1_000, 2_000)
    assert t.encode() == b"\x01" + (2).to_bytes(8, "big") + (1000).to_bytes(8, "big") + (2000).to_bytes(8, "big")
    assert decode_hash_tail(t.encode()) == t and decode_hash_tail(b"") is None
    v = HashFieldValue(4_000_000_000_123, b"value\x00\xff")
    assert v.encode() == (4_000_000_000_123).to_bytes(8, "big") + b"value\x00\xff"
    assert decode_hash_field_value(v.encode()) == v


@SETTINGS
@given(u64s, u64s, u64s)
def test_hash_ttl_tail_round_trip(persist, lower, upper):
    t = HashFieldExpiryTail(FIELD_EXPIRATION_MODE, persist, lower, upper)
    assert decode_hash_tail(t.encode()) == t
    meta = Metadata(KeyType.HASH, True, 0, 7 << 11, persist, tail=t.encode())
    assert decode_metadata(meta.encode()) == meta


@SETTINGS
@given(u64s, st.binary(max_size=64), u64s)
def test_hash_field_value_round_trip(expire, value, now):
    v = HashFieldValue(expire, value)
    assert decode_hash_field_value(v.encode()) == v
    assert v.is_expired(now) == (expire != 0 and expire <= now)


@pytest.mark.parametrize("bad", [b"\x00", b"\x02" + b"\x00" * 24, b"\x01" + b"\x00" * 23, b"\x01" + b"\x00" * 25])
def test_hash_ttl_tail_rejects(bad):
    with pytest.raises(CodecError):
        decode_hash_tail(bad)
    with pytest.raises(CodecError):
        decode_hash_field_value(b"\x00" * 7)


# --- TimeSeries ----------------------------------------------------------------------------


def test_timeseries_exact_bytes():
    assert TSChunkKey(1000).encode() == b"\x00" + (1000).to_bytes(8, "big")
    assert TSLabelKey(b"room").encode() == b"\x01room" and TSDownstreamKey(b"dst").encode() == b"\x02dst"
    chunk = make_chunk([(1000, 1.5)])
    # Header big-endian, the sample as the in-memory struct: little-endian ts and double.
    assert chunk.encode() == b"\x00\x00\x00\x00\x00\x00\x00\x01" + struct.pack("<Qd", 1000, 1.5)
    assert chunk_count(chunk.encode()) == 1
    key = TSLabelIndexKey(b"ns", b"k", b"v", b"series")
    assert key.encode() == b"\x02ns\x00" + b"\x00\x00\x00\x01k" + b"\x00\x00\x00\x01v" + b"series"


ts_subkeys = st.one_of(st.builds(TSChunkKey, u64s), st.builds(TSLabelKey, names), st.builds(TSDownstreamKey, names))


@SETTINGS
@given(ts_subkeys)
def test_ts_subkey_round_trip(k):
    assert decode_ts_subkey(k.encode()) == k


@SETTINGS
@given(st.lists(st.tuples(u64s, finite), max_size=20, unique_by=lambda s: s[0]))
def test_chunk_round_trip(samples):
    chunk = make_chunk(sorted(samples))
    back = decode_chunk(chunk.encode())
    assert back == chunk and not back.compressed and back.encode() == chunk.encode()


@SETTINGS
@given(u32s, st.binary(max_size=40))
def test_compressed_chunk_kept_raw(count, payload):
    chunk = TSChunk(1, count, payload=payload)
    back = decode_chunk(chunk.encode())
    assert back == chunk and back.compressed and back.samples == ()


rules = st.builds(
    TSDownstreamRule,
    st.integers(0, 12),
    u64s,
    u64s,
    u64s,
    st.lists(u64s, max_size=3).map(tuple),
    st.lists(finite, max_size=3).map(tuple),
)


@SETTINGS
@given(rules)
def test_downstream_rule_round_trip(rule):
    assert decode_downstream_rule(rule.encode()) == rule


@SETTINGS
@given(st.builds(TSLabelIndexKey, names, names, names, names))
def test_label_index_key_round_trip(key):
    assert decode_label_index_key(key.encode()) == key


def test_timeseries_rejects():
    for bad in (b"", b"\x00\x01", b"\x03x"):
        with pytest.raises(CodecError):
            decode_ts_subkey(bad)
    with pytest.raises(CodecError):
        decode_chunk(make_chunk([(1, 1.0)]).encode() + b"\x00")
    with pytest.raises(CodecError):
        decode_chunk(TSChunk(0, 2, ((5, 1.0), (5, 2.0))).encode())  # timestamps must increase
    with pytest.raises(CodecError):
        decode_downstream_rule(TSDownstreamRule(7, 1, 0, 0, (1,), ()).encode()[:-1])
    with pytest.raises(CodecError):
        decode_label_index_key(b"\x02ns\x01rest")
    assert math.isnan(decode_chunk(make_chunk([(1, math.nan)]).encode()).samples[0][1])


# --- databases -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "db"),
    [
        (DEFAULT_NAMESPACE, 0),
        (b"db1", 1),
        (b"db15", 15),
        (b"db0", None),
        (b"db01", None),
        (b"db", None),
        (b"db-1", None),
        (b"db1x", None),
        (b"tenant", None),
        (b"DB1", None),
    ],
)
def test_database_of(ns, db):
    assert database_of(ns) == db


@given(st.integers(0, 10**6))
def test_database_round_trip(n):
    assert database_of(namespace_of(n)) == n


def test_namespace_of_rejects_negative():
    with pytest.raises(CodecError):
        namespace_of(-1)


# --- only CodecError -------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=80))
def test_decoders_raise_only_codec_error(data):
    for decoder in (
        decode_topk_tail,
        decode_hash_tail,
        decode_hash_field_value,
        decode_ts_subkey,
        decode_chunk,
        decode_downstream_rule,
        decode_label_index_key,
        decode_metadata,
    ):
        with contextlib.suppress(CodecError):
            decoder(data)
    if data:
        with contextlib.suppress(CodecError):
            chunk_count(data)
    database_of(data)
