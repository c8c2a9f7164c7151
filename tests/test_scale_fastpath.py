"""The entry fast path of --deep agrees with classify() and StreamAnalyzer.add().

kvfix.codec.stream.is_plain_entry (inlined in StreamAnalyzer.add_chunk) may only accept
what classify() reads as an entry and nothing else, with a valid value; add_chunk must
leave a report identical to add() record by record.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kvfix.analysis.model import StreamReport
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.codec.ints import U64_MAX, u64
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import (
    PREFIX_MARK,
    ConsumerKey,
    EntryKey,
    EntryValue,
    GroupKey,
    PelKey,
    RecordKind,
    classify,
    classify_slowly,
    encode_subkey,
    group_record_shape,
    is_plain_entry,
    relocated_subkey,
    with_layout,
)
from kvfix.synth import SynthStream

PREFIX = b"\x0b__namespace\x00\x00\x00\x01k" + u64(42)

first_u64 = st.one_of(
    st.sampled_from([0, 1, 7, 8, 9, 16, 300, (1 << 29), (1 << 29) + 1, 1_700_000_000_000, U64_MAX - 1, U64_MAX]),
    st.integers(0, U64_MAX),
)
subkeys = st.one_of(
    st.builds(lambda a, b: u64(a) + u64(b), first_u64, st.integers(0, U64_MAX)),  # 16 bytes
    st.builds(lambda a, b: u64(a) + b, first_u64, st.binary(max_size=40)),
    st.builds(lambda a: u64(a) + b"METADATA", st.sampled_from([0, 1, 8])),
    st.builds(lambda k, b: PREFIX_MARK + bytes([k]) + b, st.integers(0, 4), st.binary(max_size=30)),
    st.binary(max_size=24),
)
items = st.lists(st.binary(max_size=200), min_size=0, max_size=6)
values = st.one_of(
    st.builds(lambda xs: EntryValue(tuple(xs)).encode(), items),  # valid or odd item counts, long items
    st.builds(lambda xs, cut: EntryValue(tuple(xs)).encode()[:cut], items, st.integers(0, 60)),  # truncated
    st.binary(max_size=60),
    st.binary(min_size=24, max_size=24),
    st.binary(min_size=48, max_size=48),
    st.builds(lambda c: u64(1) + u64(2) + u64(len(c)) + c, st.binary(max_size=10)),  # PEL value
)


@settings(max_examples=3000, deadline=None)
@given(subkeys, values)
def test_is_plain_entry_implies_classify_entry(sub: bytes, value: bytes) -> None:
    if is_plain_entry(sub, value):
        c = classify(sub, value)
        assert isinstance(c.key, EntryKey)
        assert c.readings == (RecordKind.ENTRY,)
        assert c.value is not None and c.error is None
        assert c.key.id.ms not in (0, U64_MAX)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(1, U64_MAX - 1), max_size=5), st.lists(st.binary(max_size=127), min_size=1, max_size=3))
def test_is_plain_entry_accepts_ordinary_entries(ms_values: list[int], fields: list[bytes]) -> None:
    value = EntryValue(tuple(fields * 2)).encode()
    for ms in ms_values:
        assert is_plain_entry(u64(ms) + u64(5), value)


def _report() -> StreamReport:
    return StreamReport(b"__namespace", b"k", None, 42, SynthStream(b"k").metadata())


def _state(a: StreamAnalyzer) -> tuple:
    rep = a.finish()
    return (
        dict(rep.records),
        rep.ambiguous,
        rep.undecodable,
        rep.max_ms_entries,
        rep.groups,
        rep.collisions,
        [(f.code, f.message) for f in rep.findings],
    )


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(subkeys, values), max_size=40))
def test_add_chunk_equals_add(records: list[tuple[bytes, bytes]]) -> None:
    records = sorted(dict(records).items())  # key order, unique keys, like a walk
    one, chunked = StreamAnalyzer(_report()), StreamAnalyzer(_report())
    for sub, value in records:
        one.add(sub, value)
    chunk = [(PREFIX + sub, value) for sub, value in records]
    for i in range(0, len(chunk), 7):
        chunked.add_chunk(chunk[i : i + 7], len(PREFIX))
    assert _state(chunked) == _state(one)


def test_add_chunk_respects_a_subclass_add() -> None:
    seen: list[bytes] = []

    class Counting(StreamAnalyzer):
        def add(self, sub: bytes, value: bytes) -> None:
            seen.append(sub)
            super().add(sub, value)

    a = Counting(_report())
    entry = u64(1_700_000_000_000) + u64(0)
    a.add_chunk([(PREFIX + entry, EntryValue((b"f", b"v")).encode())], len(PREFIX))
    assert seen == [entry]
    assert a.report.records["entry"] == 1


def _reference_value(kind: str, data: bytes):
    """The Reader-based decoders the struct fast paths replaced (value, or None on error)."""
    from kvfix.codec.errors import CodecError
    from kvfix.codec.ints import Reader
    from kvfix.codec.metadata import StreamId
    from kvfix.codec.stream import ConsumerValue, GroupValue, PelValue

    try:
        r = Reader(data)
        if kind == "group":
            if len(data) != 48:
                return None
            return GroupValue(r.u64(), r.u64(), StreamId(r.u64(), r.u64()), r.i64(), r.u64())
        if kind == "consumer":
            return ConsumerValue(r.u64(), r.u64(), r.u64()) if len(data) == 24 else None
        t, c = r.u64(), r.u64()
        owner = r.take(r.u64(), "owner")
        r.expect_end("PEL value")
        return PelValue(t, c, owner)
    except CodecError:
        return None


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["group", "consumer", "pel"]),
    st.one_of(
        st.binary(max_size=60),
        st.binary(min_size=48, max_size=48),
        st.binary(min_size=24, max_size=24),
        st.builds(
            lambda a, n, c: a + u64(n) + c,
            st.binary(min_size=16, max_size=16),
            st.integers(0, 12),
            st.binary(max_size=12),
        ),
    ),
)
def test_struct_value_decoders_match_the_reader(kind: str, data: bytes) -> None:
    from kvfix.codec.errors import CodecError
    from kvfix.codec.stream import decode_consumer_value, decode_group_value, decode_pel_value

    decode = {"group": decode_group_value, "consumer": decode_consumer_value, "pel": decode_pel_value}[kind]
    try:
        got = decode(data)
    except CodecError:
        got = None
    assert got == _reference_value(kind, data)


# --- the legacy fast path of classify() and relocated_subkey() -----------------------------

names = st.one_of(st.sampled_from([b"", b"g", b"METADATA", b"\x00" * 8, b"\xff" * 8]), st.binary(max_size=20))
ids = st.builds(StreamId, first_u64, st.integers(0, U64_MAX))
group_keys = st.one_of(
    st.builds(GroupKey, st.sampled_from(["legacy", "prefixed"]), names),
    st.builds(ConsumerKey, st.sampled_from(["legacy", "prefixed"]), names, names),
    st.builds(PelKey, st.sampled_from(["legacy", "prefixed"]), names, ids),
)
legacy_shaped = st.one_of(
    st.builds(encode_subkey, group_keys),
    st.builds(lambda k, cut: encode_subkey(k)[:cut], group_keys, st.integers(0, 40)),  # truncated
    st.builds(lambda k, extra: encode_subkey(k) + extra, group_keys, st.binary(min_size=1, max_size=9)),
    subkeys,
)
group_values = st.one_of(
    values,
    st.builds(lambda c, d: u64(1) + u64(2) + u64(max(0, len(c) + d)) + c, st.binary(max_size=10), st.integers(-2, 2)),
)


def _valid_value(key) -> st.SearchStrategy[bytes]:
    if isinstance(key, GroupKey):
        return st.binary(min_size=48, max_size=48)
    if isinstance(key, ConsumerKey):
        return st.binary(min_size=24, max_size=24)
    return st.builds(lambda c: u64(1) + u64(2) + u64(len(c)) + c, st.binary(max_size=10))


#: A record of every kind with a value that fits it (the fast paths' positive cases), or an
#: independent subkey and value (mostly negative cases).
records = st.one_of(
    group_keys.flatmap(lambda k: st.tuples(st.just(encode_subkey(k)), _valid_value(k))),
    st.tuples(legacy_shaped, group_values),
)


@settings(max_examples=4000, deadline=None)
@given(records)
def test_classify_fast_path_agrees_with_the_slow_path(record: tuple[bytes, bytes]) -> None:
    sub, value = record
    assert classify(sub, value) == classify_slowly(sub, value)


@settings(max_examples=2000, deadline=None)
@given(group_keys)
def test_relocated_subkey_is_encoding_in_the_other_layout(key) -> None:
    other = with_layout(key, "legacy" if key.layout == "prefixed" else "prefixed")
    assert relocated_subkey(encode_subkey(key), key.kind) == encode_subkey(other)
    assert relocated_subkey(encode_subkey(other), other.kind) == encode_subkey(key)


def test_relocated_subkey_refuses_entries() -> None:
    import pytest

    from kvfix.codec.errors import CodecError

    with pytest.raises(CodecError):
        relocated_subkey(u64(5) + u64(1), RecordKind.ENTRY)


@settings(max_examples=3000, deadline=None)
@given(records)
def test_group_record_shape_is_what_classify_reads(record: tuple[bytes, bytes]) -> None:
    """migrate files records by group_record_shape() alone: kind and group name must be classify()'s."""
    sub, value = record
    shape = group_record_shape(sub, value)
    c = classify_slowly(sub, value)
    if shape is None:
        return
    kind, end = shape
    assert c.readings == (kind,) and c.key is not None and c.value is not None
    assert c.key.group == (sub[8:end] if kind.layout == "legacy" else sub[17:end])  # type: ignore[union-attr]


