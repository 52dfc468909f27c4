"""The id map on all three layouts (issue 17): single-flat, single-sharded and the cluster give
the same external ids back; on the sharded layout the map is split into map groups, each in a
slot of its own (``bitcore.idmap_groups``), so no key or node holds every id."""

from __future__ import annotations

import random
import threading
from datetime import datetime
from typing import Any

import cluster_support
import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from bitcore import BitCore, bulk, idmap, idmap_groups
from bitcore.drilldown import external_members
from bitcore.idmap import IdMapFull, IdMappingMismatch
from bitcore.idmap_groups import GroupedIdMap
from bitcore.keys import KeyLayout, ShardedKeyLayout
from bitcore.migrate import migrate_layout
from bitcore.segments import SegmentStore
from bitcore.shards import ShardedLayoutUnsupported

WHEN = datetime(2024, 5, 7, 13)


@pytest.fixture(params=("flat", "sharded", "cluster"))
def mapped(request: pytest.FixtureRequest, redis_client: redis.Redis) -> BitCore:
    """A mapped client on an empty Redis, once per layout."""
    if request.param == "cluster":
        return BitCore(request.getfixturevalue("cluster_client"), id_mapping=True)
    return BitCore(redis_client, layout=request.param, id_mapping=True)


def sharded_only(client: BitCore) -> GroupedIdMap:
    """The client's map in groups (skipping nothing: the fixture's flat form is asked for)."""
    found = client._dataset_id_map()
    assert isinstance(found, GroupedIdMap)
    return found


def test_marks_come_back_as_external_ids(mapped: BitCore) -> None:
    ids = [f"u{i}" for i in range(1000)] + [2**62, "0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b"]
    mapped.mark_many([("active", x, WHEN) for x in ids])
    mapped.mark_event("active", "alice", WHEN)
    month = mapped.MonthEvents("active", 2024, 5)
    assert set(month) == {*ids, "alice"}
    assert len(month) == len(ids) + 1
    assert "alice" in month and "bob" not in month and 2**62 in month


def test_members_bit_operations_and_segments_yield_external_ids(mapped: BitCore) -> None:
    rng = random.Random(5)
    users = [f"usr_{n:x}" for n in range(300)] + list(range(10**12, 10**12 + 50))
    did: dict[str, set[Any]] = {"active": set(), "pay": set()}
    marks = []
    for _ in range(900):
        event, user = rng.choice(tuple(did)), rng.choice(users)
        did[event].add(user)
        marks.append((event, user, WHEN))
    mapped.mark_many(marks)
    active, pay = mapped.MonthEvents("active", 2024, 5), mapped.MonthEvents("pay", 2024, 5)
    members = list(active)
    internals = [mapped.internal_id(x) for x in members]
    assert internals == sorted(internals)  # type: ignore[type-var]  # ascending internal ids
    assert set(members) == did["active"] and len(members) == len(did["active"])
    assert set(active & pay) == did["active"] & did["pay"]
    assert set(active | pay) == did["active"] | did["pay"]
    assert set(active ^ pay) == did["active"] ^ did["pay"]
    assert set(~pay) == (did["active"] | did["pay"]) - did["pay"]  # NOT against the universe
    assert list(external_members(mapped, active, chunk_bytes=4)) == members  # bounded slices
    store = SegmentStore(mapped)
    store.save("payers_not_active", "pay AND NOT active")
    segment = store.evaluate("payers_not_active", "month", WHEN)
    assert set(segment) == did["pay"] - did["active"]
    assert len(segment) == len(did["pay"] - did["active"])


def test_internal_ids_stay_dense(mapped: BitCore) -> None:
    ids = [f"user-{n}" for n in range(3000)]
    mapped.mark_many([("active", x, WHEN) for x in ids])
    internals = [mapped.internal_id(x) for x in ids]
    assert len(set(internals)) == len(ids)
    assert max(internals) < 1.25 * len(ids)  # type: ignore[type-var]  # groups stay even
    assert list(mapped.external_ids(internals)) == ids  # type: ignore[arg-type]
    if mapped.layout == "sharded":
        assert mapped.shards_in_use() == [0]  # a small dataset stays in one shard


def test_a_forgotten_id_is_not_remembered_by_another_writer(mapped: BitCore) -> None:
    writer = mapped
    eraser = BitCore(mapped.redis, layout=mapped.layout, id_mapping=True)
    writer.mark_event("seen", "alice", WHEN)  # the writer remembers alice
    old = writer.internal_id("alice")
    assert eraser.forget_id("alice") == old
    assert eraser.forget_id("alice") is None
    writer.mark_event("active", "alice", WHEN)
    new = writer.internal_id("alice")
    assert new is not None and new != old
    day = writer.DayEvents("active", 2024, 5, 7)
    assert list(writer.iter_members(day)) == [new]  # nothing written for the forgotten id
    assert list(day) == ["alice"]
    assert list(writer.external_ids([old, new])) == ["alice"]  # type: ignore[list-item]


