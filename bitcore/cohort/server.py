"""A cohort table counted on the server: BITOP + BITCOUNT per cell, in one EVALSHA per bounded step.

``cohort_table(..., where="server")`` asks for it, and ``where="auto"`` picks it when Redis's
work costs less than sending the keys (``server_is_cheaper``: a table of few cells over many
keys, months 3 x 2), since then nothing but counts crosses the socket.

The table is a program for ``STEP_LUA``: the sets that are ANDs or ORs of keys are built
(``BITOP``), each cohort set is counted (``BITCOUNT``), of a set that is only ever a return set
only whether it has users is asked (``BITPOS key 1``, which stops at its first user), then every
cell is one ``BITOP AND`` into one scratch key reused cell after cell and its ``BITCOUNT`` (a
cell of a set with itself is that set's size, no BITOP). The script measures the keys itself
(``STRLEN``: a table over ``max_bytes`` is refused before any BITOP), runs the program until the
next command would take its step past ``STEP_BYTES`` walked (reports share Redis with beacons: a
step holds it ~30 ms at most), and answers the counts and where to go on: a small table is one
round trip in all, the lengths included. Built sets and the scratch key are keys of this table
alone (``KeyLayout.report_key``) with a TTL set after each write, unlinked by the last step
itself (or, if a step fails, by the script or one more call). A Redis at its ``maxmemory``
refuses the BITOPs (``redis.exceptions.OutOfMemoryError``), a replica too (``ReadOnlyError``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from bitcore import reading
from bitcore.cohort import kernel, retention
from bitcore.segments.program import STEP_BYTES

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.cohort.engine import Plan

#: Seconds the table's built sets live if it dies before unlinking them.
RESULT_TTL = 300
#: CPU nanoseconds per byte, measured on the 2-core machine at 10M users (``bench/README.md``,
#: "Small tables on Redis" and "A compiled count"): receiving a key (Redis's copy, the socket,
#: ``recv_into``), numpy's AND + popcount of a cell, the compiled loop's
#: (``bitcore.cohort.kernel``), Redis's ``BITOP AND`` of two keys, its ``BITCOUNT``.
FETCH_NS, NUMPY_CELL_NS, COMPILED_CELL_NS, BITOP_NS, BITCOUNT_NS = 0.45, 0.16, 0.05, 0.2, 0.25

#: One bounded step. KEYS: the sources (the first ARGV[5] of them measured), then the
#: temporaries (from KEYS[ARGV[4]]). ARGV: TTL, max_bytes (-1: none), bytes a step may walk,
#: first temporary, sources, where the program starts, the program: ``A``/``O`` n dest src...
#: (BITOP AND/OR of n keys), ``C`` k (BITCOUNT), ``P`` k (BITPOS 1, answered 1 if any user),
#: ``X`` k (EXPIRE), keys as indexes into KEYS. Answers {-1, bytes} when over max_bytes, else
#: {next, counts...} (next 0: done, the temporaries unlinked); an error (a full Redis's OOM)
#: unlinks them and is the reply.
STEP_LUA = """
local ttl, most, step = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local first, sources, pc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function cleanup()
  for k = first, #KEYS, 1000 do redis.call('UNLINK', unpack(KEYS, k, math.min(k + 999, #KEYS))) end
end
local widest, total = 0, 0
for k = 1, sources do
  local n = redis.call('STRLEN', KEYS[k])
  total = total + n
  if n > widest then widest = n end
