"""The cohort table in two Redis round trips instead of bitmapist's thousand-odd.

bitmapist computes a 31 x 13 table with one ``BitOpAnd`` (BITOP + BITCOUNT + TTL) per cell. Here
Python plans the table first: rows are consecutive periods and cell (i, t) is period i + t, so a
table needs only ``rows + columns`` distinct return sets and ``rows`` cohort sets, each an AND of
ORs of stored keys. Then:

1. one EVALSHA returns the length of every key it reads (STRLEN in Lua: one reply, not one per
   key);
2. when they are small enough (1M users = 125 KB per key), one MGET fetches them and numpy
   counts every cell in C (``bitcore.cohort.counting``: blocks of columns that stay in cache, a
   whole band of cells per numpy call, split between threads on big tables), several times
   faster than ~400 server-side BITOP + BITCOUNT pairs (``bench/README.md``).
   Otherwise the same counting runs on byte slices of every key, read one round trip of at most
   ``DEFAULT_MAX_FETCH_BYTES`` at a time (``bitcore.reading``), and the counts add up: Redis is
   never held for more than a short copy (a server-side Lua count held it for seconds).

Either way the keyspace is the same afterwards. Saved segments (steps or compared groups) are
built by the read into keys private to the table, every period's in a few bounded pipelines;
custom handlers' bitmaps are computed when made and renamed to such keys; all unlinked after.

The date arithmetic is bitmapist's, step for step (including its quirks with ``start_date``), so the
rows start on the same datetimes and cover the same periods.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import redis

from bitcore import breakdown, drilldown, periods, reading
from bitcore.bitmaps import Bitmap
from bitcore.cohort import counting, server
from bitcore.cohort import retention as _retention
from bitcore.cohort.retention import Retention
from bitcore.periods import Period
from bitcore.selections import Selection

if TYPE_CHECKING:
    from bitcore.client import BitCore

TimeGroup = Literal["days", "weeks", "months", "years"]
#: How a table is counted: fetched into numpy (``"client"``), by BITOPs on the server
#: (``"server"``: nothing but counts cross the network), or whichever costs less for this table's
#: sizes (``"auto"``, ``bitcore.cohort.server.server_is_cheaper``: the server for few cells over
#: many bytes, numpy for the rest; a Redis too full for BITOP's writes, or a replica, gets read
#: instead).
Where = Literal["auto", "server", "client"]
TIME_GROUPS: tuple[TimeGroup, ...] = ("days", "weeks", "months", "years")
_KIND: dict[str, periods.Kind] = {
    "days": "day",
    "weeks": "week",
    "months": "month",
    "years": "year",
}
#: What a cohort row is: who did the cohort event in period t (bitmapist's, "recurring"), or who
#: did it for the first time ever in t ("first_time": the writer's first-time bitmaps).
CohortType = Literal["recurring", "first_time"]
COHORT_TYPES: tuple[CohortType, ...] = ("recurring", "first_time")
#: bitmapist always shows three years, whatever ``num_results`` says.
YEARS_SHOWN = 3
#: Fetch the bitmaps in one MGET while (widest bitmap x number of bitmaps) stays under this; above
#: it (ids near 2**32 make 512 MiB bitmaps) they are read in byte slices of at most this much per
#: round trip, so Redis is never held long (``bitcore.reading``).
DEFAULT_MAX_FETCH_BYTES = reading.ROUND_TRIP_BYTES

#: Resolves a selection token in a period to a bitmap, or ``None`` to use the default (event /
#: segment).
Resolver = Callable[[str, Period], "Bitmap | None"]


@dataclass
class CohortTable:
    """Raw counts: ``cells[i][t]`` is how many of row ``i``'s cohort are in the return set ``t``
    periods later, or ``None`` where bitmapist shows ``''`` (empty cohort, or nobody at all in the
    return set)."""

    time_group: TimeGroup
    starts: list[datetime]
    sizes: list[int]
    cells: list[list[int | None]]
    num_of_rows: int = 12
    #: What the table was computed from, for ``cohort_users`` / ``cell_users`` (drill-down).
    client: BitCore | None = field(default=None, repr=False, compare=False)
    selections: drilldown.Selections | None = field(default=None, repr=False, compare=False)
    resolve: Resolver | None = field(default=None, repr=False, compare=False)
    cohort_type: CohortType = "recurring"
    #: ``"on_or_after"``: a cell counts who returned then or in any later period up to
    #: ``current`` (``bitcore.cohort.retention``).
    retention: Retention = "on"
    current: Period | None = None
    #: The group (segment or flag token) its cohorts are restricted to (``bitcore.breakdown``).
    group: str | None = None

    def period(self, row: int) -> Period:
        """The period of row ``row``'s cohort (row 0 is the first start's period)."""
        if not 0 <= row < len(self.starts):
            raise IndexError(f"the table has rows 0 to {len(self.starts) - 1}, not {row}")
        return periods.shift(period_for(self.time_group, self.starts[0]), row)

    def cohort_users(self, row: int) -> Bitmap:
        """The users of row ``row``'s cohort: ``len`` is ``sizes[row]``."""
        return self._drill(row, None)

    def cell_users(self, row: int, col: int) -> Bitmap:
        """The users of cell ``(row, col)``: the cohort's users who did the return selections
        ``col`` periods later; ``len`` is ``cells[row][col]`` (0 where that is ``None``).

        >>> list(table.cell_users(0, 1))  # doctest: +SKIP
        [3, 17, 42]
        """
        if not 0 <= col <= self.num_of_rows:
            raise IndexError(f"the table has columns 0 to {self.num_of_rows}, not {col}")
        return self._drill(row, col)

    def _drill(self, row: int, col: int | None) -> Bitmap:
        if self.client is None or self.selections is None:
            raise ValueError("this table was not computed from Redis: it has no users to give")
        if self.group:
            members = Selection.parse(self.group).bitmap(self.client, self.period(row))
            return drilldown.AndOf(self._cell(row, col), members)
        return self._cell(row, col)

    def _cell(self, row: int, col: int | None) -> Bitmap:
        assert self.client is not None and self.selections is not None
        return drilldown.cohort_cell(
            self.client,
            self.selections,
            self.period(row),
            col,
            self.resolve,
            first_times=self.cohort_type == "first_time",
            until=self.current if self.retention == "on_or_after" else None,
        )

    def percent(self, row: int, col: int) -> float | None:
        """bitmapist's percentage, computed with the same float expression so the numbers are
        identical."""
        count = self.cells[row][col]
        if count is None:
            return None
        if count == 0:
            return 0.0
        return (float(count) / float(self.sizes[row])) * 100

    def bitmapist_rows(self, as_percent: bool = True) -> list[list[Any]]:
        """``get_dates_data``'s rows: ``[start, size, cell, ...]`` with ``''``, ``0.0``, a float or
        an int."""
        rows: list[list[Any]] = []
        for i, start in enumerate(self.starts):
            row: list[Any] = [start, self.sizes[i]]
            for t, count in enumerate(self.cells[i]):
                if count is None:
                    row.append("")
                elif count == 0:
                    row.append(0.0)
                elif as_percent:
                    row.append(self.percent(i, t))
                else:
                    row.append(count)
            rows.append(row)
        return rows


