"""Synthetic databases for the stats and inspect tests (built with the codec's encoders)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kvfix.codec.keys import InternalKey, slot_of
from kvfix.codec.metadata import KeyType, ListTail, Metadata
from kvfix.codec.types import (
    BloomTail,
    HyperLogLogTail,
    JsonTail,
    TDigestTail,
    TimeSeriesTail,
    ZsetScoreKey,
    encode_bitmap_index,
    encode_list_index,
    encode_sortedint_id,
    encode_zset_member_value,
)
from kvfix.synth import BASE_VERSION, SynthDB

NS = b"__namespace"
#: A "token" no output may ever show (written into the propagate column family).
SECRET_TOKEN = "s3cr3t-T0KEN-never-print-7f1c"
FUTURE_MS = 4_102_444_800_000  # 2100-01-01
PAST_MS = 1_000_000_000_000  # 2001-09-09

HOSTILE_KEYS = [
    b"\x1b[31mred\x1b[0m",
    b"[red]markup[/red]",
    b"nul\x00byte",
    b"\xff\xfe\x00",
    b"back\\slash",
    b"tab\tnl\n",
]


@dataclass
class Builder:
    cluster: bool = False
    db: SynthDB = field(default_factory=SynthDB)
    _version: int = BASE_VERSION

    def __post_init__(self) -> None:
        self.db.cluster = self.cluster

    def version(self) -> int:
        self._version += 1 << 11
        return self._version

    def slot(self, key: bytes) -> int | None:
        return slot_of(key) if self.cluster else None

    def meta(self, key: bytes, meta: Metadata, ns: bytes = NS) -> Metadata:
        self.db.keys.append((ns, key, meta))
        return meta

    def sub(self, key: bytes, version: int, subkey: bytes, value: bytes, cf: str = "default", ns: bytes = NS) -> None:
        self.db.raw.append((cf, InternalKey(ns, key, version, subkey, self.slot(key)).encode(), value))

    # --- typed helpers -------------------------------------------------------------------

    def string(self, key: bytes, value: bytes, ns: bytes = NS, expire_ms: int = 0, is_64bit: bool = True) -> None:
        self.meta(key, Metadata(KeyType.STRING, is_64bit, expire_ms, None, None, tail=value), ns)

    def hash(
        self,
        key: bytes,
        fields: dict[bytes, bytes],
        ns: bytes = NS,
        expire_ms: int = 0,
        is_64bit: bool = True,
        size: int | None = None,
    ) -> int:
        v = self.version()
        self.meta(key, Metadata(KeyType.HASH, is_64bit, expire_ms, v, len(fields) if size is None else size), ns)
        for f, val in fields.items():
            self.sub(key, v, f, val, ns=ns)
        return v

    def set(self, key: bytes, members: list[bytes], ns: bytes = NS) -> int:
        v = self.version()
        self.meta(key, Metadata(KeyType.SET, True, 0, v, len(members)), ns)
        for m in members:
            self.sub(key, v, m, b"", ns=ns)
        return v

    def list(self, key: bytes, items: list[bytes], ns: bytes = NS) -> int:
        v = self.version()
        head = (1 << 63) - 1
        self.meta(key, Metadata(KeyType.LIST, True, 0, v, len(items), list=ListTail(head, head + len(items))), ns)
        for i, item in enumerate(items):
            self.sub(key, v, encode_list_index(head + i), item, ns=ns)
        return v

    def zset(self, key: bytes, members: dict[bytes, float], ns: bytes = NS, skew: bool = False) -> int:
        v = self.version()
        self.meta(key, Metadata(KeyType.ZSET, True, 0, v, len(members)), ns)
        for m, s in members.items():
            self.sub(key, v, m, encode_zset_member_value(s + (1.0 if skew else 0.0)), ns=ns)
            self.sub(key, v, ZsetScoreKey(s, m).encode(), b"", cf="zset_score", ns=ns)
        return v

    def bitmap(self, key: bytes, fragments: dict[int, bytes], size: int) -> int:
        v = self.version()
        self.meta(key, Metadata(KeyType.BITMAP, True, 0, v, size))
        for off, frag in fragments.items():
            self.sub(key, v, encode_bitmap_index(off), frag)
        return v

    def sortedint(self, key: bytes, ids: list[int]) -> int:
        v = self.version()
        self.meta(key, Metadata(KeyType.SORTEDINT, True, 0, v, len(ids)))
        for i in ids:
            self.sub(key, v, encode_sortedint_id(i), b"")
        return v


def rich_database(path: Path, cluster: bool = False) -> Path:
    """Every type, both encodings, expired/dead keys, garbage, unknown types, hostile names."""
    b = Builder(cluster=cluster)
    b.string(b"s64", b"hello")
    b.string(b"s32", b"old", is_64bit=False)
    b.string(b"s_expired", b"gone", expire_ms=PAST_MS)
    b.string(b"s_ttl", b"later", expire_ms=FUTURE_MS)
    b.hash(b"h", {b"f1": b"v1", b"f2": b"v2", b"f3": b"v3"})
    b.hash(b"h32", {b"a": b"1"}, is_64bit=False, expire_ms=FUTURE_MS)
    b.hash(b"h_dead", {}, size=0)
    b.hash(b"h_expired", {b"x": b"y"}, expire_ms=PAST_MS)
    b.set(b"st", [b"", b"m1", b"m2"])
    b.list(b"l", [b"one", b"two", b"three", b"four"])
    b.zset(b"z", {b"neg": -2.5, b"zero": 0.0, b"pos": 7.25, b"big": 1e300})
    b.bitmap(b"bm", {0: b"\x01\x80", 1024: b"\xff"}, size=1025)
    b.sortedint(b"si", [1, 5, 99])
    v = b.version()
    b.meta(b"bloom", Metadata(KeyType.BLOOM, True, 0, v, 3, tail=BloomTail(1, 2, 100, 0.01, 128).encode()))
    b.sub(b"bloom", v, b"0", b"\x00" * 128)
    b.meta(b"js", Metadata(KeyType.JSON, True, 0, None, None, tail=JsonTail(0, b'{"a":[1,2,{"b":null}]}').encode()))
    v = b.version()
    b.meta(b"hll", Metadata(KeyType.HYPERLOGLOG, True, 0, v, 0, tail=HyperLogLogTail(0).encode()))
    b.sub(b"hll", v, b"0", b"\x00" * 16)
    v = b.version()
    td = TDigestTail(100, 610, 0, 2, 3, 3, 1.5, 9.0, 3, 1)
    b.meta(b"td", Metadata(KeyType.TDIGEST, True, 0, v, 0, tail=td.encode()))
    v = b.version()
    b.meta(b"ts", Metadata(KeyType.TIMESERIES, True, 0, v, 0, tail=TimeSeriesTail(0, 4096, 1, 0, b"", 0).encode()))
    # Unknown types 14 and 15: metadata with a made-up tail.
    b.meta(b"unknown14", Metadata(14, True, 0, None, None, tail=b"\x00" * 16 + b"\x00\x00\x00\x00\x00\x00\x00\x01"))
    b.meta(b"unknown15", Metadata(15, True, 0, None, None, tail=b"whatever"))
    # Hostile names: a hash each, in another namespace too.
    for k in HOSTILE_KEYS:
        b.hash(k, {b"\x1b[2J[bold]f": b"\x00\xff[red]v"})
    b.hash(b"\x1b]0;title\x07", {b"f": b"v"}, ns=b"\x1b[31mns[red]")
    b.string(b"t", b"tenant", ns=b"tenant_a")
    # Garbage: a dead version of h, subkeys of a string (an old hash), and an orphan.
    b.sub(b"h", BASE_VERSION - (1 << 11), b"old", b"stale")
    b.sub(b"s64", BASE_VERSION - (2 << 11), b"f", b"older")
    b.sub(b"no-metadata", BASE_VERSION, b"f", b"orphan")
    b.sub(b"no-metadata", BASE_VERSION, b"0000000000000001", b"orphan", cf="stream")
    # Secrets: namespace tokens in propagate.
    tokens = {"tenant_a": SECRET_TOKEN, "__namespace": SECRET_TOKEN + "-admin"}
    b.db.raw.append(("propagate", b"__namespace_keys__", json.dumps(tokens).encode()))
    return b.db.write(path)


def manifest_value(v):
    """Manifest bytes: UTF-8 text, or 'hex:' + digits."""
    if isinstance(v, str):
        return bytes.fromhex(v[4:]) if v.startswith("hex:") else v.encode()
    return v
