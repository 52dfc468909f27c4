"""``migrate_layout`` (issue 17): a flat bitmapist dataset copied into the sharded layout, on the
same Redis and into the cluster, verified, resumable, the source kept unless asked."""

from __future__ import annotations

from datetime import datetime

import pytest
import redis
from redis.cluster import RedisCluster

import bitcore
from bitcore import migrate
from bitcore.segments import SegmentStore

MAY = datetime(2024, 5, 7, 13)
SHARD = 1 << 20
USERS = [0, 5, SHARD + 3, 4 * SHARD + 1]


def _flat(redis_client: redis.Redis) -> bitcore.BitCore:
    flat = bitcore.BitCore(redis_client, track_hourly=True)
    flat.mark_many([("a", u, MAY) for u in USERS] + [("b", u, MAY) for u in USERS[1:]])
    flat.mark_unique("vip", SHARD + 3)
    SegmentStore(flat).save("both", "a and b")
    return flat


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest, redis_client: redis.Redis) -> bitcore.BitCore:
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("cluster_client")
        return bitcore.BitCore(cluster, track_hourly=True)
    return bitcore.BitCore(redis_client, layout="sharded", track_hourly=True)


def _answers(b: bitcore.BitCore) -> tuple[object, ...]:
    a, bb = b.MonthEvents("a", 2024, 5), b.MonthEvents("b", 2024, 5)
    return (
        list(a),
        list(a & ~bb),
        list(b.HourEvents("b", 2024, 5, 7, 13)),
        list(b.UniqueEvents("vip")),
        len(b.universe_bitmap()),
        sorted(b.get_event_names()),
        list(SegmentStore(b).bitmap("both", a.period)),
    )


def test_a_copy_answers_as_its_source(redis_client: redis.Redis, target: bitcore.BitCore) -> None:
    flat = _flat(redis_client)
    seen: list[str] = []
    report = migrate.migrate_layout(flat, target, progress=seen.append)
    assert report.keys == len(seen) > 8 and report.skipped == 0 and not report.mismatches
    assert report.segments == 1 and report.deleted == 0
    assert _answers(target) == _answers(flat)
    assert redis_client.exists("trackist_a_2024-5")  # the source is kept


def test_a_stopped_migration_resumes_and_may_delete_the_source(
    redis_client: redis.Redis, target: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    flat = _flat(redis_client)
    real = migrate._copy
    calls = iter(range(100))

    def dies_on_the_fourth(*args: object) -> tuple[int, int]:
        if next(calls) == 3:
            raise redis.ConnectionError("the connection dropped")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(migrate, "_copy", dies_on_the_fourth)
    with pytest.raises(redis.ConnectionError):
        migrate.migrate_layout(flat, target)
    monkeypatch.setattr(migrate, "_copy", real)
    report = migrate.migrate_layout(flat, target, delete_source=True)
    assert report.skipped == 3 and report.keys > 0
    expected_keys = report.keys + report.skipped
    assert report.deleted == expected_keys
    assert not redis_client.exists("trackist_a_2024-5", "trackist_vip_u")
    assert list(target.MonthEvents("a", 2024, 5)) == USERS


def test_a_target_holding_other_bits_is_a_mismatch_and_nothing_is_deleted(
    redis_client: redis.Redis, target: bitcore.BitCore
) -> None:
    flat = _flat(redis_client)
    target.mark_event("a", 7, now=MAY)  # the target already has a user the source lacks
    with pytest.raises(migrate.MigrationMismatch, match="the source is kept"):
        migrate.migrate_layout(flat, target, delete_source=True)
    assert redis_client.exists("trackist_a_2024-5")
    assert set(target.MonthEvents("a", 2024, 5)) == {7, *USERS}  # target bits kept, source added


def test_only_flat_into_sharded(redis_client: redis.Redis) -> None:
    flat = bitcore.BitCore(redis_client)
    with pytest.raises(ValueError, match="flat-layout client into a sharded"):
        migrate.migrate_layout(flat, flat)