# --- pure date math (bitmapist's)


def add_months(moment: datetime, months: int) -> datetime:
    """``moment + relativedelta(months=months)``: the day is clamped to the target month's
    length."""
    year, month0 = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def step(moment: datetime, time_group: TimeGroup, count: int) -> datetime:
    """``moment`` moved ``count`` periods of ``time_group`` (bitmapist's ``timedelta_inc``)."""
    if time_group == "days":
        return moment + timedelta(days=count)
    if time_group == "weeks":
        return moment + timedelta(weeks=count)
    if time_group == "months":
        return add_months(moment, count)
    return add_months(moment, 12 * count)


def period_kind(time_group: str) -> periods.Kind:
    """The period kind of a grouping's rows and columns: ``"weeks"`` -> ``"week"``."""
    return _KIND[check_time_group(time_group)]


def check_cohort_type(cohort_type: str) -> CohortType:
    if cohort_type not in COHORT_TYPES:
        raise ValueError(f"cohort_type must be one of {COHORT_TYPES}, got {cohort_type!r}")
    return cohort_type  # type: ignore[return-value]


def check_time_group(time_group: str) -> TimeGroup:
    if time_group not in TIME_GROUPS:
        raise ValueError(f"time_group must be one of {TIME_GROUPS}, got {time_group!r}")
    return time_group  # type: ignore[return-value]


