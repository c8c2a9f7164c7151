"""stats' type-specific counts: what one live subkey record of a newer encoding adds up to.

A ``Detail`` is chosen once per user key from its metadata (None for the types whose
records need no more than being counted) and then called for each of its live records;
it adds to the (namespace, type) ``TypeCounts.detail`` and never raises.
"""

from __future__ import annotations

from collections.abc import Callable

from kvfix.analysis.stats_model import TypeCounts
from kvfix.codec.hash_ttl import FIELD_EXPIRE_PREFIX_BYTES
from kvfix.codec.hash_ttl import hash_encoding as codec_hash_encoding
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.codec.timeseries import CHUNK, CHUNK_COMPRESSED, DOWNSTREAM, LABEL, chunk_count
from kvfix.codec.topk import TOPK_TYPE_ID, classify_topk_subkey
from kvfix.codec.types import HASH_FIELD_EXPIRE_FLAG

Detail = Callable[[TypeCounts, bytes, bytes], None]


def hash_encoding(meta: Metadata) -> str:
    """legacy, field_expiration (decodable), undecoded (PR #2402 flag layout or another tail)."""
    mode = codec_hash_encoding(meta.type_id, meta.extra_flags, meta.tail, HASH_FIELD_EXPIRE_FLAG)
    return {"ttl": "field_expiration", "legacy": "legacy"}.get(mode, "undecoded")


def count_key(tc: TypeCounts, meta: Metadata) -> None:
    """Metadata-pass counts: hashes by field encoding (only the non-legacy ones are named)."""
    if meta.type_id == KeyType.HASH:
        encoding = hash_encoding(meta)
        if encoding != "legacy":
            tc.bump(f"{encoding}_keys")


def detail_for(meta: Metadata, now_ms: int) -> Detail | None:
    if meta.type_id == KeyType.HASH and hash_encoding(meta) == "field_expiration":
        return _hash_fields(now_ms)
    if meta.type_id == KeyType.TIMESERIES:
        return _timeseries
    if meta.type_id == TOPK_TYPE_ID:
        return _topk
    return None


def _hash_fields(now_ms: int) -> Detail:
    def count(tc: TypeCounts, sub: bytes, value: bytes) -> None:
        if len(value) < FIELD_EXPIRE_PREFIX_BYTES:
            tc.bump("field_values_undecodable")
            return
        expire = int.from_bytes(value[:FIELD_EXPIRE_PREFIX_BYTES], "big")
        if expire:
            tc.bump("fields_with_ttl")
            if expire <= now_ms:
                tc.bump("fields_expired")

    return count


def _timeseries(tc: TypeCounts, sub: bytes, value: bytes) -> None:
    kind = sub[0] if sub else -1
    if kind == CHUNK and len(sub) == 9 and len(value) >= 8:
        tc.bump("chunks")
        tc.bump("samples", chunk_count(value))
        if int.from_bytes(value[:4], "big") & CHUNK_COMPRESSED:
            tc.bump("chunks_compressed")
    elif kind == LABEL:
        tc.bump("labels")
    elif kind == DOWNSTREAM:
        tc.bump("rules")
    else:
        tc.bump("records_undecodable")


def _topk(tc: TypeCounts, sub: bytes, value: bytes) -> None:
    kind = classify_topk_subkey(sub).kind
    tc.bump("records_undecodable" if kind == "unknown" else f"{kind}_records")