# --- PEL runs: add_chunk files a group's PEL records raw, by key prefix and length -------

run_names = st.sampled_from(
    [b"", b"g", b"g\x00", b"gg", b"group-1", b"group-12", b"\x00" * 8, b"\xff" * 9, b"METADATA"]
)
run_ids = st.builds(
    StreamId,
    st.sampled_from([0, 1, 5, 1_700_000_000_000, U64_MAX - 1, U64_MAX]),
    st.sampled_from([0, 1, 2, U64_MAX]),
)
run_pel_values = st.one_of(
    st.builds(lambda c: u64(1) + u64(2) + u64(len(c)) + c, st.sampled_from([b"", b"c", b"consumer"])),
    st.builds(lambda c, d: u64(1) + u64(2) + u64(max(0, len(c) + d)) + c, st.binary(max_size=6), st.integers(-2, 2)),
    st.binary(max_size=30),
)
run_records = st.one_of(
    st.builds(  # mostly PEL records of a few groups, valid or not
        lambda lay, g, i, v: (encode_subkey(PelKey(lay, g, i)), v),
        st.sampled_from(["legacy", "prefixed"]),
        run_names,
        run_ids,
        run_pel_values,
    ),
    st.builds(
        lambda lay, g, c, v: (encode_subkey(ConsumerKey(lay, g, c)), v),
        st.sampled_from(["legacy", "prefixed"]),
        run_names,
        st.sampled_from([b"", b"c", b"\x00"]),
        st.sampled_from([b"\x00" * 24, b"\x01" * 24, b"\x00" * 23]),
    ),
    st.builds(
        lambda lay, g, v: (encode_subkey(GroupKey(lay, g)), v),
        st.sampled_from(["legacy", "prefixed"]),
        run_names,
        st.sampled_from([b"\x00" * 48, b"\x00" * 16 + u64(7) + b"\x00" * 24, b"\x00" * 47]),
    ),
    st.builds(lambda ms, v: (u64(ms) + u64(0), v), st.sampled_from([1, 5, 1_700_000_000_000]), values),  # entries
    st.tuples(subkeys, values),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(run_records, max_size=60), st.integers(1, 9))
