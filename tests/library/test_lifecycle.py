"""The lifecycle report against PostHog's definitions on Python sets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import lifecycle, periods, reading

pytestmark = pytest.mark.all_layouts

START = datetime(2024, 11, 25)  # weeks across the ISO new year
Mark = tuple[int, int]  # (uid, days after START)
history = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 70)), max_size=200)


def oracle(marks: list[Mark], kind: periods.Kind, span: list[periods.Period]) -> list[dict]:
    active: dict[periods.Period, set[int]] = {}
    first: dict[int, periods.Period] = {}
    for uid, day in marks:
        period = periods.period_of(kind, START + timedelta(days=day))
        active.setdefault(period, set()).add(uid)
        first[uid] = min(first.get(uid, period), period)
    rows = []
    for before, now in zip(span, span[1:], strict=False):
        a, p = active.get(now, set()), active.get(before, set())
        new = {u for u in a if first[u] == now}
        rows.append(
            {
                "period": periods.label(now),
                "new": len(new),
                "returning": len(a & p),
                "resurrecting": len(a - p - new),
                "dormant": len(p - a),
            }
        )
    return rows


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marks=history,
    kind=st.sampled_from(["day", "week", "month"]),
    count=st.integers(1, 8),
    sliced=st.booleans(),
)
def test_lifecycle_matches_the_set_oracle(
    make_bc: Callable[..., bitcore.BitCore],
    redis_client: redis.Redis,
    marks: list[Mark],
    kind: periods.Kind,
    count: int,
    sliced: bool,
) -> None:
    redis_client.flushall()
    b = make_bc()
    b.mark_many([("active", uid, START + timedelta(days=day)) for uid, day in marks])
    end = periods.period_of(kind, START + timedelta(days=60))
    report = lifecycle.lifecycle(
        b, "active", kind, count, end, round_trip_bytes=0 if sliced else reading.ROUND_TRIP_BYTES
    )
    span = [periods.shift(end, k - count) for k in range(count + 1)]
    assert report.as_dict()["periods"] == oracle(marks, kind, span)
    assert report.as_dict()["period"] == kind and len(report.periods) == count


def test_current_period_by_default_and_clear_errors(bc: bitcore.BitCore) -> None:
    bc.mark_event("active", 5)
    report = lifecycle.lifecycle(bc, "active", "week", 3)
    assert report.periods[-1].period == periods.label(periods.period_of("week", bc.now()))
    assert report.periods[-1].active == 1
    with pytest.raises(ValueError, match="period must be"):
        lifecycle.lifecycle(bc, "active", "year")
    with pytest.raises(ValueError, match="count must be"):
        lifecycle.lifecycle(bc, "active", "week", 0)
    with pytest.raises(ValueError, match="end must be a week"):
        lifecycle.lifecycle(bc, "active", "week", 3, periods.day(2024, 5, 1))
    with pytest.raises(ValueError, match="before year 1"):
        lifecycle.lifecycle(bc, "active", "month", 12, periods.month(1, 3))
    with pytest.raises(reading.ReportTooCostly):
        lifecycle.lifecycle(bc, "active", "week", 3, max_bytes=0)


def test_compiled_states_match_numpy_over_many_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled count (everyone and each group at once, block by block) counts what numpy's
    whole-row ``count_words`` counts, over rows of several blocks and a ragged last one, the
    rows in an order of their own (as a read with groups has them)."""
    rng = np.random.default_rng(7)
    count, width = 5, 2 * lifecycle.BLOCK_WORDS + 3
    words = rng.integers(0, 2**64, (2 * count + 1 + 2 * (count + 1), width), dtype=np.uint64)
    order = rng.permutation(len(words)).tolist()
    keys, rest = order[: 2 * count + 1], order[2 * count + 1 :]
    masks = [rest[: count + 1], rest[count + 1 :]]
    assert lifecycle._compiled_counter() is not None
    compiled = lifecycle.states_of(words, keys, masks, count)
    monkeypatch.setattr(lifecycle, "_compiled_counter", lambda: None)
    assert (lifecycle.states_of(words, keys, masks, count) == compiled).all()
    assert compiled.shape == (3, 4, count) and (compiled > 0).all()
