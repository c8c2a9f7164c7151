"""Every encoder/decoder pair of kvfix.codec, with exact bytes where Kvrocks fixes them."""

from __future__ import annotations

import pytest

from kvfix.codec import (
    DEFAULT_NAMESPACE,
    CodecError,
    ConsumerKey,
    ConsumerValue,
    EntryKey,
    EntryValue,
    GroupKey,
    GroupValue,
    InternalKey,
    KeyType,
    Metadata,
    MetadataKey,
    PelKey,
    PelValue,
    RecordKind,
    StreamId,
    StreamTail,
    alias_id,
    classify,
    decode_internal_key,
    decode_metadata,
    decode_metadata_key,
    encode_subkey,
    slot_of,
    successor,
    type_name,
    with_layout,
)
from kvfix.codec.ints import U64_MAX, Reader, read_u64, u64, varint32
from kvfix.codec.keys import crc16
from kvfix.codec.metadata import ListTail
from kvfix.codec.stream import (
    decode_consumer_value,
    decode_entry_value,
    decode_group_value,
    decode_pel_value,
    subkey_readings,
)

# --- ints ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**28, 2**32 - 1])
def test_varint32_roundtrip(n):
    data = varint32(n)
    r = Reader(data + b"tail")
    assert r.varint32() == n
    assert r.rest() == b"tail"


def test_varint32_exact_bytes_and_limits():
    assert varint32(300) == b"\xac\x02"
    assert varint32(0) == b"\x00"
    with pytest.raises(CodecError):
        varint32(2**32)
    with pytest.raises(CodecError):
        varint32(-1)
    with pytest.raises(CodecError):
        Reader(b"\xff\xff\xff\xff\x7f").varint32()  # > 32 bits
    with pytest.raises(CodecError):
        Reader(b"\x80\x80\x80\x80\x80\x01").varint32()  # 6 bytes
    with pytest.raises(CodecError):
        Reader(b"\x80").varint32()  # truncated


def test_big_endian_and_zero_padding():
    assert u64(1) == b"\x00" * 7 + b"\x01"
    assert read_u64(b"\x01") == 1 << 56
    assert read_u64(b"") == 0
    with pytest.raises(CodecError):
        Reader(b"\x00" * 7).u64()


# --- keys ------------------------------------------------------------------------------


def test_crc16_and_slots():
    assert crc16(b"123456789") == 0x31C3  # CRC16/XMODEM check value
    assert slot_of(b"foo") == 12182  # Redis: CLUSTER KEYSLOT foo
    assert slot_of(b"{user1000}.following") == slot_of(b"{user1000}.followers") == slot_of(b"user1000")
    assert slot_of(b"foo{}{bar}") == crc16(b"foo{}{bar}") & 0x3FFF  # empty tag: whole key
    assert slot_of(b"{u1}:events") == 4574  # legacy-cluster fixture


@pytest.mark.parametrize("slot", [None, 0, 4574, 16383])
@pytest.mark.parametrize("ns", [DEFAULT_NAMESPACE, b"", b"tenant_a", b"\xff" * 255])
@pytest.mark.parametrize("user_key", [b"", b"k", b"\x00\xff{x}", b"x" * 3000])
def test_key_roundtrip(slot, ns, user_key):
    mk = MetadataKey(ns, user_key, slot)
    raw = mk.encode()
    assert raw[0] == len(ns)
    assert decode_metadata_key(raw, slot is not None) == mk
    ik = InternalKey(ns, user_key, 0x0123456789ABCDEF, b"\x00sub", slot)
    raw = ik.encode()
    assert decode_internal_key(raw, slot is not None) == ik
    assert raw.startswith(ik.prefix())
    assert raw[len(ik.prefix()) :] == b"\x00sub"


def test_internal_key_exact_bytes():
    raw = InternalKey(b"ns", b"key", 7, b"S", 5).encode()
    assert raw == b"\x02ns" + b"\x00\x05" + b"\x00\x00\x00\x03key" + u64(7) + b"S"
    assert MetadataKey(b"ns", b"key").encode() == b"\x02nskey"


def test_key_errors():
    with pytest.raises(CodecError):
        MetadataKey(b"x" * 256, b"k").encode()
    with pytest.raises(CodecError):
        decode_metadata_key(b"\x05ab", False)
    with pytest.raises(CodecError):
        decode_metadata_key(b"\x01a\x00", True)
    with pytest.raises(CodecError):
        decode_internal_key(b"\x01a\x00\x00\x00\x09short", False)


def test_successor():
    assert successor(b"ab") == b"ac"
    assert successor(b"a\xff") == b"b"
    assert successor(b"\xff\xff") is None


# --- metadata ----------------------------------------------------------------------------

_TAIL = StreamTail(StreamId(5, 1), StreamId(1, 0), StreamId(2, 0), StreamId(3, 0), StreamId(5, 1), 9, 2)


