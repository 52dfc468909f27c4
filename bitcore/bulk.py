"""Setting many bits at once, all or nothing: the one writer behind ``BitCore.mark_many`` and the
tracking endpoint.

A redis-py pipeline of one ``SETBIT`` per bit spends most of its time packing and parsing tens of
thousands of tiny commands. Instead the bits are grouped per key (``BitCore.plan_marks``) and sent
one of two ways, by size:

* up to ``SCRIPT_MAX_BITS`` bits (a single event, a few marks): one Lua script call that checks
  every key's type, counts the write against an optional ``Quota`` (a rate limit) and
  ``Budget`` (what the write may make Redis allocate, and the event names it may add), adds new
  event names to the registry and sets the bits: one round trip, atomic as Redis runs scripts;
* more: the same script given each key's highest offset instead of its bits first (types,
  quota and budget: nothing is written if any says no), then the bits as
  ``BITFIELD key SET u1 <offset> 1 ...`` in ``MULTI``/``EXEC``. Redis spends about a quarter per
  bit of what a script's ``SETBIT`` calls cost it, and applies a transaction as one unit: other
  clients see all of its bits or none.

A transaction holds at most ``MAX_BITS_PER_CALL`` bits, so Redis is never blocked for long; a
larger batch is several transactions, and a connection lost between two of them can leave the
earlier ones written (setting bits is idempotent: sending the batch again is safe). A key that
changes type between the check and the transaction (someone else's ``DEL`` + ``RPUSH`` in that
millisecond) makes ``EXEC`` fail for that key only; nothing else can write part of a batch.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import redis
from redis.client import Pipeline

from bitcore import one_mark, wire
from bitcore.first_time_writes import MAX_FIRST_TIMES_PER_CALL, Firsts, FirstTimeWrites
from bitcore.keys import QUOTA_PLACEHOLDER_KEY


@dataclass(frozen=True)
class Quota:
    """A counter the write is counted on first: while it stays at or under ``limit`` the write
    happens, beyond it nothing is written. Made for rate limits: ``ttl`` (seconds) is set when the
    counter is created, so a window's counter disappears with its window."""

    key: str
    limit: int
    ttl: int


@dataclass(frozen=True)
class Once:
    """A write done at most once while ``key`` lives (``ttl`` seconds): a request id's key
    (``KeyLayout``'s ``request_id_key``). A second write with the same key is answered as allowed
    with nothing counted (quota, budget) and nothing written; one whose first try was refused
    counts and writes as if new. A large write (checked, then written in transactions) marks the
    key "pending" at its check and "done" with its last bits, so a retry after a connection lost
    between the two writes its bits again (setting bits is idempotent) without being counted
    again."""

    key: str
    ttl: int


@dataclass(frozen=True)
class Budget:
    """What one write may cost Redis, checked atomically by the script that writes it: a write
    over any limit is refused whole (``WriteRefused``), nothing written and nothing counted.

    ``max_bytes``: bytes the write may make Redis allocate, counted per key as
    ``max(0, ceil((highest offset + 1) / 8) - STRLEN(key))`` (a bit at offset N makes Redis grow
    the string to N/8 bytes). ``bytes_quota``: a counter of those bytes, for a rate window
    (``limit`` bytes per counter). ``max_event_names``: the size the registry of event names
    (``KeyLayout.event_names_key``) may reach; names already in it always pass.
    ``new_names_quota``: a counter of names the writes add to the registry. ``new_ids_quota``
    (with the id map on): a counter of the new external ids the write makes the map allocate,
    checked by the allocation script before it allocates any (``bitcore.idmap``): the map's
    memory is not in ``max_bytes``, which counts the bitmaps. ``None``: no limit.

    >>> Budget(max_bytes=8 << 20).max_bytes
    8388608
    """

    max_bytes: int | None = None
    bytes_quota: Quota | None = None
    max_event_names: int | None = None
    new_names_quota: Quota | None = None
    new_ids_quota: Quota | None = None


class EpochChanged(Exception):
    """The id map's epoch is not the one a write's offsets were mapped under (a mapping was
    removed since): nothing was written or counted; map again and write."""


