"""Setting many bits in one atomic round trip, for ``BitCore.mark_many``.

A pipeline of one ``SETBIT`` per bit spends most of its time in redis-py packing and parsing tens
of thousands of tiny commands. Instead the offsets are grouped per key, packed as 4-byte integers,
and one Lua script sets them: Redis runs a script atomically, as it runs ``MULTI``/``EXEC``, and the
script checks every key's type before its first write, so a batch is written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import numpy as np
import redis

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


#: Bits one script call sets at most (about 2 us each in Redis): a call blocks Redis for well under
#: a second and answers long before the client's socket timeout, however large the batch.
MAX_BITS_PER_CALL = 200_000


def set_bits_atomically(redis_client: Any, writes: Mapping[str, Collection[int]]) -> None:
    """Set bit ``o`` of ``key`` for every ``o`` in ``writes[key]``.

    Up to ``MAX_BITS_PER_CALL`` bits this is one script call: all of it or none. A larger batch is
    split into calls of at most that many bits, after one pipelined ``TYPE`` check of every key, so
    a key of the wrong type still writes nothing; a connection lost between two calls can leave the
    earlier ones written (setting bits is idempotent: sending the batch again is safe). Offsets must
    already be checked to lie in ``[0, 2**32)``. A key holding anything but a string raises
    ``redis.ResponseError`` before any bit is set.
    """
    keys = [key for key, offsets in writes.items() if offsets]
    if not keys:
        return
    script = redis_client.register_script(SET_BITS_LUA)  # EVALSHA, loading the script on NOSCRIPT
    calls = list(_split(keys, writes, MAX_BITS_PER_CALL))
    if len(calls) > 1:
        _check_types(redis_client, keys)
    for call in calls:
        script(keys=[key for key, _ in call], args=[pack_offsets(part) for _, part in call])


def _split(
    keys: list[str], writes: Mapping[str, Collection[int]], limit: int
) -> Iterator[list[tuple[str, list[int]]]]:
    """Groups of ``(key, offsets)``, at most ``limit`` offsets each; a key may span groups."""
    call: list[tuple[str, list[int]]] = []
    room = limit
    for key in keys:
        offsets = list(writes[key])
        while offsets:
            part, offsets = offsets[:room], offsets[room:]
            call.append((key, part))
            room -= len(part)
            if room == 0:
                yield call
                call, room = [], limit
    if call:
        yield call


def _check_types(redis_client: Any, keys: list[str]) -> None:
    with redis_client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        kinds = pipe.execute()
    for key, kind in zip(keys, kinds, strict=True):
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind not in ("none", "string"):
            raise redis.ResponseError(
                f"WRONGTYPE {key} holds a {kind}, not a bitmap: nothing was marked"
            )
