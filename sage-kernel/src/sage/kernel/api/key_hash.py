"""Stable hashing of keys: the same value hashes the same in every process and runtime.

Strings and bytes by CRC-32, ints by a 64-bit mix; never the per-process salted ``hash()`` of
a str. ``key_by`` and :class:`HashPartitioner` route with it, and custom partitioners may too.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from sage.kernel.errors import short_repr

_MASK = (1 << 63) - 1
_BITS64 = (1 << 64) - 1


def _mix(value: int) -> int:
    """SplitMix64's finaliser: consecutive or strided integers spread over every instance
    (``key % n`` would put all multiples of ``n`` on one)."""
    value &= _BITS64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _BITS64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _BITS64
    return (value ^ (value >> 31)) & _MASK


def stable_hash(key: Any) -> int:
    """A non-negative hash of ``key`` that is the same in every process."""
    if isinstance(key, str):
        return zlib.crc32(key.encode("utf-8", "surrogatepass"))
    if isinstance(key, bool) or key is None:
        return int(bool(key))
    if isinstance(key, int):
        return _mix(key)
    if isinstance(key, bytes | bytearray):
        return zlib.crc32(key)
    if isinstance(key, float):
        return _mix(int(key)) if key.is_integer() else zlib.crc32(struct.pack("<d", key))
    if isinstance(key, tuple | frozenset):
        items = sorted(map(stable_hash, key)) if isinstance(key, frozenset) else map(stable_hash, key)
        return zlib.crc32(b"".join(struct.pack("<Q", h) for h in items))
    raise TypeError(
        f"key {short_repr(key)} of type {type(key).__name__} cannot be hashed stably; "
        "use a str, int, float, bytes, bool, None or a tuple of those"
    )
