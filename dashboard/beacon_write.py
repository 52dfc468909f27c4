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
from typing import Any

import redis

from bitcore import BitCore
from bitcore.keys import RATELIMIT_PREFIX
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
_NO_COUNTER = f"{RATELIMIT_PREFIX}none"


@dataclass(frozen=True)
class WriteResult:
    written: int  # beacons written; 0 when refused
    allowed: bool  # False: over the rate limit, nothing written


def bits_by_key(client: BitCore, beacons: Iterable[Beacon], now: datetime) -> dict[str, set[int]]:
    """Which offsets each key gets: the keys ``mark_event`` would set, plus the universe key.

    Beacons are first grouped by what decides their keys (event, time slice, flags), so the keys
    are computed, and the sets grown, once per group rather than once per beacon.
    """
    universe = client.keys.unique_key(client.universe)
    groups: dict[tuple[str, int | None, bool, bool], list[int]] = {}
    for beacon in beacons:
        slice_ = None if beacon.ts is None else int(beacon.ts // _SLICE_SECONDS)
        cache_key = (beacon.event, slice_, beacon.track_hourly, beacon.unique)
        uids = groups.get(cache_key)
        if uids is None:
            groups[cache_key] = uids = []
        uids.append(beacon.uid)
    writes: dict[str, set[int]] = {universe: set()}
    for (event, slice_, hourly, unique), uids in groups.items():
        # any moment of a slice has the slice's keys: take its start
        when = now if slice_ is None else datetime.fromtimestamp(slice_ * _SLICE_SECONDS, UTC)
        for key in client.mark_keys(event, when, hourly, unique):
            if key in writes:
                writes[key].update(uids)
            else:
                writes[key] = set(uids)
        writes[universe].update(uids)
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
    """``MULTI``, a ``BITFIELD`` per key (and per ``_OFFSETS_PER_COMMAND`` offsets), ``EXEC``.

    The commands are encoded here rather than by a redis-py pipeline: a batch of 500 events is
    about 8,000 arguments, which redis-py checks and packs one by one at several times the cost of
    the rest of the request. Here each uid's ``SET u1 <uid> 1`` is encoded once and reused by every
    key that gets it.
    """
    fragments: dict[int, bytes] = {}
    commands: list[bytes] = []
    for key, offsets in writes.items():
        encoded_key = key.encode()
        ordered = sorted(offsets)
        for start in range(0, len(ordered), _OFFSETS_PER_COMMAND):
            chunk = ordered[start : start + _OFFSETS_PER_COMMAND]
            head = b"*%d\r\n$8\r\nBITFIELD\r\n$%d\r\n%s\r\n" % (
                2 + 4 * len(chunk),
                len(encoded_key),
                encoded_key,
            )
            body = []
            for offset in chunk:
                fragment = fragments.get(offset)
                if fragment is None:
                    fragments[offset] = fragment = _set_bit_fragment(offset)
                body.append(fragment)
            commands.append(head + b"".join(body))
    _execute_transaction(client.redis, commands)


def _set_bit_fragment(offset: int) -> bytes:
    """``SET u1 <offset> 1`` as the four bulk strings of a RESP command.

    >>> _set_bit_fragment(42)
    b'$3\\r\\nSET\\r\\n$2\\r\\nu1\\r\\n$2\\r\\n42\\r\\n$1\\r\\n1\\r\\n'
    """
    digits = str(offset)
    return f"$3\r\nSET\r\n$2\r\nu1\r\n${len(digits)}\r\n{digits}\r\n$1\r\n1\r\n".encode()


_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _execute_transaction(connection_owner: redis.Redis, commands: list[bytes]) -> None:
    """Send ``commands`` (each a RESP-encoded command) in one ``MULTI``/``EXEC`` on one of the
    client's pooled connections, with redis-py's retry on connection errors (safe: setting bits
    twice sets the same bits), and raise the first error Redis answers with."""
    pool = connection_owner.connection_pool
    connection = pool.get_connection()
    payload = [b"".join([_MULTI, *commands, _EXEC])]

    def attempt() -> Any:
        connection.send_packed_command(payload)
        for _ in range(len(commands) + 1):  # +OK for MULTI, +QUEUED for each command
            connection.read_response()
        return connection.read_response()

    try:
        replies = connection.retry.call_with_retry(attempt, lambda _error: connection.disconnect())
    except BaseException:
        connection.disconnect()  # replies may be left unread on it
        raise
    finally:
        pool.release(connection)
    for reply in replies or ():
        if isinstance(reply, Exception):
            raise reply
