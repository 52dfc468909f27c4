"""Reports on the sharded layout work on their shards concurrently (``shards.Router.each``), and
their cost limit (``max_bytes``, the dashboard's ``BITCORE_REPORT_MAX_BYTES``) applies to the
bytes of all shards together, checked before any shard is read (issue 17)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

import bitcore
from bitcore import lifecycle, periods, shards, stickiness
from bitcore.cohort.engine import cohort_table
from bitcore.funnel import funnel
from bitcore.reading import ReportTooCostly

SHARD = 1 << 20
DAY = datetime(2024, 5, 7)
#: Users in six shards, each far into its shard, so every shard's keys are a few KiB long.
USERS = [shard * SHARD + 40_000 + shard for shard in range(6)]
#: Commands that read or combine bitmaps: none of them may run when a report is refused.
READS = ("mget", "getrange", "bitop", "bitcount", "get")


def _mark(b: bitcore.BitCore) -> None:
    b.mark_many([(name, user, DAY) for user in USERS for name in ("a", "b")])


def _calls(b: bitcore.BitCore) -> dict[str, int]:
    """Calls of each of ``READS`` so far, summed over every node."""
    totals = dict.fromkeys(READS, 0)
    for node in shards.primaries_of(b.redis):
        stats = node.info("commandstats")
        for name in READS:
            totals[name] += int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
    return totals


def _shard_bytes(b: bitcore.BitCore, keys: list[str]) -> list[int]:
    """Per shard in use, the bytes of its share of ``keys``."""
    return [
        sum(b.node_of_shard(s).strlen(b.shard_key(key, s)) for key in keys)
        for s in b.shards_in_use()
    ]


def _reports(b: bitcore.BitCore, max_bytes: int | None, where: Any) -> dict[str, Any]:
    day = periods.day(2024, 5, 7)
    table = cohort_table(b, "a", "b", None, None, "days", 1, 0, now=DAY, max_bytes=max_bytes,
                         where=where)  # fmt: skip
    steps = funnel(b, ["a", "b"], day, 1, max_bytes=max_bytes, where=where).steps
    return {"cohort": (table.sizes, table.cells), "funnel": [s.count for s in steps]}


@pytest.fixture
def sharded(request: pytest.FixtureRequest, redis_client: redis.Redis) -> bitcore.BitCore:
    if request.param == "cluster":
        return bitcore.BitCore(request.getfixturevalue("cluster_client"))
    return bitcore.BitCore(redis_client, layout="sharded")


@pytest.mark.parametrize("sharded", ["sharded", "cluster"], indirect=True)
@pytest.mark.parametrize("where", ["client", "server"])
def test_the_limit_is_on_all_shards_together(sharded: bitcore.BitCore, where: Any) -> None:
    _mark(sharded)
    keys = [sharded.keys.event_key(n, periods.day(2024, 5, 7)) for n in ("a", "b")]
    per_shard = _shard_bytes(sharded, keys)
    total = sum(per_shard)
    assert len(per_shard) == 6 and max(per_shard) < total // 2
    expected = {"cohort": ([6], [[6]]), "funnel": [6, 6]}
    assert _reports(sharded, None, where) == expected
    assert _reports(sharded, total, where) == expected  # exactly at the limit: allowed
    before = _calls(sharded)
    for shape in ("cohort", "funnel"):
        # every shard alone is far under the limit; all of them together are over it
        with pytest.raises(ReportTooCostly) as refused:
            day = periods.day(2024, 5, 7)
            if shape == "cohort":
                cohort_table(sharded, "a", "b", None, None, "days", 1, 0, now=DAY,
                             max_bytes=total - 1, where=where)  # fmt: skip
            else:
                funnel(sharded, ["a", "b"], day, 1, max_bytes=total - 1, where=where)
        assert (refused.value.needed, refused.value.limit) == (total, total - 1)
    assert _calls(sharded) == before  # refused before any shard was read


def test_the_cluster_reads_its_nodes_at_once(cluster_client: RedisCluster) -> None:
    """Work on shards of different nodes overlaps: each waits for the others at a barrier,
    which only a concurrent run passes (a sequential one breaks it after its timeout)."""
    b = bitcore.BitCore(cluster_client)
    _mark(b)
    groups = b._router.by_node(b.shards_in_use())  # type: ignore[union-attr]
    assert len(groups) == 3  # six shards over the three primaries
    barrier = threading.Barrier(len(groups), timeout=10)
    firsts = {group[0] for _, group in groups}

    def work(view: bitcore.BitCore, shard: int) -> int:
        if shard in firsts:
            barrier.wait()
        return len(view.DayEvents("a", 2024, 5, 7))

    assert b.each_shard(work) == [1] * 6


def test_lanes_are_bounded_per_node_and_in_all(cluster_client: RedisCluster) -> None:
    router = bitcore.BitCore(cluster_client)._router
    assert router is not None
    many = list(range(200))
    lanes = router._lanes(many)
    assert sorted(s for lane in lanes for s in lane) == many  # every shard once
    assert len(lanes) <= shards.MAX_SHARD_LANES
    for lane in lanes:  # a lane stays on one node: nodes' lanes never wait for each other
        assert len({id(router.node(s)) for s in lane}) == 1
    per_node = {id(router.node(lane[0])) for lane in lanes}
    assert len(lanes) == len(per_node) * shards.SHARDS_PER_NODE_AT_ONCE


def test_one_redis_works_on_two_shards_at_once(redis_client: redis.Redis) -> None:
    router = bitcore.BitCore(redis_client, layout="sharded")._router
    assert router is not None
    assert router._lanes([0, 1, 2, 3, 4]) == [[0, 2, 4], [1, 3]]
    assert router._lanes([3]) == [[3]]


def test_a_failed_shard_fails_the_report_after_every_lane_is_done(
    cluster_client: RedisCluster,
) -> None:
    b = bitcore.BitCore(cluster_client)
    _mark(b)
    finished: list[int] = []
    lock = threading.Lock()

    def work(view: bitcore.BitCore, shard: int) -> int:
        if shard == 2:
            raise redis.ResponseError("WRONGTYPE shard 2")
        with lock:
            finished.append(shard)
        return shard

    with pytest.raises(redis.ResponseError, match="shard 2"):
        b.each_shard(work)
    assert sorted(finished) == [0, 1, 3, 4, 5]  # no lane left running when it raised


def test_a_forked_child_gets_threads_of_its_own(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = bitcore.BitCore(redis_client, layout="sharded")
    _mark(b)
    assert b.each_shard(lambda view, shard: shard) == list(range(6))
    router = b._router
    assert router is not None
    parents = router._executor()
    monkeypatch.setattr(shards.os, "getpid", lambda: -1)  # as a child sees itself after fork
    assert router._executor() is not parents
    assert b.each_shard(lambda view, shard: len(view.DayEvents("b", 2024, 5, 7))) == [1] * 6


@pytest.mark.parametrize("sharded", ["sharded", "cluster"], indirect=True)
def test_lifecycle_and_stickiness_limits_are_on_all_shards_together(
    sharded: bitcore.BitCore,
) -> None:
    """Like cohorts and funnels: each shard alone is under the limit (at most a third of it),
    all of them together over it, so the report is refused before any shard is read."""
    _mark(sharded)
    day = periods.day(2024, 5, 7)
    limit = sum(_shard_bytes(sharded, [sharded.keys.event_key("a", day)])) - 1
    reports = {
        "lifecycle": lambda most: lifecycle.lifecycle(sharded, "a", "day", 1, day, max_bytes=most),
        "stickiness": lambda most: stickiness.stickiness(
            sharded, "a", periods.week(2024, 19), max_bytes=most
        ),
    }
    assert reports["lifecycle"](None).periods[-1].new == 6
    assert reports["stickiness"](None).histogram[0] == 6
    before = _calls(sharded)
    for name, report in reports.items():
        with pytest.raises(ReportTooCostly):
            report(limit)
        assert _calls(sharded) == before, name  # refused before any shard was read


@pytest.mark.parametrize("sharded", ["sharded", "cluster"], indirect=True)
def test_a_big_write_is_two_round_trips_per_node_and_nodes_write_at_once(
    sharded: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch over six shards, each over the script's few bits: per node a round trip of
    checks (the registry of shards with them on one Redis), then one of transactions; on the
    cluster the registry is joined first, and the three nodes write at once (each waits for
    the others at a barrier, which a sequential run breaks after its timeout)."""
    from bitcore import bulk, wire

    sharded.mark_event("warm", 1)  # the dataset check and the first script load are done
    router = sharded._router
    assert router is not None
    nodes = router.by_node(range(6))
    barrier = threading.Barrier(len(nodes), timeout=10)
    real_write, real_trip = bulk.set_bits_per_shard, wire.round_trip
    sent: list[tuple[int, int]] = []  # (node, commands) of each round trip

    def write(node: Any, shares: Any, before: Any = ()) -> None:
        barrier.wait()
        real_write(node, shares, before)

    def trip(node: Any, commands: list[bytes]) -> list[Any]:
        sent.append((id(node), len(commands)))
        return real_trip(node, commands)

    monkeypatch.setattr(bulk, "set_bits_per_shard", write)
    monkeypatch.setattr(wire, "round_trip", trip)
    users = [shard * SHARD + offset for shard in range(6) for offset in range(0, 3000, 7)]
    sharded.mark_many([("big", user, DAY) for user in users])
    per_node = {id(node): [n for where, n in sent if where == id(node)] for node, _ in nodes}
    registry = id(router.node_of_key(sharded._sharded.shards_key()))  # type: ignore[union-attr]
    if len(nodes) == 1:
        assert per_node[registry][0] == 1 + 6  # the registry's SADD and six shards' checks
    else:
        assert per_node[registry][0] == 1  # the SADD alone, before any node writes
        per_node[registry].pop(0)
    assert all(len(trips) == 2 for trips in per_node.values())
    assert list(sharded.DayEvents("big", 2024, 5, 7)) == users