class WriteRefused(Exception):
    """A write over one of its ``Budget``'s limits: nothing was written.

    ``limit`` names it (``"max_bytes"``, ``"bytes_quota"``, ``"max_event_names"``,
    ``"new_names_quota"`` or ``"new_ids_quota"``), ``amount`` is what the write would have
    brought it to and ``allowed`` the limit itself."""

    def __init__(self, limit: str, amount: int, allowed: int) -> None:
        super().__init__(f"write refused: {limit} would reach {amount}, over {allowed}")
        self.limit = limit
        self.amount = amount
        self.allowed = allowed


#: KEYS[1]: the request quota's counter; KEYS[2]: the bytes quota's; KEYS[3]: the new-names
#: quota's; KEYS[4]: the registry of event names; KEYS[5]: the id map's epoch; KEYS[6]: the
#: ``Once`` key (each untouched when unused); KEYS[7..]: bitmaps.
#: ARGV[1], ARGV[2]: the request quota's limit (0: none) and TTL; ARGV[3]: bytes one call may make
#: Redis allocate (0: no limit); ARGV[4], ARGV[5]: the bytes quota's limit and TTL; ARGV[6]: the
#: registry's size limit; ARGV[7], ARGV[8]: the new-names quota's limit and TTL; ARGV[9]: 1 to set
#: the bits, 0 to check and count only; ARGV[10]: the id map's epoch the offsets were mapped
#: under ('' when not checked: see ``EpochChanged``); ARGV[11]: the ``Once`` key's TTL (0: no
#: such key); ARGV[12]: the number n of event names,
#: ARGV[13..12+n] the names; then for each bitmap its offsets packed as 4-byte big-endian
#: integers, highest first (when checking only, the highest alone). Then, optionally, the
#: first-time section (``_first_time_args``): how many of the last KEYS are first-time and ever
#: keys (checked and budgeted with the rest, their offsets the candidates, but not set by the
#: plain loop), and for each group the indexes in KEYS of its ever key and first-time keys and
#: its packed offsets: a user whose ever bit was 0 gets the group's first-time bits.
#: Returns {1, count} when written (or allowed), {0, count, limit name, amount, limit} when
#: refused, {0, 0, 'epoch'} when the epoch differs (nothing counted or written), {1, 0, 'once'}
#: when the ``Once`` key says the write was done (nothing counted or written). A ``Once`` key
#: 'pending' (checked, maybe not all written) skips the counting and the limits.
GATE_LUA = """
local call, byte, floor = redis.call, string.byte, math.floor
local once_ttl = tonumber(ARGV[11])
local seen = false
if once_ttl > 0 then
  seen = call('GET', KEYS[6])
  if seen == 'done' then
    return {1, 0, 'once'}
  end
end
if ARGV[10] ~= '' and call('GET', KEYS[5]) ~= ARGV[10] then
  return {0, 0, 'epoch'}
end
local n = tonumber(ARGV[12])
local first = 13 + n
local grow = 0
for i = 7, #KEYS do
  local length = redis.pcall('STRLEN', KEYS[i])
  if type(length) == 'table' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' ..
      call('TYPE', KEYS[i])['ok'] .. ', not a bitmap: nothing was marked')
  end
  local packed = ARGV[first + i - 7]
  if packed and #packed >= 4 then
    local a, b, c, d = byte(packed, 1, 4)
    local size = floor((((a * 256 + b) * 256 + c) * 256 + d) / 8) + 1
    if size > length then
      grow = grow + size - length
    end
  end
end
local function counted(key, ttl, amount)
  local total = call('INCRBY', key, amount)
  if total == amount then
    call('EXPIRE', key, ttl)
  end
  return total
end
local limit = seen and 0 or tonumber(ARGV[1])
local count = 0
if limit > 0 then
  count = counted(KEYS[1], ARGV[2], 1)
  if count > limit then
    return {0, count, 'requests', count, limit}
  end
end
if seen then
  grow = 0
end
local max_bytes = tonumber(ARGV[3])
if max_bytes > 0 and grow > max_bytes then
  return {0, count, 'max_bytes', grow, max_bytes}
end
local bytes_limit = tonumber(ARGV[4])
if bytes_limit > 0 and grow > 0 then
  local used = tonumber(call('GET', KEYS[2]) or '0') + grow
  if used > bytes_limit then
    return {0, count, 'bytes_quota', used, bytes_limit}
  end
end
local fresh = {}
for start = 13, 12 + n, 1000 do
  local last = math.min(start + 999, 12 + n)
  local scores = call('ZMSCORE', KEYS[4], unpack(ARGV, start, last))
  for j = start, last do
    if not scores[j - start + 1] then
      fresh[#fresh + 1] = ARGV[j]
    end
  end
end
if #fresh > 0 then
  local max_names = seen and 0 or tonumber(ARGV[6])
  if max_names > 0 then
    local total = call('ZCARD', KEYS[4]) + #fresh
    if total > max_names then
      return {0, count, 'max_event_names', total, max_names}
    end
  end
  local names_limit = seen and 0 or tonumber(ARGV[7])
  if names_limit > 0 then
    local used = tonumber(call('GET', KEYS[3]) or '0') + #fresh
    if used > names_limit then
      return {0, count, 'new_names_quota', used, names_limit}
    end
    counted(KEYS[3], ARGV[8], #fresh)
  end
  for start = 1, #fresh, 1000 do
    local members = {}
    for j = start, math.min(start + 999, #fresh) do
      members[#members + 1] = 0
      members[#members + 1] = fresh[j]
    end
    call('ZADD', KEYS[4], 'NX', unpack(members))
  end
end
if bytes_limit > 0 and grow > 0 then
  counted(KEYS[2], ARGV[5], grow)
end
if ARGV[9] == '1' then
  local tail = first + #KEYS - 6
  for i = 7, #KEYS - tonumber(ARGV[tail] or '0') do
    local key, packed = KEYS[i], ARGV[first + i - 7]
    for pos = 1, #packed, 4 do
      local a, b, c, d = byte(packed, pos, pos + 3)
      call('SETBIT', key, ((a * 256 + b) * 256 + c) * 256 + d, 1)
    end
  end
  for g = tail + 1, #ARGV, 2 do
    local targets = {}
    for index in string.gmatch(ARGV[g], '%d+') do
      targets[#targets + 1] = KEYS[tonumber(index)]
    end
    local packed = ARGV[g + 1]
    for pos = 1, #packed, 4 do
      local a, b, c, d = byte(packed, pos, pos + 3)
      local offset = ((a * 256 + b) * 256 + c) * 256 + d
      if call('SETBIT', targets[1], offset, 1) == 0 then
        for t = 2, #targets do
          call('SETBIT', targets[t], offset, 1)
        end
      end
    end
  end
end
if once_ttl > 0 then
  call('SET', KEYS[6], ARGV[9] == '1' and 'done' or 'pending', 'EX', once_ttl)
end
return {1, count}
"""
GATE_SHA = hashlib.sha1(GATE_LUA.encode()).hexdigest()

