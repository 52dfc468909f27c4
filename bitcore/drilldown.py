"""Drill-down: the users behind a number of a report (a cohort cell, a funnel step, a drop-off).

Each is a ``Bitmap``, so it counts (``len``), tests (``in``), combines (``&``, ``|``, ``~``) and
iterates like any event; it is computed the first time it is read, under a temporary key with the
usual TTL, and computed again if that key is gone:

* a cohort row's users are the AND of its selections in the row's period, and a cell's users
  that AND with the return selections ``offset`` periods later (``cohort_cell``): exactly the
  sets the cohort engine counts;
* a funnel step's users are ``R_k`` of ``bitcore.funnel``'s recurrence at the end of the window,
  and a drop-off's those of the step before who did not reach it, ``R_{k-1} AND NOT R_k``
  (``funnel_step``). As ``R_k`` is inside ``R_{k-1}`` that is ``R_{k-1} XOR R_k``. Redis runs the
  recurrence with ``BITOP`` in scratch registers, one round trip of two ``BITOP`` per window
  period and step (none where the step's key is empty), so no round trip holds Redis for long.

Members are internal ids; ``external_members`` gives them as external ids (``BitCore
.external_ids``, batched), streamed in bounded slices however many there are. ``check_cost``
refuses a drill-down that would read more than a report's ``max_bytes`` before anything is
computed.

>>> parse_label("week", "2025-W01")
Period(kind='week', year=2025, month=1, day=1, hour=0, week=1)
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from bitcore import first_time, periods, reading
from bitcore.bitmaps import Bitmap
from bitcore.bitops import BitOperation
from bitcore.selections import Selection

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bitcore.client import BitCore
    from bitcore.funnel import StepSource

#: Bytes of a bitmap decoded at a time while listing its users: at most 524,288 ids, ~20 MB as
#: Python ints (the client's 1 MiB default would be up to 8.4 million, ~300 MB, on a dense key).
MEMBER_CHUNK_BYTES = 64 << 10
#: Resolves a selection token in a period to a bitmap, or ``None`` for the default (the cohort
#: engine's ``Resolver``: bitmapist's custom handlers).
Resolver = Callable[[str, periods.Period], "Bitmap | None"]
#: Periods after a cell's own that an on-or-after drill-down may unite (the cohort engine's
#: limit, ``bitcore.cohort.retention``, plus the table's own columns).
MAX_PERIODS_AFTER = 3660 + 104
#: (cohort selection, its optional partner, return selection, its optional partner)
Selections = tuple[str, "str | None", str, "str | None"]

_LABELS: dict[str, re.Pattern[str]] = {
    "hour": re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2})h$"),
    "day": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "week": re.compile(r"^(\d{4})-W(\d{2})$"),
    "month": re.compile(r"^(\d{4})-(\d{2})$"),
    "year": re.compile(r"^(\d{4})$"),
}


def parse_label(kind: periods.Kind, text: str) -> periods.Period:
    """The period ``periods.label`` writes as ``text``, exactly (how drill-down links name one);
    ``ValueError`` for anything else."""
    pattern = _LABELS.get(kind)
    found = pattern.fullmatch(text) if pattern else None
    if found is None:
        raise ValueError(f"{text[:40]!r} is not a {kind} as the reports write it")
    numbers = [int(group) for group in found.groups()]
    if kind == "week":
        return periods.week(*numbers)
    fields = dict(zip(("year", "month", "day", "hour"), numbers, strict=False))
    return periods.Period(kind, **fields)


class AndOf(BitOperation):
    """The AND of ``events``, computed when first read rather than when made (bitmapist's
    ``BitOpAnd`` computes at once): a drill-down is measured against its cost limit first."""

    eager = False

    def __init__(self, *events: Bitmap) -> None:
        super().__init__("AND", *events)


class OrOf(BitOperation):
    """The OR of ``events``, computed when first read (as ``AndOf``)."""

    eager = False

    def __init__(self, *events: Bitmap) -> None:
        super().__init__("OR", *events)


def _first_time_users(client: BitCore, token: str, period: periods.Period) -> Bitmap:
    """Who did the event ``token`` for the first time ever in ``period``, as a first-time
    cohort reads them (a year is the OR of its months)."""
    selection = Selection.parse(token)
    if selection.kind != "event":
        raise ValueError(f"a first-time cohort needs an event, and {token!r} is not one")
    if period.kind != "year":
        return first_time.first_time_bitmap(client, selection.name, period)
    months = periods.months_of_year(period.year)
    return OrOf(*(first_time.first_time_bitmap(client, selection.name, m) for m in months))


def _shifted(period: periods.Period, offset: int) -> periods.Period:
    """``periods.shift``, with a period past year 9999 a ``ValueError`` like any bad period."""
    try:
        return periods.shift(period, offset)
    except OverflowError:
        raise ValueError(
            f"{offset} periods after {periods.label(period)} is past year 9999"
        ) from None


def _selection(
    client: BitCore, token: str, period: periods.Period, resolve: Resolver | None
) -> Bitmap:
    """``token``'s users in ``period``, as the cohort engine reads them (a handler first)."""
    bitmap = resolve(token, period) if resolve else None
    return bitmap if bitmap is not None else Selection.parse(token).bitmap(client, period)


