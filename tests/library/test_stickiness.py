"""Stickiness (days active in a week or month) against Python sets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import periods, reading, stickiness

pytestmark = pytest.mark.all_layouts

FEB = periods.month(2024, 2)  # 29 days
WEEK = periods.week(2025, 1)  # across the year end: 2024-12-30 .. 2025-01-05
marks = st.lists(st.tuples(st.integers(0, 700), st.integers(-3, 33)), max_size=300)


def oracle(written: list[tuple[int, int]], first: date, days: int) -> list[int]:
    seen: dict[int, set[int]] = {}
    for uid, offset in written:
        if 0 <= offset < days:
            seen.setdefault(uid, set()).add(offset)
    counts = Counter(len(d) for d in seen.values())
    return [counts.get(n, 0) for n in range(1, days + 1)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(written=marks, period=st.sampled_from([FEB, WEEK]), sliced=st.booleans())
def test_histogram_matches_the_set_oracle(
    make_bc: Callable[..., bitcore.BitCore],
    redis_client: redis.Redis,
    written: list[tuple[int, int]],
    period: periods.Period,
    sliced: bool,
) -> None:
    """Marks a few days before and after the period must not count."""
    redis_client.flushall()
    b = make_bc()
    first = periods.start(period).date()
    b.mark_many([("e", uid, first + timedelta(days=offset)) for uid, offset in written])
    size = 29 if period == FEB else 7
    report = stickiness.stickiness(
        b, "e", period, round_trip_bytes=0 if sliced else reading.ROUND_TRIP_BYTES
    )
    assert report.histogram == oracle(written, first, size)
    assert report.as_dict()["histogram"][0]["days"] == 1 and len(report.histogram) == size


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=130, max_size=130), min_size=1, max_size=31))
def test_bit_sliced_counter_counts_each_column(rows: list[list[bool]]) -> None:
    """The adder alone, on bits packed the way Redis stores them, against column sums."""
    packed = np.packbits(np.array(rows, dtype=np.uint8), axis=1)
    padded = np.zeros((len(rows), 24), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    counts = stickiness.count_days(padded.view(np.uint64), len(rows))
    sums = Counter(int(s) for s in np.array(rows).sum(axis=0))
    assert counts.tolist() == [sums.get(n, 0) for n in range(1, len(rows) + 1)]


def test_only_weeks_and_months(bc: bitcore.BitCore) -> None:
    with pytest.raises(ValueError, match="week or a month"):
        stickiness.stickiness(bc, "e", periods.day(2024, 5, 1))
    with pytest.raises(reading.ReportTooCostly):
        bc.mark_event("e", 9, now=date(2024, 2, 3))
        stickiness.stickiness(bc, "e", FEB, max_bytes=0)


@pytest.mark.parametrize("most", [7, 31])
def test_compiled_counters_match_numpy_over_many_blocks(
    monkeypatch: pytest.MonkeyPatch, most: int
) -> None:
    """The compiled counters (every group at once, block by block, each mask ANDed in as a day is
    read) count what numpy's whole-row ``count_days`` counts, over rows of several blocks and a
    ragged last one, with days of every density so counts reach ``most``."""
    rng = np.random.default_rng(most)
    width = 3 * stickiness.DAY_BLOCK_WORDS + 5
    random = [rng.integers(0, 2**64, width, dtype=np.uint64) for _ in range(4)]
    dense = np.full(width, 0xFFFF_FFFF_FFFF_0F0F, dtype=np.uint64)  # 56 users of every 64
    words = np.stack([*random[:3], *[dense] * (most - 3), random[3]])
    masks = [most, 0]  # a flag's row, and the first day as a mask
    assert stickiness._compiled_counter() is not None
    compiled = stickiness.histograms_of(words, list(range(most)), masks, most)
    monkeypatch.setattr(stickiness, "_compiled_counter", lambda: None)
    assert (stickiness.histograms_of(words, list(range(most)), masks, most) == compiled).all()
    assert compiled[0, most - 1] > 0 and compiled[1].sum() > 0