#: Up to this many bits a write is one script call; beyond, a check and a transaction.
SCRIPT_MAX_BITS = 64
#: Bits one transaction sets at most (well under a microsecond each in Redis): Redis is never
#: blocked for long and answers long before the client's socket timeout, however large the batch.
MAX_BITS_PER_CALL = 200_000


def set_bits_atomically(
    redis_client: redis.Redis,
    writes: Mapping[str, Collection[int]],
    quota: Quota | None = None,
    *,
    budget: Budget | None = None,
    names: Collection[str] = (),
    registry_key: str | None = None,
    epoch: tuple[str, bytes] | None = None,
    firsts: Firsts | None = None,
    once: Once | None = None,
    placeholder: str = QUOTA_PLACEHOLDER_KEY,
) -> bool:
    """Set bit ``o`` of ``key`` for every ``o`` in ``writes[key]``, after counting the write on
    ``quota`` (if any), and add ``names`` (event names) to the sorted set ``registry_key`` in the
    same step. Returns False, having written nothing, when that count is over the quota; raises
    ``WriteRefused``, having written nothing, when the write is over a limit of ``budget``.
    ``epoch`` (the id map's epoch key and the value the offsets were mapped under): the write
    happens only while the key still holds it, else ``EpochChanged``, nothing written or counted
    (a writer that mapped ids from memory learns that a mapping was removed meanwhile).
    ``once``: the write is done (and counted) at most once while its key lives (a retried request
    with the same id: see ``Once``); True, nothing counted or written, for a repeat.

    ``firsts`` (``{ever key: {first-time keys: offsets}}``, see ``planning.Firsts``): each offset's
    bit is set in the ever key and, where it was 0 there, in the first-time keys, in the same
    step; the budget counts every one of those keys as if all were set.

    ``placeholder``: the key named in the script's KEYS for an unused quota, registry, epoch or
    ``once`` key (never touched); on Redis Cluster it must share the slot of the bitmaps (the
    sharded layout's writer gives one behind the shard's hash tag).

    Offsets must already be checked to lie in ``[0, 2**32)``. A key holding anything but a string
    raises ``redis.ResponseError`` before any bit is set; Redis at its ``maxmemory`` raises
    ``redis.exceptions.OutOfMemoryError``, nothing written; connection errors are raised unchanged.
    """
    if names and registry_key is None:
        raise ValueError("event names need the registry_key they are added to")
    keys = [key for key, offsets in writes.items() if offsets]
    first = FirstTimeWrites.of(firsts or {}, len(keys))
    if (
        not isinstance(redis_client, Pipeline)
        and quota is None
        and budget is None
        and not epoch
        and once is None
        and placeholder == QUOTA_PLACEHOLDER_KEY  # the lean script names flat keys only
    ):
        one = _one_offset(writes, keys, first)
        if one is not None:  # a single mark: the lean script (bitcore.one_mark)
            try:
                one_mark.set_one(redis_client, keys, one[0], sorted(names), registry_key, one[1])
            except redis.ResponseError as error:
                raise _out_of_memory(error) from None
            return True
    epoch_key, epoch_value = epoch or (None, None)
    gate = _Gate(
        quota, budget, tuple(names), registry_key, epoch_key, epoch_value, once, placeholder
    )
    no_gate = _NO_GATE if placeholder == QUOTA_PLACEHOLDER_KEY else _no_gate(placeholder)
    if isinstance(redis_client, Pipeline):
        return _queue(redis_client, keys, writes, gate, first, no_gate)
    every = [*keys, *first.keys]
    if sum(len(writes[key]) for key in keys) + first.bits <= SCRIPT_MAX_BITS:
        packed = [pack_offsets(writes[key]) for key in keys] + first.packed_candidates()
        return gate.call(redis_client, every, packed, True, first.tail()) != _REFUSED
    highest = [pack_offsets((max(writes[key]),)) for key in keys] + first.packed_highest()
    checked = gate.call(redis_client, every, highest, False)
    if checked != _ALLOWED:
        return checked == _REPEATED
    for commands in _transactions(keys, writes, first, no_gate, once):
        wire.execute_transaction(redis_client, commands)
    return True


