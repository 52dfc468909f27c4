"""Property: single-flat, single-sharded and the Redis Cluster give identical answers for random
marks and random bit-operation and segment expressions (issue 17). Bounded: a few dozen examples
of a few hundred marks each, ids over a handful of shards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from cluster_support import LocalCluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster

import bitcore
from bitcore import periods
from bitcore.bitmaps import Bitmap
from bitcore.cohort.engine import cohort_table
from bitcore.funnel import funnel_trend
from bitcore.segments import evaluate, parse_expression

SHARD = 1 << 20
EVENTS = ("a", "b", "c")
#: Ids near the edges of shards 0, 1, 2 and 5 (and the top of shard 5), so shard boundaries
#: and empty shards in between are always in play.
IDS = st.one_of(
    st.integers(0, 300),
    st.integers(SHARD - 50, SHARD + 50),
    st.integers(2 * SHARD, 2 * SHARD + 200),
    st.integers(6 * SHARD - 20, 6 * SHARD - 1),
)
DAYS = st.sampled_from([datetime(2024, 5, 6), datetime(2024, 5, 7), datetime(2024, 6, 1)])
MARKS = st.lists(st.tuples(st.sampled_from(EVENTS), IDS, DAYS), min_size=1, max_size=300)
UNIQUES = st.lists(st.tuples(st.just("vip"), IDS), max_size=20)

LEAVES = st.sampled_from(EVENTS).map(lambda name: ("event", name)) | st.just(("unique", "vip"))
EXPRESSIONS = st.recursive(
    LEAVES,
    lambda inner: (
        st.tuples(st.sampled_from(["and", "or", "xor"]), inner, inner)
        | st.tuples(st.just("not"), inner)
    ),
    max_leaves=6,
)
MONTH = periods.month(2024, 5)


def _bitmap(client: bitcore.BitCore, node: Any) -> Bitmap:
    """The expression as nested ``BitOp*`` objects."""
    kind = node[0]
    if kind == "event":
        return client.MonthEvents(node[1], 2024, 5)
    if kind == "unique":
        return client.UniqueEvents(node[1])
    if kind == "not":
        return ~_bitmap(client, node[1])
    ops = {"and": client.BitOpAnd, "or": client.BitOpOr, "xor": client.BitOpXor}
    return ops[kind](_bitmap(client, node[1]), _bitmap(client, node[2]))


def _text(node: Any) -> str:
    """The expression as segment text."""
    kind = node[0]
    if kind == "event":
        return str(node[1])
    if kind == "unique":
        return f"unique({node[1]})"
    if kind == "not":
        return f"not ({_text(node[1])})"
    return f"({_text(node[1])}) {kind} ({_text(node[2])})"


def _no_segments(name: str) -> Any:
    raise KeyError(name)


def _answers(client: bitcore.BitCore, expression: Any, probes: list[int]) -> tuple[Any, ...]:
    bitmap = _bitmap(client, expression)
    segment = evaluate(parse_expression(_text(expression)), client, MONTH, _no_segments)
    return (
        len(bitmap),
        list(bitmap),
        [probe in bitmap for probe in probes],
        list(segment),
        client.count_once(segment),
        len(client.DayEvents("a", 2024, 5, 7)),
        sorted(client.get_event_names()),
        _reports(client),
    )


def _reports(client: bitcore.BitCore) -> tuple[Any, ...]:
    """A cohort table of each type (both engines) and a funnel trend, as plain numbers."""
    tables = [
        cohort_table(
            client,
            "a",
            "b",
            None,
            "c",
            "days",
            4,
            3,
            now=datetime(2024, 5, 8),
            where=where,
            cohort_type=kind,
        )
        for where in ("client", "server")
        for kind in ("recurring", "first_time")
    ]
    trend = funnel_trend(client, ["a", "b", "c"], periods.day(2024, 5, 7), 3, 2)
    return (
        [(t.sizes, t.cells) for t in tables],
        [[(s.count, s.drop_off, s.of_first) for s in f.steps] for f in trend.funnels],
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(marks=MARKS, uniques=UNIQUES, expression=EXPRESSIONS, probes=st.lists(IDS, max_size=5))
def test_three_layouts_agree(
    redis_client: redis.Redis,
    redis_cluster: LocalCluster,
    cluster_client: RedisCluster,
    marks: list[tuple[str, int, datetime]],
    uniques: list[tuple[str, int]],
    expression: Any,
    probes: list[int],
) -> None:
    redis_client.flushall()
    redis_cluster.flushall()
    clients = [
        bitcore.BitCore(redis_client),
        bitcore.BitCore(redis_client, layout="sharded", key_prefix="sh_"),
        bitcore.BitCore(cluster_client),
    ]
    results = []
    for client in clients:
        client.mark_many(marks)
        if uniques:
            client.mark_unique_many(uniques)
        results.append(_answers(client, expression, probes))
    assert results[0] == results[1] == results[2]
