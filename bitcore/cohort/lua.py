"""Counting a cohort table on the server: one Lua script, for bitmaps too large to fetch.

The script ANDs/ORs each planned set into a scratch key (sets of one stored key are read in place),
counts it, then for each cell ANDs cohort and return set into one more scratch key and counts that.
Every scratch key is deleted before the script returns, also when a command fails (a source key of
the wrong type), so nothing is left behind; the scratch names sit under the bit-op namespace, where
the cleanup would find them should Redis die mid-script.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from bitcore.cohort.engine import Plan

if TYPE_CHECKING:
    from bitcore.client import BitCore

SCRIPT = """
local pos = 1
local function arg() pos = pos + 1; return tonumber(ARGV[pos - 1]) end
local scratch_from = arg()
local function cleanup()
  for k = scratch_from, #KEYS do redis.call('DEL', KEYS[k]) end
end
local function call(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then cleanup(); return error(r.err) end
  return r
end
local nsets = arg()
local setkey, setcount = {}, {}
for s = 1, nsets do
  local nops, dest = arg(), arg()
  local opkeys = {}
  for o = 1, nops do
    local nkeys, odest = arg(), arg()
    local srcs = {}
    for k = 1, nkeys do srcs[k] = KEYS[arg()] end
    if nkeys == 1 then opkeys[o] = srcs[1]
    else call('BITOP', 'OR', KEYS[odest], unpack(srcs)); opkeys[o] = KEYS[odest] end
  end
  if nops == 1 then setkey[s] = opkeys[1]
  else call('BITOP', 'AND', KEYS[dest], unpack(opkeys)); setkey[s] = KEYS[dest] end
  setcount[s] = call('BITCOUNT', setkey[s])
end
local cell = KEYS[arg()]
local ncells = arg()
local counts = {}
for c = 1, ncells do
  local a, b = arg(), arg()
  if setcount[a] == 0 or setcount[b] == 0 then counts[c] = -1
  else
    call('BITOP', 'AND', cell, setkey[a], setkey[b])
    counts[c] = call('BITCOUNT', cell)
  end
end
cleanup()
return {setcount, counts}
"""


def script_arguments(
    client: BitCore, plan: Plan, sources: list[str]
) -> tuple[list[str], list[int]]:
    """KEYS (sources, then scratch keys) and ARGV (1-based indices) encoding the plan for
    ``SCRIPT``."""
    keys = list(sources)
    index = {key: i for i, key in enumerate(keys, start=1)}
    scratch_base = client.keys.bitop_key("COHORT", [uuid.uuid4().hex])

    def scratch() -> int:
        keys.append(f"{scratch_base}-{len(keys)}")
        return len(keys)

    scratch_from = len(keys) + 1
    cell = scratch()
    set_args: list[int] = []
    for operands in plan.sets:
        set_args += [len(operands), scratch() if len(operands) > 1 else 0]
        for op_keys in operands:
            set_args += [len(op_keys), scratch() if len(op_keys) > 1 else 0]
            set_args += [index[k] for k in op_keys]
    pairs = [n + 1 for pair in plan.pairs for n in pair]
    args = [scratch_from, len(plan.sets), *set_args, cell, len(plan.pairs), *pairs]
    return keys, args


def evaluate(client: BitCore, plan: Plan, sources: list[str]) -> tuple[list[int], list[int | None]]:
    """Set sizes and pair intersections, counted by one EVALSHA (in the MULTI that builds derived
    sets)."""
    keys, args = script_arguments(client, plan, sources)
    script = client.redis.register_script(SCRIPT)
    if plan.derived:
        with client.redis.pipeline(transaction=True) as pipe:
            for bitmap in plan.derived.values():
                bitmap.build(pipe, client.bitop_ttl(bitmap))
            script(keys=keys, args=args, client=pipe)
            pipe.unlink(*plan.made_keys())
            set_counts, cell_counts = pipe.execute()[-2]
    else:
        set_counts, cell_counts = script(keys=keys, args=args)
    return [int(c) for c in set_counts], [None if c < 0 else int(c) for c in cell_counts]