end
if pc == 1 and most >= 0 and total > most then return {-1, total} end
local t = {}
for token in string.gmatch(ARGV[7], '%S+') do t[#t + 1] = token end
local out, walked = {0}, 0
while pc <= #t do
  local op = t[pc]
  local n = (op == 'A' or op == 'O') and tonumber(t[pc + 1]) or 0
  local cost = (op == 'A' or op == 'O') and widest * (n + 1) or (op == 'C' and widest or 0)
  if walked > 0 and walked + cost > step then out[1] = pc return out end
  walked = walked + cost
  local r
  if n > 0 then
    local args = {'BITOP', op == 'A' and 'AND' or 'OR'}
    for j = 0, n do args[#args + 1] = KEYS[tonumber(t[pc + 2 + j])] end
    r = redis.pcall(unpack(args))
    pc = pc + 3 + n
  else
    local key = KEYS[tonumber(t[pc + 1])]
    if op == 'C' then r = redis.pcall('BITCOUNT', key)
    elseif op == 'P' then
      r = redis.pcall('BITPOS', key, 1)
      if type(r) == 'number' then r = (r >= 0) and 1 or 0 end
    else r = redis.pcall('EXPIRE', key, ttl) end
    if op ~= 'X' then out[#out + 1] = r end
    pc = pc + 2
  end
  if type(r) == 'table' and r.err then cleanup() return r end
end
cleanup()
return out
"""
STEP_SHA = hashlib.sha1(STEP_LUA.encode()).hexdigest()

# ("BITOP", op, dest, *sources), ("BITCOUNT", key), ("BITPOS", key), ("EXPIRE", key)
Command = tuple[str, ...]
_OPS = {"AND": "A", "OR": "O", "BITCOUNT": "C", "BITPOS": "P", "EXPIRE": "X"}


def server_is_cheaper(plan: Plan) -> bool:
    """Whether counting ``plan`` on Redis costs less CPU than fetching its keys and counting them
    in numpy, from the plan alone (its keys taken as equally long, as a table's bitmaps nearly
    are): each cell costs Redis a BITOP and a BITCOUNT where the client pays one AND + popcount
    (compiled, or numpy's), but first needs every key sent. No round trip: the server way then
    needs no other."""
    cells = len({(a, b) for a, b in plan.pairs if a != b})
    built = sum(len(ops) for ops in plan.sets if len(ops) > 1) + len(plan.suffix)
    server = cells * (BITOP_NS + BITCOUNT_NS) + built * BITOP_NS / 2
    server += len({a for a, _ in plan.pairs}) * BITCOUNT_NS
    cell_ns = COMPILED_CELL_NS if kernel.load() is not None else NUMPY_CELL_NS
    client = len(plan.source_keys()) * FETCH_NS + cells * cell_ns
    return server < client


def _with_ttls(work: list[Command], temporary: set[str]) -> list[Command]:
    """``work`` with an ``EXPIRE`` after every BITOP into a temporary key (an empty result
    deletes the key, so the next write needs its TTL again): a table that dies between steps
    leaves nothing for long."""
    timed: list[Command] = []
    for command in work:
        timed.append(command)
        if command[0] == "BITOP" and command[2] in temporary:
            timed.append(("EXPIRE", command[2]))
    return timed


def _program(work: list[Command], index: dict[str, int]) -> str:
    """``work`` as ``STEP_LUA``'s program: one string, cheap to send and to parse."""
    tokens: list[str] = []
    for command in work:
        if command[0] == "BITOP":
            tokens += [_OPS[command[1]], str(len(command) - 3)]
            tokens += [str(index[k]) for k in command[2:]]
        else:
            tokens += [_OPS[command[0]], str(index[command[1]])]
    return " ".join(tokens)


#: Errors a script's BITOP meets as a command would (redis-py only knows them at the start).
_REFUSALS: dict[str, type[redis.exceptions.ResponseError]] = {
    "OOM command not allowed": redis.exceptions.OutOfMemoryError,
    "-READONLY ": redis.exceptions.ReadOnlyError,
}


def _step(client: BitCore, keys: list[str], args: list[str | int]) -> list[int]:
    """One ``STEP_LUA`` call (loaded first if Redis does not know it); a script's OOM error is
    still ``OutOfMemoryError``, a replica's refusal ``ReadOnlyError``."""
    try:
        try:
            return list(client.redis.evalsha(STEP_SHA, len(keys), *keys, *args))  # type: ignore[arg-type]
        except redis.exceptions.NoScriptError:
            client.redis.script_load(STEP_LUA)
            return list(client.redis.evalsha(STEP_SHA, len(keys), *keys, *args))  # type: ignore[arg-type]
    except redis.exceptions.ResponseError as error:
        for marker, kind in _REFUSALS.items():  # a script's error starts with its place
            if marker in str(error):
                raise kind(str(error)) from error
        raise


def _run(
    client: BitCore, sources: list[str], work: list[Command], temporary: list[str],
    max_bytes: int | None,
) -> list[int]:  # fmt: skip
    """``work`` in steps of bounded bytes walked, one EVALSHA each; the BITCOUNTs' and BITPOSes'
    answers, in order (a BITPOS as 1 if the set has users, else 0)."""
    keys = [*sources, *temporary]
    program = _program(work, {k: i for i, k in enumerate(keys, 1)})
    head = [RESULT_TTL, -1 if max_bytes is None else max_bytes, STEP_BYTES, len(sources) + 1]
    answers: list[int] = []
    at, done = 1, False
    try:
        while not done:
            reply = _step(client, keys, [*head, len(sources), at, program])
            if reply[0] == -1:
                raise reading.ReportTooCostly(int(reply[1]), max_bytes or 0)
            answers += (int(r) for r in reply[1:])
            at = int(reply[0])
            done = at == 0
    finally:
        if temporary and not done:
            client.redis.unlink(*temporary)
    return answers


def count(
    client: BitCore, plan: Plan, keys: Sequence[str], max_bytes: int | None = None
) -> tuple[list[int], list[int]]:
    """Set sizes (of a set only ever a pair's second: 1 if it has users, else 0) and per pair
    the size of the intersection, counted by Redis; ``keys`` are where ``plan.source_keys()``
    lie (derived ones under private names). Over ``max_bytes`` is ``ReportTooCostly``."""
    client.require_flat("the cohort engine's server-side count")
    run = uuid.uuid4().hex
    stored = dict(zip(plan.source_keys(), keys, strict=True))
    temporary: list[str] = []
    work: list[Command] = []

    def scratch() -> str:
        temporary.append(client.keys.report_key(run, len(temporary)))
        return temporary[-1]

    def built(op: str, sources: list[str]) -> str:
        work.append(("BITOP", op, scratch(), *sources))
        return temporary[-1]

    set_keys: list[str] = []
    for operands in plan.sets:
        parts = []
        for ors in operands:
            present = [stored[k] for k in ors]
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
    answers = _run(client, list(dict.fromkeys(keys)), work, temporary, max_bytes)
    sizes = answers[: len(set_keys)]
    counted = {(a, a): sizes[a] for a in cohorts}
    counted.update(zip(cells, answers[len(set_keys) :], strict=True))
    return sizes, [counted[pair] for pair in plan.pairs]
