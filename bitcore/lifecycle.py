"""The lifecycle of an event: per period, who is new, returning, resurrecting or dormant.

PostHog's definitions, per period t (A_t: did the event in t; F_t: did it for the first time
ever in t, the writer's first-time bitmaps, ``bitcore.first_time``):

* new = A_t and F_t;
* returning = A_t and A_t-1;
* resurrecting = A_t, not A_t-1, not F_t;
* dormant = A_t-1, not A_t (a loss: charts draw it below zero; the count here is positive).

``count`` periods need ``count + 1`` activity bitmaps and ``count`` first-time ones: one round
trip measures them (refused over ``max_bytes``), then they are read in bounded slices
(``bitcore.reading``) and counted in numpy, every period at once.

>>> report = lifecycle(b, "active", "week", count=12)  # doctest: +SKIP
>>> report.periods[-1].as_dict()  # doctest: +SKIP
{'period': '2026-W40', 'new': 120, 'returning': 800, 'resurrecting': 40, 'dormant': 95}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bitcore import breakdown, compiled, periods, reading
from bitcore.validation import check_event_name

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.breakdown import Group
    from bitcore.client import BitCore

KINDS: tuple[periods.Kind, ...] = ("hour", "day", "week", "month")
MAX_PERIODS = 104
STATES = ("new", "returning", "resurrecting", "dormant")


@dataclass(frozen=True)
class LifecyclePeriod:
    """One period's counts; ``period`` is its label (``2026-W40``)."""

    period: str
    new: int
    returning: int
    resurrecting: int
    dormant: int

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period, **{state: getattr(self, state) for state in STATES}}

    @property
    def active(self) -> int:
        """Everyone in the period: new + returning + resurrecting."""
        return self.new + self.returning + self.resurrecting


@dataclass(frozen=True)
class Lifecycle:
    """The report: ``periods`` oldest first, ending with ``end``."""

    event: str
    kind: periods.Kind
    end: periods.Period
    periods: list[LifecyclePeriod]

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "period": self.kind,
            "end": periods.label(self.end),
            "periods": [p.as_dict() for p in self.periods],
        }


def check_kind(kind: str) -> periods.Kind:
    if kind not in KINDS:
        raise ValueError(f"period must be one of {KINDS}, got {kind!r}")
    return kind  # type: ignore[return-value]


def lifecycle(
    client: BitCore,
    event: str,
    kind: str = "week",
    count: int = 12,
    end: periods.Period | None = None,
    *,
    max_bytes: int | None = None,
    round_trip_bytes: int = reading.ROUND_TRIP_BYTES,
) -> Lifecycle:
    """The lifecycle of ``event`` over ``count`` periods of ``kind`` ending with ``end`` (default:
    the current one). More than ``max_bytes`` of bitmaps to read raises
    ``bitcore.reading.ReportTooCostly`` before any is fetched."""
    reports = lifecycle_groups(
        client, event, kind, count, end, max_bytes=max_bytes, round_trip_bytes=round_trip_bytes
    )
    return reports[0]


def lifecycle_groups(
    client: BitCore,
    event: str,
    kind: str = "week",
    count: int = 12,
    end: periods.Period | None = None,
    groups: Sequence[Group] = (),
    *,
    max_bytes: int | None = None,
    round_trip_bytes: int = reading.ROUND_TRIP_BYTES,
) -> list[Lifecycle]:
    """``lifecycle`` of everyone, then of each of ``groups`` (``bitcore.breakdown``): new,
    returning and resurrecting users of period t who are in the group in t, dormant ones who
    were in it in t-1. One read of every bitmap (a group's, per period) for all of them."""
    check_event_name(event)
    kind_ = check_kind(kind)
    if not 1 <= count <= MAX_PERIODS:
        raise ValueError(f"count must be between 1 and {MAX_PERIODS}, got {count}")
    last = end if end is not None else periods.period_of(kind_, client.now())
    if last.kind != kind_:
        raise ValueError(f"end must be a {kind_}, got a {last.kind}")
    try:
        span = [periods.shift(last, k - count) for k in range(count + 1)]  # t-1 of the first too
    except (ValueError, OverflowError):
        raise ValueError("the report would reach before year 1") from None

    def prepare(reader: BitCore, _shard: int) -> _Read:
        keys = [reader.keys.event_key(event, p) for p in span]
        keys += [reader.keys.first_time_key(event, p) for p in span[1:]]
        masks, derived = group_keys(reader, groups, span)
        return _Read(keys, masks, derived)

    def counted(
        reader: BitCore, read_: _Read, measured: reading.Measured | None, limit: int | None
    ) -> np.ndarray:
        totals = np.zeros((1 + len(groups), len(STATES), count), dtype=np.int64)
        order = read_.order()
        row = {key: r for r, key in enumerate(order)}
        keys = [row[k] for k in read_.keys]
        masks = [[row[k] for k in mask] for mask in read_.masks]
        with reading.opened(reader, order, read_.derived, limit, measured) as read:
            for part in reading.read_words(reader.redis, read, round_trip_bytes):
                totals += states_of(part.words, keys, masks, count)
        return totals

    parts = breakdown.each_reader(
        client, groups, prepare, lambda r: (r.order(), r.derived), counted, max_bytes
    )
    totals = sum(parts, np.zeros((1 + len(groups), len(STATES), count), dtype=np.int64))
    return [
        Lifecycle(
            event,
            kind_,
            last,
            [
                LifecyclePeriod(periods.label(p), *(int(n) for n in counts[:, t]))
                for t, p in enumerate(span[1:])
            ],
        )
        for counts in totals
    ]


