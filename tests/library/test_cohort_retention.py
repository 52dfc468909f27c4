"""Retention "on or after" (``retention="on_or_after"``) against a Python-set oracle: column k of
cohort t is who did the return event in t + k or any later period up to the current one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
import bitcore.cohort as cohort
from bitcore import periods
from bitcore.cohort import engine, retention

pytestmark = pytest.mark.all_layouts

KIND: dict[str, periods.Kind] = {"days": "day", "weeks": "week", "months": "month"}
Mark = tuple[str, int, datetime]
BASE = datetime(2024, 12, 15)
when = st.integers(0, 80).map(lambda d: BASE + timedelta(days=d))
marks = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 300), when), max_size=150
)


def expected(
    written: list[Mark],
    starts: list[datetime],
    kind: periods.Kind,
    columns: int,
    current: periods.Period,
    also_c: bool,
) -> tuple[list[int], list[list[int]]]:
    """Sizes of "a" per row's period; cell k: of them, who did "b" (and "c" in the same period,
    when ``also_c``) in some period from t + k to ``current`` (t + k alone when that is later)."""
    did: dict[tuple[str, periods.Period], set[int]] = {}
    for event, uid, moment in written:
        did.setdefault((event, periods.period_of(kind, moment)), set()).add(uid)

    def returned(period: periods.Period) -> set[int]:
        users = did.get(("b", period), set())
        return users & did.get(("c", period), set()) if also_c else users

    sizes, cells = [], []
    for start in starts:
        period = periods.period_of(kind, start)
        row = did.get(("a", period), set())
        sizes.append(len(row))
        counts = []
        for k in range(columns):
            later, users = periods.shift(period, k), set()
            step = later
            while True:
                users |= returned(step)
                if step >= current:
                    break
                step = periods.shift(step, 1)
            counts.append(len(row & users))
        cells.append(counts)
    return sizes, cells


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    written=marks,
    time_group=st.sampled_from(["days", "weeks", "months"]),
    now_days=st.integers(0, 120),
    also_c=st.booleans(),
    how=st.sampled_from(
        [
            {},
            {"where": "client"},
            {"max_fetch_bytes": 0, "where": "client"},
            {"where": "server"},
            {"max_fetch_bytes": 0, "where": "server"},
        ]
    ),
)
def test_on_or_after_matches_the_set_oracle(
    make_bc: Callable[..., bitcore.BitCore],
    redis_client: redis.Redis,
    written: list[Mark],
    time_group: str,
    now_days: int,
    also_c: bool,
    how: dict[str, object],
) -> None:
    redis_client.flushall()
    b = make_bc()
    b.mark_many(written)
    until = (BASE + timedelta(days=now_days)).replace(tzinfo=UTC)
    table = engine.cohort_table(
        b, "a", "b", None, "c" if also_c else None, time_group, 6, 3, "2024-12-20",
        retention="on_or_after", until=until, **how,  # type: ignore[arg-type]
    )  # fmt: skip
    kind = KIND[time_group]
    sizes, cells = expected(written, table.starts, kind, 4, periods.period_of(kind, until), also_c)
    assert table.sizes == sizes
    assert [[c or 0 for c in row] for row in table.cells] == cells
    # a cell's users (drill-down) are the ones it counts
    for i in range(len(table.starts)):
        for k in (0, 2):
            assert len(table.cell_users(i, k)) == cells[i][k]
    assert not redis_client.keys("*trackist_bitop_*") or all(
        redis_client.ttl(key) > 0 for key in redis_client.keys("*trackist_bitop_*")
    )


def test_on_or_after_contains_on_and_never_decreases_along_a_row(bc: bitcore.BitCore) -> None:
    day = datetime(2024, 5, 6)
    bc.mark_many([("a", uid, day) for uid in range(10)])
    bc.mark_many([("b", uid, day + timedelta(days=uid % 5)) for uid in range(10)])
    args = ("a", "b", None, None, "days", bc, 1, 6, "2024-05-06")
    on = cohort.cohort_table(*args)
    after = cohort.cohort_table(*args, retention="on_or_after")
    assert on.cells[0][:5] == [2, 2, 2, 2, 2]
    assert after.cells[0][:5] == [10, 8, 6, 4, 2]
    assert after.retention == "on_or_after" and on.retention == "on"
    rows = cohort.get_dates_data(*args[:6], as_percent=0, num_results=1, num_of_rows=6,
                                 start_date="2024-05-06", retention="on_or_after")  # fmt: skip
    assert rows[0][2:7] == [10, 8, 6, 4, 2]


def test_bad_mode_and_too_long_a_reach_are_value_errors(bc: bitcore.BitCore) -> None:
    with pytest.raises(ValueError, match="retention must be one of"):
        cohort.cohort_table("a", "b", system=bc, retention="unbounded")
    with pytest.raises(ValueError, match="at most"):
        cohort.cohort_table(
            "a", "b", system=bc, num_results=2, num_of_rows=1, start_date="2010-01-01",
            retention="on_or_after",
        )  # fmt: skip
    assert retention.MAX_PERIODS_AFTER < 366 * 11
