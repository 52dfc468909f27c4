"""A funnel counted on the server: its recurrence as BITOPs, in round trips of bounded work.

A one-start funnel does about two BITOPs per key it reads (``R_k = R_k OR (R_k-1 AND D_k[p])``
for each step and window period), and Redis runs a BITOP over a day bitmap faster than it can
send the bitmap: at 1M and at 10M users the 5-step, 30-day funnel took half the time on the
server (``bench/README.md``, "Where the time goes at 10M users"). A trend of many start periods
reads each key once but does those BITOPs once per start, so there the fetch-and-numpy path is
cheaper. ``cheaper_on_server`` decides from what the plan already knows: the number of BITOPs and
of keys, and their lengths.

The commands go in round trips of at most ``STEP_BYTES`` of bitmap bytes walked (2-3 ms of Redis
time each at 10M users, measured; reports share Redis with beacons), the next sent before this
one's replies are read (``wire.round_trips``: at most two wait on Redis at once, so Redis does not
idle while the client reads), and only for bitmaps short enough that a single BITOP stays far
below that; the counts and the cleanup go with the last.
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
    """BITOPs ``count`` would run for ``rows`` (none for a key without bytes)."""
    total = 0
    for first, periods in rows:
        if lengths[first]:
            later = len(periods[0]) if periods else 0
            keyed = [[(str(r), lengths[r]) for r in per_period] for per_period in periods]
            total += len(_recurrence(str(first), keyed, ["x"] * later, "both")[0])
    return total


def cheaper_on_server(rows: Rows, lengths: Sequence[int]) -> bool:
    """Whether counting ``rows`` with BITOPs on the server beats reading their keys."""
    widest = max(lengths, default=0)
    read = sum(1 for length in lengths if length)
    if not read or widest > MAX_SERVER_KEY_BYTES:
        return False
    return bitops_needed(rows, lengths) <= SERVER_OPS_PER_KEY * read


def _recurrence(
    first: str, periods: Sequence[Sequence[tuple[str, int]]], owned: Sequence[str], both: str
) -> tuple[list[tuple[str, ...]], list[str | None]]:
    """The commands of one start's funnel, and per step the key whose ``BITCOUNT`` is its count
    (``None``: nobody reached it).

    Step 1's users ``F`` are factored out: ``X_k`` (users who did steps 2..k in order in the
    window, whatever they did first) runs ``X_k |= X_k-1 AND D_k[p]`` per period ``p`` with
    ``X_1`` everyone, so ``X_2`` is a plain OR of step 2's keys; a step's first key is an AND
    (or for step 2 the stored key itself), not an AND and an OR into nothing; and the reach of
    step ``k`` is ``F AND X_k``, one AND at the end (``F AND (A OR B) = (F AND A) OR (F AND
    B)``). 4 steps over 30 periods: 210 BITOPs where the plain recurrence runs 240.
    ``periods``: per window period, each later step's key and its length."""
    commands: list[tuple[str, ...]] = []
    running: list[str | None] = [None] * (len(owned) + 1)  # X_k's key so far (index k - 1)
    for per_period in periods:
        for k, (key, length) in enumerate(per_period, start=1):
            before = running[k - 1] if k > 1 else ""  # "": everyone
            if not length or before is None:
                continue  # an absent key adds nobody; nobody has reached the step before
            mine = owned[k - 1]
            if running[k] is None:
                if k == 1:
                    running[k] = key  # X_2 starts as step 2's key as stored: nothing to run
                    continue
                commands.append(("AND", mine, before, key))
            elif k == 1:
                commands.append(("OR", mine, running[k], key))  # type: ignore[arg-type]
            else:
                commands.append(("AND", both, before, key))
                commands.append(("OR", mine, mine, both))
            running[k] = mine
    counted: list[str | None] = [first]
    for k, reached in enumerate(running[1:], start=1):
        if reached is None:
            counted.append(None)
            continue
        final = owned[k - 1]
        commands.append(("AND", final, first, reached))
        counted.append(final)
    return commands, counted


def count(client: BitCore, read: Reading, rows: Rows, steps: int) -> list[list[int]]:
    """Step counts per start period, computed by BITOPs on the server in bounded round trips."""
    client.require_flat("the funnel's server-side count")
    run = uuid.uuid4().hex
    names = iter(range(1 << 30))
    both = client.keys.report_key(run, next(names))
    owned = [[client.keys.report_key(run, next(names)) for _ in range(steps - 1)] for _ in rows]
    commands: list[tuple[str, ...]] = []
    counted: list[str | None] = []  # per start and step: the key to BITCOUNT (None: nobody)
    for s, (first, periods) in enumerate(rows):
        if not read.lengths[first]:
            counted += [None] * steps
            continue
        keyed = [[(read.keys[r], read.lengths[r]) for r in per] for per in periods]
        done, reached = _recurrence(read.keys[first], keyed, owned[s], both)
        commands += done
        counted += reached
    per_trip = max(1, STEP_BYTES // (2 * max(read.lengths, default=1) or 1))
    temporary = [both, *(key for keys in owned for key in keys)]
    batches = [commands[at : at + per_trip] for at in range(0, len(commands), per_trip)] or [[]]
    encoded = functools.lru_cache(maxsize=None)(_bulk)  # each key encoded once, not per BITOP
    counts = [wire.encode("BITCOUNT", result) for result in counted if result is not None]
    trips = []
    for number, batch in enumerate(batches):
        # RESP encoded here: redis-py's pipeline packing cost more client time than the BITOPs
        # cost Redis (a funnel on many shards sends thousands of them)
        sent = [
            b"".join((_BITOP[op], encoded(dest), *map(encoded, sources)))
            for op, dest, *sources in batch
        ]
        sent += [wire.encode("EXPIRE", key, RESULT_TTL) for key in {d for _, d, *_ in batch}]
        if number == len(batches) - 1:  # the counts and the cleanup ride on the last round trip
            sent += [*counts, wire.encode("UNLINK", *temporary)]
        trips.append(sent)
    cleaned = False
    try:
        # each running result starts with a BITOP that overwrites it, so a retry from the first
        # round trip gives the same counts
        replies = wire.round_trips(client.redis, trips)[-1]
        cleaned = True
    finally:
        if not cleaned:
            client.redis.unlink(*temporary)
    answers = iter(replies[len(replies) - 1 - len(counts) : -1])
    flat = [0 if result is None else int(next(answers)) for result in counted]
    return [flat[s * steps : (s + 1) * steps] for s in range(len(rows))]
