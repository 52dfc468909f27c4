"""The sharded layout (issue 17): the same answers as the flat layout, on one Redis and on a real
Redis Cluster, with every key of a shard in one slot and a shard's keys only where it has users."""

from __future__ import annotations

from datetime import datetime

import pytest
import redis
from cluster_support import LocalCluster
from redis.cluster import RedisCluster
from redis.crc import key_slot

import bitcore
from bitcore import periods
from bitcore.keys import ShardedKeyLayout, layout_named
from bitcore.segments import evaluate, parse_expression
from bitcore.shards import ShardedLayoutUnsupported

MAY = datetime(2024, 5, 7, 13)
SHARD = 1 << 20
#: Users in shards 0, 1 and 7: a test over them crosses shards and leaves holes between them.
USERS = [0, 5, SHARD, SHARD + 3, 7 * SHARD, 7 * SHARD + 9]


def _mark(b: bitcore.BitCore) -> None:
    b.mark_many([("a", u, MAY) for u in USERS] + [("b", u, MAY) for u in USERS[::2]])
    b.mark_unique("vip", SHARD + 3)


def test_layout_is_chosen_per_client(
    redis_client: redis.Redis, cluster_client: RedisCluster
) -> None:
    assert bitcore.BitCore(redis_client).layout == "flat"
    assert bitcore.BitCore(redis_client, layout="sharded").layout == "sharded"
    assert bitcore.BitCore(cluster_client).layout == "sharded"
    with pytest.raises(ValueError, match="flat layout cannot run on a Redis Cluster"):
        bitcore.BitCore(cluster_client, layout="flat")
    with pytest.raises(ValueError, match="one of flat, sharded"):
        bitcore.BitCore(redis_client, layout="round")
    with pytest.raises(ValueError, match="shard_bits"):
        bitcore.BitCore(redis_client, layout="sharded", shard_bits=8)


