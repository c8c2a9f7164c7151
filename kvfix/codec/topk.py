"""TopK (type 14, TYPE ``topk``): the metadata tail and what its subkeys are (pure, sans-I/O).

Kvrocks' src/storage/redis_metadata.h declares ``kRedisTopK = 14`` and TopKMetadata
(k, width, depth, decay); src/types/redis_topk.cc writes the subkeys.  The work is young:
the header declares ``width`` as 16 bits where the design (apache/kvrocks discussion of
issue #3176) gives 32, and the subkey layout changed between revisions (raw struct arrays,
then one decimal text record per counter).  So the tail is accepted in either width, only
when every field is plausible, and subkeys are classified by their shape, values kept raw:

    tail      k:u32 | width:u16 or u32 | depth:u32 | decay:double (order-preserving)
    subkeys   0x00 buckets | 0x01 heap | 0x02 heap size (decimal text)
              0x01 | index:u32                  heap item bytes      (first revision)
              0x00|0x01 | index:u32 | field:u8  decimal counter text (later revision)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, u16, u32
from kvfix.codec.types import decode_double, encode_double

TOPK_TYPE_ID = 14
TOPK_TYPE_NAME = "topk"


@dataclass(frozen=True, slots=True)
class TopKTail:
    k: int
    width: int
    depth: int
    decay: float
    #: 16 or 32: how wide ``width`` was stored (the two revisions differ).
    width_bits: int = 32

    def encode(self) -> bytes:
        width = u16(self.width) if self.width_bits == 16 else u32(self.width)
        return u32(self.k) + width + u32(self.depth) + encode_double(self.decay)


def decode_topk_tail(tail: bytes) -> TopKTail:
    """The tail after version|size; CodecError unless it has one of the two lengths and sane values."""
    if len(tail) not in (18, 20):
        raise CodecError(f"topk metadata tail is {len(tail)} bytes, expected 18 or 20")
    r = Reader(tail)
    k = r.u32("topk k")
    width_bits = 16 if len(tail) == 18 else 32
    width = r.u16("topk width") if width_bits == 16 else r.u32("topk width")
    depth = r.u32("topk depth")
    decay = decode_double(r.take(8, "topk decay"))
    if not (k and width and depth) or math.isnan(decay) or not 0.0 <= decay <= 1.0:
        raise CodecError(f"topk metadata values out of range (k={k} width={width} depth={depth} decay={decay})")
    return TopKTail(k, width, depth, decay, width_bits)


@dataclass(frozen=True, slots=True)
class TopKSubkey:
    """What one TopK record is: ``kind`` plus, for per-item records, its index and field."""

    kind: str  # buckets, heap, heap_size, heap_item, bucket_field, heap_field, unknown
    index: int | None = None
    field: int | None = None


_WHOLE = {0: "buckets", 1: "heap", 2: "heap_size"}
_PER_ITEM = {0: "bucket_field", 1: "heap_field"}


def classify_topk_subkey(sub: bytes) -> TopKSubkey:
    """Never raises: an unexpected shape is ``unknown`` (shown raw)."""
    if len(sub) == 1 and sub[0] in _WHOLE:
        return TopKSubkey(_WHOLE[sub[0]])
    if len(sub) == 5 and sub[0] == 1:
        return TopKSubkey("heap_item", int.from_bytes(sub[1:5], "big"))
    if len(sub) == 6 and sub[0] in _PER_ITEM:
        return TopKSubkey(_PER_ITEM[sub[0]], int.from_bytes(sub[1:5], "big"), sub[5])
    return TopKSubkey("unknown")


def encode_topk_subkey(key: TopKSubkey) -> bytes:
    if key.kind in _WHOLE.values():
        return bytes([next(b for b, n in _WHOLE.items() if n == key.kind)])
    if key.kind == "heap_item" and key.index is not None:
        return b"\x01" + u32(key.index)
    if key.kind in _PER_ITEM.values() and key.index is not None and key.field is not None:
        return bytes([next(b for b, n in _PER_ITEM.items() if n == key.kind)]) + u32(key.index) + bytes([key.field])
    raise CodecError(f"topk subkey {key} has no encoding")