def row_starts(
    time_group: TimeGroup,
    num_results: int,
    start_date: str | None = None,
    now: datetime | None = None,
) -> list[datetime]:
    """The datetime each row starts on, as bitmapist computes it.

    With ``start_date`` bitmapist first moves ``num_results - 1`` *days* ahead and then
    ``num_results - 1`` periods back, so for days the first row is ``start_date``; for the other
    groups it is earlier. Kept as is so both libraries show the same table for the same URL.

    >>> [d.day for d in row_starts("days", 3, "2024-05-07")]
    [7, 8, 9]
    """
    check_time_group(time_group)
    if num_results < 0:
        raise ValueError(f"num_results must be >= 0, got {num_results}")
    if start_date:
        moment = datetime.strptime(start_date, "%Y-%m-%d").replace(tzinfo=UTC)
        moment += timedelta(days=num_results - 1)
    else:
        moment = now if now is not None else datetime.now(tz=UTC)
    if time_group == "years":
        back = YEARS_SHOWN - 1
        num_results = YEARS_SHOWN
    else:
        back = num_results - 1
    moment = step(moment, time_group, -back)
    if time_group == "months":
        moment -= timedelta(days=moment.day - 1)
    starts = []
    for _ in range(num_results):
        starts.append(moment)
        moment = step(moment, time_group, 1)
    return starts


def is_segment(token: str) -> bool:
    """Whether ``token`` names a saved segment (``segment:<name>``)."""
    return Selection.parse(token).kind == "segment"


def period_for(time_group: TimeGroup, moment: datetime) -> Period:
    """The period a row date stands for; weeks are ISO weeks of the ISO week-year."""
    return periods.period_of(_KIND[time_group], moment)


# --- planning: which keys make each set

#: A set of users = the AND of its operands; an operand = the OR of its keys (a year is OR of 12
#: months).
Operands = tuple[tuple[str, ...], ...]


@dataclass
class Plan:
    """The distinct sets a table needs, the cells (pairs of set numbers) to count, and the derived
    bitmaps (segments, custom handlers) that must be built before reading."""

    sets: list[Operands] = field(default_factory=list)
    set_index: dict[Operands, int] = field(default_factory=dict)
    pairs: list[tuple[int, int]] = field(default_factory=list)
    derived: dict[str, Bitmap] = field(default_factory=dict)
    #: On-or-after tables: the return sets in period order up to the current period; set
    #: ``len(sets) + j`` is the union of ``suffix[j:]`` (``bitcore.cohort.retention``).
    suffix: list[int] = field(default_factory=list)

    def add_set(self, operands: Operands) -> int:
        """0-based number of the set, shared by every row or column that needs the same one."""
        if operands not in self.set_index:
            self.set_index[operands] = len(self.sets)
            self.sets.append(operands)
        return self.set_index[operands]

    def source_keys(self) -> list[str]:
        """Every key read, once, in first-use order."""
        return list(dict.fromkeys(k for operands in self.sets for keys in operands for k in keys))


def _operand(
    client: BitCore,
    plan: Plan,
    token: str,
    period: Period,
    resolve: Resolver | None,
    first_time: bool = False,
) -> tuple[str, ...]:
    """The keys whose OR is ``token``'s users in ``period`` (its first-time users, when
    ``first_time``: only an event has them)."""
    bitmap = resolve(token, period) if resolve else None
    if bitmap is None:
        selection = Selection.parse(token)
        if selection.kind == "event":
            key_of = client.keys.first_time_key if first_time else client.keys.event_key
            if (
                period.kind == "year"
            ):  # the OR of its months, done by the engine: no key is made for it
                months = periods.months_of_year(period.year)
                return tuple(key_of(selection.name, m) for m in months)
            return (key_of(selection.name, period),)
    if first_time:
        raise ValueError(f"a first-time cohort needs an event, and {token!r} is not one")
    if bitmap is None:  # a segment is built by the table's read, with every other one
        bitmap = selection.bitmap(client, period, compute=False)
    if bitmap.derived:
        plan.derived[bitmap.redis_key] = bitmap
    return (bitmap.redis_key,)