def test_the_environment_asks_for_a_cluster(
    redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis://127.0.0.1:{redis_cluster.primaries[0].port}/0"
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    assert isinstance(bitcore.BitCore(url).redis, RedisCluster)
    monkeypatch.setenv("REDIS_URL", url)
    from_env = bitcore.BitCore()
    assert isinstance(from_env.redis, RedisCluster) and from_env.layout == "sharded"


def test_every_key_of_a_shard_shares_one_slot() -> None:
    layout = ShardedKeyLayout()
    flat = layout_named("flat")
    names = [
        flat.event_key("a", periods.month(2024, 5)),
        flat.unique_key("_seen"),
        flat.first_time_key("a", periods.day(2024, 5, 7)),
        flat.ever_key("a"),
        flat.bitop_key("AND", ["trackist_a_2024-5", "trackist_b_2024-5"]),
        flat.segment_scratch_prefix() + "0" * 40,
    ]
    for shard in (0, 1, 4095):
        slots = {key_slot(layout.shard_key(name, shard).encode()) for name in names}
        assert len(slots) == 1
    assert layout.parse_shard_key("trackist_a_2024-5") is None
    assert layout.parse_shard_key("{trackist_sx}a") is None


def test_a_shard_holds_only_its_own_range(redis_client: redis.Redis) -> None:
    b = bitcore.BitCore(redis_client, layout="sharded")
    b.mark_event("a", 7 * SHARD + 9, now=MAY)
    key = "trackist_a_2024-5"
    assert redis_client.strlen("{trackist_s7}" + key) == 2  # bit 9 of the shard: two bytes
    assert not redis_client.exists("{trackist_s0}" + key, key)
    assert redis_client.smembers("bitcore:shards:trackist_") == {b"7"}


def test_reads_answer_as_the_flat_layout_does(layout_bc: bitcore.BitCore) -> None:
    _mark(layout_bc)
    a, b = layout_bc.MonthEvents("a", 2024, 5), layout_bc.MonthEvents("b", 2024, 5)
    assert len(a) == 6 and len(b) == 3
    assert list(a) == USERS
    assert list(a & b) == USERS[::2]
    assert list(~b) == USERS[1::2]
    assert list(layout_bc.BitOpXor(a, b)) == USERS[1::2]
    assert list(a | layout_bc.DayEvents("nothing", 2024, 5, 7)) == USERS
    assert 7 * SHARD + 9 in a and 7 * SHARD + 8 not in a and 3 * SHARD not in a
    assert len(layout_bc.YearEvents("a", 2024)) == 6
    assert list(layout_bc.UniqueEvents("vip")) == [SHARD + 3]
    assert layout_bc.count_once(a & ~b) == 3
    assert sorted(layout_bc.get_event_names()) == ["a", "b", "vip"]


def test_iteration_is_ascending_across_shards_in_any_slice(layout_bc: bitcore.BitCore) -> None:
    _mark(layout_bc)
    a = layout_bc.MonthEvents("a", 2024, 5)
    assert list(layout_bc.iter_members(a, chunk_bytes=4096)) == USERS
    assert list(layout_bc.iter_members(a & a, chunk_bytes=5000)) == USERS


def test_unmarks_and_deletes(layout_bc: bitcore.BitCore) -> None:
    _mark(layout_bc)
    layout_bc.unmark_event("a", SHARD, now=MAY)
    layout_bc.unmark_unique("vip", SHARD + 3)
    assert SHARD not in layout_bc.MonthEvents("a", 2024, 5)
    assert len(layout_bc.UniqueEvents("vip")) == 0
    layout_bc.DayEvents("b", 2024, 5, 7).delete()
    assert len(layout_bc.DayEvents("b", 2024, 5, 7)) == 0
    ab = layout_bc.MonthEvents("a", 2024, 5) & layout_bc.MonthEvents("b", 2024, 5)
    assert layout_bc.delete_temporary_bitop_keys() > 0
    assert len(ab) == 2  # computed again when read: data was kept
    assert layout_bc.delete_all_events() > 0
    assert len(layout_bc.universe_bitmap()) == 0
    assert layout_bc.get_event_names() == []
    layout_bc.mark_event("c", 3 * SHARD, now=MAY)  # the registry of shards starts afresh
    assert list(layout_bc.MonthEvents("c", 2024, 5)) == [3 * SHARD]


def test_first_time_bitmaps_are_kept_per_shard(layout_bc: bitcore.BitCore) -> None:
    layout_bc.mark_event("a", 7 * SHARD, now=datetime(2024, 5, 7))
    layout_bc.mark_event("a", 7 * SHARD, now=datetime(2024, 5, 8))
    if layout_bc.layout == "flat":
        day8 = layout_bc.redis.bitcount(layout_bc.keys.first_time_key("a", periods.day(2024, 5, 8)))
        day7 = layout_bc.redis.bitcount(layout_bc.keys.first_time_key("a", periods.day(2024, 5, 7)))
    else:
        layout = layout_bc.keys
        assert isinstance(layout, ShardedKeyLayout)
        node = layout_bc._router.node(7)  # type: ignore[union-attr]
        day8 = node.bitcount(
            layout.shard_key(layout.first_time_key("a", periods.day(2024, 5, 8)), 7)
        )
        day7 = node.bitcount(
            layout.shard_key(layout.first_time_key("a", periods.day(2024, 5, 7)), 7)
        )
    assert (day7, day8) == (1, 0)


def test_segments_evaluate_per_shard(layout_bc: bitcore.BitCore) -> None:
    _mark(layout_bc)

    def unknown(name: str) -> object:
        raise KeyError(name)

    month = periods.month(2024, 5)
    tree = parse_expression("(a and not b) or unique(vip)")
    segment = evaluate(tree, layout_bc, month, unknown)  # type: ignore[arg-type]
    assert list(segment) == [5, SHARD + 3, 7 * SHARD + 9]
    assert layout_bc.count_once(evaluate(tree, layout_bc, month, unknown, compute=False)) == 3  # type: ignore[arg-type]


def test_write_limits_hold_across_shards(layout_bc: bitcore.BitCore) -> None:
    from bitcore.bulk import Budget, Quota, WriteRefused

    quota = Quota("bitcore:ratelimit:test", limit=2, ttl=60)
    for _ in range(2):
        assert layout_bc.write_plan(layout_bc.plan_marks([("a", 1, MAY)]), quota)
    assert not layout_bc.write_plan(layout_bc.plan_marks([("a", 2, MAY)]), quota)
    assert 2 not in layout_bc.MonthEvents("a", 2024, 5)
    with pytest.raises(WriteRefused, match="max_bytes"):  # 7 shards' keys of 128 KiB each
        layout_bc.mark_many([("b", 7 * SHARD - 1, MAY)], budget=Budget(max_bytes=100_000))
    with pytest.raises(WriteRefused, match="max_event_names"):
        layout_bc.mark_many([("c", 1), ("d", 1)], budget=Budget(max_event_names=2))
    assert sorted(layout_bc.get_event_names()) == ["a"]  # nothing of the refused writes
    names = Quota("bitcore:names:test", limit=1, ttl=60)
    layout_bc.mark_many([("e", 3, MAY)], budget=Budget(new_names_quota=names, max_bytes=1 << 20))
    with pytest.raises(WriteRefused, match="new_names_quota"):
        layout_bc.mark_many([("f", 3, MAY)], budget=Budget(new_names_quota=names))
    assert list(layout_bc.MonthEvents("e", 2024, 5)) == [3]


def test_what_the_sharded_layout_does_not_do_yet_is_refused(
    redis_client: redis.Redis, cluster_client: RedisCluster
) -> None:
    for client in (
        bitcore.BitCore(redis_client, layout="sharded"),
        bitcore.BitCore(cluster_client),
    ):
        with pytest.raises(ShardedLayoutUnsupported, match="not built for the sharded"):
            client.require_flat("the cohort engine")
        assert len(client.universe_bitmap()) == 0  # nothing was written
    with pytest.raises(ShardedLayoutUnsupported, match="pipeline"):
        bitcore.BitCore(redis_client.pipeline(), layout="sharded")


def test_a_write_over_many_shards_is_one_round_trip_per_node(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bitcore import wire

    b = bitcore.BitCore(redis_client, layout="sharded")
    b.mark_event("warm", 1)  # the registry of shards and the dataset check are done once
    b._router.register(range(8))  # type: ignore[union-attr]
    sent: list[int] = []
    real = wire.round_trip
    monkeypatch.setattr(wire, "round_trip", lambda r, cmds: sent.append(len(cmds)) or real(r, cmds))
    b.mark_many([("a", shard * SHARD + 1, MAY) for shard in range(8)])
    assert sent == [9]  # the registry of shards and eight shards' script calls: one round trip
    assert list(b.MonthEvents("a", 2024, 5)) == [shard * SHARD + 1 for shard in range(8)]


def test_cohorts_and_funnels_are_counted_per_shard_and_added_up(
    layout_bc: bitcore.BitCore,
) -> None:
    from bitcore.cohort.engine import cohort_table
    from bitcore.funnel import funnel

    day = [datetime(2024, 5, d) for d in (6, 7, 8)]
    marks = [("signup", u, day[0]) for u in USERS]
    marks += [("use", u, day[1]) for u in USERS[:4]] + [("use", u, day[2]) for u in USERS[3:]]
    marks += [("pay", u, day[2]) for u in USERS[2:5]]
    layout_bc.mark_many(marks)
    for where in ("client", "server"):
        table = cohort_table(
            layout_bc, "signup", "use", None, None, "days", 3, 2, now=day[2], where=where
        )
        assert table.sizes == [6, 0, 0]
        assert table.cells == [[None, 4, 3], [None, None, None], [None, None, None]]
    steps = funnel(layout_bc, ["signup", "use", "pay"], periods.day(2024, 5, 6), 3).steps
    assert [(s.count, s.drop_off) for s in steps] == [(6, 0), (6, 0), (3, 3)]


def test_segments_are_saved_in_one_slot_and_used_by_funnels(layout_bc: bitcore.BitCore) -> None:
    from bitcore.cohort.engine import cohort_table
    from bitcore.funnel import funnel
    from bitcore.segments import SegmentExists, SegmentStore

    _mark(layout_bc)
    store = SegmentStore(layout_bc)
    store.save("both", "a and b")
    store.save("vips", "unique(vip) or @both")
    with pytest.raises(SegmentExists):
        store.save("both", "a")
    assert store.names() == ["both", "vips"]
    if layout_bc.layout == "sharded":
        slots = {key_slot(k.encode()) for k in (store.index_key, layout_bc.keys.segment_key("x"))}
        assert len(slots) == 1
    assert list(store.bitmap("vips", periods.month(2024, 5))) == [0, SHARD, SHARD + 3, 7 * SHARD]
    steps = funnel(layout_bc, ["a", "segment:both"], periods.month(2024, 5), 1).steps
    assert [s.count for s in steps] == [6, 3]
    table = cohort_table(layout_bc, "segment:vips", "a", None, None, "months", 1, 0, now=MAY)
    assert (table.sizes, table.cells) == ([4], [[4]])
    store.delete("vips")
    assert store.names() == ["both"]


def test_the_cleanup_job_sweeps_every_shard_on_every_primary(layout_bc: bitcore.BitCore) -> None:
    from bitcore import cleanup

    _mark(layout_bc)
    a, b = layout_bc.MonthEvents("a", 2024, 5), layout_bc.MonthEvents("b", 2024, 5)
    assert len(a & b) == 3 and len(a | b) == 6  # temporary keys in shards 0, 1 and 7
    before = cleanup.count_temporary_keys(layout_bc.redis, layout_bc.keys)
    assert before.complete and before.total == (2 if layout_bc.layout == "flat" else 6)
    result = cleanup.run_locked(layout_bc.redis, layout_bc.keys, all_keys=True)
    assert result is not None and result.keys == before.total
    assert cleanup.count_temporary_keys(layout_bc.redis, layout_bc.keys).total == 0
    assert cleanup.last_run(layout_bc.redis) is not None
    assert len(a) == 6 and list(a & b) == USERS[::2]  # data kept; results computed again


def test_erasure_clears_a_user_in_their_shard(layout_bc: bitcore.BitCore) -> None:
    _mark(layout_bc)
    a = layout_bc.MonthEvents("a", 2024, 5)
    assert len(a & a) == 6
    dry = layout_bc.forget(SHARD + 3, dry_run=True)
    assert SHARD + 3 in a and dry.keys_changed > 0
    report = layout_bc.forget(SHARD + 3)
    assert report.internal_id == SHARD + 3 and report.data_keys_changed >= 5
    assert SHARD + 3 not in a and SHARD + 3 not in layout_bc.universe_bitmap()
    assert len(layout_bc.UniqueEvents("vip")) == 0
    assert list(a) == [u for u in USERS if u != SHARD + 3]
    assert layout_bc.forget(SHARD + 3).keys_changed == 0


def test_drill_down_gives_the_users_behind_the_numbers(layout_bc: bitcore.BitCore) -> None:
    from bitcore import drilldown
    from bitcore.cohort.engine import cohort_table
    from bitcore.funnel import funnel

    day = [datetime(2024, 5, d) for d in (6, 7)]
    layout_bc.mark_many([("signup", u, day[0]) for u in USERS])
    layout_bc.mark_many([("use", u, day[1]) for u in USERS[1::2]])
    layout_bc.mark_event("signup", 9, now=day[1])  # a first time on day 7, no use after
    for kind in ("recurring", "first_time"):
        table = cohort_table(
            layout_bc, "signup", "use", None, None, "days", 2, 1, now=day[1], cohort_type=kind
        )
        assert list(table.cohort_users(0)) == USERS
        assert list(table.cell_users(0, 1)) == USERS[1::2]
        assert len(table.cell_users(0, 1)) == table.cells[0][1] == 3
    found = funnel(layout_bc, ["signup", "use"], periods.day(2024, 5, 6), 2)
    assert list(found.step_users(2)) == USERS[1::2]
    assert list(found.dropoff_users(2)) == USERS[::2]
    assert drilldown.cost(layout_bc, found.step_users(2)) > 0


def test_lifecycle_and_stickiness_sum_their_shards(
    layout_bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    from bitcore.lifecycle import lifecycle
    from bitcore.stickiness import stickiness

    days = [datetime(2024, 5, d) for d in (6, 7, 13, 14, 15)]
    marks = [("a", u, days[0]) for u in USERS]
    marks += [("a", u, day) for u in USERS[::2] for day in days[1:]]
    reference = bitcore.BitCore(redis_client, key_prefix="flat_")
    answers = []
    for client in (layout_bc, reference):
        client.mark_many(marks)
        weeks = lifecycle(client, "a", "week", 2, periods.week(2024, 20))
        answers.append((weeks.periods, stickiness(client, "a", periods.week(2024, 20)).histogram))
    assert answers[0] == answers[1]
    assert answers[0][0][-1].returning == 3 and answers[0][1][2] == 3  # 3 users on 3 days


def test_retention_on_or_after_is_counted_per_shard_too(layout_bc: bitcore.BitCore) -> None:
    """The on-or-after unions ride in each shard's plan: the same cells as the flat layout."""
    from bitcore.cohort.engine import cohort_table

    day = [datetime(2024, 5, d) for d in (6, 7, 8, 9)]
    marks = [("signup", u, day[0]) for u in USERS]
    marks += [("use", u, day[1]) for u in USERS[:2]] + [("use", u, day[3]) for u in USERS[1:5]]
    layout_bc.mark_many(marks)
    for where in ("client", "server"):
        on = cohort_table(layout_bc, "signup", "use", None, None, "days", 1, 3, now=day[0],
                          until=day[3], where=where)  # fmt: skip
        after = cohort_table(layout_bc, "signup", "use", None, None, "days", 1, 3, now=day[0],
                             until=day[3], where=where, retention="on_or_after")  # fmt: skip
        assert on.cells == [[None, 2, None, 4]], where
        assert after.cells == [[5, 5, 4, 4]], where  # day 0+ and 1+: users 0-4; 2+, 3+: 1-4


@pytest.mark.parametrize("size", [3, 256, 257, 5000])
def test_ids_are_split_at_shard_boundaries_like_the_set_oracle(size: int) -> None:
    import random

    from bitcore import shards

    rng = random.Random(size)
    edges = [SHARD - 1, SHARD, 2 * SHARD - 1, 2 * SHARD, 7 * SHARD, (1 << 32) - 1]
    ids = set(edges[: min(size, len(edges))])
    while len(ids) < size:
        ids.add(rng.randrange(8 * SHARD))
    oracle: dict[int, set[int]] = {}
    for user in ids:
        oracle.setdefault(user // SHARD, set()).add(user % SHARD)
    layout = ShardedKeyLayout()
    split = shards.split_writes(layout, {"k": ids})
    assert list(split) == sorted(oracle)
    assert {s: set(keys[layout.shard_key("k", s)]) for s, keys in split.items()} == oracle
    firsts = shards.split_firsts(layout, {"ever": {("f1", "f2"): ids}})
    named = {s: (layout.shard_key("ever", s), layout.shard_key("f1", s)) for s in oracle}
    assert {
        s: {tuple(groups): [set(o) for o in groups.values()] for groups in by_ever.values()}
        for s, by_ever in firsts.items()
    } == {s: {((named[s][1], layout.shard_key("f2", s)),): [local]} for s, local in oracle.items()}
    assert all(list(by_ever) == [named[s][0]] for s, by_ever in firsts.items())


def test_first_times_of_a_big_batch_across_shards_answer_as_flat(
    layout_bc: bitcore.BitCore,
) -> None:
    from bitcore import first_time

    day1, day2 = datetime(2024, 5, 7, 9), datetime(2024, 5, 8, 9)
    near = [*range(SHARD - 400, SHARD + 400), 2 * SHARD - 1, 2 * SHARD, 3 * SHARD - 1]
    before = near[::3]  # seen on day 1: not a first time on day 2
    layout_bc.mark_many([("a", u, day1) for u in before])
    layout_bc.mark_many([("a", u, day2) for u in near] + [("a", u, day1) for u in near[1::7]])
    layout_bc.mark_many([("a", SHARD - 1, day2), ("a", 3 * SHARD, day2)])  # a few: no numpy
    first1 = sorted({*before, *near[1::7]})
    first2 = sorted(set(near) - set(first1) | {3 * SHARD})
    assert list(first_time.first_time_bitmap(layout_bc, "a", periods.day(2024, 5, 7))) == first1
    assert list(first_time.first_time_bitmap(layout_bc, "a", periods.day(2024, 5, 8))) == first2
    assert list(first_time.ever_bitmap(layout_bc, "a")) == sorted({*near, 3 * SHARD})
    assert list(layout_bc.DayEvents("a", 2024, 5, 8)) == sorted({*near, 3 * SHARD})
