"""A cohort table counted on the server: BITOP + BITCOUNT per cell, in few bounded round trips.

``cohort_table(..., where="server")`` asks for it, and ``where="auto"`` picks it when Redis's
work costs less than sending the keys (``server_is_cheaper``: a table of few cells over many
bytes, months 3 x 2 at 10M users), since then nothing but counts crosses the socket.

All the commands go in one pipeline (no ``MULTI``: nothing needs to be atomic) as long as the
bytes they walk stay under ``STEP_BYTES`` (reports share Redis with beacons: one round trip holds
it for ~30 ms at most), else in several: the sets that are ANDs or ORs of keys are built
(``BITOP``), each cohort set is counted (``BITCOUNT``), of a set that is only ever a return set
only whether it has users is asked (``BITPOS key 1``, which stops at its first user), then every
cell is one ``BITOP AND`` into one scratch key reused cell after cell and its ``BITCOUNT`` (a
cell of a set with itself is that set's size, no BITOP). Built sets and the scratch key are keys
of this table alone (``KeyLayout.report_key``) with a TTL set by the command after each write,
unlinked by the last round trip itself (or, if that one fails, by one more). A Redis at its
``maxmemory`` refuses the BITOPs (``redis.exceptions.OutOfMemoryError``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from bitcore.cohort import retention
from bitcore.segments.program import STEP_BYTES

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.cohort.engine import Plan
    from bitcore.reading import Reading

#: Seconds the table's built sets live if it dies before unlinking them.
RESULT_TTL = 300
#: CPU nanoseconds per byte, measured on the 2-core machine at 10M users (``bench/README.md``,
#: "Counting small tables on Redis"): receiving a key (Redis's copy, the socket, ``recv_into``),
#: numpy's AND + popcount of a cell, Redis's ``BITOP AND`` of two keys, its ``BITCOUNT``.
FETCH_NS, NUMPY_CELL_NS, BITOP_NS, BITCOUNT_NS = 0.8, 0.2, 0.6, 0.2

# ("BITOP", op, dest, *sources), ("BITCOUNT", key), ("BITPOS", key), ("EXPIRE", key)
Command = tuple[str, ...]


def server_is_cheaper(plan: Plan, lengths: Sequence[int]) -> bool:
    """Whether counting ``plan`` on Redis costs less CPU than fetching its keys (``lengths``, in
    ``plan.source_keys()`` order) and counting them in numpy: each cell costs Redis a BITOP and a
    BITCOUNT where numpy pays one AND + popcount, but numpy first needs every key sent. Only the
    sizes the plan knows: no round trip."""
    length = dict(zip(plan.source_keys(), lengths, strict=True))
    widths = [max((length[k] for keys in ops for k in keys), default=0) for ops in plan.sets]
    widths += [max((widths[s] for s in plan.suffix), default=0)] * len(plan.suffix)
    cells = {(a, b) for a, b in plan.pairs if a != b}
    cell_bytes = sum(min(widths[a], widths[b]) for a, b in cells)
    built = sum(w * len(ops) for w, ops in zip(widths, plan.sets, strict=False) if len(ops) > 1)
    server = cell_bytes * (BITOP_NS + BITCOUNT_NS) + built * BITOP_NS / 2
    server += sum(widths[a] for a in {a for a, _ in plan.pairs}) * BITCOUNT_NS
    client = sum(lengths) * FETCH_NS + cell_bytes * NUMPY_CELL_NS
    return server < client


def _with_ttls(work: list[Command], temporary: set[str]) -> list[Command]:
    """``work`` with an ``EXPIRE`` after every BITOP into a temporary key (an empty result
    deletes the key, so the next write needs its TTL again): a table that dies between round
    trips leaves nothing for long."""
    timed: list[Command] = []
    for command in work:
        timed.append(command)
        if command[0] == "BITOP" and command[2] in temporary:
            timed.append(("EXPIRE", command[2]))
    return timed


def _walked(command: Command, widest: int) -> int:
    """Bytes ``command`` reads and writes at most (a BITPOS stops at the first user)."""
    if command[0] == "BITOP":
        return widest * (len(command) - 2)
    return widest if command[0] == "BITCOUNT" else 0


def _batches(commands: list[Command], widest: int) -> list[list[Command]]:
    """``commands`` cut into round trips walking at most ``STEP_BYTES`` each."""
    batches: list[list[Command]] = [[]]
    walked = 0
    for command in commands:
        cost = _walked(command, widest)
        if batches[-1] and walked + cost > STEP_BYTES:
            batches.append([])
            walked = 0
        batches[-1].append(command)
        walked += cost
    return batches


#: One bounded step of a table: ARGV is the TTL, whether to unlink the temporaries (KEYS from
#: ARGV[3] on) at the end, then a program of ``A``/``O`` n dest src... (BITOP AND/OR of n keys),
#: ``C`` k (BITCOUNT), ``P`` k (BITPOS 1), ``X`` k (EXPIRE), keys as indexes into KEYS. Only
#: counts come back; an error (a full Redis's OOM) unlinks the temporaries and is the reply.
STEP_LUA = """
local ttl, unlink, first = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local function cleanup()
  if first <= #KEYS then redis.call('UNLINK', unpack(KEYS, first)) end