def plan_table(
    client: BitCore,
    first: Period,
    count: int,
    num_of_rows: int,
    selections: tuple[str, str | None, str, str | None],
    resolve: Resolver | None = None,
    cohort_type: CohortType = "recurring",
    retention: Retention = "on",
    current: Period | None = None,
    groups: Sequence[str | None] = (None,),
) -> Plan:
    """Rows are ``count`` consecutive periods from ``first``; row ``i`` column ``t`` is period ``i +
    t``, so a table needs only ``count + num_of_rows`` return sets, each planned once. A
    ``first_time`` table swaps the cohort event's keys for its first-time keys, nothing else. An
    ``on_or_after`` table pairs each cohort with unions of return sets up to ``current`` instead
    (``bitcore.cohort.retention``). ``groups``: the rows once per group, each cohort ANDed with
    the group's selection (``None``: nobody left out), its pairs after the previous group's."""
    select1, select1b, select2, select2b = selections
    plan = Plan()
    all_periods = [periods.shift(first, k) for k in range(count + num_of_rows)]

    def selection_set(
        token: str, extra: str | None, period: Period, first: bool = False, group: str | None = None
    ) -> int:
        operands = [_operand(client, plan, token, period, resolve, first)]
        for also in (extra, group):
            if also:
                operands.append(_operand(client, plan, also, period, resolve))
        return plan.add_set(tuple(operands))

    first_time = check_cohort_type(cohort_type) == "first_time"
    cohorts = [
        [selection_set(select1, select1b, p, first_time, g) for p in all_periods[:count]]
        for g in groups
    ]
    returns = [selection_set(select2, select2b, p) for p in all_periods]
    if retention == "on_or_after" and current is not None:
        reach = _retention.reach(first, len(all_periods), current)
        tail = [periods.shift(first, k) for k in range(len(all_periods), reach)]
        plan.suffix = returns[:reach] + [selection_set(select2, select2b, p) for p in tail]
        base = len(plan.sets)
        returns = [base + m if m < reach else s for m, s in enumerate(returns)]
    plan.pairs = [
        (rows[i], returns[i + t])
        for rows in cohorts
        for i in range(count)
        for t in range(num_of_rows + 1)
    ]
    return plan


# --- evaluation


def cohort_table(
    client: BitCore,
    select1: str,
    select2: str,
    select1b: str | None = None,
    select2b: str | None = None,
    time_group: str = "days",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
    resolve: Resolver | None = None,
    now: datetime | None = None,
    max_fetch_bytes: int = DEFAULT_MAX_FETCH_BYTES,
    max_bytes: int | None = None,
    where: Where = "auto",
    cohort_type: str = "recurring",
    retention: str = "on",
    until: datetime | None = None,
) -> CohortTable:
    """Compute a cohort table (``cohort_tables`` without groups)."""
    return cohort_tables(
        client, select1, select2, select1b, select2b, time_group, num_results, num_of_rows,
        start_date, resolve, now, max_fetch_bytes, max_bytes, where, cohort_type, retention,
        until,
    )[0]  # fmt: skip