def test_a_write_over_nodes_on_an_event_loop_stays_on_its_thread(
    cluster_client: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loop (``bitcore.aio``) the nodes are written one after the other in the loop's
    greenlet: a router thread's round trip would bypass the loop's connection and block it."""
    from hung_redis_support import on_a_loop

    from bitcore import aio, bulk

    b = bitcore.BitCore(cluster_client)
    b.mark_event("warm", 1)
    writers: set[int] = set()
    real = bulk.set_bits_per_shard

    def write(node: Any, shares: Any, before: Any = ()) -> None:
        writers.add(threading.get_ident())
        real(node, shares, before)

    monkeypatch.setattr(bulk, "set_bits_per_shard", write)
    users = [shard * SHARD + offset for shard in range(6) for offset in range(0, 700, 7)]
    on_a_loop(aio.run(b._write_shards, *_split(b, users)))
    assert len(writers) == 1  # the loop's thread: no router thread wrote a node
    assert len(b._router.by_node(range(6))) == 3  # type: ignore[union-attr]
    assert list(b.DayEvents("big", 2024, 5, 7)) == users


def _split(b: bitcore.BitCore, users: list[int]) -> tuple[Any, Any]:
    """A plan of ``users`` marking "big" on ``DAY``, split per shard as the writer splits it."""
    plan = b.plan_marks([("big", user, DAY) for user in users])
    layout = b._sharded
    assert layout is not None
    return shards.split_writes(layout, plan.writes), shards.split_firsts(layout, plan.firsts)
