"""A funnel counted by BITOPs on the server (``bitcore.funnel_server``) and one read and counted in
numpy give the same counts, the set oracle's; the choice between them follows the plan's sizes,
and a Redis too full for BITOP's writes still gets its funnel, read and counted in numpy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from private_redis import fill_up, private_redis
from test_funnel import START, oracle, write

import bitcore
from bitcore import funnel, funnel_server, periods

pytestmark = pytest.mark.all_layouts

WHERE = ("server", "client")

trends = st.integers(2, 4).flatmap(
    lambda steps: st.tuples(st.integers(1, 3), st.integers(1, 3)).flatmap(
        lambda sizes: st.lists(
            st.lists(
                st.sets(st.integers(0, 300), max_size=12),
                min_size=sizes[0] + sizes[1] - 1,
                max_size=sizes[0] + sizes[1] - 1,
            ),
            min_size=steps,
            max_size=steps,
        ).map(lambda did: (sizes[0], sizes[1], did))
    )
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trends)
def test_both_paths_give_the_oracle_counts(
    bc: bitcore.BitCore, redis_client: redis.Redis, case: tuple[int, int, list[list[set[int]]]]
) -> None:
    """Trends of 1-3 start periods with 1-3 period windows; ``did[k][p]`` is day ``p`` from the
    first start. Each start's counts are the oracle's over its own window."""
    window, count, did = case
    redis_client.flushall()
    names = [f"step{k}" for k in range(len(did))]
    write(bc, names, did)
    last = periods.shift(START, count - 1)
    before = set(redis_client.keys())
    results = {
        where: [[s.count for s in f.steps] for f in
                funnel.funnel_trend(bc, names, last, window, count, where=where).funnels]
        for where in WHERE
    }  # fmt: skip
    expected = [oracle([d[s : s + window] for d in did], window) for s in range(count)]
    assert results == {where: expected for where in WHERE}
    assert set(redis_client.keys()) == before  # no running result left behind


def test_the_cheaper_path_is_chosen_from_the_sizes() -> None:
    # 2 periods x 2 later steps, 5 keys: step 2 is its first key, then one OR; step 3 an AND,
    # then an AND and an OR; one AND per step reached at the end
    one_start = [(0, [[1, 2], [3, 4]])]
    assert funnel_server.bitops_needed(one_start, [8] * 5) == 6
    assert funnel_server.cheaper_on_server(one_start, [8] * 5)
    assert not funnel_server.cheaper_on_server(one_start, [0] * 5)  # nothing to count
    wide = funnel_server.MAX_SERVER_KEY_BYTES + 1
    assert not funnel_server.cheaper_on_server(one_start, [wide] * 5)  # a BITOP would be long
    trend = [(s, [[1 + s, 2 + s], [3 + s, 4 + s]]) for s in range(12)]  # 72 BITOPs, 16 keys
    assert not funnel_server.cheaper_on_server(trend, [8] * 16)
    # absent keys add none, nor steps whose step before has nobody yet: step 2 is key 3, step
    # 3 never has anyone before key 4 (absent), one AND for step 2's reach
    assert funnel_server.bitops_needed(one_start, [8, 0, 8, 8, 0]) == 1


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[bitcore.BitCore]:
    with private_redis(tmp_path) as started:
        yield bitcore.BitCore(started.client())


def test_a_full_redis_gets_its_funnel_from_numpy(full_redis: bitcore.BitCore) -> None:
    did = [[set(range(0, 200, 2))], [set(range(0, 200, 3))], [set(range(0, 200, 5))]]
    write(full_redis, ["a", "b", "c"], did)
    fill_up(full_redis.redis)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        funnel.funnel(full_redis, ["a", "b", "c"], START, 1, where="server")
    got = funnel.funnel(full_redis, ["a", "b", "c"], START, 1)  # auto: the server first
    assert [s.count for s in got.steps] == oracle(did, 1)
    assert not list(full_redis.redis.scan_iter(full_redis.keys.bitop_keys_pattern()))
