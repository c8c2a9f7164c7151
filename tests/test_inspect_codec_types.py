"""kvfix.codec.types: round trips, order preservation, and the bytes real Kvrocks wrote."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvfix.codec.errors import CodecError
from kvfix.codec.types import (
    BloomTail,
    HyperLogLogTail,
    JsonTail,
    TDigestTail,
    TimeSeriesTail,
    ZsetScoreKey,
    bitmap_bit_positions,
    bitmap_redis_bytes,
    decode_bitmap_index,
    decode_bloom_tail,
    decode_double,
    decode_hll_tail,
    decode_json_tail,
    decode_list_index,
    decode_sortedint_id,
    decode_tdigest_tail,
    decode_timeseries_tail,
    decode_type_tail,
    decode_zset_score_key,
    encode_bitmap_index,
    encode_double,
    encode_list_index,
    encode_sortedint_id,
    popcount,
)

finite = st.floats(allow_nan=False)
u16s = st.integers(0, 2**16 - 1)
u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, 2**64 - 1)


def test_double_bytes_written_by_kvrocks():
    # legacy-basic: ZADD scores 3 ada 5 bob stored these member values.
    assert encode_double(3.0) == bytes.fromhex("c008000000000000")
    assert decode_double(bytes.fromhex("c014000000000000")) == 5.0


@given(finite)
def test_double_round_trip(x):
    assert decode_double(encode_double(x)) == x
    assert math.copysign(1, decode_double(encode_double(x))) == math.copysign(1, x)


@given(finite, finite)
def test_double_order_preserving(a, b):
    if a < b:
        assert encode_double(a) < encode_double(b)


def test_double_infinities_and_errors():
    assert decode_double(encode_double(math.inf)) == math.inf
    assert decode_double(encode_double(-math.inf)) == -math.inf
    with pytest.raises(CodecError):
        decode_double(b"\x00" * 7)


@given(finite, st.binary())
def test_zset_score_key(score, member):
    assert decode_zset_score_key(ZsetScoreKey(score, member).encode()) == ZsetScoreKey(score, member)


@given(u64s)
def test_list_and_sortedint(n):
    assert decode_list_index(encode_list_index(n)) == n
    assert decode_sortedint_id(encode_sortedint_id(n)) == n


@given(st.integers(0, 2**32))
def test_bitmap_index(n):
    assert decode_bitmap_index(encode_bitmap_index(n)) == n


@pytest.mark.parametrize("bad", [b"", b"01", b"-1", b"1a", b"\x00"])
def test_bitmap_index_rejects(bad):
    with pytest.raises(CodecError):
        decode_bitmap_index(bad)


def test_bitmap_bits():
    # SETBIT k 0 1 is stored as 0x01 (LSB first); Redis shows it as 0x80.
    assert bitmap_bit_positions(0, b"\x01") == [0]
    assert bitmap_bit_positions(1024, b"\x00\x80") == [1025 * 8 + 7]
    assert bitmap_redis_bytes(b"\x01\x03") == b"\x80\xc0"
    assert popcount(b"\xff\x01") == 9 and popcount(b"") == 0


@given(u16s, u16s, u32s, st.floats(0, 1), u32s)
def test_bloom_round_trip(n, e, cap, rate, nbytes):
    t = BloomTail(n, e, cap, rate, nbytes)
    assert decode_bloom_tail(t.encode()) == t
    assert decode_type_tail(9, t.encode()) == t


def test_bloom_capacity():
    assert BloomTail(3, 0, 100, 0.01, 0).capacity == 100
    assert BloomTail(3, 1, 100, 0.01, 0).capacity == 300
    assert BloomTail(3, 2, 100, 0.01, 0).capacity == 700


@given(st.integers(0, 255), st.binary())
def test_json_round_trip(fmt, payload):
    t = JsonTail(fmt, payload)
    assert decode_json_tail(t.encode()) == t


def test_json_and_hll_errors():
    with pytest.raises(CodecError):
        decode_json_tail(b"")
    assert decode_hll_tail(b"\x00") == HyperLogLogTail(0)
    for bad in (b"", b"\x01", b"\x00\x00"):
        with pytest.raises(CodecError):
            decode_hll_tail(bad)


@given(st.builds(TDigestTail, u32s, u32s, u64s, u64s, u64s, u64s, finite, finite, u64s, u64s))
def test_tdigest_round_trip(t):
    assert decode_tdigest_tail(t.encode()) == t
    with pytest.raises(CodecError):
        decode_tdigest_tail(t.encode() + b"\x00")


@given(st.builds(TimeSeriesTail, u64s, u64s, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40), u64s))
def test_timeseries_round_trip(t):
    assert decode_timeseries_tail(t.encode()) == t


def test_type_tail_for_other_types_is_none():
    for type_id in (1, 2, 3, 4, 5, 6, 7, 8, 14, 15):
        assert decode_type_tail(type_id, b"anything") is None


@given(st.binary(max_size=64))
def test_decoders_only_raise_codec_error(data):
    for decoder in (decode_bloom_tail, decode_json_tail, decode_hll_tail, decode_tdigest_tail, decode_timeseries_tail):
        with contextlib.suppress(CodecError):
            decoder(data)
    for decoder in (decode_zset_score_key, decode_list_index, decode_bitmap_index):
        with contextlib.suppress(CodecError):
            decoder(data)


def test_minus_zero():
    assert struct.pack(">d", decode_double(encode_double(-0.0))) == struct.pack(">d", -0.0)