def test_pel_runs_equal_add(records: list[tuple[bytes, bytes]], size: int) -> None:
    """Dense runs of one group's PEL records, broken runs, neighbours with a shared name prefix,
    runs across chunk boundaries: add_chunk's report is add()'s."""
    records = sorted(dict(records).items())
    one, chunked = StreamAnalyzer(_report()), StreamAnalyzer(_report())
    for sub, value in records:
        one.add(sub, value)
    chunk = [(PREFIX + sub, value) for sub, value in records]
    for i in range(0, len(chunk), size):
        chunked.add_chunk(chunk[i : i + size], len(PREFIX))
    assert _state(chunked) == _state(one)
    assert chunked.report.collision_count == len(chunked.report.collisions)
    # Streamed from raw records (what JSON and tables read), before anything is built:
    lazy = StreamAnalyzer(_report())
    for i in range(0, len(chunk), size):
        lazy.add_chunk(chunk[i : i + size], len(PREFIX))
    rep = lazy.finish()
    assert rep.collision_count == len(one.report.collisions)
    assert list(rep.iter_collisions()) == one.report.collisions
    for ident, g in rep.groups.items():
        assert list(g.iter_pel()) == one.report.groups[ident].pel
    assert rep._collisions is None  # streamed, not kept


def test_a_pel_run_is_filed_raw_until_read() -> None:
    """The point of runs: 1,000 PEL records of one group cost no decoded object until asked for."""
    from kvfix.analysis.model import PelInfo
    from kvfix.codec.stream import PelValue

    a = StreamAnalyzer(_report())
    chunk = [
        (
            PREFIX + encode_subkey(PelKey("legacy", b"billing", StreamId(1_700_000_000_000 + i, 0))),
            PelValue(5, 1, b"c").encode(),
        )
        for i in range(1000)
    ]
    a.add_chunk(chunk, len(PREFIX))
    rep = a.finish()
    g = rep.groups[("legacy", b"billing")]
    assert len(g.raw_pel) == 1000 and rep.records["legacy_pel"] == 1000
    assert rep.collision_count == 1000 and rep._collisions is None  # not built yet
    assert g.pel[0] == PelInfo(StreamId(1_700_000_000_000, 0), PelValue(5, 1, b"c"))
    assert [c.subkey for c in rep.collisions] == [key[len(PREFIX) :] for key, _ in chunk]


