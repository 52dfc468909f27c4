"""Writing checked beacons: all of a request's bits at once, or none, after counting it against the
rate limit; nothing of a refused request is written.

Keys come from ``BitCore.mark_keys`` (the key layout stays in ``bitcore.keys``): each beacon sets
exactly the bits ``mark_event`` would, plus the universe bit, with ``BITFIELD key SET u1 <offset> 1
...`` (the bits ``SETBIT`` sets, at about a quarter of Redis's cost per bit). Two ways, by size:

* a small request (up to ``SCRIPT_MAX_BITS`` bits, e.g. one event) is one Lua script call that
  counts it and, if allowed, writes it: one round trip;
* a batch is counted first (``ratelimit.hit``), then written in one MULTI/EXEC of ``BITFIELD``
  commands: two round trips, but Redis spends about a quarter of what the script costs it per bit
  (the script turns every argument into a Lua string and back; measured here).

Either way Redis applies a request as one unit: other clients see all of its bits or none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from bitcore import BitCore
from dashboard import ratelimit
from dashboard.beacon_schema import Beacon
from dashboard.ratelimit import Window

#: Every UTC offset in use is a multiple of 15 minutes, so a 900-second slice lies within one local
#: hour: beacons in the same slice share their keys, which are computed once.
_SLICE_SECONDS = 900

#: KEYS[1]: the rate-limit counter (untouched when ARGV[1] is 0); KEYS[2..]: bitmaps.
#: ARGV[1]: the limit (0: none); ARGV[2]: the counter's TTL; ARGV[3..#KEYS+1]: how many offsets each
#: bitmap gets; then, bitmap after bitmap, its BITFIELD arguments ``SET u1 <offset> 1`` ready made,
#: so Lua does no work per offset beyond ``unpack`` (1,000 offsets a call: Lua's stack limit).
#: Returns {1, count} if written, {0, count} if refused.
WRITE_LUA = """
local limit = tonumber(ARGV[1])
local count = 0
if limit > 0 then
  count = redis.call('INCR', KEYS[1])
  if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  if count > limit then
    return {0, count}
  end
end
local pos = #KEYS + 2
for i = 2, #KEYS do
  local stop = pos + tonumber(ARGV[i + 1]) * 4 - 1
  while pos <= stop do
    local last = math.min(pos + 3999, stop)
    redis.call('BITFIELD', KEYS[i], unpack(ARGV, pos, last))
    pos = last + 1
  end
end
return {1, count}
"""
WRITE_SHA = hashlib.sha1(WRITE_LUA.encode()).hexdigest()
#: Requests with more bits than this are written by MULTI/EXEC after a separate count.
SCRIPT_MAX_BITS = 64
#: Offsets per BITFIELD command in a MULTI/EXEC, so no single command grows without bound.
_OFFSETS_PER_COMMAND = 4096
#: The counter key slot when no rate limit applies (the script does not touch it).
_NO_COUNTER = "bitcore:ratelimit:none"


@dataclass(frozen=True)
class WriteResult:
    written: int  # beacons written; 0 when refused
    allowed: bool  # False: over the rate limit, nothing written


def bits_by_key(client: BitCore, beacons: Iterable[Beacon], now: datetime) -> dict[str, set[int]]:
    """Which offsets each key gets: the keys ``mark_event`` would set, plus the universe key."""
    universe = client.keys.unique_key(client.universe)
    writes: dict[str, set[int]] = {universe: set()}
    keys_cache: dict[tuple[str, int | None, bool, bool], list[str]] = {}
    for beacon in beacons:
        slice_ = None if beacon.ts is None else int(beacon.ts // _SLICE_SECONDS)
        cache_key = (beacon.event, slice_, beacon.track_hourly, beacon.unique)
        keys = keys_cache.get(cache_key)
        if keys is None:
            when = now if beacon.ts is None else datetime.fromtimestamp(beacon.ts, UTC)
            keys = client.mark_keys(beacon.event, when, beacon.track_hourly, beacon.unique)
            keys_cache[cache_key] = keys
        for key in keys:
            writes.setdefault(key, set()).add(beacon.uid)
        writes[universe].add(beacon.uid)
    return writes


def bitfield_args(offsets: Iterable[int]) -> list[str | int]:
    """``BITFIELD`` arguments that set ``offsets`` to 1, ascending.

    >>> bitfield_args({9, 2})
    ['SET', 'u1', 2, 1, 'SET', 'u1', 9, 1]
    """
    args: list[str | int] = []
    for offset in sorted(offsets):
        args += ("SET", "u1", offset, 1)
    return args


def write_beacons(
    client: BitCore,
    beacons: list[Beacon],
    counter: Window | None = None,
    now: datetime | None = None,
) -> WriteResult:
    """Count the request against ``counter`` (if any) and, unless over it, set every bit of
    ``beacons`` atomically.

    Raises redis-py errors unchanged (the caller turns them into a 503).
    """
    moment = client.now() if now is None else now
    writes = bits_by_key(client, beacons, moment) if beacons else {}
    if sum(len(offsets) for offsets in writes.values()) <= SCRIPT_MAX_BITS:
        allowed = _count_and_write(client, writes, counter)
    else:
        allowed = counter is None or ratelimit.hit(client.redis, counter).allowed
        if allowed:
            _write_transaction(client, writes)
    return WriteResult(len(beacons) if allowed else 0, allowed)


def _count_and_write(client: BitCore, writes: dict[str, set[int]], counter: Window | None) -> bool:
    keys = [counter.key if counter else _NO_COUNTER, *writes]
    args: list[str | int] = [counter.limit if counter else 0, counter.ttl if counter else 0]
    args += [len(offsets) for offsets in writes.values()]
    for offsets in writes.values():
        args += bitfield_args(offsets)
    try:
        allowed, _count = client.redis.evalsha(WRITE_SHA, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        allowed, _count = client.redis.eval(WRITE_LUA, len(keys), *keys, *args)
    return bool(allowed)


def _write_transaction(client: BitCore, writes: dict[str, set[int]]) -> None:
    with client.redis.pipeline(transaction=True) as pipe:
        for key, offsets in writes.items():
            ordered = sorted(offsets)
            for start in range(0, len(ordered), _OFFSETS_PER_COMMAND):
                chunk = ordered[start : start + _OFFSETS_PER_COMMAND]
                pipe.execute_command("BITFIELD", key, *bitfield_args(chunk))
        pipe.execute()
