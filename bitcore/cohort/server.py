"""A cohort table counted on the server: BITOP + BITCOUNT per cell, in bounded round trips.

``cohort_table(..., where="server")`` asks for it; the default reads the bitmaps into numpy, which
measured faster for every shape and size tried on one machine (``bench/README.md``, "Where the
time goes at 10M users": months 3 x 2 at 100K, 1M and 10M users, weeks 8 x 6, days 31 x 13),
since numpy's popcount is several times faster than Redis's ``BITCOUNT`` and the bytes arrive in
one copy (``bitcore.transfer``). It is for a Redis far from the Python process, where sending
the bitmaps costs more than Redis counting them: nothing but the counts crosses the network.

The commands go in round trips of at most ``STEP_BYTES`` of bitmap bytes walked (reports share
Redis with beacons; a small table is one round trip): the sets that are ANDs or ORs of keys are
built (``BITOP``), every set is counted (``BITCOUNT``), then every cell (``BITOP AND`` into a
scratch key, ``BITCOUNT``; a cell of an empty set costs little and shows as empty). Built sets
and the scratch key are keys of this table alone (``KeyLayout.report_key``), with a TTL from the
round trip that writes them, unlinked at the end however it ends. A Redis at its ``maxmemory``
refuses the BITOPs (``redis.exceptions.OutOfMemoryError``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from bitcore.cohort import retention
from bitcore.segments.program import STEP_BYTES

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.cohort.engine import Plan
    from bitcore.reading import Reading

#: Seconds the table's built sets live if it dies before unlinking them.
RESULT_TTL = 300

Command = tuple[str, ...]  # ("BITOP", op, dest, *sources) or ("BITCOUNT", key)


def _run(client: BitCore, commands: list[Command], widest: int, temporary: set[str]) -> list[int]:
    """``commands`` in round trips of bounded work; the BITCOUNTs' answers, in order."""
    per_trip = max(1, STEP_BYTES // (2 * max(widest, 1)))
    answers: list[int] = []
    for start in range(0, len(commands), per_trip):
        batch = commands[start : start + per_trip]
        with client.redis.pipeline(transaction=False) as pipe:
            for command in batch:
                if command[0] == "BITOP":
                    pipe.bitop(*command[1:])
                else:
                    pipe.bitcount(command[1])
            written = sorted({c[2] for c in batch if c[0] == "BITOP"} & temporary)
            for key in written:
                pipe.expire(key, RESULT_TTL)
            replies = pipe.execute()
        answers += [int(r) for c, r in zip(batch, replies, strict=False) if c[0] == "BITCOUNT"]
    return answers


def count(client: BitCore, plan: Plan, read: Reading) -> tuple[list[int], list[int]]:
    """Set sizes and per pair the size of the intersection, counted by Redis."""
    client.require_flat("the cohort engine's server-side count")
    run = uuid.uuid4().hex
    names = iter(range(1 << 30))
    stored = dict(zip(plan.source_keys(), read.keys, strict=True))
    length = dict(zip(read.keys, read.lengths, strict=True))
    widest = max(read.lengths, default=0)
    temporary: set[str] = set()

    def scratch() -> str:
        key = client.keys.report_key(run, next(names))
        temporary.add(key)
        return key

    build: list[Command] = []
    set_keys: list[str] = []
    for operands in plan.sets:
        parts = []
        for keys in operands:
            present = [stored[k] for k in keys if length[stored[k]]] or [stored[keys[0]]]
            if len(present) == 1:
                parts.append(present[0])
            else:
                parts.append(scratch())
                build.append(("BITOP", "OR", parts[-1], *present))
        if len(parts) == 1:
            set_keys.append(parts[0])
        else:
            set_keys.append(scratch())
            build.append(("BITOP", "AND", set_keys[-1], *parts))
    build += retention.server_unions(plan, set_keys, scratch)  # on-or-after tables' unions
    cells = list(dict.fromkeys(plan.pairs))
    both = scratch()
    work: list[Command] = [*build, *(("BITCOUNT", k) for k in set_keys)]
    for a, b in cells:
        work += [("BITOP", "AND", both, set_keys[a], set_keys[b]), ("BITCOUNT", both)]
    try:
        answers = _run(client, work, widest, temporary)
    finally:
        client.redis.unlink(*temporary)
    sizes = answers[: len(set_keys)]
    counted = dict(zip(cells, answers[len(set_keys) :], strict=True))
    return sizes, [counted[pair] for pair in plan.pairs]