@settings(max_examples=1500, deadline=None)
@given(group_keys)
def test_describe_reads_what_the_decoded_key_says(key) -> None:
    """A plan's Rewrite.detail is derived from the subkey by slicing; it must name what decoding names."""
    from kvfix.migrations.stream_plan import describe
    from kvfix.textsafe import show

    if isinstance(key, PelKey):
        expected = f"pending {key.entry_id.ms}-{key.entry_id.seq}"
    elif isinstance(key, ConsumerKey):
        expected = f"consumer {show(key.consumer)}"
    else:
        expected = "group"
    assert describe(key.kind.value, key.group, encode_subkey(key)) == expected


def test_pel_records_filed_under_two_prefix_lengths_keep_their_ids() -> None:
    """A group's raw PEL records are read at the offset they were filed with, even when a
    later chunk (a parallel deep scan's replayed subkeys, n = 0) files more at another."""
    from kvfix.codec.stream import PelValue

    a = StreamAnalyzer(_report())
    value = PelValue(5, 1, b"c").encode()
    first = [
        (PREFIX + encode_subkey(PelKey("legacy", b"g", StreamId(1_700_000_000_000 + i, 0))), value) for i in range(3)
    ]
    later = [(encode_subkey(PelKey("legacy", b"g", StreamId(1_800_000_000_000 + i, 0))), value) for i in range(3)]
    a.add_chunk(first, len(PREFIX))
    a.add_chunk(later, 0)
    ids = [p.entry_id.ms for p in a.finish().groups[("legacy", b"g")].pel]
    assert ids == [*(1_700_000_000_000 + i for i in range(3)), *(1_800_000_000_000 + i for i in range(3))]
