"""Property tests: decoders raise only CodecError, classify() never raises, metadata round-trips."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvfix.codec import (
    CodecError,
    ConsumerKey,
    EntryKey,
    GroupKey,
    KeyType,
    Metadata,
    PelKey,
    StreamId,
    StreamTail,
    classify,
    decode_internal_key,
    decode_metadata,
    decode_metadata_key,
    encode_subkey,
)
from kvfix.codec.ints import U64_MAX, Reader
from kvfix.codec.metadata import ListTail
from kvfix.codec.stream import (
    ConsumerValue,
    EntryValue,
    GroupValue,
    PelValue,
    decode_consumer_value,
    decode_entry_value,
    decode_group_value,
    decode_pel_value,
    subkey_readings,
)
from kvfix.textsafe import safe_text, show, unshow

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u64s = st.one_of(st.sampled_from([0, 1, 7, 16, 2**32, U64_MAX - 1, U64_MAX]), st.integers(0, U64_MAX))
ids = st.builds(StreamId, u64s, u64s)
names = st.one_of(st.binary(max_size=24), st.sampled_from([b"", b"METADATA", b"\xff" * 8, b"\x00" * 8]))
layouts = st.sampled_from(["legacy", "prefixed"])

subkeys = st.one_of(
    st.builds(EntryKey, ids),
    st.builds(GroupKey, layouts, names),
    st.builds(ConsumerKey, layouts, names, names),
    st.builds(PelKey, layouts, names, ids),
)
values = st.one_of(
    st.builds(GroupValue, u64s, u64s, ids, st.integers(-(2**63), 2**63 - 1), u64s),
    st.builds(ConsumerValue, u64s, u64s, u64s),
    st.builds(PelValue, u64s, u64s, names),
    st.builds(
        EntryValue,
        st.lists(st.binary(max_size=200), min_size=1, max_size=6).map(lambda x: tuple(x + x[:1] if len(x) % 2 else x)),
    ),
)

tails = st.builds(StreamTail, ids, ids, ids, ids, ids, u64s, st.one_of(st.none(), u64s))


@st.composite
def metadata(draw) -> Metadata:
    type_id = draw(st.sampled_from([*list(KeyType), 14, 15]))
    is_64 = draw(st.booleans())
    raw_expire = draw(u64s if is_64 else st.integers(0, 2**32 - 1))
    expire_ms = raw_expire if is_64 else raw_expire * 1000
    extra = draw(st.sampled_from([0, 0x10, 0x70]))
    tail = draw(st.binary(max_size=20))
    if type_id in (KeyType.STRING, KeyType.JSON) or type_id > 13:
        return Metadata(type_id, is_64, expire_ms, None, None, tail=tail, raw_expire=raw_expire, extra_flags=extra)
    version = draw(u64s)
    size = draw(u64s if is_64 else st.integers(0, 2**32 - 1))
    stream = lst = None
    if type_id == KeyType.STREAM:
        stream = draw(tails)
        if stream.group_number is None:
            tail = b""
    elif type_id == KeyType.LIST:
        lst = ListTail(draw(u64s), draw(u64s))
    return Metadata(type_id, is_64, expire_ms, version, size, stream, lst, tail, raw_expire, extra)


def _only_codec_error(fn, data):
    try:
        return fn(data)
    except CodecError:
        return None


DECODERS = [
    decode_metadata,
    lambda b: decode_metadata_key(b, False),
    lambda b: decode_metadata_key(b, True),
    lambda b: decode_internal_key(b, False),
    lambda b: decode_internal_key(b, True),
    decode_entry_value,
    decode_group_value,
    decode_consumer_value,
    decode_pel_value,
    lambda b: Reader(b).varint32(),
]


@SETTINGS
@given(st.binary(max_size=120))
def test_random_bytes_only_codec_error(data):
    for dec in DECODERS:
        _only_codec_error(dec, data)
    subkey_readings(data)
    classify(data, data)
    classify(data, b"")


@SETTINGS
@given(subkeys, values, st.data())
def test_truncated_records_never_break_classify(key, value, data):
    sub, val = encode_subkey(key), value.encode()
    c = classify(sub, val)
    if isinstance(value, GroupValue | ConsumerValue | PelValue) and key.kind.role == _role(value):
        assert key in subkey_readings(sub)
    cut_sub = data.draw(st.integers(0, len(sub)))
    cut_val = data.draw(st.integers(0, len(val)))
    for s, v in ((sub[:cut_sub], val), (sub, val[:cut_val]), (sub[:cut_sub], val[:cut_val]), (sub + b"\x00", val)):
        c = classify(s, v)
        assert (c.key is None) == (not subkey_readings(s))
        assert c.value is None or c.key is not None
        for dec in (decode_entry_value, decode_group_value, decode_consumer_value, decode_pel_value):
            _only_codec_error(dec, v)


def _role(value) -> str:
    return {GroupValue: "group", ConsumerValue: "consumer", PelValue: "pel", EntryValue: "entry"}[type(value)]


@SETTINGS
@given(subkeys, values)
def test_matching_record_classifies_as_itself(key, value):
    if key.kind.role != _role(value):
        return
    c = classify(encode_subkey(key), value.encode())
    assert key.kind in c.readings
    assert c.value is not None
    if not c.ambiguous:
        assert c.key == key and c.value == value


@SETTINGS
@given(metadata())
def test_metadata_encode_decode_roundtrip(meta):
    raw = meta.encode()
    back = decode_metadata(raw)
    assert back == meta
    assert back.encode() == raw


@SETTINGS
@given(metadata(), st.binary(max_size=130))
def test_metadata_fast_path_reads_as_the_reference(meta, junk):
    """The one-unpack path for 64-bit stream records (113/121 bytes) equals the field-by-field one."""
    from kvfix.codec.metadata import decode_metadata_slowly

    for raw in (meta.encode(), b"\x88" + junk[:112], b"\x88" + junk[:120], junk):
        fast = _only_codec_error(decode_metadata, raw)
        assert fast == _only_codec_error(decode_metadata_slowly, raw)
        if fast is not None:
            assert fast.raw_expire == decode_metadata_slowly(raw).raw_expire


@SETTINGS
@given(metadata(), st.data())
def test_metadata_truncations(meta, data):
    raw = meta.encode()
    cut = data.draw(st.integers(0, len(raw)))
    for b in (raw[:cut], raw[:cut] + b"\x00", raw + data.draw(st.binary(max_size=9))):
        m = _only_codec_error(decode_metadata, b)
        if m is not None:
            assert m.encode() == b


@SETTINGS
@given(st.binary(max_size=80))
def test_metadata_decode_encode_identity_on_random_bytes(data):
    m = _only_codec_error(decode_metadata, data)
    if m is not None:
        assert m.encode() == data


@SETTINGS
@given(st.binary(max_size=64))
def test_show_unshow_roundtrip(data):
    text = show(data)
    assert unshow(text) == data
    assert text.isprintable()
    assert "\x1b" not in text and "\x00" not in text
    assert safe_text(text) == text


@SETTINGS
@given(st.text(max_size=40))
def test_safe_text_is_printable(text):
    assert safe_text(text).isprintable()


@SETTINGS
@given(st.binary(max_size=40), st.booleans(), st.binary(max_size=3), st.binary(max_size=300), st.binary(max_size=12))
def test_key_prefix_len_agrees_with_the_decoder(ns, cluster, key, junk, tail):
    """The walk's shortcut to a key's prefix gives the decoder's prefix, and None where it fails."""
    from kvfix.codec.keys import decode_internal_key, internal_prefix, key_prefix_len

    ns = ns[:255]
    whole = internal_prefix(ns, key + junk, 7, 3 if cluster else None) + tail
    for data in (whole, junk, whole[: len(whole) // 2]):
        n = key_prefix_len(data, cluster)
        try:
            ik = decode_internal_key(data, cluster)
        except CodecError:
            assert n is None
            continue
        assert n == len(ik.prefix()) - 8


@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda t, c, o: PelValue(t, c, o).encode(),
                st.integers(0, U64_MAX),
                st.integers(0, U64_MAX),
                st.binary(max_size=40),
            ),
            st.binary(max_size=40),
        ),
        max_size=20,
    )
)
def test_pel_owners_counted_as_the_decoder_reads_them(values):
    """count_pel_owners reads a well-formed value's owner without decoding it; it must name
    whom decode_pel_value names (and raise as it does on a value that does not decode)."""
    from kvfix.codec.errors import CodecError
    from kvfix.codec.stream import count_pel_owners, decode_pel_value

    want: dict[bytes, int] = {}
    try:
        for v in values:
            name = decode_pel_value(v).consumer
            want[name] = want.get(name, 0) + 1
    except CodecError:
        try:
            count_pel_owners(values, {})
        except CodecError:
            return
        raise AssertionError("count_pel_owners read a value the decoder refuses") from None
    got: dict[bytes, int] = {}
    count_pel_owners(values, got)
    assert got == want
