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

from bitcore import breakdown, periods, reading
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
        with reading.opened(reader, order, read_.derived, limit, measured) as read:
            for values in reading.read_slices(reader.redis, read, round_trip_bytes):
                words, _present = reading.as_words(values)
                if not words.size:
                    continue
                report = words[[row[k] for k in read_.keys]]
                totals[0] += count_words(report, count)
                for g, mask in enumerate(read_.masks, 1):
                    totals[g] += count_words(report, count, words[[row[k] for k in mask]])
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


def count_slice(values: list[bytes | None], count: int) -> np.ndarray:
    """``(new, returning, resurrecting, dormant) x count`` over one slice of the ``count + 1``
    activity bitmaps followed by the ``count`` first-time ones."""
    words, _present = reading.as_words(values)
    if not words.size:
        return np.zeros((len(STATES), count), dtype=np.int64)
    return count_words(words, count)


def count_words(words: np.ndarray, count: int, mask: np.ndarray | None = None) -> np.ndarray:
    """``count_slice`` over rows of words; ``mask`` (``count + 1`` rows, one per activity
    bitmap's period): only its users, those of t for the active states, of t-1 for dormant."""
    active, first = words[: count + 1], words[count + 1 :]
    now, before = active[1:], active[:-1]
    states = [now & first, now & before, now & ~before & ~first, before & ~now]
    if mask is not None:
        states = [state & mask[1:] for state in states[:3]] + [states[3] & mask[:-1]]
    return np.stack([reading.popcounts(state) for state in states])