@dataclass(frozen=True)
class _Read:
    """What one reader (the client, or a shard's view) reads for a lifecycle: the activity and
    first-time keys, each group's key per period, the segments to build."""

    keys: list[str]
    masks: list[list[str]]
    derived: dict[str, Bitmap]

    def order(self) -> list[str]:
        return list(dict.fromkeys([*self.keys, *(k for mask in self.masks for k in mask)]))


def group_keys(
    client: BitCore, groups: Sequence[Group], span: Sequence[periods.Period]
) -> tuple[list[list[str]], dict[str, Bitmap]]:
    """Per group, its bitmap's key in each period of ``span``, and the derived ones (segments)
    to build: what ``bitcore.reading.opened`` reads with the report's keys."""
    masks, derived = [], {}
    for group in breakdown.prepare(client, groups, span):
        bitmaps = [group.bitmap(client, period) for period in span]
        derived.update({b.redis_key: b for b in bitmaps if b.derived})
        masks.append([b.redis_key for b in bitmaps])
    return masks, derived


def states_of(
    words: np.ndarray, keys: Sequence[int], masks: Sequence[Sequence[int]], count: int
) -> np.ndarray:
    """``(1 + groups) x (new, returning, resurrecting, dormant) x count`` over ``words``, whose
    rows ``keys`` are the ``count + 1`` activity bitmaps and then the ``count`` first-time ones,
    and rows ``masks[g]`` group ``g``'s bitmap in each activity period: compiled where numba is
    (``bitcore.compiled``: block by block, every state and group from the words in cache), else
    in numpy (``count_words``, whole rows)."""
    counter = _compiled_counter()
    if counter is None:
        report = words[list(keys)]
        return np.stack(
            [count_words(report, count), *(count_words(report, count, words[m]) for m in masks)]
        )
    out = np.zeros((1 + len(masks), len(STATES), count), dtype=np.int64)
    group_rows = np.array(masks, dtype=np.int64).reshape(len(masks), count + 1)
    counter(words, np.array(keys, dtype=np.int64), group_rows, BLOCK_WORDS, out)
    return out


def warm() -> None:
    """Compile (or load from numba's disk cache) the states' count now, on a tiny slice, so the
    first lifecycle report does not pay for it (``wsgi.py`` calls it before gunicorn forks)."""
    states_of(np.full((5, 2), 0x5555, dtype=np.uint64), [0, 1, 2], [[3, 4]], 1)


#: Words of every row counted per block: a dozen periods' activity, first-time and group rows
#: stay in a core's L2 cache while every state of every group reads them.
BLOCK_WORDS = 512


@compiled.lazily
def _compiled_counter(numba: compiled.Tools) -> Any:
    """``count_words`` for everyone and every group at once, compiled (``None`` without numba)."""
    popcount = numba.popcount

    @numba.jit(nogil=True)  # type: ignore[misc]
    def count_states(
        words: np.ndarray, keys: np.ndarray, masks: np.ndarray, block: int, out: np.ndarray
    ) -> None:
        count = out.shape[2]
        for b0 in range(0, words.shape[1], block):
            n = min(block, words.shape[1] - b0)
            for g in range(out.shape[0]):
                for t in range(count):
                    now = words[keys[t + 1], b0 : b0 + n]
                    before = words[keys[t], b0 : b0 + n]
                    first = words[keys[count + 1 + t], b0 : b0 + n]
                    new = back = again = gone = 0
                    if g == 0:
                        for w in range(n):
                            x, y, f = now[w], before[w], first[w]
                            new += popcount(x & f)
                            back += popcount(x & y)
                            again += popcount(x & ~y & ~f)
                            gone += popcount(y & ~x)
                    else:
                        in_now = words[masks[g - 1, t + 1], b0 : b0 + n]
                        in_before = words[masks[g - 1, t], b0 : b0 + n]
                        for w in range(n):
                            x, y, f = now[w], before[w], first[w]
                            new += popcount(x & f & in_now[w])
                            back += popcount(x & y & in_now[w])
                            again += popcount(x & ~y & ~f & in_now[w])
                            gone += popcount(y & ~x & in_before[w])
                    out[g, 0, t] += new
                    out[g, 1, t] += back
                    out[g, 2, t] += again
                    out[g, 3, t] += gone

    return count_states


def count_words(words: np.ndarray, count: int, mask: np.ndarray | None = None) -> np.ndarray:
    """``(new, returning, resurrecting, dormant) x count`` over rows of words: the ``count + 1``
    activity bitmaps followed by the ``count`` first-time ones; ``mask`` (``count + 1`` rows, one
    per activity bitmap's period): only its users, those of t for the active states, of t-1 for
    dormant."""
    active, first = words[: count + 1], words[count + 1 :]
    now, before = active[1:], active[:-1]
    states = [now & first, now & before, now & ~before & ~first, before & ~now]
    if mask is not None:
        states = [state & mask[1:] for state in states[:3]] + [states[3] & mask[:-1]]
    return np.stack([reading.popcounts(state) for state in states])