def _transactions(
    keys: list[str],
    writes: Mapping[str, Collection[int]],
    first: FirstTimeWrites,
    no_gate: _Gate,
    once: Once | None,
) -> list[list[bytes]]:
    """The ``MULTI``/``EXEC`` bodies of a large write whose check passed: its bits as
    ``BITFIELD`` commands, at most ``MAX_BITS_PER_CALL`` per transaction, then its first-time
    groups as script calls of ``no_gate`` (the first chunk in the last transaction of plain
    bits), then ``once``'s key marked done."""
    fragments: dict[int, bytes] = {}  # a uid's fragment is reused by each of its keys
    transactions = [
        [c for key, part in call for c in wire.bitfield_commands(key, part, fragments)]
        for call in split(keys, writes, MAX_BITS_PER_CALL)
    ] or [[]]
    for number, (chunk_keys, args) in enumerate(first.chunk_calls(MAX_FIRST_TIMES_PER_CALL)):
        if number > 0:  # the first chunk rides in the last transaction of plain bits
            transactions.append([])
        head_keys, head_args = no_gate.keys(()), no_gate.args(True, ())
        numkeys = len(head_keys) + len(chunk_keys)  # EVAL, not EVALSHA: no NOSCRIPT midway
        call = ("EVAL", GATE_LUA, numkeys, *head_keys, *chunk_keys, *head_args, *args)
        transactions[-1].append(wire.encode(*call))
    if once is not None:  # done with the last bits: a retry from here on is a repeat
        transactions[-1].append(wire.encode("SET", once.key, "done", "EX", once.ttl))
    return [commands for commands in transactions if commands]