def cohort_cell(
    client: BitCore,
    selections: Selections,
    cohort: periods.Period,
    offset: int | None,
    resolve: Resolver | None = None,
    first_times: bool = False,
    until: periods.Period | None = None,
) -> Bitmap:
    """The users of the cohort of ``cohort`` (``offset`` ``None``: the row's "size"), or of its
    cell ``offset`` periods later: those of the cohort who did the return selections then.
    ``first_times``: the cohort is who did ``select1`` for the first time in ``cohort``.
    ``until`` (retention "on or after"): then or in any later period up to ``until``."""
    select1, select1b, select2, select2b = selections
    if first_times:
        operands = [_first_time_users(client, select1, cohort)]
    else:
        operands = [_selection(client, select1, cohort, resolve)]
    if select1b:
        operands.append(_selection(client, select1b, cohort, resolve))
    if offset is not None:
        if offset < 0:
            raise ValueError(f"a cell is 0 or more periods after its cohort, got {offset}")
        later = _shifted(cohort, offset)
        span = 1 if until is None else max(1, periods.count_between(later, until))
        if span - 1 > MAX_PERIODS_AFTER:
            raise ValueError(
                f"on-or-after retention reads every {later.kind} up to the current one: "
                f"{span:,} of them from {periods.label(later)}, at most {MAX_PERIODS_AFTER + 1:,}"
            )
        returns: list[list[Bitmap]] = []
        for step in range(span):
            period = periods.shift(later, step)
            returns.append([_selection(client, select2, period, resolve)])
            if select2b:
                returns[-1].append(_selection(client, select2b, period, resolve))
        if span == 1:
            operands += returns[0]
        else:
            operands.append(OrOf(*(r[0] if len(r) == 1 else AndOf(*r) for r in returns)))
    return operands[0] if len(operands) == 1 else AndOf(*operands)


