"""inspect's per-type record decoders: one subkey record of a live key -> a Record.

Each decoder takes (column family, subkey, value, state) and returns a Record, or None
when that family holds nothing of the type; a CodecError marks the record undecodable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvfix.codec.errors import CodecError
from kvfix.codec.metadata import KeyType
from kvfix.codec.stream import ConsumerKey, EntryKey, GroupKey, PelKey, classify
from kvfix.codec.types import (
    bitmap_bit_positions,
    decode_bitmap_index,
    decode_list_index,
    decode_sortedint_id,
    decode_zset_member_value,
    decode_zset_score_key,
)

#: Bit positions listed per bitmap fragment.
BITS_SHOWN = 64


@dataclass
class Record:
    """One decoded record. ``data`` values may be bytes (shown escaped, with a *_hex twin)."""

    cf: str
    kind: str
    data: dict[str, Any]
    raw_key: bytes
    raw_value: bytes


def _rec(cf: str, kind: str, **data: Any) -> Record:
    return Record(cf, kind, data, b"", b"")


def _hash(cf, sub, value, state):
    if cf != "default":
        return None
    return _rec(cf, "field", field=sub, value=value)


def _set(cf, sub, value, state):
    if cf != "default":
        return None
    if value:
        raise CodecError(f"set member value is {len(value)} bytes, expected empty")
    return _rec(cf, "member", member=sub)


def _list(cf, sub, value, state):
    if cf != "default":
        return None
    return _rec(cf, "item", index=decode_list_index(sub), item=value)


def _zset(cf, sub, value, state):
    if cf == "default":
        return _rec(cf, "member_score", member=sub, score=decode_zset_member_value(value))
    if cf == "zset_score":
        sk = decode_zset_score_key(sub)
        if value:
            raise CodecError(f"zset_score value is {len(value)} bytes, expected empty")
        return _rec(cf, "score_member", score=sk.score, member=sk.member)
    return None


def _bitmap(cf, sub, value, state):
    if cf != "default":
        return None
    offset = decode_bitmap_index(sub)
    bits = bitmap_bit_positions(offset, value)
    return _rec(
        cf, "fragment", offset=offset, length=len(value), bits_set=len(bits), bits=bits[:BITS_SHOWN], fragment=value
    )


def _sortedint(cf, sub, value, state):
    if cf != "default":
        return None
    return _rec(cf, "id", id=decode_sortedint_id(sub))


def _stream(cf, sub, value, state):
    if cf != "stream":
        return None
    c = classify(sub, value)
    if c.key is None or c.value is None:
        raise CodecError(c.error or "stream record fits no layout")
    k, v = c.key, c.value
    if isinstance(k, EntryKey):
        return _rec(cf, "entry", id=str(k.id), fields=list(v.items))
    if isinstance(k, GroupKey):
        return _rec(
            cf,
            "group",
            layout=k.layout,
            group=k.group,
            consumers=v.consumer_number,
            pending=v.pending_number,
            last_delivered_id=str(v.last_delivered_id),
            entries_read=v.entries_read,
            lag=v.lag,
        )
    if isinstance(k, ConsumerKey):
        return _rec(
            cf,
            "consumer",
            layout=k.layout,
            group=k.group,
            consumer=k.consumer,
            pending=v.pending_number,
            last_attempted_ms=v.last_attempted_interaction_ms,
            last_successful_ms=v.last_successful_interaction_ms,
        )
    assert isinstance(k, PelKey)
    return _rec(
        cf,
        "pel",
        layout=k.layout,
        group=k.group,
        id=str(k.entry_id),
        consumer=v.consumer,
        delivery_count=v.delivery_count,
        last_delivery_ms=v.last_delivery_time_ms,
    )


#: Key type -> decoder of one record: (cf, subkey, value, state) -> Record, or None when
#: the family holds nothing of that type.
DECODERS = {
    KeyType.HASH: _hash,
    KeyType.SET: _set,
    KeyType.LIST: _list,
    KeyType.ZSET: _zset,
    KeyType.BITMAP: _bitmap,
    KeyType.SORTEDINT: _sortedint,
    KeyType.STREAM: _stream,
}