def _one_offset(
    writes: Mapping[str, Collection[int]], keys: list[str], first: FirstTimeWrites
) -> tuple[int, tuple[str, ...]] | None:
    """The one offset every key (and the one first-time group, if any) sets, and that group's
    keys; ``None`` when the write is anything more."""
    if len(first.groups) > 1 or any(len(writes[key]) != 1 for key in keys):
        return None  # a batch: never gathers its offsets here
    offsets = {offset for key in keys for offset in writes[key]}
    if len(offsets) != 1:
        return None
    if not first.groups:
        return offsets.pop(), ()
    group, theirs = first.groups[0]
    return (offsets.pop(), group) if set(theirs) == offsets else None


#: One shard's share of a write on the sharded layout: its bitmaps' offsets, its first-time
#: groups, and the placeholder key in its slot for what the gate script does not use.
Share = tuple[Mapping[str, Collection[int]], Firsts | None, str]


def set_bits_per_shard(
    redis_client: redis.Redis, shares: Sequence[Share], before: Collection[bytes] = ()
) -> None:
    """Set the bits of each share (one node's shards of a sharded write, no quota, budget or
    names: checked before), each share atomically, in two round trips however many shards:

    1. ``before`` (RESP commands: the registry of shards), each small share's gate script call
       (at most ``SCRIPT_MAX_BITS`` bits: checked and set in one call), each large share's
       check (its keys' types) and nothing else;
    2. every large share's transactions (``MULTI``/``EXEC``, as ``set_bits_atomically`` sends
       them), once every check passed.

    If the server lacks the script, the first round trip is sent once more with ``EVAL``
    (setting bits twice sets the same bits). A key of the wrong type or a full Redis raises as
    ``set_bits_atomically`` does: no large share of the node is written then (small ones may be).
    """
    calls: list[tuple[_Gate, tuple[list[str], list[bytes], bool, list[bytes]]]] = []
    large: list[tuple[list[str], Mapping[str, Collection[int]], FirstTimeWrites, _Gate]] = []
    for writes, firsts, placeholder in shares:
        keys = [key for key, offsets in writes.items() if offsets]
        first = FirstTimeWrites.of(firsts or {}, len(keys))
        gate = _no_gate(placeholder)
        every = [*keys, *first.keys]
        if sum(len(writes[key]) for key in keys) + first.bits <= SCRIPT_MAX_BITS:
            packed = [pack_offsets(writes[key]) for key in keys] + first.packed_candidates()
            calls.append((gate, (every, packed, True, first.tail())))
        else:
            highest = [pack_offsets((max(writes[key]),)) for key in keys] + first.packed_highest()
            calls.append((gate, (every, highest, False, [])))
            large.append((keys, writes, first, gate))
    try:
        try:
            commands = [gate.command(*call) for gate, call in calls]
            wire.round_trip(redis_client, [*before, *commands])
        except redis.exceptions.NoScriptError:
            commands = [gate.command(*call, by_sha=False) for gate, call in calls]
            wire.round_trip(redis_client, [*before, *commands])
        transactions = [
            commands
            for keys, writes, first, gate in large
            for commands in _transactions(keys, writes, first, gate, None)
        ]
        if transactions:
            wire.execute_transactions(redis_client, transactions)
    except redis.ResponseError as error:
        raise _out_of_memory(error) from None