def _meta(type_id: int, is_64: bool) -> Metadata:
    expire = 1_800_000_000_000  # whole seconds, so the 32-bit encoding keeps it exactly
    if type_id in (KeyType.STRING, KeyType.JSON):
        return Metadata(type_id, is_64, expire, None, None, tail=b"\x00payload")
    if type_id == KeyType.STREAM:
        return Metadata(type_id, is_64, expire, 12345 << 11, 6, stream=_TAIL)
    if type_id == KeyType.LIST:
        return Metadata(type_id, is_64, expire, 12345 << 11, 3, list=ListTail(2**63 - 2, 2**63 + 1))
    return Metadata(type_id, is_64, expire, 12345 << 11, 4, tail=b"\x01\x02" if type_id > KeyType.STREAM else b"")


@pytest.mark.parametrize("is_64", [True, False], ids=["64bit", "32bit"])
@pytest.mark.parametrize("type_id", list(KeyType))
def test_metadata_roundtrip_all_types(type_id, is_64):
    meta = _meta(type_id, is_64)
    raw = meta.encode()
    assert raw[0] == (0x80 if is_64 else 0) | type_id
    back = decode_metadata(raw)
    assert back == meta
    assert back.encode() == raw
    assert back.type_name == type_name(type_id)
    if not is_64:
        assert raw[1:5] == (1_800_000_000).to_bytes(4, "big")  # expire in seconds
    if type_id not in (KeyType.STRING, KeyType.JSON):
        size_len = 8 if is_64 else 4
        off = 1 + size_len
        assert raw[off : off + 8] == u64(12345 << 11)
        assert back.creation_us == 12345


def test_metadata_exact_stream_layout():
    raw = Metadata(KeyType.STREAM, True, 0, 1, 2, stream=_TAIL).encode()
    assert len(raw) == 1 + 8 + 8 + 8 + 11 * 8 + 8
    assert raw[-8:] == u64(2)  # group_number last
    old = Metadata(KeyType.STREAM, True, 0, 1, 2, stream=StreamTail(group_number=None)).encode()
    assert len(old) == len(raw) - 8
    back = decode_metadata(old)
    assert back.stream.group_number is None and back.encode() == old


def test_metadata_unknown_type_and_flags_roundtrip():
    for raw in (b"\x8e" + b"\x00" * 8 + b"anything", b"\x0f\x00\x00\x00\x01", b"\xf2" + u64(0) + u64(3) + u64(1)):
        meta = decode_metadata(raw)
        assert meta.encode() == raw
    assert not decode_metadata(b"\x8e" + b"\x00" * 8).known_type
    assert decode_metadata(b"\xf2" + u64(0) + u64(3) + u64(1)).extra_flags == 0x70


def test_metadata_errors():
    for raw in (
        b"",
        b"\x80",
        b"\x80" + b"\x00" * 8,
        b"\x88" + b"\x00" * 20,
        b"\x00" * 9,
        b"\x03\x00\x00\x00\x00" + u64(1) + b"\x00",
    ):
        with pytest.raises(CodecError):
            decode_metadata(raw)


def test_metadata_expiry_and_dead():
    assert Metadata(KeyType.HASH, True, 10, 1, 0).is_dead()
    assert not Metadata(KeyType.STREAM, True, 10, 1, 0).is_dead()
    assert Metadata(KeyType.STREAM, True, 10, 1, 0).is_expired(11)
    assert not Metadata(KeyType.STREAM, True, 0, 1, 0).is_expired(11)
    assert (
        decode_metadata(b"\x08" + (5).to_bytes(4, "big") + u64(1) + (0).to_bytes(4, "big") + _TAIL.encode()).expire_ms
        == 5000
    )


# --- stream subkeys and values ------------------------------------------------------------

_NAMES = [b"", b"g", b"a\x00b", b"\xff" * 9, b"METADATA", b"n" * 2000]


@pytest.mark.parametrize("layout", ["legacy", "prefixed"])
@pytest.mark.parametrize("name", _NAMES, ids=lambda n: n[:10].hex() or "empty")
def test_subkey_roundtrip_both_layouts(layout, name):
    keys = [
        GroupKey(layout, name),
        ConsumerKey(layout, name, name),
        ConsumerKey(layout, name, b"c"),
        PelKey(layout, name, StreamId(1795775557168, 3)),
    ]
    for key in keys:
        sub = encode_subkey(key)
        assert key in subkey_readings(sub)
        assert with_layout(with_layout(key, "legacy" if layout == "prefixed" else "prefixed"), layout) == key
        other = with_layout(key, "legacy" if layout == "prefixed" else "prefixed")
        assert other.kind.layout != layout and other.kind.role == key.kind.role


