"""First-time cohorts (``cohort_type="first_time"``) against a Python-set oracle."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
import bitcore.cohort as cohort
from bitcore import periods
from bitcore.cohort import engine

KIND: dict[str, periods.Kind] = {"days": "day", "weeks": "week", "months": "month"}
Mark = tuple[str, int, datetime]
when = st.integers(0, 40).map(lambda d: datetime(2024, 12, 15) + timedelta(days=d))
marks = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 200), when), max_size=120)


def expected(
    written: list[Mark], starts: list[datetime], kind: periods.Kind, columns: int
) -> tuple[list[int], list[list[int]]]:
    """Row t: users whose earliest "a" falls in period t; cell k: of them, who did "b" in t+k."""
    first: dict[int, periods.Period] = {}
    did_b: dict[periods.Period, set[int]] = {}
    for event, uid, moment in written:
        period = periods.period_of(kind, moment)
        if event == "a":
            first[uid] = min(first.get(uid, period), period)
        else:
            did_b.setdefault(period, set()).add(uid)
    sizes, cells = [], []
    for start in starts:
        period = periods.period_of(kind, start)
        row = {uid for uid, p in first.items() if p == period}
        sizes.append(len(row))
        cells.append(
            [len(row & did_b.get(periods.shift(period, k), set())) for k in range(columns)]
        )
    return sizes, cells


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    written=marks,
    time_group=st.sampled_from(["days", "weeks", "months"]),
    max_fetch_bytes=st.sampled_from([engine.DEFAULT_MAX_FETCH_BYTES, 0]),
)
def test_first_time_rows_match_the_set_oracle(
    redis_client: redis.Redis, written: list[Mark], time_group: str, max_fetch_bytes: int
) -> None:
    redis_client.flushall()
    b = bitcore.BitCore(redis_client)
    b.mark_many(written)
    table = cohort.cohort_table(
        "a", "b", None, None, time_group, b, 6, 3, "2024-12-15",
        max_fetch_bytes=max_fetch_bytes, cohort_type="first_time",
    )  # fmt: skip
    sizes, cells = expected(written, table.starts, KIND[time_group], 4)
    assert table.sizes == sizes
    assert [[c or 0 for c in row] for row in table.cells] == cells


def test_first_time_differs_from_recurring_and_rows_are_disjoint(bc: bitcore.BitCore) -> None:
    day = datetime(2024, 5, 6)
    bc.mark_many([("a", u, day) for u in range(10)] + [("a", 3, day + timedelta(days=1))])
    bc.mark_many([("a", 20, day + timedelta(days=1))])
    rows = cohort.get_dates_data("a", "a", system=bc, num_results=2, num_of_rows=0,
                                 start_date="2024-05-06", as_percent=False,
                                 cohort_type="first_time")  # fmt: skip
    assert [row[1] for row in rows] == [10, 1]  # user 3 came back: not new on day 2
    recurring = cohort.get_dates_data("a", "a", system=bc, num_results=2, num_of_rows=0,
                                      start_date="2024-05-06", as_percent=False)  # fmt: skip
    assert [row[1] for row in recurring] == [10, 2]


def test_first_time_needs_an_event_and_a_known_type(bc: bitcore.BitCore) -> None:
    with pytest.raises(ValueError, match="needs an event"):
        cohort.cohort_table("segment:x", "a", system=bc, cohort_type="first_time")
    with pytest.raises(ValueError, match="cohort_type"):
        cohort.cohort_table("a", "a", system=bc, cohort_type="new")