def cohort_tables(
    client: BitCore,
    select1: str,
    select2: str,
    select1b: str | None = None,
    select2b: str | None = None,
    time_group: str = "days",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
    resolve: Resolver | None = None,
    now: datetime | None = None,
    max_fetch_bytes: int = DEFAULT_MAX_FETCH_BYTES,
    max_bytes: int | None = None,
    where: Where = "auto",
    cohort_type: str = "recurring",
    retention: str = "on",
    until: datetime | None = None,
    groups: Sequence[str] = (),
) -> list[CohortTable]:
    """Compute a cohort table: rows of cohorts (``select1`` AND ``select1b``), columns of later
    periods. ``cohort_type="first_time"``: row t is who did ``select1`` (an event) for the first
    time ever in period t (``bitcore.first_time``), AND ``select1b`` then.

    Tokens are selections (``"active"``, ``"event:song:played"``, ``"segment:ios"``); ``resolve``
    may answer a token first (bitmapist's custom handlers). Two round trips for bitmaps that fit
    in ``max_fetch_bytes``: their lengths, then their bytes, counted with numpy; bigger ones are
    read in byte slices of at most ``max_fetch_bytes`` per round trip (``0``: the narrowest
    slices). More than ``max_bytes`` to read in all (``None``: no limit) raises
    ``bitcore.reading.ReportTooCostly`` before anything is fetched. ``where="server"`` counts by
    BITOP + BITCOUNT on Redis instead, in bounded round trips (``bitcore.cohort.server``), and
    the default ``"auto"`` does so when that costs less than sending the keys (few cells over
    many bytes); the numbers are the same. ``retention="on_or_after"``: a cell counts who did
    the return selections in its period or any later one up to ``until``'s (default: now).
    ``groups`` (segment or flag tokens, ``bitcore.breakdown``): the table of everyone first,
    then one per group, its cohorts restricted to the group, all counted in the same reads.
    """
    group = check_time_group(time_group)
    kind = check_cohort_type(cohort_type)
    mode = _retention.check_retention(retention)
    current = period_for(group, until or client.now()) if mode == "on_or_after" else None
    if num_of_rows < 0:
        raise ValueError(f"num_of_rows must be >= 0, got {num_of_rows}")
    width = num_of_rows + 1
    selections = (select1, select1b, select2, select2b)
    try:
        starts = row_starts(group, num_results, start_date, now or client.now())
        tokens: list[str | None] = [None, *groups]
        if not starts:
            return [
                CohortTable(
                    group, [], [], [], num_of_rows, client, selections, resolve, kind, mode,
                    current, by,
                )
                for by in tokens
            ]  # fmt: skip
        first = period_for(group, starts[0])
        steps = selections[1:] if kind == "first_time" else selections  # its cohort: an event
        segments = [t for t in dict.fromkeys(steps) if t and is_segment(t)]

        def plan_in(reader: BitCore) -> Plan:
            """The table's plan in ``reader`` (the client, or a shard's view): each segment's
            bitmaps (groups', steps') made up front, its definition read once, built by the
            read."""
            answer = resolve
            if groups:
                cohorts = [periods.shift(first, k) for k in range(len(starts))]
                answer = breakdown.prefetched(reader, groups, cohorts, answer)
            if segments and resolve is None and reader.layout == "flat":
                span = [periods.shift(first, k) for k in range(len(starts) + num_of_rows)]
                answer = breakdown.prefetched(reader, segments, span, answer)
            return plan_table(
                reader, first, len(starts), num_of_rows, selections, answer, kind, mode, current,
                tokens,
            )  # fmt: skip

        plan = plan_in(client)
    except OverflowError:  # timedelta arithmetic past year 1 or 9999
        raise ValueError("the table would reach before year 1 or after year 9999") from None
    if plan.derived and client.layout != "flat" and resolve is None:
        # segments (steps or groups): each shard's view plans and builds its own in its slot,
        # the counts added up
        def plan_of(view: BitCore, shard: int) -> AbstractContextManager[Plan]:
            return contextlib.nullcontext(plan_in(view))

        set_counts, cell_counts = _sharded(client, plan, plan_of, max_fetch_bytes, max_bytes, where)
    else:
        set_counts, cell_counts = evaluate(client, plan, max_fetch_bytes, max_bytes, where)
    tables, rows = [], len(starts)
    for g, by in enumerate(tokens):
        at = g * rows * width
        sizes = [set_counts[a] for a, _ in plan.pairs[at : at + rows * width : width]]
        cells = [cell_counts[at + i * width : at + (i + 1) * width] for i in range(rows)]
        tables.append(
            CohortTable(
                group,
                starts,
                sizes,
                cells,
                num_of_rows,
                client,
                selections,
                resolve,
                kind,
                mode,
                current,
                by,
            )  # fmt: skip
        )
    return tables


