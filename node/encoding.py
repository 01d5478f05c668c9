"""The canonical binary encoding: big-endian fixed-width integers, length-prefixed
bytes and lists.  Every hashed or signed record is written with ``Writer`` and
read back with ``Reader``; ``Reader.finish`` refuses trailing bytes, so a value
decodes only if it re-encodes to exactly the same bytes.
"""

from __future__ import annotations

import struct


class DecodeError(ValueError):
    """Bytes that are not the canonical encoding of a record."""

    code = "bad-encoding"


_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I32 = struct.Struct(">i")


class Writer:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def i32(self, value: int) -> Writer:
        self._parts.append(_I32.pack(value))
        return self

    def boolean(self, value: bool) -> Writer:
        return self.u8(1 if value else 0)

    def fixed(self, value: bytes, size: int) -> Writer:
        if len(value) != size:
            raise ValueError(f"expected {size} bytes, got {len(value)}")
        self._parts.append(bytes(value))
        return self

    def var_bytes(self, value: bytes) -> Writer:
        self.u32(len(value))
        self._parts.append(bytes(value))
        return self

    def text(self, value: str) -> Writer:
        return self.var_bytes(value.encode("utf-8"))

    def raw(self, value: bytes) -> Writer:
        self._parts.append(value)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("expected bytes")
        self._data = bytes(data)
        self._pos = 0

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise DecodeError(f"truncated: need {size} bytes at offset {self._pos}, have {len(self._data) - self._pos}")
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return _U8.unpack(self._take(1))[0]

    def u16(self) -> int:
        return _U16.unpack(self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self._take(8))[0]

    def i32(self) -> int:
        return _I32.unpack(self._take(4))[0]

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DecodeError(f"boolean byte must be 0 or 1, got {value}")
        return value == 1

    def fixed(self, size: int) -> bytes:
        return self._take(size)

    def var_bytes(self, limit: int) -> bytes:
        size = self.u32()
        if size > limit:
            raise DecodeError(f"length {size} exceeds limit {limit}")
        return self._take(size)

    def text(self, limit: int) -> str:
        raw = self.var_bytes(limit)
        try:
            return raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise DecodeError("text is not valid UTF-8") from exc

    def count(self, limit: int) -> int:
        """A u32 element count, bounded before anything is allocated."""
        n = self.u32()
        if n > limit:
            raise DecodeError(f"count {n} exceeds limit {limit}")
        return n

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{len(self._data) - self._pos} trailing bytes")
