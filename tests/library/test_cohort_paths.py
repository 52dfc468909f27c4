"""A cohort table counted on the server (``bitcore.cohort.server``: BITOP + BITCOUNT in bounded
round trips) and one fetched and counted in numpy are the same table; the choice follows the
plan's sizes, and a Redis too full for BITOP's writes still gets its table from numpy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from private_redis import fill_up, private_redis
from test_cohort import expected_rows, mark, marks_strategy

import bitcore
import bitcore.cohort as cohort
from bitcore.cohort import server
from bitcore.cohort.engine import Plan


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marks=marks_strategy(st.integers(0, 300), days=40, most=150),
    time_group=st.sampled_from(["days", "weeks", "months", "years"]),
    extra1=st.sampled_from([None, "c"]),
    extra2=st.sampled_from([None, "c", "a"]),
    rows=st.integers(1, 8),
    columns=st.integers(0, 4),
)
def test_server_and_numpy_give_the_same_table(
    bc: bitcore.BitCore,
    redis_client: redis.Redis,
    marks: list[tuple[str, int, datetime]],
    time_group: str,
    extra1: str | None,
    extra2: str | None,
    rows: int,
    columns: int,
) -> None:
    """Every time group (a year is the OR of its months), filters on either side."""
    redis_client.flushall()
    mark(bc, marks)
    before = set(redis_client.keys())
    tables = [
        cohort.cohort_table(
            "a", "b", extra1, extra2, time_group, bc, rows, columns, "2024-12-15", where=where
        )  # fmt: skip
        for where in ("server", "client")
    ]
    assert tables[0] == tables[1]
    assert set(redis_client.keys()) == before  # built sets and scratch keys are gone


def plan_of(cells: int, keys: int) -> Plan:
    plan = Plan()
    ids = [plan.add_set(((f"k{k}",),)) for k in range(keys)]
    plan.pairs = [(a, b) for a in ids for b in ids][:cells]  # distinct pairs
    return plan


def test_the_cheaper_way_is_chosen_from_the_sizes() -> None:
    assert server.cheaper_on_server(plan_of(9, 8), [125_000] * 8)  # months 3 x 2
    assert not server.cheaper_on_server(plan_of(403, 43), [125_000] * 43)  # days 31 x 13
    assert not server.cheaper_on_server(plan_of(9, 8), [server.MAX_SERVER_KEY_BYTES + 1] * 8)
    assert not server.cheaper_on_server(plan_of(9, 8), [0] * 8)  # nothing to count


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[bitcore.BitCore]:
    with private_redis(tmp_path) as started:
        yield bitcore.BitCore(started.client())


def test_a_full_redis_gets_its_table_from_numpy(full_redis: bitcore.BitCore) -> None:
    marks = [(e, u, datetime(2024, 12, 15 + d)) for e in "ab" for d in range(4)
             for u in range(0, 90, 3 + d)]  # fmt: skip
    oracle = mark(full_redis, marks)
    fill_up(full_redis.redis)
    args = ("a", "b", None, None, "days", full_redis, 2, 1, "2024-12-15")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        cohort.cohort_table(*args, where="server")
    table = cohort.cohort_table(*args)  # auto: the server first, for 3 cells of 3 keys
    selections = ("a", None, "b", None)
    assert table.bitmapist_rows() == expected_rows(
        oracle, table.starts, "days", selections, 1, True
    )
    assert not list(full_redis.redis.scan_iter(full_redis.keys.bitop_keys_pattern()))