def test_subkey_exact_bytes():
    assert encode_subkey(GroupKey("legacy", b"g")) == u64(1) + b"gMETADATA"
    assert encode_subkey(ConsumerKey("legacy", b"g", b"c")) == u64(1) + b"g" + u64(1) + b"cMETADATA"
    assert encode_subkey(PelKey("legacy", b"g", StreamId(1, 2))) == u64(1) + b"g" + u64(1) + u64(2)
    assert encode_subkey(GroupKey("prefixed", b"g")) == b"\xff" * 8 + b"\x01" + u64(1) + b"g"
    assert encode_subkey(ConsumerKey("prefixed", b"g", b"c")) == b"\xff" * 8 + b"\x02" + u64(1) + b"g" + u64(1) + b"c"
    assert encode_subkey(PelKey("prefixed", b"g", StreamId(1, 2))) == b"\xff" * 8 + b"\x03" + u64(1) + b"g" + u64(
        1
    ) + u64(2)
    assert encode_subkey(EntryKey(StreamId(U64_MAX, 7))) == b"\xff" * 8 + u64(7)
    assert alias_id(u64(7) + b"workers" + b"METADATA") == StreamId(7, int.from_bytes(b"workersM", "big"))
    assert alias_id(u64(0) + b"META") == StreamId(0, int.from_bytes(b"META\0\0\0\0", "big"))


def test_values_roundtrip():
    for v in (
        GroupValue(2, 3, StreamId(5, 6), -1, 0),
        GroupValue(0, 0, StreamId(U64_MAX, U64_MAX), 2**63 - 1, U64_MAX),
    ):
        raw = v.encode()
        assert len(raw) == 48 and decode_group_value(raw) == v
    cv = ConsumerValue(1, 2, 3)
    assert decode_consumer_value(cv.encode()) == cv and len(cv.encode()) == 24
    for owner in (b"", b"w", b"\x00" * 300):
        pv = PelValue(9, 0, owner)
        assert decode_pel_value(pv.encode()) == pv
    ev = EntryValue((b"f", b"v", b"", b"x" * 200))
    assert decode_entry_value(ev.encode()) == ev
    assert ev.encode().startswith(b"\x01f\x01v\x00\xc8\x01")
    for bad, dec in (
        (b"\x00" * 47, decode_group_value),
        (b"\x00" * 49, decode_group_value),
        (b"\x00" * 23, decode_consumer_value),
        (b"\x00" * 24 + b"\x00", decode_pel_value),
        (b"\x00" * 16 + u64(2) + b"w", decode_pel_value),
        (b"", decode_entry_value),
        (b"\x01f", decode_entry_value),
        (b"\x05ab", decode_entry_value),
    ):
        with pytest.raises(CodecError):
            dec(bad)


@pytest.mark.parametrize("layout", ["legacy", "prefixed"])
def test_classify_records(layout):
    gv, cv, pv = GroupValue(1, 1, StreamId(5, 0), 1, 0), ConsumerValue(1, 10, 10), PelValue(10, 1, b"c")
    cases = [
        (GroupKey(layout, b"g"), gv),
        (ConsumerKey(layout, b"g", b"c"), cv),
        (PelKey(layout, b"g", StreamId(5, 0)), pv),
    ]
    for key, value in cases:
        c = classify(encode_subkey(key), value.encode())
        assert (c.key, c.value, c.readings, c.error) == (key, value, (key.kind,), None)
    e = classify(encode_subkey(EntryKey(StreamId(7, 1))), EntryValue((b"a", b"b")).encode())
    assert e.kind is RecordKind.ENTRY and e.value == EntryValue((b"a", b"b")) and not e.ambiguous


def test_classify_ambiguous_and_undecodable():
    # An empty-named legacy group is also entry 0-"METADATA"; an all-zero value fits both.
    sub = encode_subkey(GroupKey("legacy", b""))
    assert len(sub) == 16
    c = classify(sub, b"\x00" * 48)
    assert c.kind is RecordKind.LEGACY_GROUP and c.ambiguous
    assert set(c.readings) == {RecordKind.LEGACY_GROUP, RecordKind.ENTRY}
    # Empty-named consumer with a zero last-success time also fits a PEL record with no owner.
    sub = encode_subkey(ConsumerKey("legacy", b"g", b""))
    c = classify(sub, ConsumerValue(0, 5, 0).encode())
    assert c.kind is RecordKind.LEGACY_CONSUMER and set(c.readings) == {
        RecordKind.LEGACY_CONSUMER,
        RecordKind.LEGACY_PEL,
    }
    # Structure fits, value does not.
    c = classify(encode_subkey(GroupKey("prefixed", b"g")), b"short")
    assert c.value is None and c.key == GroupKey("prefixed", b"g") and "group value" in c.error
    c = classify(b"\x00\x01", b"")
    assert c.key is None and c.error
