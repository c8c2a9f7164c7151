"""Which stream record a subkey and its value are, when the bytes alone may fit two.

Some byte strings fit two readings (a 16-byte legacy group with an empty name is also a
valid entry id; a legacy consumer with an empty name has the shape of a PEL record), so
:func:`classify` decides from the whole key and the value, and says when the record stays
ambiguous.  :func:`group_record_shape` and :func:`is_plain_entry` answer the common cases
without building objects, for walks over millions of records; :func:`classify_slowly` is
the reference both must agree with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kvfix.codec.errors import CodecError
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream_keys import (
    ENTRY_KEY_LEN,
    ID_STRUCT,
    KIND_LAYOUT,
    KIND_ROLE,
    LEGACY,
    LEGACY_SUFFIX,
    PREFIX_MARK,
    ZERO8,
    ConsumerKey,
    GroupKey,
    GroupRecordKey,
    PelKey,
    RecordKind,
    StreamSubkey,
    subkey_readings,
)
from kvfix.codec.stream_values import (
    CONSUMER_VALUE_LEN,
    GROUP_VALUE_LEN,
    GROUP_VALUE_STRUCT,
    PEL_VALUE_FIXED_LEN,
    U64X3,
    ConsumerValue,
    GroupValue,
    PelValue,
    StreamValue,
    decode_value,
)


@dataclass(frozen=True, slots=True)
class Classified:
    """What a stream subkey and its value are.

    ``key``/``value`` hold the chosen reading (None when nothing fits).  ``readings``
    lists every kind whose key *and* value fit; more than one means ambiguous.
    ``error`` explains a key whose structure fits but whose value does not.
    """

    key: StreamSubkey | None
    value: StreamValue | None
    readings: tuple[RecordKind, ...] = ()
    error: str | None = None

    @property
    def kind(self) -> RecordKind | None:
        return None if self.key is None else self.key.kind

    @property
    def ambiguous(self) -> bool:
        return len(self.readings) > 1


# When two readings fit key and value, prefer group metadata over an entry with id
# 0-0x4d45544144415441, and a consumer over a PEL record whose owner name is empty:
# both alternatives need ids or names nobody writes on purpose.
_PREFERENCE = {k: i for i, k in enumerate(("group", "consumer", "pel", "entry"))}


_U64_AT = struct.Struct(">Q").unpack_from


def group_record_shape(sub: bytes, value: bytes) -> tuple[RecordKind, int] | None:
    """(kind, end of the group name) of a well-formed group record with one reading, else None.

    The group name is ``sub[8:end]`` (legacy) or ``sub[17:end]`` (prefixed).  Answers only
    when the subkey has exactly one structural reading and the value decodes:

    - legacy, 24+ bytes (never an entry, which is 16; a legacy length can't be 2^64-1,
      so no prefixed reading fits): "METADATA" alone after the name (group); a sized,
      non-empty consumer name + "METADATA" (an empty one is also a PEL shape); or 16
      bytes whose first 8 are not zero (a zero ms could be an empty consumer name);
    - prefixed, type 1/2/3: the type byte decides, and no legacy or entry reading fits
      (a legacy length of 2^64-1 overruns any key).

    Everything else goes through classify's full path, which tests compare this with.
    The check costs no object, so a migration can sort records without decoding them.
    """
    n = len(sub)
    if n < 17:
        return None
    m = len(value)
    if sub.startswith(PREFIX_MARK):
        glen = _U64_AT(sub, 9)[0]
        rest = n - 17 - glen
        if rest < 0:
            return None
        end = 17 + glen
        kind = sub[8]
        if kind == 1:
            return (RecordKind.PREFIXED_GROUP, end) if rest == 0 and m == GROUP_VALUE_LEN else None
        if kind == 2:
            if rest >= 8 and _U64_AT(sub, end)[0] == rest - 8 and m == CONSUMER_VALUE_LEN:
                return RecordKind.PREFIXED_CONSUMER, end
            return None
        if kind == 3 and rest == 16 and _pel_value_fits(value, m):
            return RecordKind.PREFIXED_PEL, end
        return None
    if n < 24:
        return None
    glen = _U64_AT(sub)[0]
    rest = n - 8 - glen
    if rest < 8:
        return None
    end = 8 + glen
    if rest == 16:
        if sub.startswith(ZERO8, end) or not _pel_value_fits(value, m):
            return None
        return RecordKind.LEGACY_PEL, end
    if not sub.endswith(LEGACY_SUFFIX):
        return None
    if rest == 8:
        return (RecordKind.LEGACY_GROUP, end) if m == GROUP_VALUE_LEN else None
    if rest > 16 and _U64_AT(sub, end)[0] == rest - 16 and m == CONSUMER_VALUE_LEN:
        return RecordKind.LEGACY_CONSUMER, end
    return None


def pel_run_end(chunk: list[tuple[bytes, bytes]], i: int, kind: RecordKind, end: int) -> int:
    """Where the run of PEL records that chunk[i - 1] starts ends (an index into ``chunk``).

    chunk[i - 1] is a whole key and value whose subkey group_record_shape accepted as a
    ``kind`` PEL record, its group name ending at ``end`` in the whole key.  A record
    continues the run when its whole key has the same length and the same bytes up to
    ``end`` (so the same kind and group, and a 16-byte entry id), the id's first u64 is not
    zero in a legacy one (a zero ms also reads as an empty consumer name) and its value
    has a PEL value's shape: what group_record_shape would check, without its other cases.
    """
    first = chunk[i - 1][0]
    size, head = len(first), first[:end]
    legacy = kind is RecordKind.LEGACY_PEL
    fixed, at = PEL_VALUE_FIXED_LEN, _U64_AT
    n = len(chunk)
    while i < n:
        whole, value = chunk[i]
        if len(whole) != size or not whole.startswith(head) or (legacy and whole.startswith(ZERO8, end)):
            break
        m = len(value)
        if m < fixed or fixed + at(value, 16)[0] != m:
            break
        i += 1
    return i


def _pel_value_fits(value: bytes, m: int) -> bool:
    return m >= PEL_VALUE_FIXED_LEN and PEL_VALUE_FIXED_LEN + _U64_AT(value, 16)[0] == m


def fast_group_record(sub: bytes, value: bytes) -> tuple[GroupRecordKey, StreamValue] | None:
    """(key, value) as classify() reads a record group_record_shape() answers for, else None."""
    shape = group_record_shape(sub, value)
    if shape is None:
        return None
    kind, end = shape
    role = KIND_ROLE[kind]
    layout = KIND_LAYOUT[kind]
    group = sub[8 if layout == LEGACY else 17 : end]
    if role == "pel":
        ms, seq = ID_STRUCT.unpack_from(sub, end)
        time_ms, count, _ = U64X3.unpack_from(value)
        return PelKey(layout, group, StreamId(ms, seq)), PelValue(time_ms, count, value[PEL_VALUE_FIXED_LEN:])  # type: ignore[arg-type]
    if role == "group":
        consumers, pending, ms, seq, entries_read, lag = GROUP_VALUE_STRUCT.unpack(value)
        return GroupKey(layout, group), GroupValue(consumers, pending, StreamId(ms, seq), entries_read, lag)  # type: ignore[arg-type]
    consumer = sub[end + 8 : len(sub) - 8] if layout == LEGACY else sub[end + 8 :]
    return ConsumerKey(layout, group, consumer), ConsumerValue(*U64X3.unpack(value))  # type: ignore[arg-type]


def classify(sub: bytes, value: bytes) -> Classified:
    fast = fast_group_record(sub, value)
    if fast is not None:
        key, val = fast
        return Classified(key, val, _ONLY[key.kind])
    return classify_slowly(sub, value)


_ONLY = {k: (k,) for k in RecordKind}


def classify_slowly(sub: bytes, value: bytes) -> Classified:
    """classify() by trying every reading of the subkey (the reference the fast path must match)."""
    readings = subkey_readings(sub)
    if not readings:
        return Classified(None, None, error="subkey fits no stream record layout")
    fits: list[tuple[StreamSubkey, StreamValue]] = []
    errors: list[str] = []
    for key in readings:
        try:
            fits.append((key, decode_value(key.kind, value)))
        except CodecError as exc:
            errors.append(f"as {key.kind.value}: {exc}")
    if not fits:
        return Classified(readings[0], None, error="; ".join(errors))
    if len(fits) > 1:
        fits.sort(key=lambda kv: _PREFERENCE[kv[0].kind.role])
    key, val = fits[0]
    return Classified(key, val, tuple(k.kind for k, _ in fits))


def is_plain_entry(sub: bytes, value: bytes) -> bool:
    """True only when classify(sub, value) is an entry reading alone, with a valid value.

    A 16-byte subkey whose first u64 is neither 0 nor 2^64-1 fits no group layout (a
    legacy record needs len(group) + 8 bytes after its length, so a 16-byte one has an
    empty name; a prefixed one starts with 0xFF*8 and is longer), so only the value needs
    checking: varint32 lengths that tile it exactly into a non-zero even number of items.
    Single-byte lengths are checked here; anything else answers False (the caller falls
    back to classify), so True never disagrees with classify.  StreamAnalyzer.add_chunk
    inlines this same test.
    """
    if len(sub) != ENTRY_KEY_LEN or sub.startswith(ZERO8) or sub.startswith(PREFIX_MARK):
        return False
    m = len(value)
    p = 0
    while p < m:
        b = value[p]
        if b > 127:
            return False
        p += b + 1
        if p >= m:
            return False
        b = value[p]
        if b > 127:
            return False
        p += b + 1
    return m > 0 and p == m