def clear_bits(redis_client: redis.Redis, keys: Collection[str], offset: int) -> None:
    """Clear bit ``offset`` of every key (an unmark: the universe and the registry are left as they
    are, since the user was seen), in one ``MULTI``/``EXEC``; on a pipeline, queued for the caller's
    ``execute()``. ``offset`` must already be checked."""
    if isinstance(redis_client, Pipeline):
        for key in keys:
            redis_client.setbit(key, offset, 0)
        return
    with redis_client.pipeline() as pipe:
        for key in keys:
            pipe.setbit(key, offset, 0)
        pipe.execute()


def _queue(
    pipe: Pipeline,
    keys: list[str],
    writes: Mapping[str, Collection[int]],
    gate: _Gate,
    first: FirstTimeWrites,
    no_gate: _Gate,
) -> bool:
    """On a caller's pipeline (a client made from one, as bitmapist allows): queue script calls of
    at most ``MAX_BITS_PER_CALL`` bits, each checking its keys, for the caller's ``execute()``
    (first-time groups in calls of their own). Nothing can be decided before then, so a quota or
    a budget is refused here."""
    if gate.quota is not None or gate.budget is not None or gate.once is not None:
        raise ValueError("a quota or budget needs an answer now: use a client, not a pipeline")
    script = pipe.register_script(GATE_LUA)  # loaded, if need be, by the pipeline's execute()
    for number, call in enumerate(split(keys, writes, MAX_BITS_PER_CALL)):
        names = gate.names if number == 0 else ()
        call_keys = [*gate.keys(names), *(key for key, _ in call)]
        args = [*gate.args(True, names), *(pack_offsets(part) for _, part in call)]
        script(keys=call_keys, args=args)
    for chunk in first.chunk_calls(MAX_FIRST_TIMES_PER_CALL):
        script(keys=[*no_gate.keys(()), *chunk[0]], args=[*no_gate.args(True, ()), *chunk[1]])
    return True


@dataclass(frozen=True)
class _Gate:
    """What one write's ``GATE_LUA`` calls are given besides its bitmaps."""

    quota: Quota | None
    budget: Budget | None
    names: tuple[str, ...]
    registry_key: str | None
    epoch_key: str | None = None
    epoch: bytes | None = None
    once: Once | None = None
    placeholder: str = QUOTA_PLACEHOLDER_KEY

    def keys(self, names: tuple[str, ...]) -> list[str]:
        """KEYS[1..6]: the counters of the quotas, the registry, the id map's epoch and the
        ``once`` key, placeholders when unused."""
        budget = self.budget or _NO_BUDGET
        none = self.placeholder
        return [
            self.quota.key if self.quota else none,
            budget.bytes_quota.key if budget.bytes_quota else none,
            budget.new_names_quota.key if budget.new_names_quota else none,
            self.registry_key if names and self.registry_key else none,
            self.epoch_key or none,
            self.once.key if self.once else none,
        ]

    def args(self, write: bool, names: tuple[str, ...]) -> list[str | int | bytes]:
        """ARGV[1..12+n]: the limits (0: none) and TTLs, whether to write, the epoch, the
        ``once`` key's TTL, the names."""
        budget = self.budget or _NO_BUDGET
        quotas = (self.quota, budget.bytes_quota, budget.new_names_quota)
        (limit, ttl), (bytes_limit, bytes_ttl), (names_limit, names_ttl) = (
            (q.limit, q.ttl) if q else (0, 0) for q in quotas
        )
        return [
            *(limit, ttl, budget.max_bytes or 0, bytes_limit, bytes_ttl),
            *(budget.max_event_names or 0, names_limit, names_ttl, 1 if write else 0),
            self.epoch if self.epoch is not None else b"",
            self.once.ttl if self.once else 0,
            len(names),
            *names,
        ]

    def command(
        self,
        keys: list[str],
        packed: list[bytes],
        write: bool,
        tail: list[bytes] | tuple[()] = (),
        *,
        by_sha: bool = True,
    ) -> bytes:
        """One call of ``GATE_LUA`` as RESP: ``EVALSHA`` (``EVAL``, which also loads the script,
        when not ``by_sha``). ``tail``: the first-time section after the bitmaps' offsets."""
        cached = len(self.names) <= _CACHED_NAMES and self.once is None  # ids differ per request
        head = _encoded_head if cached else _encoded_head.__wrapped__
        head_keys, head_args = head(self, write)
        parts = 3 + _HEAD_KEYS + len(keys) + self.arg_count() + len(packed) + len(tail)
        body = [head_keys, wire.bulk_strings(keys), head_args, wire.bulk_strings(packed)]
        body.append(wire.bulk_strings(tail))
        numkeys = _HEAD_KEYS + len(keys)
        script = ("EVALSHA", GATE_SHA) if by_sha else ("EVAL", GATE_LUA)
        return wire.command(parts, (*script, numkeys), body)

    def call(
        self,
        redis_client: redis.Redis,
        keys: list[str],
        packed: list[bytes],
        write: bool,
        tail: list[bytes] | tuple[()] = (),
    ) -> str:
        """One call of ``GATE_LUA`` (loaded on first use): ``_ALLOWED``, ``_REFUSED`` (over the
        request quota) or ``_REPEATED`` (the ``once`` key was done). ``tail``: the first-time
        section after the bitmaps' offsets."""
        try:
            try:
                command = self.command(keys, packed, write, tail)
                [reply] = wire.round_trip(redis_client, [command])
            except redis.exceptions.NoScriptError:  # first use on this server: EVAL also loads it
                command = self.command(keys, packed, write, tail, by_sha=False)
                [reply] = wire.round_trip(redis_client, [command])
        except redis.ResponseError as error:
            raise _out_of_memory(error) from None
        allowed, _count, *refused = reply
        if not allowed and refused[0] == b"epoch":
            raise EpochChanged()
        if not allowed and refused[0] != b"requests":
            name, amount, limit = refused
            raise WriteRefused(name.decode(), int(amount), int(limit))
        if not allowed:
            return _REFUSED
        return _REPEATED if refused == [b"once"] else _ALLOWED

    def arg_count(self) -> int:
        """How many of ARGV come before the bitmaps' offsets."""
        return _FIXED_ARGS + len(self.names)


