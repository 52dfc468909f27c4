"""Setting many bits at once, all or nothing: the one writer behind ``BitCore.mark_many`` and the
tracking endpoint.

A redis-py pipeline of one ``SETBIT`` per bit spends most of its time packing and parsing tens of
thousands of tiny commands. Instead the bits are grouped per key (``BitCore.plan_marks``) and sent
one of two ways, by size:

* up to ``SCRIPT_MAX_BITS`` bits (a single event, a few marks): one Lua script call that checks
  every key's type, counts the write against an optional ``Quota`` (a rate limit) and sets the
  bits: one round trip, atomic as Redis runs scripts;
* more: the same script without bits first (types and quota: nothing is written if either says
  no), then the bits as ``BITFIELD key SET u1 <offset> 1 ...`` in ``MULTI``/``EXEC``. Redis spends
  about a quarter per bit of what a script's ``SETBIT`` calls cost it, and applies a transaction
  as one unit: other clients see all of its bits or none.

A transaction holds at most ``MAX_BITS_PER_CALL`` bits, so Redis is never blocked for long; a
larger batch is several transactions, and a connection lost between two of them can leave the
earlier ones written (setting bits is idempotent: sending the batch again is safe). A key that
changes type between the check and the transaction (someone else's ``DEL`` + ``RPUSH`` in that
millisecond) makes ``EXEC`` fail for that key only; nothing else can write part of a batch.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from redis.client import Pipeline

from bitcore.keys import QUOTA_PLACEHOLDER_KEY
from bitcore.own_connection import own_connection, was_open


@dataclass(frozen=True)
class Quota:
    """A counter the write is counted on first: while it stays at or under ``limit`` the write
    happens, beyond it nothing is written. Made for rate limits: ``ttl`` (seconds) is set when the
    counter is created, so a window's counter disappears with its window."""

    key: str
    limit: int
    ttl: int


#: KEYS[1]: the quota counter (untouched when ARGV[1] is 0); KEYS[2..]: bitmaps. ARGV[1]: the
#: quota's limit, 0 for none; ARGV[2]: its TTL; ARGV[3..]: for each bitmap, its offsets packed as
#: 4-byte big-endian integers, or nothing at all to check types and count only.
#: Returns {1, count} when allowed (and written, given offsets), {0, count} when over the quota.
GATE_LUA = """
for i = 2, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'none' and kind ~= 'string' then
    return redis.error_reply(
      'WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a bitmap: nothing was marked')
  end
end
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
local call, byte = redis.call, string.byte
for i = 2, math.min(#KEYS, #ARGV - 1) do
  local key, packed = KEYS[i], ARGV[i + 1]
  for pos = 1, #packed, 4 do
    local a, b, c, d = byte(packed, pos, pos + 3)
    call('SETBIT', key, ((a * 256 + b) * 256 + c) * 256 + d, 1)
  end
end
return {1, count}
"""
GATE_SHA = hashlib.sha1(GATE_LUA.encode()).hexdigest()

#: Up to this many bits a write is one script call; beyond, a check and a transaction.
SCRIPT_MAX_BITS = 64
#: Bits one transaction sets at most (well under a microsecond each in Redis): Redis is never
#: blocked for long and answers long before the client's socket timeout, however large the batch.
MAX_BITS_PER_CALL = 200_000
#: Offsets per ``BITFIELD`` command, so no single command grows without bound.
OFFSETS_PER_COMMAND = 4096


def set_bits_atomically(
    redis_client: redis.Redis, writes: Mapping[str, Collection[int]], quota: Quota | None = None
) -> bool:
    """Set bit ``o`` of ``key`` for every ``o`` in ``writes[key]``, after counting the write on
    ``quota`` (if any). Returns False, having written nothing, when that count is over the quota.

    Offsets must already be checked to lie in ``[0, 2**32)``. A key holding anything but a string
    raises ``redis.ResponseError`` before any bit is set; connection errors are raised unchanged.
    """
    keys = [key for key, offsets in writes.items() if offsets]
    if isinstance(redis_client, Pipeline):
        return _queue(redis_client, keys, writes, quota)
    if sum(len(writes[key]) for key in keys) <= SCRIPT_MAX_BITS:
        return _gate(redis_client, keys, quota, [pack_offsets(writes[key]) for key in keys])
    if not _gate(redis_client, keys, quota, []):
        return False
    fragments: dict[int, bytes] = {}  # a uid's fragment is reused by each of its keys
    for call in split(keys, writes, MAX_BITS_PER_CALL):
        commands = [bitfield_commands(key, part, fragments) for key, part in call]
        _execute_transaction(redis_client, [c for per_key in commands for c in per_key])
    return True


def _queue(
    pipe: Pipeline, keys: list[str], writes: Mapping[str, Collection[int]], quota: Quota | None
) -> bool:
    """On a caller's pipeline (a client made from one, as bitmapist allows): queue script calls of
    at most ``MAX_BITS_PER_CALL`` bits, each checking its keys, for the caller's ``execute()``.
    Nothing can be decided before then, so a quota is refused here."""
    if quota is not None:
        raise ValueError("a quota needs an answer now: use a client, not a pipeline")
    script = pipe.register_script(GATE_LUA)  # loaded, if need be, by the pipeline's execute()
    for call in split(keys, writes, MAX_BITS_PER_CALL):
        call_keys = [QUOTA_PLACEHOLDER_KEY, *(key for key, _ in call)]
        script(keys=call_keys, args=[0, 0, *(pack_offsets(part) for _, part in call)])
    return True