end
local out, i = {}, 4
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'A' or op == 'O' then
    local n = tonumber(ARGV[i + 1])
    local args = {'BITOP', op == 'A' and 'AND' or 'OR'}
    for j = 0, n do args[#args + 1] = KEYS[tonumber(ARGV[i + 2 + j])] end
    local r = redis.pcall(unpack(args))
    if type(r) == 'table' and r.err then cleanup() return r end
    i = i + 3 + n
  else
    local key = KEYS[tonumber(ARGV[i + 1])]
    if op == 'C' then out[#out + 1] = redis.call('BITCOUNT', key)
    elseif op == 'P' then out[#out + 1] = redis.call('BITPOS', key, 1)
    else redis.call('EXPIRE', key, ttl) end
    i = i + 2
  end
end
if unlink then cleanup() end
return out
"""
_OPS = {"AND": "A", "OR": "O", "BITCOUNT": "C", "BITPOS": "P", "EXPIRE": "X"}


def _program(batch: list[Command], index: dict[str, int]) -> list[str | int]:
    """``batch`` as ``STEP_LUA``'s ARGV program."""
    program: list[str | int] = []
    for command in batch:
        if command[0] == "BITOP":
            program += [_OPS[command[1]], len(command) - 3, *(index[k] for k in command[2:])]
        else:
            program += [_OPS[command[0]], index[command[1]]]
    return program


def _run(client: BitCore, commands: list[Command], widest: int, temporary: list[str]) -> list[int]:
    """``commands`` in round trips of bounded work (one ``STEP_LUA`` call each: one command to
    send and a list of integers back, where a pipeline of them cost more Python than Redis's
    work on a small table), the last one unlinking ``temporary``; the BITCOUNTs' and BITPOSes'
    answers, in order (a BITPOS as 1 if the set has users, else 0)."""
    keys = list(dict.fromkeys(k for c in commands for k in c[1:] if k not in _OPS))
    keys = [k for k in keys if k not in set(temporary)] + temporary
    index = {k: i for i, k in enumerate(keys, 1)}
    first = len(keys) - len(temporary) + 1
    script = client.redis.register_script(STEP_LUA)
    answers: list[int] = []
    batches = _batches(commands, widest)
    unlinked = False
    try:
        for number, batch in enumerate(batches, 1):
            last = number == len(batches)
            head = [RESULT_TTL, int(last), first]
            try:
                replies = script(keys=keys, args=[*head, *_program(batch, index)])
            except redis.exceptions.ResponseError as error:
                if "OOM command not allowed" in str(error):  # a script's error keeps its place
                    raise redis.exceptions.OutOfMemoryError(str(error)) from error
                raise
            unlinked = last
            counted = (c for c in batch if c[0] in ("BITCOUNT", "BITPOS"))
            for command, reply in zip(counted, replies, strict=True):
                answers.append(int(reply) if command[0] == "BITCOUNT" else int(int(reply) >= 0))
    finally:
        if temporary and not unlinked:
            client.redis.unlink(*temporary)
    return answers


def count(client: BitCore, plan: Plan, read: Reading) -> tuple[list[int], list[int]]:
    """Set sizes (of a set only ever a pair's second: 1 if it has users, else 0) and per pair
    the size of the intersection, counted by Redis."""
    run = uuid.uuid4().hex
    stored = dict(zip(plan.source_keys(), read.keys, strict=True))
    length = dict(zip(read.keys, read.lengths, strict=True))
    widest = max(read.lengths, default=0)
    temporary: list[str] = []
    work: list[Command] = []

    def scratch() -> str:
        key = client.keys.report_key(run, len(temporary))
        temporary.append(key)
        return key

    def built(op: str, sources: list[str]) -> str:
        work.append(("BITOP", op, scratch(), *sources))
        return temporary[-1]

    set_keys: list[str] = []
    for operands in plan.sets:
        parts = []
        for keys in operands:
            present = [stored[k] for k in keys if length[stored[k]]] or [stored[keys[0]]]
            parts.append(present[0] if len(present) == 1 else built("OR", present))
        set_keys.append(parts[0] if len(parts) == 1 else built("AND", parts))
    work += retention.server_unions(plan, set_keys, scratch)  # on-or-after tables' unions
    cohorts = {a for a, _ in plan.pairs}
    work += [("BITCOUNT" if s in cohorts else "BITPOS", k) for s, k in enumerate(set_keys)]
    cells = [pair for pair in dict.fromkeys(plan.pairs) if pair[0] != pair[1]]
    both = scratch() if cells else ""
    for a, b in cells:
        work += [("BITOP", "AND", both, set_keys[a], set_keys[b]), ("BITCOUNT", both)]
    work = _with_ttls(work, set(temporary))
    answers = _run(client, work, widest, temporary)
    sizes = answers[: len(set_keys)]
    counted = {(a, a): sizes[a] for a in cohorts}
    counted.update(zip(cells, answers[len(set_keys) :], strict=True))
    return sizes, [counted[pair] for pair in plan.pairs]