def warm_counting() -> None:
    """Import numba and compile (or load from its disk cache) the counting loop now, on two
    tiny tables (sets that are keys, sets built of several), so the first real report does not
    pay for it: about one to three seconds. ``wsgi.py`` calls it, so gunicorn's master pays
    once before its workers fork."""
    words = np.full((3, 2), 0x5555, dtype=np.uint64)
    plan = Plan()
    plan.pairs = [(plan.add_set((("a",),)), plan.add_set((("b",),)))]
    counting.count_words(plan, ["a", "b"], words[:2], [16, 16])
    built = Plan()
    built.pairs = [(built.add_set((("a", "b"),)), built.add_set((("b",), ("c",))))]
    counting.count_words(built, ["a", "b", "c"], words, [16, 16, 16])


def evaluate(
    client: BitCore,
    plan: Plan,
    max_fetch_bytes: int = DEFAULT_MAX_FETCH_BYTES,
    max_bytes: int | None = None,
    where: Where = "auto",
) -> tuple[list[int], list[int | None]]:
    """Set sizes, and per pair the size of the intersection (``None`` when either set is empty).
    Of a set that is only ever a pair's second (a return set) counted in numpy, the "size" only
    says whether it has users (0: none).

    With ``where="server"`` (or ``"auto"`` when ``server.server_is_cheaper``), BITOP + BITCOUNT
    on Redis, one EVALSHA per bounded step that also measures the keys (a small table: one round
    trip). Otherwise the lengths of the keys first (one EVALSHA; over ``max_bytes`` is
    ``ReportTooCostly``), then their bytes, received straight into one numpy array
    (``bitcore.transfer``): one MGET when they fit in ``max_fetch_bytes``, else byte slices of at
    most that much per round trip, the next one asked for while this one is counted
    (``bitcore.reading.read_words``). A plan with ``suffix`` unions gets them after its sets
    (``bitcore.cohort.retention``), built block by block as it is counted, or as keys.
    """
    if client.layout == "flat":
        sizes, overlaps = _raw_counts(client, plan, max_fetch_bytes, max_bytes, where)
        return counting.with_empty_cells(plan, sizes, overlaps)

    def renamed(view: BitCore, shard: int) -> AbstractContextManager[Plan]:
        if plan.derived:  # custom handlers' results, computed in every shard when made
            return _taken(client, plan, view, shard)
        return contextlib.nullcontext(_renamed(plan, functools.partial(_shard_name, client, shard)))

    return _sharded(client, plan, renamed, max_fetch_bytes, max_bytes, where)


@contextlib.contextmanager
def _taken(client: BitCore, plan: Plan, view: BitCore, shard: int) -> Iterator[Plan]:
    """``plan`` in ``shard``'s keys, each derived bitmap's shard result (a custom handler's,
    computed in every shard when it was made) renamed to a key of the view private to this
    read (``reading.take_private``), so no concurrent report or cleanup can empty it under us;
    those keys, and the shard's shares of the results, are unlinked when the block ends, however
    it ends."""
    run = uuid.uuid4().hex
    private = {key: view.keys.report_key(run, n) for n, key in enumerate(plan.derived)}
    leaves = {
        key: [_shard_name(client, shard, leaf.redis_key) for leaf in bitmap.leaves()]
        for key, bitmap in plan.derived.items()
    }
    asked = list(dict.fromkeys(name for names in leaves.values() for name in names))
    length = dict(zip(asked, reading.measure(view, asked, {}), strict=True))  # one round trip
    try:
        for key, bitmap in plan.derived.items():
            expected = max((length[name] for name in leaves[key]), default=0)
            share = _shard_name(client, shard, key)
            reading.take_private(
                client, bitmap, private[key], expected, where=view.redis, name=share
            )
        yield _renamed(plan, lambda key: private.get(key) or _shard_name(client, shard, key))
    finally:  # as on the flat layout, the shared results (and those under them) go too
        shared = chain.from_iterable(reading.derived_keys(b) for b in plan.derived.values())
        view.redis.unlink(*private.values(), *{_shard_name(client, shard, k) for k in shared})