def _gate(
    redis_client: redis.Redis, keys: list[str], quota: Quota | None, packed: list[bytes]
) -> bool:
    """One call of ``GATE_LUA`` (loaded on first use): True when allowed."""
    limit, ttl = (quota.limit, quota.ttl) if quota else (0, 0)
    all_keys = [quota.key if quota else QUOTA_PLACEHOLDER_KEY, *keys]
    args: list[str | int | bytes] = [*all_keys, limit, ttl, *packed]
    try:
        command = _resp("EVALSHA", GATE_SHA, len(all_keys), *args)
        [(allowed, _count)] = _round_trip(redis_client, [command])
    except redis.exceptions.NoScriptError:  # first use on this server: EVAL also loads it
        command = _resp("EVAL", GATE_LUA, len(all_keys), *args)
        [(allowed, _count)] = _round_trip(redis_client, [command])
    return bool(allowed)


def _resp(*parts: str | int | bytes) -> bytes:
    """One command as RESP: what redis-py would send, without its per-argument checks and command
    machinery (about a fifth of a single beacon's client time, profiled).

    >>> _resp("GET", "k")
    b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n'
    """
    chunks = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        chunks.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(chunks)


def pack_offsets(offsets: Collection[int]) -> bytes:
    """Offsets as 4-byte big-endian integers, highest first: a key's string grows once, not per bit.

    >>> pack_offsets({1, 258})
    b'\\x00\\x00\\x01\\x02\\x00\\x00\\x00\\x01'
    """
    ordered = sorted(offsets, reverse=True)
    if len(ordered) < 256:  # struct is quicker for a few (a beacon's one offset per key)
        return struct.pack(f">{len(ordered)}I", *ordered)
    return np.fromiter(ordered, dtype=">u4", count=len(ordered)).tobytes()


def split(
    keys: list[str], writes: Mapping[str, Collection[int]], limit: int
) -> Iterator[list[tuple[str, list[int]]]]:
    """Groups of ``(key, offsets)``, at most ``limit`` offsets each, highest offsets first within a
    key (its string grows once); a key may span groups."""
    call: list[tuple[str, list[int]]] = []
    room = limit
    for key in keys:
        offsets = sorted(writes[key], reverse=True)
        while offsets:
            part, offsets = offsets[:room], offsets[room:]
            call.append((key, part))
            room -= len(part)
            if room == 0:
                yield call
                call, room = [], limit
    if call:
        yield call


def bitfield_commands(
    key: str, offsets: list[int], fragments: dict[int, bytes] | None = None
) -> list[bytes]:
    """``BITFIELD key SET u1 <o> 1 ...`` for every offset, as RESP, in commands of at most
    ``OFFSETS_PER_COMMAND`` offsets. ``fragments`` remembers each offset's encoding, for the
    other keys that get the same offset.

    Encoded here rather than by a redis-py pipeline: a batch of 500 events is about 8,000
    arguments, which redis-py checks and packs one by one at several times the cost of the rest.

    >>> bitfield_commands("k", [5])
    [b'*6\\r\\n$8\\r\\nBITFIELD\\r\\n$1\\r\\nk\\r\\n$3\\r\\nSET\\r\\n$2\\r\\nu1\\r\\n$1\\r\\n5\\r\\n$1\\r\\n1\\r\\n']
    """
    cache = {} if fragments is None else fragments
    encoded_key = key.encode()
    commands = []
    for start in range(0, len(offsets), OFFSETS_PER_COMMAND):
        chunk = offsets[start : start + OFFSETS_PER_COMMAND]
        body = []
        for offset in chunk:
            fragment = cache.get(offset)
            if fragment is None:
                cache[offset] = fragment = _set_bit_fragment(offset)
            body.append(fragment)
        head = b"*%d\r\n$8\r\nBITFIELD\r\n$%d\r\n%s\r\n" % (
            2 + 4 * len(chunk),
            len(encoded_key),
            encoded_key,
        )
        commands.append(head + b"".join(body))
    return commands


def _set_bit_fragment(offset: int) -> bytes:
    """``SET u1 <offset> 1`` as the four bulk strings of a RESP command."""
    digits = b"%d" % offset
    return b"$3\r\nSET\r\n$2\r\nu1\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(digits), digits)


_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _execute_transaction(redis_client: redis.Redis, commands: list[bytes]) -> None:
    """Send ``commands`` (each one RESP-encoded command) in one ``MULTI``/``EXEC`` and raise the
    first error Redis answers with, queued or executed."""
    *_queued, replies = _round_trip(redis_client, [_MULTI, *commands, _EXEC])
    for reply in replies or ():
        if isinstance(reply, Exception):
            raise reply


def _round_trip(redis_client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """Send ``commands`` (RESP) at once on this thread's own connection (``own_connection``) and
    return their replies, with redis-py's retry on connection errors (safe here: setting bits twice
    sets the same bits; a quota may count a retried request twice). Raises the first error reply,
    once every reply is read, so the connection is left clean."""
    connection = own_connection(redis_client)
    reused = was_open(connection)
    payload = [b"".join(commands)]

    def attempt() -> list[Any]:
        connection.send_packed_command(payload)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as error:
                replies.append(error)
        return replies

    def disconnect(_error: Exception) -> None:
        connection.disconnect()

    try:
        try:
            replies = connection.retry.call_with_retry(attempt, disconnect)
        except redis.ConnectionError:
            if not reused:
                raise
            # The kept socket had been closed by the server: once more, on a new one.
            connection.disconnect()
            replies = connection.retry.call_with_retry(attempt, disconnect)
    except BaseException:
        connection.disconnect()  # replies may be left unread on it
        raise
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies
