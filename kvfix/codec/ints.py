"""Fixed-width big-endian integers and varint32, as Kvrocks' encoding.h writes them.

Big-endian matters: subkeys sort by these bytes, which is why legacy group records
(length first) sort among small entry ids.
"""

from __future__ import annotations

import struct

from kvfix.codec.errors import CodecError

U64_MAX = (1 << 64) - 1
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")


def u16(n: int) -> bytes:
    return _U16.pack(n)


def u32(n: int) -> bytes:
    return _U32.pack(n)


def u64(n: int) -> bytes:
    return _U64.pack(n)


def i64(n: int) -> bytes:
    return _I64.pack(n)


def varint32(n: int) -> bytes:
    if not 0 <= n < 1 << 32:
        raise CodecError(f"varint32 out of range: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Reader:
    """A cursor over bytes whose every short read raises CodecError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int, what: str = "bytes") -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CodecError(f"truncated {what}: need {n} bytes at offset {self.pos}, have {self.remaining}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    def u8(self, what: str = "u8") -> int:
        return self.take(1, what)[0]

    def u16(self, what: str = "u16") -> int:
        return _U16.unpack(self.take(2, what))[0]

    def u32(self, what: str = "u32") -> int:
        return _U32.unpack(self.take(4, what))[0]

    def u64(self, what: str = "u64") -> int:
        return _U64.unpack(self.take(8, what))[0]

    def i64(self, what: str = "i64") -> int:
        return _I64.unpack(self.take(8, what))[0]

    def f64(self, what: str = "double") -> float:
        return _F64.unpack(self.take(8, what))[0]

    def varint32(self, what: str = "varint32") -> int:
        result = 0
        for shift in range(0, 35, 7):
            byte = self.u8(what)
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if result >= 1 << 32:
                    raise CodecError(f"{what} overflows 32 bits at offset {self.pos}")
                return result
        raise CodecError(f"{what} longer than 5 bytes at offset {self.pos}")

    def expect_end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise CodecError(f"{what}: {self.remaining} unexpected trailing bytes")


def read_u64(data: bytes, offset: int = 0) -> int:
    """The u64 at offset, zero-padded on the right when data is short (alias ids)."""
    if offset >= 0 and offset + 8 <= len(data):
        return _U64.unpack_from(data, offset)[0]
    chunk = data[offset : offset + 8]
    return _U64.unpack(chunk.ljust(8, b"\0"))[0]