class FunnelStepBitmap(Bitmap):
    """The users who reached step ``position`` of a funnel by the end of its window, or with
    ``dropoff`` those who reached step ``position - 1`` but not step ``position``.

    ``rows[k][p]`` is step ``k``'s bitmap in window period ``p`` (only ``rows[0][0]`` of step 1
    counts: step 1 is its start period alone). Derived: computed in bounded round trips when
    read, and again when its key is gone.
    """

    derived = True

    def __init__(
        self, client: BitCore, rows: Sequence[Sequence[Bitmap]], position: int, dropoff: bool
    ) -> None:
        self.client = client
        self.system = client
        self.rows = [list(row) for row in rows[:position]]
        self.position = position
        self.dropoff = dropoff
        shape = [position, dropoff, [[b.redis_key for b in row] for row in self.rows]]
        digest = hashlib.sha1(repr(shape).encode(), usedforsecurity=False).hexdigest()
        self.redis_key = client.keys.funnel_key(digest)
        self._registers: list[str] = []
        client.register_bitop(self)

    def _inputs(self) -> list[Bitmap]:
        """The bitmaps the recurrence reads: step 1 in the start period, later steps in every
        window period."""
        return [self.rows[0][0], *(b for row in self.rows[1:] for b in row)]

    def leaves(self) -> Iterator[Bitmap]:
        for bitmap in self._inputs():
            yield from bitmap.leaves()

    def steps(self, ttl: int) -> list[Callable[[Pipeline], None]]:
        """Compute the derived inputs (segments, in their own bounded steps) and measure every
        input (one round trip); then: registers ``R_1`` .. ``R_k`` from step 1; one round trip
        per window period and step (two ``BITOP``: so even 512 MiB keys hold Redis for a
        moment only), skipped where the step's key is empty; last, the result (``R_k``, or
        ``R_{k-1} XOR R_k``) and the registers deleted."""
        for bitmap in {b.redis_key: b for b in self._inputs() if b.derived}.values():
            self.client.materialize(bitmap)
        keys = [[bitmap.redis_key for bitmap in row] for row in self.rows]
        lengths = dict(zip(*self._lengths(keys[1:]), strict=True))
        run = uuid.uuid4().hex
        registers = [self.client.keys.funnel_register(run, k) for k in range(self.position + 1)]
        self._registers = registers
        both = registers[-1]  # scratch: R_{k-1} AND D_k[p]
        reached = registers[:-1]

        def start(pipe: Pipeline) -> None:
            pipe.bitop("OR", reached[0], keys[0][0])
            pipe.expire(reached[0], ttl)
            pipe.unlink(*reached[1:], both)  # position >= 2: R_2 .. R_k start empty

        def update(k: int, key: str) -> Callable[[Pipeline], None]:
            def run(pipe: Pipeline) -> None:
                pipe.bitop("AND", both, reached[k - 1], key)
                pipe.bitop("OR", reached[k], reached[k], both)
                pipe.expire(reached[k], ttl)
                pipe.expire(both, ttl)

            return run

        def finish(pipe: Pipeline) -> None:
            if self.dropoff:
                pipe.bitop("XOR", self.redis_key, reached[-2], reached[-1])
            else:
                pipe.bitop("OR", self.redis_key, reached[-1])
            pipe.expire(self.redis_key, ttl)
            pipe.unlink(*registers)

        window = len(keys[1])
        updates = [
            update(k, keys[k][p])
            for p in range(window)
            for k in range(1, self.position)
            if lengths[keys[k][p]]
        ]
        return [start, *updates, finish]

    def _lengths(self, rows: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
        """Each distinct key of ``rows`` and its ``STRLEN``, in one round trip."""
        distinct = list(dict.fromkeys(key for row in rows for key in row))
        lengths = self.client.key_lengths(distinct)  # in the shard being computed, if sharded
        return distinct, [lengths[key] for key in distinct]

    def scratch_keys(self) -> list[str]:
        return list(self._registers)

    def build(self, pipe: Pipeline, ttl: int) -> None:
        for step in self.steps(ttl):
            step(pipe)


def funnel_rows(
    client: BitCore,
    sources: Sequence[StepSource],
    start: periods.Period,
    window: int,
) -> list[list[Bitmap]]:
    """Each step's bitmap in each window period (step 1: its start period alone)."""
    window_periods = [_shifted(start, offset) for offset in range(window)]
    first = [sources[0].bitmap(client, start)]
    return [first, *([s.bitmap(client, p) for p in window_periods] for s in sources[1:])]


def funnel_step(
    client: BitCore,
    sources: Sequence[StepSource],
    start: periods.Period,
    window: int,
    position: int,
    dropoff: bool = False,
) -> Bitmap:
    """The users who reached step ``position`` (1-based) of the funnel of ``sources`` from
    ``start`` over ``window`` periods, or (``dropoff``) who reached the step before and not this
    one: ``len`` is that step's ``count`` / ``drop_off`` in ``bitcore.funnel.funnel``."""
    if not 1 <= position <= len(sources):
        raise ValueError(f"the funnel has steps 1 to {len(sources)}, not {position}")
    if dropoff and position == 1:
        raise ValueError("step 1 has no drop-off: everyone in it started the funnel")
    if position == 1:
        return sources[0].bitmap(client, start)
    return FunnelStepBitmap(client, funnel_rows(client, sources, start, window), position, dropoff)


def cost(client: BitCore, bitmap: Bitmap) -> int:
    """Bytes of stored bitmaps computing ``bitmap`` reads (each key once): what a report's
    ``max_bytes`` limits."""
    keys = list(dict.fromkeys(leaf.redis_key for leaf in bitmap.leaves()))
    if client.layout == "flat":
        return sum(reading.measure(client, keys, {}))
    return sum(  # every shard's keys, measured on the shard's node, nodes at once
        client.each_shard(
            lambda view, s: sum(reading.measure(view, [client.shard_key(k, s) for k in keys], {}))
        )
    )


def check_cost(client: BitCore, bitmap: Bitmap, max_bytes: int | None) -> None:
    """``reading.ReportTooCostly`` when computing ``bitmap`` would read more than ``max_bytes``
    (``None``: no limit), before anything is computed."""
    if max_bytes is not None:
        reading.check_cost(cost(client, bitmap), max_bytes)


def external_members(
    client: BitCore, bitmap: Bitmap, chunk_bytes: int = MEMBER_CHUNK_BYTES
) -> Iterator[Any]:
    """``bitmap``'s members as external ids, ascending by internal id: read in slices of
    ``chunk_bytes`` (``BitCore.iter_members``) and translated in batches (``BitCore
    .external_ids``), so memory stays bounded however many there are."""
    return client.external_ids(
        client.iter_members(bitmap, min(chunk_bytes, client.iter_chunk_bytes))
    )


def first_members(client: BitCore, bitmap: Bitmap, limit: int) -> list[Any]:
    """The first ``limit`` external ids of ``bitmap`` (what a page shows)."""
    return list(islice(external_members(client, bitmap), limit))
