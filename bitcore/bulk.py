"""Setting many bits in one atomic round trip, for ``BitCore.mark_many``.

A pipeline of one ``SETBIT`` per bit spends most of its time in redis-py packing and parsing tens
of thousands of tiny commands. Instead the offsets are grouped per key, packed as 4-byte integers,
and one Lua script sets them: Redis runs a script atomically, as it runs ``MULTI``/``EXEC``, and the
script checks every key's type before its first write, so a batch is written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

#: KEYS[i] gets the bits whose offsets ARGV[i] packs as 4-byte big-endian unsigned integers.
SET_BITS_LUA = """
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= 'string' then
    return redis.error_reply(
      'WRONGTYPE ' .. key .. ' holds a ' .. kind .. ', not a bitmap: nothing was marked')
  end
end
local call, byte = redis.call, string.byte
for i, key in ipairs(KEYS) do
  local packed = ARGV[i]
  for pos = 1, #packed, 4 do
    local a, b, c, d = byte(packed, pos, pos + 3)
    call('SETBIT', key, ((a * 256 + b) * 256 + c) * 256 + d, 1)
  end
end
return #KEYS
"""


def pack_offsets(offsets: Collection[int]) -> bytes:
    """Offsets as 4-byte big-endian integers, highest first: a key's string grows once, not per bit.

    >>> pack_offsets({1, 258})
    b'\\x00\\x00\\x01\\x02\\x00\\x00\\x00\\x01'
    """
    ordered = sorted(offsets, reverse=True)
    return np.fromiter(ordered, dtype=">u4", count=len(ordered)).tobytes()


def set_bits_atomically(redis_client: Any, writes: Mapping[str, Collection[int]]) -> None:
    """Set bit ``o`` of ``key`` for every ``o`` in ``writes[key]``, all in one script call, or none.

    Offsets must already be checked to lie in ``[0, 2**32)``. A key holding anything but a string
    raises ``redis.ResponseError`` before any bit is set. Redis serves no one else while the script
    runs (as during ``EXEC``): about 2 µs per bit, so keep batches to tens of thousands of marks.
    """
    keys = [key for key, offsets in writes.items() if offsets]
    if not keys:
        return
    script = redis_client.register_script(SET_BITS_LUA)  # EVALSHA, loading the script on NOSCRIPT
    script(keys=keys, args=[pack_offsets(writes[key]) for key in keys])
