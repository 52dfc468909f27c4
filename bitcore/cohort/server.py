"""A small cohort table counted on the server: BITOP + BITCOUNT per cell, in bounded round trips.

A table with about as many cells as keys (months 3 x 2: 9 cells, 8 keys) is cheaper counted where
the bitmaps are: at 1M users one pipelined round trip of BITOP AND + BITCOUNT per cell took two
thirds of the time of sending the keys and counting them in numpy (``bench/README.md``, "Where
the time goes at 10M users"). Tables with many cells per key (days 31 x 13: 403 cells, 43 keys) are
far cheaper in numpy, whose popcount is several times faster than Redis's ``BITCOUNT``.
``cheaper_on_server`` decides from the plan and the lengths it measured.

Two phases, each in round trips of at most ``STEP_BYTES`` of bitmap bytes walked (reports share
Redis with beacons): the sets that are ANDs or ORs of keys are built (``BITOP``) and every set is
counted (``BITCOUNT``); then the cells of non-empty sets (``BITOP AND`` into a scratch key,
``BITCOUNT``). Built sets and the scratch key are keys of this table alone
(``KeyLayout.report_key``), with a TTL from the round trip that writes them, unlinked at the end
however it ends. A Redis at its ``maxmemory`` refuses the BITOPs
(``redis.exceptions.OutOfMemoryError``): the engine then reads and counts in numpy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bitcore.segments.program import STEP_BYTES

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.cohort.engine import Plan
    from bitcore.reading import Reading

#: Count on the server when the table has at most this many cells per key it reads.
SERVER_CELLS_PER_KEY = 1.5
#: Only keys this short go to the server: a BITOP over two of them walks a quarter of a step.
MAX_SERVER_KEY_BYTES = STEP_BYTES // 8
#: Seconds the table's built sets live if it dies before unlinking them.
RESULT_TTL = 300

Command = tuple[str, ...]  # ("BITOP", op, dest, *sources) or ("BITCOUNT", key)


def cheaper_on_server(plan: Plan, lengths: Sequence[int]) -> bool:
    """Whether ``plan`` (its source keys measured as ``lengths``) is cheaper counted by Redis."""
    read = sum(1 for length in lengths if length)
    if not read or max(lengths) > MAX_SERVER_KEY_BYTES:
        return False
    return len(set(plan.pairs)) <= SERVER_CELLS_PER_KEY * read


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
    try:
        sizes = _run(client, [*build, *(("BITCOUNT", k) for k in set_keys)], widest, temporary)
        cells = sorted({(a, b) for a, b in plan.pairs if sizes[a] and sizes[b]})
        both = scratch()
        work: list[Command] = []
        for a, b in cells:
            work += [("BITOP", "AND", both, set_keys[a], set_keys[b]), ("BITCOUNT", both)]
        counted = dict(zip(cells, _run(client, work, widest, temporary), strict=True))
    finally:
        if temporary:
            client.redis.unlink(*temporary)
    return sizes, [counted.get(pair, 0) for pair in plan.pairs]