#: What one gate call answers.
_ALLOWED, _REFUSED, _REPEATED = "allowed", "refused", "repeated"
#: KEYS before the bitmaps, and ARGV before the names.
_HEAD_KEYS = 6
_FIXED_ARGS = 12
#: Heads with at most this many names are remembered (beacons'); a big batch's are not, so the
#: memory stays small.
_CACHED_NAMES = 8


@functools.lru_cache(maxsize=256)
def _encoded_head(gate: _Gate, write: bool) -> tuple[bytes, bytes]:
    """The gate's KEYS and ARGV before the bitmaps', encoded once: a busy endpoint sends the same
    quotas, budget and event name thousands of times per window (encoding them was a fifth of a
    single beacon's client time)."""
    return wire.bulk_strings(gate.keys(gate.names)), wire.bulk_strings(gate.args(write, gate.names))


_NO_BUDGET = Budget()
#: The gate of a call that only sets first-time bits, checked and counted by an earlier call.
_NO_GATE = _Gate(None, None, (), None)


def _no_gate(placeholder: str) -> _Gate:
    """``_NO_GATE`` naming ``placeholder`` for its unused keys."""
    return _Gate(None, None, (), None, placeholder=placeholder)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether Redis refused a command for being at its ``maxmemory``: raised as such, queued in
    a transaction (``EXECABORT`` follows), or met by a script's first write."""
    return isinstance(error, redis.exceptions.OutOfMemoryError) or (
        isinstance(error, redis.ResponseError) and "OOM command not allowed" in str(error)
    )


def _out_of_memory(error: redis.ResponseError) -> redis.ResponseError:
    """``error``, as ``OutOfMemoryError`` when that is what it is (a script's wraps it)."""
    if is_out_of_memory(error) and not isinstance(error, redis.exceptions.OutOfMemoryError):
        return redis.exceptions.OutOfMemoryError(str(error))
    return error


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
