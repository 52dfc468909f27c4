"""A funnel counted on the server: its recurrence as BITOPs, in round trips of bounded work.

A one-start funnel does about two BITOPs per key it reads (``R_k = R_k OR (R_k-1 AND D_k[p])``
for each step and window period), and Redis runs a BITOP over a day bitmap faster than it can
send the bitmap: at 1M and at 10M users the 5-step, 30-day funnel took half the time on the
server (``bench/README.md``, "Where the time goes at 10M users"). A trend of many start periods
reads each key once but does those BITOPs once per start, so there the fetch-and-numpy path is
cheaper. ``cheaper_on_server`` decides from what the plan already knows: the number of BITOPs and
of keys, and their lengths.

The commands go in round trips of at most ``STEP_BYTES`` of bitmap bytes walked (a few tens of
milliseconds of Redis time each: reports share Redis with beacons), and only for bitmaps short
enough that a single BITOP stays far below that; the counts and the cleanup go with the last.
The running results are keys of this report alone (``KeyLayout.report_key``), each given a TTL
in the round trip that writes it and unlinked at the end however the report ends. A Redis that
refuses writes (``maxmemory``) makes ``count`` raise ``redis.exceptions.OutOfMemoryError``; the
caller then reads and counts in numpy.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bitcore import wire
from bitcore.segments.program import STEP_BYTES

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.reading import Reading

#: Count on the server when it runs at most this many BITOPs per key the client would read
#: instead: measured, a BITOP costs Redis about a third of what sending and counting a key costs.
SERVER_OPS_PER_KEY = 3
#: Only keys this short go to the server: a BITOP over two of them walks at most a quarter of a
#: step.
MAX_SERVER_KEY_BYTES = STEP_BYTES // 8
#: Seconds the running results live if the report dies before unlinking them.
RESULT_TTL = 300

#: A two-source ``BITOP`` up to its keys, as RESP.
_BITOP = {op: wire.command(5, ("BITOP", op), []) for op in ("AND", "OR")}


def _bulk(key: str) -> bytes:
    return wire.bulk_strings((key,))


#: Per start period: the row of step 1 in the start, then per window period the rows of steps
#: 2..K (``bitcore.funnel._Plan.rows``).
Rows = Sequence[tuple[int, Sequence[Sequence[int]]]]


def bitops_needed(rows: Rows, lengths: Sequence[int]) -> int:
    """BITOPs the server would run: two per step and period of each start whose step 1 has users,
    none for a key without bytes."""
    return sum(
        2 * sum(1 for per_period in periods for r in per_period if lengths[r])
        for first, periods in rows
        if lengths[first]
    )


def cheaper_on_server(rows: Rows, lengths: Sequence[int]) -> bool:
    """Whether counting ``rows`` with BITOPs on the server beats reading their keys."""
    widest = max(lengths, default=0)
    read = sum(1 for length in lengths if length)
    if not read or widest > MAX_SERVER_KEY_BYTES:
        return False
    return bitops_needed(rows, lengths) <= SERVER_OPS_PER_KEY * read


def count(client: BitCore, read: Reading, rows: Rows, steps: int) -> list[list[int]]:
    """Step counts per start period, computed by BITOPs on the server in bounded round trips."""
    client.require_flat("the funnel's server-side count")
    run = uuid.uuid4().hex
    names = iter(range(1 << 30))
    both = client.keys.report_key(run, next(names))
    reached = [[client.keys.report_key(run, next(names)) for _ in range(steps)] for _ in rows]
    commands: list[tuple[str, str, str, str]] = []
    counted: list[str | None] = []  # per start and step: the key to BITCOUNT (None: nobody)
    for s, (first, periods) in enumerate(rows):
        if not read.lengths[first]:
            counted += [None] * steps
            continue
        reached[s][0] = read.keys[first]  # step 1 is its key as stored: nothing to compute
        for per_period in periods:
            for k, r in enumerate(per_period, start=1):
                if read.lengths[r]:  # an absent key adds nobody
                    commands.append(("AND", both, reached[s][k - 1], read.keys[r]))
                    commands.append(("OR", reached[s][k], reached[s][k], both))
        counted += reached[s]
    per_trip = max(1, STEP_BYTES // (2 * max(read.lengths, default=1) or 1))
    temporary = [both, *(key for keys in reached for key in keys[1:])]
    batches = [commands[at : at + per_trip] for at in range(0, len(commands), per_trip)] or [[]]
    encoded = functools.lru_cache(maxsize=None)(_bulk)  # each key encoded once, not per BITOP
    counts = [wire.encode("BITCOUNT", result) for result in counted if result is not None]
    cleaned = False
    try:
        for number, batch in enumerate(batches):
            # RESP encoded here: redis-py's pipeline packing cost more client time than the
            # BITOPs cost Redis (a funnel on many shards sends thousands of them)
            sent = [
                b"".join((_BITOP[op], encoded(dest), *map(encoded, sources)))
                for op, dest, *sources in batch
            ]
            sent += [wire.encode("EXPIRE", key, RESULT_TTL) for key in {d for _, d, *_ in batch}]
            last = number == len(batches) - 1
            if last:  # the counts and the cleanup ride on the last round trip
                sent += [*counts, wire.encode("UNLINK", *temporary)]
            replies = wire.round_trip(client.redis, sent)
        cleaned = True
    finally:
        if not cleaned:
            client.redis.unlink(*temporary)
    answers = iter(replies[len(replies) - 1 - len(counts) : -1])
    flat = [0 if result is None else int(next(answers)) for result in counted]
    return [flat[s * steps : (s + 1) * steps] for s in range(len(rows))]
