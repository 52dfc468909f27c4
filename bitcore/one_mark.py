"""One mark's bits in one script call that does only what a single mark needs.

``mark_event`` sets one offset in a few keys (month, week, day, the universe) and, the first time
a user does the event, in its first-time keys. The writer's gate script (``bitcore.bulk``) does
that too, but it is built for batches with quotas, budgets and the id map's epoch: unpacking
packed offsets, parsing its first-time section and checking limits that a plain ``mark_event``
never has cost Redis ~25 us more per mark than this script, and its client side ~25 us more
(``bench/README.md``, "One-by-one mark_event"). ``bulk.set_bits_atomically`` sends this one
when a write is exactly one offset with no quota, budget or epoch; the result is the same:
every key's type checked before any bit is set, new event names added to the registry, and the
first-time keys set only where the ever key's bit was 0, all in one atomic step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis

from bitcore import wire

#: KEYS: the registry of names, the plain keys, then the ever key and its first-time keys;
#: ARGV: the offset, how many plain keys, then the names to register.
ONE_MARK_LUA = """
local call, offset, plain = redis.call, ARGV[1], tonumber(ARGV[2])
for i = 2, #KEYS do
  if type(redis.pcall('STRLEN', KEYS[i])) == 'table' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' ..
      call('TYPE', KEYS[i])['ok'] .. ', not a bitmap: nothing was marked')
  end
end
if #ARGV > 2 then
  local scores = call('ZMSCORE', KEYS[1], unpack(ARGV, 3))
  for j = 3, #ARGV do
    if not scores[j - 2] then call('ZADD', KEYS[1], 'NX', 0, ARGV[j]) end
  end
end
for i = 2, plain + 1 do call('SETBIT', KEYS[i], offset, 1) end
if #KEYS > plain + 1 and call('SETBIT', KEYS[plain + 2], offset, 1) == 0 then
  for i = plain + 3, #KEYS do call('SETBIT', KEYS[i], offset, 1) end
end
return 1
"""
ONE_MARK_SHA = hashlib.sha1(ONE_MARK_LUA.encode()).hexdigest()


def set_one(
    redis_client: redis.Redis,
    keys: Sequence[str],
    offset: int,
    names: Sequence[str] = (),
    registry_key: str | None = None,
    first_time: Sequence[str] = (),
) -> None:
    """Set bit ``offset`` (checked already) of every one of ``keys``, add ``names`` to the sorted
    set ``registry_key``, and set it in ``first_time`` (the ever key, then its first-time keys):
    in the ever key, and in the others where the ever key's bit was 0. One round trip; a key of
    another type raises ``redis.ResponseError`` with nothing written."""
    if names and registry_key is None:
        raise ValueError("event names need the registry_key they are added to")
    every: list[str | int] = [registry_key or keys[0], *keys, *first_time]
    args: list[str | int] = [offset, len(keys), *names]
    wire.run_script(redis_client, ONE_MARK_LUA, ONE_MARK_SHA, every, args)
