"""Funnels: of the users who did step 1 in a start period, how many then did step 2, step 3, ...

Definitions (what the dashboard and docs/reports.md promise):

- A funnel has 2..10 steps (events or saved segments, as selection tokens), a period kind (hour,
  day, week, month), a start period ``S`` and a conversion window of ``N`` periods (1..90). The
  window is the periods ``S, S+1, ..., S+N-1``, both ends included: ``S+N-1`` counts, ``S+N`` not.
- Step 1 is the users who did step 1 in ``S`` (only ``S``: later periods do not add to it).
- A user reaches step ``k`` in the earliest window period ``p`` in which they did step ``k`` and
  had already reached step ``k-1`` in ``p`` or earlier. Steps are ordered by period, not by
  timestamp: a bitmap only knows *that* a user did something in a period, so step 2 and step 3
  done in the same period count even if step 3 came first.

With bitmaps this is one recurrence per window period ``p`` (``R_k`` = users who reached step
``k`` by ``p``, ``D_k[p]`` = users who did step ``k`` in ``p``)::

    R_1      = D_1[S]
    R_k[p]   = R_k[p-1]  OR  (R_{k-1}[p]  AND  D_k[p])          k = 2..K, p = S..S+N-1

Walking the periods in order, and the steps in order inside each period, each ``R_k`` is one
array updated in place. The recurrence is independent per byte position, so the bitmaps are read
in byte-range slices (``bitcore.reading``: at most 16 MiB per round trip, so Redis is never held
for long) and numpy runs it on each slice; the counts add up. Saved-segment steps are computed
when evaluated (in bounded steps), renamed to keys private to the report and unlinked when it is
done.

>>> from bitcore import periods
>>> window_periods(periods.week(2025, 1), 3)[-1]
Period(kind='week', year=2025, month=1, day=1, hour=0, week=3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import redis

from bitcore import breakdown, compiled, drilldown, funnel_server, periods, reading
from bitcore.selections import Selection

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.client import BitCore

#: How a funnel is counted: the cheaper way, on the server, or in numpy.
Where = Literal["auto", "server", "client"]
MIN_STEPS = 2
MAX_STEPS = 10
MIN_WINDOW = 1
MAX_WINDOW = 90
MAX_TREND = 52
#: Funnels are over the periods that have keys of their own (a year is the OR of its months).
FUNNEL_KINDS: tuple[periods.Kind, ...] = ("hour", "day", "week", "month")


class FunnelError(ValueError):
    """A funnel that cannot be computed as asked (too few steps, window out of range, ...)."""


class StepSource(Protocol):
    """Anything that names a set of users per period: a ``Selection`` (event or saved segment)."""

    @property
    def token(self) -> str: ...

    @property
    def label(self) -> str: ...

    def bitmap(self, client: BitCore, period: periods.Period) -> Bitmap: ...


@dataclass(frozen=True)
class FunnelStep:
    """One row of a funnel: how many users reached this step, against step 1 and the step before.

    Rates are fractions in 0..1, ``None`` when the base is empty (0 of 0 is no rate, not 0 %).
    """

    position: int
    token: str
    label: str
    count: int
    of_first: float | None
    of_previous: float | None
    drop_off: int


@dataclass(frozen=True)
class Funnel:
    """A computed funnel: its steps and its window, ``start`` .. ``end`` both included.

    ``step_users(k)`` / ``dropoff_users(k)`` are the users behind step ``k``'s ``count`` and
    ``drop_off`` (``bitcore.drilldown``), for a funnel made by ``funnel`` / ``funnel_trend``.
    """

    kind: periods.Kind
    start: periods.Period
    window: int
    end: periods.Period
    steps: tuple[FunnelStep, ...]
    client: BitCore | None = field(default=None, repr=False, compare=False)
    sources: tuple[StepSource, ...] = field(default=(), repr=False, compare=False)

    def step_users(self, position: int) -> Bitmap:
        """The users who reached step ``position`` (1-based): ``len`` is its ``count``.

        >>> f.step_users(2) & b.MonthEvents("ios", 2025, 1)  # doctest: +SKIP
        """
        return drilldown.funnel_step(
            self._client(), self.sources, self.start, self.window, position
        )

    def dropoff_users(self, position: int) -> Bitmap:
        """The users of step ``position - 1`` who did not reach step ``position`` (2 or more):
        ``len`` is step ``position``'s ``drop_off``."""
        return drilldown.funnel_step(
            self._client(), self.sources, self.start, self.window, position, dropoff=True
        )

    def _client(self) -> BitCore:
        if self.client is None:
            raise FunnelError("this funnel was not computed from Redis: it has no users to give")
        return self.client

    @property
    def conversion(self) -> float | None:
        """Last step over first step."""
        return self.steps[-1].of_first

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": periods.label(self.start),
            "end": periods.label(self.end),
            "window": self.window,
            "conversion": self.conversion,
            "steps": [step.__dict__.copy() for step in self.steps],
        }


