"""Funnels: of the users who did step 1 in a start period, how many then did step 2, step 3, ...

Definitions (what the dashboard and the README promise):

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
scratch key updated in place. The whole report, trend included, is one MULTI/EXEC transaction:
the BITOPs, one BITCOUNT per step, then a DEL of every scratch key and of every bit-op key a
saved-segment step built, so no key outlives the reply.

>>> from bitcore import periods
>>> window_periods(periods.week(2025, 1), 3)[-1]
Period(kind='week', year=2025, month=1, day=1, hour=0, week=3)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bitcore import periods
from bitcore.selections import Selection

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bitcore.bitmaps import Bitmap
    from bitcore.client import BitCore

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
    """A computed funnel: its steps and its window, ``start`` .. ``end`` both included."""

    kind: periods.Kind
    start: periods.Period
    window: int
    end: periods.Period
    steps: tuple[FunnelStep, ...]

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
    client: BitCore, steps: Sequence[str | StepSource], start: periods.Period, window: int
) -> Funnel:
    """The funnel of ``steps`` starting in ``start`` with a ``window``-period conversion window.

    ``steps`` are selection tokens (``"signup"``, ``"event:signup"``, ``"segment:ios"``) or
    ``Selection`` objects. One MULTI/EXEC round trip (plus those a saved-segment step's bit-op
    objects make when created); no key is left behind.

    >>> f = funnel(b, ["signup", "project", "invite"], periods.week(2025, 1), 2)  # doctest: +SKIP
    >>> [s.count for s in f.steps]  # doctest: +SKIP
    [120, 80, 12]
    """
    return funnel_trend(client, steps, start, window, 1).funnels[0]


def funnel_trend(
    client: BitCore,
    steps: Sequence[str | StepSource],
    last_start: periods.Period,
    window: int,
    count: int,
) -> FunnelTrend:
    """The funnel for each of the ``count`` start periods ending with ``last_start``, oldest first.

    All of them are counted in the same single transaction as ``funnel``.
    """
    check_funnel(steps, last_start.kind, window, count)
    sources = _sources(steps)
    starts = [periods.shift(last_start, offset) for offset in range(1 - count, 1)]
    counts = _count(client, sources, starts, window)
    return FunnelTrend(
        tuple(
            _funnel_of(sources, start, window, row)
            for start, row in zip(starts, counts, strict=True)
        )
    )


def _funnel_of(
    sources: Sequence[StepSource], start: periods.Period, window: int, counts: Sequence[int]
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
    return Funnel(start.kind, start, window, end, tuple(steps))


class _KeyRecorder:
    """Forwards to a pipeline, remembering the destination of every BITOP a derived bitmap queues.

    Saved-segment steps are bit-op results: their ``build`` queues BITOPs into keys we then own
    and delete.
    """

    def __init__(self, pipe: Pipeline) -> None:
        self._pipe = pipe
        self.made: list[str] = []

    def bitop(self, operation: str, dest: str, *keys: str) -> Any:
        self.made.append(dest)
        return self._pipe.bitop(operation, dest, *keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


class _Batch:
    """One transaction of funnel commands: scratch key names, each step bitmap built once."""

    def __init__(self, client: BitCore, pipe: Pipeline) -> None:
        self.client = client
        self.recorder = _KeyRecorder(pipe)
        self._run = uuid.uuid4().hex
        self._scratch = 0
        self._step_keys: dict[tuple[str, periods.Period], str] = {}

    def scratch_key(self) -> str:
        """A fresh key under the bit-op prefix (the cleanup job's), unique to this run."""
        self._scratch += 1
        key = self.client.keys.bitop_key("FUNNEL", [self._run, str(self._scratch)])
        self.recorder.made.append(key)
        return key

    def step_key(self, source: StepSource, period: periods.Period) -> str:
        """The key of ``source`` in ``period``; a derived one is (re)built in this transaction."""
        cached = self._step_keys.get((source.token, period))
        if cached is not None:
            return cached
        bitmap = source.bitmap(self.client, period)
        if bitmap.derived:
            bitmap.build(self.recorder, self.client.bitop_ttl_open)  # type: ignore[arg-type]
            self.recorder.made.append(bitmap.redis_key)
        self._step_keys[(source.token, period)] = bitmap.redis_key
        return bitmap.redis_key

    def queue_funnel(
        self, sources: Sequence[StepSource], start: periods.Period, window: int
    ) -> list[str]:
        """Queue the recurrence for one start period; returns the ``R_k`` keys, one per step."""
        bitop = self.recorder.bitop
        reached = [self.scratch_key() for _ in sources]
        both = self.scratch_key()
        bitop("OR", reached[0], self.step_key(sources[0], start))
        for period in window_periods(start, window):
            for k in range(1, len(sources)):
                bitop("AND", both, reached[k - 1], self.step_key(sources[k], period))
                bitop("OR", reached[k], reached[k], both)
        return reached


def _count(
    client: BitCore, sources: Sequence[StepSource], starts: Sequence[periods.Period], window: int
) -> list[list[int]]:
    """Step counts per start period, computed and cleaned up in one MULTI/EXEC."""
    with client.redis.pipeline(transaction=True) as pipe:
        batch = _Batch(client, pipe)
        per_start = [batch.queue_funnel(sources, start, window) for start in starts]
        first_count = len(pipe.command_stack)
        for reached in per_start:
            for key in reached:
                pipe.bitcount(key)
        pipe.delete(*dict.fromkeys(batch.recorder.made))
        replies = pipe.execute()
    flat = [int(n) for n in replies[first_count : first_count + len(sources) * len(starts)]]
    return [flat[i : i + len(sources)] for i in range(0, len(flat), len(sources))]
