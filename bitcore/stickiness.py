"""Stickiness: how many users did an event on exactly n days of a week or a month.

The day bitmaps of the period are added up with bit-sliced counters: for every user, a counter of
a few bits (3 for a week, 5 for a month), stored as bit planes, one uint64 array per bit, so 64
users advance per machine word. Each day is added with a ripple-carry adder (``sum ^= carry``,
``carry &= old sum``, plane by plane); the users with count n are then the AND of each plane or
its complement as n's bits say, and a popcount. No Python loop per user: the work is a few numpy
operations per day over the whole slice. The days are read in bounded slices
(``bitcore.reading``), measured first against ``max_bytes``.

>>> stickiness(b, "active", periods.week(2026, 40)).as_dict()["histogram"][0]  # doctest: +SKIP
{'days': 1, 'users': 1200}
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from bitcore import breakdown, compiled, periods, reading
from bitcore.validation import check_event_name

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.breakdown import Group
    from bitcore.client import BitCore

KINDS: tuple[periods.Kind, ...] = ("week", "month")


@dataclass(frozen=True)
class Stickiness:
    """``histogram[n - 1]`` is how many users did ``event`` on exactly ``n`` days of ``period``."""

    event: str
    period: periods.Period
    histogram: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "period": self.period.kind,
            "start": periods.label(self.period),
            "histogram": [{"days": n, "users": u} for n, u in enumerate(self.histogram, 1)],
        }

    @property
    def users(self) -> int:
        """Everyone who did the event at least once in the period."""
        return sum(self.histogram)


def days_of(period: periods.Period) -> list[periods.Period]:
    """The days of a week (Monday to Sunday, ISO) or a month.

    >>> len(days_of(periods.month(2024, 2))), periods.label(days_of(periods.week(2025, 1))[0])
    (29, '2024-12-30')
    """
    if period.kind == "week":
        monday = date.fromisocalendar(period.year, period.week, 1)
        return [periods.period_of("day", monday + timedelta(days=k)) for k in range(7)]
    if period.kind == "month":
        last = calendar.monthrange(period.year, period.month)[1]
        return [periods.day(period.year, period.month, d) for d in range(1, last + 1)]
    raise ValueError(f"stickiness is over a week or a month, not a {period.kind}")


def stickiness(
    client: BitCore,
    event: str,
    period: periods.Period,
    *,
    max_bytes: int | None = None,
    round_trip_bytes: int = reading.ROUND_TRIP_BYTES,
) -> Stickiness:
    """The days-active histogram of ``event`` in ``period`` (a week or a month); more than
    ``max_bytes`` of day bitmaps raises ``bitcore.reading.ReportTooCostly`` before any is read."""
    reports = stickiness_groups(
        client, event, period, max_bytes=max_bytes, round_trip_bytes=round_trip_bytes
    )
    return reports[0]


def stickiness_groups(
    client: BitCore,
    event: str,
    period: periods.Period,
    groups: Sequence[Group] = (),
    *,
    max_bytes: int | None = None,
    round_trip_bytes: int = reading.ROUND_TRIP_BYTES,
) -> list[Stickiness]:
    """``stickiness`` of everyone, then of each of ``groups`` (``bitcore.breakdown``: the
    group's users in ``period``, or a flag's), all from one read of the day bitmaps."""
    check_event_name(event)
    days = days_of(period)

    def prepare(reader: BitCore, _shard: int) -> tuple[list[str], list[Bitmap]]:
        keys = [reader.keys.event_key(event, day) for day in days]
        return keys, [
            group.bitmap(reader, period) for group in breakdown.prepare(reader, groups, [period])
        ]

    def reads(plan: tuple[list[str], list[Bitmap]]) -> tuple[list[str], dict[str, Bitmap]]:
        keys, masks = plan
        derived = {b.redis_key: b for b in masks if b.derived}
        return list(dict.fromkeys([*keys, *(b.redis_key for b in masks)])), derived

    def counted(
        reader: BitCore,
        plan: tuple[list[str], list[Bitmap]],
        measured: reading.Measured | None,
        limit: int | None,
    ) -> np.ndarray:
        keys, masks = plan
        order, derived = reads(plan)
        row = {key: r for r, key in enumerate(order)}
        histograms = np.zeros((1 + len(groups), len(days)), dtype=np.int64)
        with reading.opened(reader, order, derived, limit, measured) as read:
            for part in reading.read_words(reader.redis, read, round_trip_bytes):
                active = [row[k] for k in keys if part.lengths[row[k]]]
                if active:
                    within = [row[mask.redis_key] for mask in masks]
                    histograms += histograms_of(part.words, active, within, len(days))
        return histograms

    parts = breakdown.each_reader(client, groups, prepare, reads, counted, max_bytes)
    histograms = sum(parts, np.zeros((1 + len(groups), len(days)), dtype=np.int64))
    return [Stickiness(event, period, histogram.tolist()) for histogram in histograms]


def histograms_of(
    words: np.ndarray, days: Sequence[int], masks: Sequence[int], most: int
) -> np.ndarray:
    """Per group (everyone, then the users of each of ``masks``' rows of ``words``), how many
    users are set in exactly n of the ``days`` rows, for n in 1..``most``: compiled where numba
    is (``bitcore.compiled``: each block of words added up in cache, the groups' masks ANDed in
    as they are read), else in numpy (``count_days``, over whole rows)."""
    counter = _compiled_counter()
    out = np.zeros((1 + len(masks), most), dtype=np.int64)
    if counter is None:
        active = words[list(days)]
        out[0] = count_days(active, most)
        for g, mask in enumerate(masks, 1):
            out[g] = count_days(active & words[mask], most)
        return out
    counter(
        words,
        np.array(days, dtype=np.int64),
        np.array(masks, dtype=np.int64),
        max(most, 1).bit_length(),
        DAY_BLOCK_WORDS,
        out,
    )
    return out


def warm() -> None:
    """Compile (or load from numba's disk cache) the day counters now, on a tiny slice, so the
    first stickiness report does not pay for it (``wsgi.py`` calls it before gunicorn forks)."""
    histograms_of(np.full((2, 2), 0x5555, dtype=np.uint64), [0], [1], 7)


#: Words of every row added up per block: its counters (a plane per bit of the count) and the
#: day being added stay in a core's L1 cache.
DAY_BLOCK_WORDS = 256


@compiled.lazily
def _compiled_counter(numba: compiled.Tools) -> Any:
    """``count_days`` for every group at once, compiled (``None`` without numba)."""
    popcount = numba.popcount

    @numba.jit(nogil=True)  # type: ignore[misc]
    def count_groups(
        words: np.ndarray,
        days: np.ndarray,
        masks: np.ndarray,
        bits: int,
        block: int,
        out: np.ndarray,
    ) -> None:
        planes = np.zeros((bits, block), dtype=np.uint64)
        carry = np.empty(block, dtype=np.uint64)
        exact = np.empty(block, dtype=np.uint64)
        everyone = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
        for b0 in range(0, words.shape[1], block):
            n = min(block, words.shape[1] - b0)
            for g in range(1 + masks.shape[0]):
                planes[:, :n] = 0
                for i in range(days.shape[0]):
                    day = words[days[i], b0 : b0 + n]
                    if g == 0:
                        carry[:n] = day
                    else:
                        mask = words[masks[g - 1], b0 : b0 + n]
                        for w in range(n):
                            carry[w] = day[w] & mask[w]
                    reach, count = 0, i + 1  # a count of i + 1 needs its bits only
                    while count:
                        reach, count = reach + 1, count >> 1
                    for p in range(min(reach, bits)):  # ripple-carry, plane by plane
                        plane = planes[p]
                        for w in range(n):
                            x, c = plane[w], carry[w]
                            plane[w] = x ^ c
                            carry[w] = x & c
                for m in range(1, out.shape[1] + 1):
                    exact[:n] = everyone
                    for p in range(bits):
                        plane = planes[p]
                        if m >> p & 1:
                            for w in range(n):
                                exact[w] &= plane[w]
                        else:
                            for w in range(n):
                                exact[w] &= ~plane[w]
                    total = 0
                    for w in range(n):
                        total += popcount(exact[w])
                    out[g, m - 1] += total

    return count_groups


def count_days(days: np.ndarray, most: int) -> np.ndarray:
    """For n in 1..``most``: how many bit positions are set in exactly n rows of ``days``
    (rows of uint64 words), by bit-sliced counting.

    >>> rows = np.array([[0b011], [0b110], [0b010]], dtype=np.uint64)
    >>> count_days(rows, 3).tolist()  # bit 1 in three rows, bits 0 and 2 in one each
    [2, 0, 1]
    """
    planes = np.zeros((max(most, 1).bit_length(), days.shape[1]), dtype=np.uint64)
    carry = np.empty(days.shape[1], dtype=np.uint64)
    spare = np.empty_like(carry)
    for day in days:
        np.copyto(carry, day)
        for plane in planes:
            np.bitwise_and(plane, carry, out=spare)  # what carries on to the next plane
            np.bitwise_xor(plane, carry, out=plane)
            carry, spare = spare, carry
            if not carry.any():
                break
    counts = np.zeros(most, dtype=np.int64)
    exact = np.empty(days.shape[1], dtype=np.uint64)
    for n in range(1, most + 1):
        exact.fill(np.uint64(0xFFFF_FFFF_FFFF_FFFF))
        for bit, plane in enumerate(planes):
            np.bitwise_and(exact, plane if n >> bit & 1 else ~plane, out=exact)
        counts[n - 1] = int(reading.popcounts(exact[np.newaxis])[0])
    return counts
