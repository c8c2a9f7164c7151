"""Hash field expiration: the hash metadata's extra fields and the per-field expiry prefix.

Read off Kvrocks' src/storage/redis_metadata.{h,cc} (HashMetadata, HashSubkeyEncodingMode,
EncodeSubkeyValue/DecodeSubkeyValue) and src/types/redis_hash.cc, as the Kvrocks website's
data-structure-on-rocksdb page (2026-06) documents them:

    legacy mode             metadata: flags | expire | version | size
                            field value: value
    field-expiration mode   metadata: flags | expire | version | size |
                                      mode:u8 (1) | persist:u64 | lower:u64 | upper:u64
                            field value: expire_ms:u64 | value      (0 = no expiry)

``persist`` counts the fields without an expiry; ``lower``/``upper`` bound the expiries of
the others (both 0 when every field is persistent).  A field is expired once its expire is
non-zero and not after now (Kvrocks' IsFieldExpired).  Expired fields stay on disk until
compaction drops them.  An older, never released layout (PR #2402: flag bit 0x40 and the
same value prefix) is not this one: kvfix recognises it and shows it raw.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, u64

#: HashSubkeyEncodingMode::kFieldExpiration.
FIELD_EXPIRATION_MODE = 1
#: HashMetadata::kFieldExpirationPrefixSize.
FIELD_EXPIRE_PREFIX_BYTES = 8


@dataclass(frozen=True, slots=True)
class HashFieldExpiryTail:
    """The fields a field-expiration hash's metadata carries after ``size``."""

    mode: int
    persist: int
    lower: int
    upper: int

    def encode(self) -> bytes:
        return bytes([self.mode]) + u64(self.persist) + u64(self.lower) + u64(self.upper)


def decode_hash_tail(tail: bytes) -> HashFieldExpiryTail | None:
    """None for a legacy hash (nothing after size); CodecError for a tail of another shape."""
    if not tail:
        return None
    r = Reader(tail)
    mode = r.u8("hash subkey encoding mode")
    if mode != FIELD_EXPIRATION_MODE:
        raise CodecError(f"hash subkey encoding mode {mode} is not one Kvrocks defines")
    out = HashFieldExpiryTail(mode, r.u64("persist"), r.u64("lower"), r.u64("upper"))
    r.expect_end("hash field expiration metadata")
    return out


@dataclass(frozen=True, slots=True)
class HashFieldValue:
    """A field value of a field-expiration hash: its absolute expiry (ms, 0 none) and the value."""

    expire_ms: int
    value: bytes

    def encode(self) -> bytes:
        return u64(self.expire_ms) + self.value

    def is_expired(self, now_ms: int) -> bool:
        return self.expire_ms != 0 and self.expire_ms <= now_ms


def decode_hash_field_value(raw: bytes) -> HashFieldValue:
    if len(raw) < FIELD_EXPIRE_PREFIX_BYTES:
        raise CodecError(f"field value is {len(raw)} bytes, shorter than the {FIELD_EXPIRE_PREFIX_BYTES}-byte expiry")
    return HashFieldValue(int.from_bytes(raw[:FIELD_EXPIRE_PREFIX_BYTES], "big"), raw[FIELD_EXPIRE_PREFIX_BYTES:])


def hash_encoding(type_id: int, extra_flags: int, tail: bytes, flag: int) -> str:
    """How a hash's fields are stored: "legacy" (plain values), "ttl" (field expiration,
    this module's layout), "pr2402" (the unmerged layout behind flag bit ``flag``) or "odd"
    (another tail: recognised, not decoded).  Other types are "legacy"."""
    if type_id != 2:  # KeyType.HASH
        return "legacy"
    if extra_flags & flag:
        return "pr2402"
    if not tail:
        return "legacy"
    try:
        decode_hash_tail(tail)
    except CodecError:
        return "odd"
    return "ttl"