def _sharded(
    client: BitCore,
    plan: Plan,
    plan_of: Callable[[BitCore, int], AbstractContextManager[Plan]],
    max_fetch_bytes: int,
    max_bytes: int | None,
    where: Where,
) -> tuple[list[int], list[int | None]]:
    """``evaluate`` on the sharded layout: each shard's view counts ``plan_of(view, shard)`` (the
    same sets and pairs in the shard's keys), shards of different nodes at once
    (``reading.across_shards``: ``max_bytes`` checked against all shards' bytes before any is
    read), and a user is in one shard, so each count is the sum of the shards'; empty cells are
    decided from the sums. Each shard's plan is held open (its private keys) until every shard
    is counted."""
    lock = threading.Lock()

    def prepare(view: BitCore, shard: int) -> Plan:
        opened = plan_of(view, shard)
        part = opened.__enter__()
        with lock:
            stack.push(opened.__exit__)
        return part

    in_use = client.shards_in_use()
    alone = len(in_use) <= 1  # else shards are counted on lanes at once

    def count(view: BitCore, part: Plan, measured: reading.Measured | None) -> Any:
        return _raw_counts(view, part, max_fetch_bytes, None, where, measured, threads=alone)

    with ExitStack() as stack:
        parts = reading.across_shards(
            client,
            prepare,
            lambda part: (part.source_keys(), part.derived),
            count,
            max_bytes,
            in_use,
        )
    sizes = [sum(column) for column in zip(*(p[0] for p in parts), strict=True)] if parts else []
    overlaps = [sum(column) for column in zip(*(p[1] for p in parts), strict=True)]
    return counting.with_empty_cells(
        plan, sizes or [0] * len(plan.sets), overlaps or [0] * len(plan.pairs)
    )


def _shard_name(client: BitCore, shard: int, key: str) -> str:
    return client.shard_key(key, shard)


def _renamed(plan: Plan, named: Callable[[str], str]) -> Plan:
    """``plan`` with every key renamed by ``named`` (a shard's name of it), derived none."""
    renamed = Plan(pairs=plan.pairs, suffix=list(plan.suffix))  # sets keep their numbers
    for operands in plan.sets:
        renamed.add_set(tuple(tuple(named(k) for k in keys) for keys in operands))
    return renamed


def _raw_counts(
    client: BitCore,
    plan: Plan,
    max_fetch_bytes: int,
    max_bytes: int | None,
    where: Where,
    measured: reading.Measured | None = None,
    threads: bool = True,
) -> tuple[list[int], list[int]]:
    """Set sizes and pair intersections, ``None`` nowhere (``evaluate`` puts them in).
    ``threads=False``: a big count stays on this thread (shards counted at once already use
    the cores; handing halves to the one shared counting thread made them queue there).
    ``measured``: the plan's keys measured already (and the cost checked: a sharded report)."""
    sources = plan.source_keys()
    if where == "server" or (where == "auto" and server.server_is_cheaper(plan)):
        try:
            if not plan.derived:  # one EVALSHA measures, refuses or counts
                set_sizes, pair_counts = server.count(client, plan, sources, max_bytes)
            else:
                with reading.opened(client, sources, plan.derived, max_bytes, measured) as read:
                    set_sizes, pair_counts = server.count(client, plan, read.keys)
            return list(set_sizes), list(pair_counts)
        except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError):
            if where == "server":
                raise  # asked for: a full Redis (or a replica) says so; "auto" reads instead
    overlaps = np.zeros(len(plan.pairs), dtype=np.int64)
    with reading.opened(client, sources, plan.derived, max_bytes, measured) as read:
        # A table shows its cohorts' sizes; of a return set it needs only whether it has users.
        sized = [False] * (len(plan.sets) + len(plan.suffix))
        for a, _b in plan.pairs:
            sized[a] = True
        sizes = np.zeros(len(sized), dtype=np.int64)
        for part in reading.read_words(client.redis, read, max_fetch_bytes):
            set_counts, cell_counts = counting.count_words(
                plan, sources, part.words, part.lengths, threads, sized
            )
            sizes += set_counts
            overlaps += cell_counts
    return sizes.tolist(), overlaps.tolist()