@dataclass(frozen=True)
class FunnelTrend:
    """The same funnel for consecutive start periods, oldest first: a trend reads left to right."""

    funnels: tuple[Funnel, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"funnels": [f.as_dict() for f in self.funnels]}


def window_periods(start: periods.Period, window: int) -> list[periods.Period]:
    """The ``window`` periods from ``start`` on, ``start`` first and ``start + window - 1`` last."""
    return [periods.shift(start, offset) for offset in range(window)]


def check_funnel(steps: Sequence[object], kind: str, window: int, trend: int = 1) -> None:
    """Raise ``FunnelError`` naming the first thing wrong with these funnel parameters."""
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise FunnelError(f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, got {len(steps)}")
    if kind not in FUNNEL_KINDS:
        raise FunnelError(f"period kind must be one of {', '.join(FUNNEL_KINDS)}, got {kind!r}")
    if isinstance(window, bool) or not isinstance(window, int):
        raise FunnelError(f"window must be a whole number of periods, got {window!r}")
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise FunnelError(f"window must be {MIN_WINDOW} to {MAX_WINDOW} periods, got {window}")
    if not 1 <= trend <= MAX_TREND:
        raise FunnelError(f"trend must cover 1 to {MAX_TREND} start periods, got {trend}")


def _sources(steps: Sequence[str | StepSource]) -> list[StepSource]:
    return [Selection.parse(step) if isinstance(step, str) else step for step in steps]


def funnel(
    client: BitCore,
    steps: Sequence[str | StepSource],
    start: periods.Period,
    window: int,
    max_bytes: int | None = None,
    where: Where = "auto",
) -> Funnel:
    """The funnel of ``steps`` starting in ``start`` with a ``window``-period conversion window.

    ``steps`` are selection tokens (``"signup"``, ``"event:signup"``, ``"segment:ios"``) or
    ``Selection`` objects. Counted by BITOPs on the server in bounded round trips where that is
    cheaper (``bitcore.funnel_server``), else read in bounded slices and counted in numpy (see
    ``bitcore.reading``); ``where`` forces one (``"server"``, ``"client"``). More than
    ``max_bytes`` to read (``None``: no limit) raises ``ReportTooCostly`` before anything is
    computed. No key is left behind.

    >>> f = funnel(b, ["signup", "project", "invite"], periods.week(2025, 1), 2)  # doctest: +SKIP
    >>> [s.count for s in f.steps]  # doctest: +SKIP
    [120, 80, 12]
    """
    trend = funnel_trend(client, steps, start, window, 1, max_bytes, where=where)
    return trend.funnels[0]


def funnel_trend(
    client: BitCore,
    steps: Sequence[str | StepSource],
    last_start: periods.Period,
    window: int,
    count: int,
    max_bytes: int | None = None,
    round_trip_bytes: int = reading.ROUND_TRIP_BYTES,
    where: Where = "auto",
) -> FunnelTrend:
    """The funnel for each of the ``count`` start periods ending with ``last_start``, oldest first.

    All of them are counted in one read of the bitmaps they need (each key read once), at most
    ``round_trip_bytes`` per round trip, and refused over ``max_bytes`` like ``funnel``. ``where``
    picks how: ``"auto"`` (the cheaper, from the plan's sizes), ``"server"`` (BITOPs on Redis in
    bounded round trips) or ``"client"`` (read and counted in numpy); the counts are the same.
    """
    check_funnel(steps, last_start.kind, window, count)
    sources = _sources(steps)
    starts = [periods.shift(last_start, offset) for offset in range(1 - count, 1)]
    runs: list[Run] = [(None, start) for start in starts]
    counts = _summed(client, sources, runs, window, max_bytes, round_trip_bytes, where)
    return FunnelTrend(
        tuple(
            _funnel_of(sources, start, window, row, client)
            for start, row in zip(starts, counts, strict=True)
        )
    )


def funnel_groups(
    client: BitCore,
    steps: Sequence[str | StepSource],
    start: periods.Period,
    window: int,
    groups: Sequence[StepSource],
    max_bytes: int | None = None,
    round_trip_bytes: int = reading.ROUND_TRIP_BYTES,
    trend: int = 1,
) -> tuple[FunnelTrend, list[Funnel]]:
    """Everyone's funnel trend (``trend`` starts ending with ``start``, as ``funnel_trend``),
    and the funnel of ``start`` for each of ``groups`` (``bitcore.breakdown.Group``: a segment,
    or a flag): step 1 restricted to the group's users in ``start``, so every later step is too.
    One read of every key for all of them, counted in numpy.

    >>> ios = breakdown.parse_group("segment:ios")  # doctest: +SKIP
    >>> everyone, (only_ios,) = funnel_groups(b, ["signup", "buy"], day, 7, [ios])  # doctest: +SKIP
    >>> everyone.funnels[-1].steps[-1].count, only_ios.steps[-1].count  # doctest: +SKIP
    (120, 45)
    """
    check_funnel(steps, start.kind, window, trend)
    sources = _sources(steps)
    starts = [periods.shift(start, offset) for offset in range(1 - trend, 1)]
    runs: list[Run] = [(None, s) for s in starts] + [(g, start) for g in groups]
    counts = _summed(client, sources, runs, window, max_bytes, round_trip_bytes, "client")
    everyone = FunnelTrend(
        tuple(
            _funnel_of(sources, s, window, row, client)
            for s, row in zip(starts, counts[: len(starts)], strict=True)
        )
    )
    compared = [
        _funnel_of([RestrictedStep(sources[0], g), *sources[1:]], start, window, row, client)
        for g, row in zip(groups, counts[len(starts) :], strict=True)
    ]
    return everyone, compared


@dataclass(frozen=True)
class RestrictedStep:
    """Step 1 of a group's funnel: the step's users who are in the group, in each period (what
    the group's drill-down reads; counting ANDs the two in numpy)."""

    step: StepSource
    group: StepSource

    @property
    def token(self) -> str:
        return self.step.token

    @property
    def label(self) -> str:
        return self.step.label

    def bitmap(self, client: BitCore, period: periods.Period) -> Bitmap:
        return drilldown.AndOf(self.step.bitmap(client, period), self.group.bitmap(client, period))


def _funnel_of(
    sources: Sequence[StepSource],
    start: periods.Period,
    window: int,
    counts: Sequence[int],
    client: BitCore | None = None,
) -> Funnel:
    steps = []
    for index, (source, count) in enumerate(zip(sources, counts, strict=True)):
        previous = counts[index - 1] if index else count
        steps.append(
            FunnelStep(
                position=index + 1,
                token=source.token,
                label=source.label,
                count=count,
                of_first=count / counts[0] if counts[0] else None,
                of_previous=count / previous if previous else None,
                drop_off=previous - count,
            )
        )
    end = periods.shift(start, window - 1)
    return Funnel(start.kind, start, window, end, tuple(steps), client, tuple(sources))


@dataclass(frozen=True)
class _Plan:
    """Which key (a row of a slice) each step reads in each period, for every start period."""

    keys: list[str]
    derived: dict[str, Bitmap]
    #: per start: the row of step 1 in the start period, then per window period the rows of
    #: steps 2..K
    rows: list[tuple[int, list[list[int]]]]
    #: per start: the row of the group step 1 is restricted to (``bitcore.breakdown``), if any
    restrict: list[int | None] = field(default_factory=list)


#: A funnel to count: the group its step 1 is restricted to (``None``: everyone), its start.
Run = tuple["StepSource | None", periods.Period]


def _plan(
    client: BitCore, sources: Sequence[StepSource], runs: Sequence[Run], window: int
) -> _Plan:
    """Each (step, period) bitmap once, numbered in first-use order, for each run: its start,
    step 1 restricted to the run's group's users in the start period. Runs share their window
    periods (a trend's overlap, every group's window): each source's bitmap in a period is made
    once, which on the sharded layout each shard's plan would otherwise pay again."""
    keys: dict[str, int] = {}
    derived: dict[str, Bitmap] = {}
    made: dict[tuple[int, periods.Period], int] = {}

    def row(source: StepSource, period: periods.Period) -> int:
        known = made.get((id(source), period))
        if known is not None:
            return known
        stored = source.stored_key(client, period) if isinstance(source, Selection) else None
        if stored is None:
            bitmap = source.bitmap(client, period)
            if bitmap.derived:
                derived[bitmap.redis_key] = bitmap
            stored = bitmap.redis_key
        found = made[(id(source), period)] = keys.setdefault(stored, len(keys))
        return found

    rows = [
        (
            row(sources[0], start),
            [[row(s, p) for s in sources[1:]] for p in window_periods(start, window)],
        )
        for _, start in runs
    ]
    restrict = [None if g is None else row(g, start) for g, start in runs]
    return _Plan(list(keys), derived, rows, restrict)


def _count_slice(plan: _Plan, steps: int, words: np.ndarray, present: Sequence[int]) -> np.ndarray:
    """Step counts per start period (starts x steps) over one slice of every key (``words``, rows
    of uint64; ``present[k]``: whether key ``k`` has bytes in it): compiled where numba is
    (``bitcore.compiled``: every start's steps block by block in cache, where numpy's calls over
    small rows, a shard's, cost more than their work), else in numpy."""
    counts = np.zeros((len(plan.rows), steps), dtype=np.int64)
    counter = _compiled_counter()
    if counter is not None and plan.rows:
        firsts = np.array([first for first, _ in plan.rows], dtype=np.int64)
        rows = np.array(
            [[[r if present[r] else -1 for r in later] for later in per] for _, per in plan.rows],
            dtype=np.int64,
        ).reshape(len(plan.rows), len(plan.rows[0][1]), steps - 1)
        groups = np.array(
            [-1 if g is None else g for g in plan.restrict] or [-1] * len(plan.rows),
            dtype=np.int64,
        )
        pairs = zip(firsts, groups, strict=True)
        skip = np.array([not present[f] or (g >= 0 and not present[g]) for f, g in pairs])
        counter(words, firsts, groups, skip, rows, BLOCK_WORDS, counts)
        return counts
    reached = np.empty((steps, words.shape[1]), dtype=np.uint64)
    both = np.empty(words.shape[1], dtype=np.uint64)
    for s, (first, per_period) in enumerate(plan.rows):
        group = plan.restrict[s] if plan.restrict else None
        if not present[first] or (group is not None and not present[group]):
            continue  # nobody did step 1 in this slice: every step is 0
        reached[0] = words[first]
        if group is not None:
            reached[0] &= words[group]
        reached[1:] = 0
        for step_rows in per_period:
            for k, r in enumerate(step_rows, start=1):
                if present[r]:  # an absent key adds nobody
                    np.bitwise_and(reached[k - 1], words[r], out=both)
                    np.bitwise_or(reached[k], both, out=reached[k])
        counts[s] = reading.popcounts(reached)
    return counts


def warm() -> None:
    """Compile (or load from numba's disk cache) the step count now, on a tiny slice, so the
    first funnel read into numpy does not pay for it (``wsgi.py`` calls it before gunicorn
    forks)."""
    plan = _Plan(["a", "b", "c"], {}, [(0, [[1]])], [2])
    _count_slice(plan, 2, np.full((3, 2), 0x5555, dtype=np.uint64), [1, 1, 1])


#: Words of every row counted per block: a window's step rows and one start's reach per step stay
#: in a core's L2 cache.
BLOCK_WORDS = 512


@compiled.lazily
def _compiled_counter(numba: compiled.Tools) -> Any:
    """``_count_slice`` for every start at once, compiled (``None`` without numba)."""
    popcount = numba.popcount

    @numba.jit(nogil=True)  # type: ignore[misc]
    def count_funnels(
        words: np.ndarray,
        firsts: np.ndarray,
        groups: np.ndarray,
        skip: np.ndarray,
        rows: np.ndarray,
        block: int,
        counts: np.ndarray,
    ) -> None:
        steps = rows.shape[2] + 1
        reached = np.empty((steps, block), dtype=np.uint64)
        for b0 in range(0, words.shape[1], block):
            n = min(block, words.shape[1] - b0)
            for s in range(rows.shape[0]):
                if skip[s]:
                    continue  # nobody did step 1 in this slice: every step is 0
                first = words[firsts[s], b0 : b0 + n]
                if groups[s] >= 0:
                    group = words[groups[s], b0 : b0 + n]
                    for w in range(n):
                        reached[0, w] = first[w] & group[w]
                else:
                    reached[0, :n] = first
                reached[1:, :n] = 0
                for p in range(rows.shape[1]):
                    for k in range(1, steps):
                        r = rows[s, p, k - 1]
                        if r < 0:
                            continue  # an absent key adds nobody
                        row = words[r, b0 : b0 + n]
                        before, now = reached[k - 1], reached[k]
                        for w in range(n):
                            now[w] |= before[w] & row[w]
                for k in range(steps):
                    total = 0
                    for w in range(n):
                        total += popcount(reached[k, w])
                    counts[s, k] += total

    return count_funnels


def _summed(
    client: BitCore,
    sources: Sequence[StepSource],
    runs: Sequence[Run],
    window: int,
    max_bytes: int | None,
    round_trip_bytes: int,
    where: Where,
) -> list[list[int]]:
    """Step counts per run: by BITOPs on the server where that is cheaper
    (``bitcore.funnel_server``), else read slice by slice and counted in numpy (always, with
    groups: their restriction is one AND in numpy). On the sharded layout in each shard's view
    (its segments, steps' and groups', built in its slot), shards of different nodes at once,
    ``max_bytes`` checked on all shards' bytes before any is read (``breakdown.each_reader``),
    and added up: a user is in one shard, so every count is a sum. No shard in use: every count
    is 0 (a group naming no saved segment is still refused, as the flat layout refuses it)."""
    # stored events on the sharded layout: planned once (thousands of bitmap objects), each
    # shard's names of it
    plain = all(getattr(s, "kind", None) in ("event", "flag") for s in sources)
    stored = None
    if client.layout != "flat" and plain and not any(g for g, _ in runs):
        stored = _plan(client, sources, runs, window)
        stored = None if stored.derived else stored

    def prepared(view: BitCore, shard: int) -> _Plan:
        if stored is None:  # flat, saved segments or groups: each view makes its own
            return _prepared(view, sources, runs, window)
        names = [client.shard_key(key, shard) for key in stored.keys]
        return _Plan(names, {}, stored.rows, stored.restrict)

    def count(
        view: BitCore, plan: _Plan, measured: reading.Measured | None, limit: int | None
    ) -> list[list[int]]:
        return _counted(view, plan, len(sources), limit, round_trip_bytes, where, measured)

    readers = [*sources, *(g for g, _ in runs if g is not None)]
    parts = breakdown.each_reader(
        client, readers, prepared, lambda plan: (plan.keys, plan.derived), count, max_bytes
    )
    totals = np.zeros((len(runs), len(sources)), dtype=np.int64)
    for part in parts:
        totals += np.asarray(part, dtype=np.int64).reshape(totals.shape)
    return totals.tolist()  # type: ignore[no-any-return]


def _prepared(
    client: BitCore, sources: Sequence[StepSource], runs: Sequence[Run], window: int
) -> _Plan:
    """The plan of ``runs``, saved segments (steps, groups) made up front, to be built by the
    read with the report's keys."""
    many = list(dict.fromkeys(p for _, s in runs for p in (s, *window_periods(s, window))))
    made = breakdown.prepare_sources(client, [*sources, *(g for g, _ in runs)], many)
    runs = [(g, start) for g, (_, start) in zip(made[len(sources) :], runs, strict=True)]
    return _plan(client, made[: len(sources)], runs, window)


def _counted(
    client: BitCore,
    plan: _Plan,
    steps: int,
    max_bytes: int | None,
    round_trip_bytes: int,
    where: Where = "auto",
    measured: reading.Measured | None = None,
) -> list[list[int]]:
    """The counts of a prepared ``plan`` (``measured``: its keys measured already, the cost
    checked)."""
    counts = np.zeros((len(plan.rows), steps), dtype=np.int64)
    grouped = any(g is not None for g in plan.restrict)
    with reading.opened(client, plan.keys, plan.derived, max_bytes, measured) as read:
        if not grouped and (
            where == "server"
            or (where == "auto" and funnel_server.cheaper_on_server(plan.rows, read.lengths))
        ):
            try:
                return funnel_server.count(client, read, plan.rows, steps)
            except redis.exceptions.OutOfMemoryError:
                if where == "server":
                    raise
                # a full Redis refuses BITOP's writes: read and count here instead
        for part in reading.read_words(client.redis, read, round_trip_bytes):
            counts += _count_slice(plan, steps, part.words, part.lengths)
    return counts.tolist()  # type: ignore[no-any-return]
