"""A cohort table counted on the server (``where="server"``: BITOP + BITCOUNT in bounded round
trips) and one fetched and counted in numpy are the same table; a Redis too full for BITOP's
writes refuses the server way and still answers the default one, which only reads."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from private_redis import fill_up, private_redis
from test_cohort import expected_rows, mark, marks_strategy

import bitcore
import bitcore.cohort as cohort
from bitcore.cohort import server

pytestmark = pytest.mark.all_layouts


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


def _random_marks(days: int, seed: int) -> list[tuple[str, int, datetime]]:
    rng = random.Random(seed)
    return [
        (rng.choice("abc"), rng.randrange(4000), datetime(2024, 10, 1) + timedelta(days=d))
        for d in range(days)
        for _ in range(40)
    ]


def _where_auto_goes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records ``server`` each time the engine counts on Redis."""
    went: list[str] = []
    real = server.count

    def spy(*args: Any) -> Any:
        went.append("server")
        return real(*args)

    monkeypatch.setattr(server, "count", spy)
    return went


def test_auto_counts_few_cells_on_the_server_and_many_in_numpy(
    bc: bitcore.BitCore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """months 2 x 1 (5 keys for 4 cells) goes to Redis, days 31 x 12 (43 keys, 372 cells) is
    fetched; both give the oracle's numbers, and nothing is left behind. (Since the count is
    compiled, months 3 x 2, 8 keys for 9 cells, costs less fetched: ``server_is_cheaper``.)"""
    redis_client.flushall()
    oracle = mark(bc, _random_marks(120, seed=3))
    before = set(redis_client.keys())
    went = _where_auto_goes(monkeypatch)
    for time_group, rows, columns, expected in [("months", 2, 1, ["server"]), ("days", 31, 12, [])]:
        went.clear()
        table = cohort.cohort_table(
            "a", "b", None, None, time_group, bc, rows, columns, "2024-10-01"
        )
        assert went == expected, time_group
        selections = ("a", None, "b", None)
        assert table.bitmapist_rows() == expected_rows(
            oracle, table.starts, time_group, selections, columns, True
        )
    assert set(redis_client.keys()) == before


@pytest.mark.flat_only("counts server calls with INFO commandstats on one Redis")
def test_the_server_way_is_one_round_trip_and_splits_into_bounded_steps(
    bc: bitcore.BitCore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One EVALSHA measures the keys and runs every BITOP and BITCOUNT; with a step bound of a few
    keys' bytes, more steps, the same table, and nothing left behind."""
    redis_client.flushall()
    mark(bc, _random_marks(100, seed=5))
    before = set(redis_client.keys())
    args = ("a", "b", "c", None, "weeks", bc, 6, 3, "2024-10-01")
    expected = cohort.cohort_table(*args, where="client")
    cohort.cohort_table(*args, where="server")  # the scripts loaded
    redis_client.config_resetstat()
    assert cohort.cohort_table(*args, where="server") == expected
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert "cmdstat_bitop" in stats  # run inside the script
    assert not {"cmdstat_eval", "cmdstat_mget", "cmdstat_multi"} & set(stats)
    widest = max(redis_client.strlen(k) for k in before if redis_client.type(k) == b"string")
    monkeypatch.setattr(server, "STEP_BYTES", 3 * widest)
    redis_client.config_resetstat()
    assert cohort.cohort_table(*args, where="server") == expected
    assert redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] > 5
    assert set(redis_client.keys()) == before
