"""A cohort table counted on the server (``where="server"``: BITOP + BITCOUNT in bounded round
trips) and one fetched and counted in numpy are the same table; a Redis too full for BITOP's
writes refuses the server way and still answers the default one, which only reads."""

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


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[bitcore.BitCore]:
    with private_redis(tmp_path) as started:
        yield bitcore.BitCore(started.client())


def test_a_full_redis_refuses_the_server_way_and_still_gets_its_table(
    full_redis: bitcore.BitCore,
) -> None:
    marks = [(e, u, datetime(2024, 12, 15 + d)) for e in "ab" for d in range(4)
             for u in range(0, 90, 3 + d)]  # fmt: skip
    oracle = mark(full_redis, marks)
    fill_up(full_redis.redis)
    args = ("a", "b", None, None, "days", full_redis, 2, 1, "2024-12-15")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        cohort.cohort_table(*args, where="server")
    assert not list(full_redis.redis.scan_iter(full_redis.keys.bitop_keys_pattern()))
    table = cohort.cohort_table(*args)  # read only: a full Redis still answers
    selections = ("a", None, "b", None)
    assert table.bitmapist_rows() == expected_rows(
        oracle, table.starts, "days", selections, 1, True
    )
    assert not list(full_redis.redis.scan_iter(full_redis.keys.bitop_keys_pattern()))