def test_a_removal_between_mapping_and_writing_is_caught(
    mapped: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    eraser = BitCore(mapped.redis, layout=mapped.layout, id_mapping=True)
    mapped.mark_event("seen", "alice", WHEN)
    old = mapped.internal_id("alice")
    kind = type(mapped._dataset_id_map())
    real = kind.resolve_for_write
    calls: list[int] = []

    def forget_after_mapping(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = real(self, *args, **kwargs)
        if not calls:
            eraser.forget_id("alice")  # between the writer's mapping and its write
        calls.append(1)
        return found

    monkeypatch.setattr(kind, "resolve_for_write", forget_after_mapping)
    mapped.mark_event("active", "alice", WHEN)
    assert len(calls) == 2  # refused by the write, mapped again
    new = mapped.internal_id("alice")
    assert new != old
    assert list(mapped.iter_members(mapped.DayEvents("active", 2024, 5, 7))) == [new]


def test_a_new_ids_quota_refuses_before_allocating(mapped: BitCore) -> None:
    budget = bulk.Budget(new_ids_quota=bulk.Quota("myapp:new-ids", 2, 60))
    mapped.mark_many([("active", x, WHEN) for x in ("a", "b")], budget=budget)
    with pytest.raises(bulk.WriteRefused) as refused:
        mapped.mark_many([("active", x, WHEN) for x in ("a", "c")], budget=budget)
    assert (refused.value.limit, refused.value.amount, refused.value.allowed) == (
        "new_ids_quota",
        3,
        2,
    )
    assert mapped.internal_id("c") is None
    mapped.mark_many([("active", "b", WHEN)], budget=budget)  # known: free
    assert set(mapped.MonthEvents("active", 2024, 5)) == {"a", "b"}


def test_a_full_map_hands_out_every_id_below_the_limit_once(
    mapped: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idmap, "INTERNAL_LIMIT", 40)
    given, full = [], []
    for n in range(200):
        try:
            mapped.mark_event("active", f"u{n}", WHEN)
            given.append(f"u{n}")
        except IdMapFull:
            full.append(f"u{n}")
    internals = sorted(mapped.internal_id(x) for x in given)  # type: ignore[type-var]
    assert internals == list(range(40))  # every id below the limit, each once
    assert full and all(mapped.internal_id(x) is None for x in full)
    assert set(mapped.MonthEvents("active", 2024, 5)) == set(given)


# --- the sharded layout's own map


def test_one_kind_of_map_per_dataset(redis_client: redis.Redis) -> None:
    BitCore(redis_client, id_mapping=True).mark_event("a", "alice", WHEN)  # a flat map
    with pytest.raises(IdMappingMismatch, match="flat layout's id map"):
        BitCore(redis_client, layout="sharded", id_mapping=True).mark_event("a", "bob", WHEN)
    redis_client.flushall()
    BitCore(redis_client, layout="sharded", id_mapping=True).mark_event("a", "alice", WHEN)
    with pytest.raises(IdMappingMismatch, match="sharded layout's id map"):
        BitCore(redis_client, id_mapping=True).mark_event("a", "bob", WHEN)
    with pytest.raises(IdMappingMismatch, match="id_mapping=True"):
        BitCore(redis_client, layout="sharded").mark_event("a", 1, WHEN)
    redis_client.flushall()
    BitCore(redis_client, layout="sharded").mark_event("a", 1, WHEN)
    with pytest.raises(IdMappingMismatch, match="plain integer ids"):
        BitCore(redis_client, layout="sharded", id_mapping=True).mark_event("a", "bob", WHEN)
    assert not redis_client.exists(KeyLayout().id_map_marker_key())


def test_a_map_deleted_under_a_writer_is_refused_not_recreated(redis_client: redis.Redis) -> None:
    writer = BitCore(redis_client, layout="sharded", id_mapping=True)
    writer.mark_event("a", "alice", WHEN)
    redis_client.flushall()
    with pytest.raises(IdMappingMismatch):
        writer.mark_event("a", "bob", WHEN)
    assert redis_client.dbsize() == 0


def test_the_marker_records_buckets_and_groups(redis_client: redis.Redis) -> None:
    BitCore(redis_client, layout="sharded", id_mapping=True, id_map_buckets=64).mark_event(
        "a", "alice", WHEN
    )
    later = BitCore(redis_client, layout="sharded", id_mapping=True, id_map_buckets=4096)
    assert later.internal_id("alice") is not None
    groups = idmap_groups.DEFAULT_GROUPS
    assert redis_client.get(KeyLayout().id_map_marker_key()) == f"mapped:64:{groups}".encode()
    grouped = sharded_only(later)
    assert (grouped.buckets, grouped.groups, grouped.per_group) == (64, groups, 64 // groups)


def test_a_migration_of_a_mapped_dataset_is_refused(redis_client: redis.Redis) -> None:
    source = BitCore(redis_client, id_mapping=True)
    source.mark_event("a", "alice", WHEN)
    target = BitCore(redis_client, key_prefix="new_", layout="sharded", id_mapping=True)
    with pytest.raises(ShardedLayoutUnsupported, match="id map"):
        migrate_layout(source, target)
    with pytest.raises(ShardedLayoutUnsupported, match="id map"):
        migrate_layout(
            BitCore(redis_client), BitCore(redis_client, key_prefix="new_", layout="sharded")
        )
    assert not list(redis_client.scan_iter(match="*new_*"))  # nothing written


# --- on the cluster


def test_writers_racing_on_new_ids_agree_on_the_cluster(
    redis_cluster: cluster_support.LocalCluster, cluster_client: RedisCluster
) -> None:
    ids = [f"user-{n}" for n in range(1200)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)
    seen: list[dict[str, int | None]] = []

    def writer(seed: int) -> None:
        connection = redis_cluster.client()
        try:
            client = BitCore(connection, id_mapping=True)
            order = ids[seed * 300 :] + ids[: seed * 300]
            start.wait(timeout=10)
            for first in range(0, len(order), 50):
                client.mark_many([("active", x, WHEN) for x in order[first : first + 50]])
            seen.append({x: client.internal_id(x) for x in ids})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(seen) == 4 and all(view == seen[0] for view in seen)  # the same internal ids
    internals = list(seen[0].values())
    assert len(set(internals)) == len(ids)  # each allocated once
    b = BitCore(cluster_client, id_mapping=True)
    grouped = sharded_only(b)
    layout = grouped.layout
    allocated = sum(
        int(cluster_client.get(layout.id_map_group_key("next", tag)) or 0) for tag in grouped.tags
    )
    assert allocated == len(ids)  # no id handed out twice by the race
    assert set(b.MonthEvents("active", 2024, 5)) == set(ids)


def test_no_key_or_node_holds_every_id_on_the_cluster(
    redis_cluster: cluster_support.LocalCluster, cluster_client: RedisCluster
) -> None:
    ids = [f"user-{n}" for n in range(4000)]
    b = BitCore(cluster_client, id_mapping=True)
    b.mark_many([("active", x, WHEN) for x in ids])
    layout = ShardedKeyLayout()
    per_node: list[int] = []
    slots: set[int] = set()
    biggest = 0
    for node in redis_cluster.primaries:
        direct = node.client()
        keys = list(direct.scan_iter(match=layout.id_map_group_pattern(), count=1000))
        slots |= {key_slot(key) for key in keys}
        per_node.append(
            sum(int(direct.hlen(key)) for key in keys if b":r:" in key)  # reverse entries
        )
        biggest = max(
            [
                biggest,
                *(
                    int(direct.hlen(key))
                    for key in keys
                    if b":next" not in key and b":mode" not in key
                ),
            ]
        )
    assert sum(per_node) == len(ids)  # every id once, in its group's reverse bucket
    assert all(0.2 < count / len(ids) < 0.45 for count in per_node), per_node  # about a third
    assert len(slots) == idmap_groups.DEFAULT_GROUPS  # one slot per group
    assert biggest <= 128  # every bucket a small hash: no key holds many ids


def test_cleanup_and_delete_all_events_leave_the_map_in_groups(redis_client: redis.Redis) -> None:
    b = BitCore(redis_client, layout="sharded", id_mapping=True)
    b.mark_many([("active", f"u{n}", WHEN) for n in range(200)])
    seven = b.internal_id("u7")
    _ = list(b.MonthEvents("active", 2024, 5) & b.DayEvents("active", 2024, 5, 7))
    layout = ShardedKeyLayout()
    patterns = (layout.id_map_pattern(), layout.id_map_group_pattern())
    map_keys = {key for pattern in patterns for key in redis_client.scan_iter(match=pattern)}
    assert len(map_keys) > 2 * idmap_groups.DEFAULT_GROUPS  # markers, counters, buckets
    b.delete_temporary_bitop_keys()
    b.delete_all_events()
    assert {
        key for pattern in patterns for key in redis_client.scan_iter(match=pattern)
    } == map_keys
    assert len(b.MonthEvents("active", 2024, 5)) == 0
    assert b.internal_id("u7") == seven is not None
    for key in map_keys:  # every bucket a small hash, in the compact encoding
        if redis_client.type(key) == b"hash":
            assert redis_client.object("encoding", key) in (b"listpack", b"ziplist"), key
