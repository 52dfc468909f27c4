"""Failover (issue 17): a 3-primary cluster with one replica each; a primary is killed under a
bounded beacon load. The tracking endpoint answers 503 with Retry-After (never a 500, never a
hang) until the replica takes over, then recovers on its own. Redis replication is
asynchronous: a beacon acknowledged by the old primary in the moment before it died may be lost,
and the test reports how many were."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_support import LocalCluster, local_cluster
from dashboard_support import make_app
from redis.cluster import RedisCluster

import bitcore

pytestmark = pytest.mark.process

KEY = "failover-key"
HEADERS = {"X-Bitcore-Key": KEY}
#: Beacons sent at most, and seconds the whole run may take: bounded either way.
MAX_BEACONS = 4000
DEADLINE = 60.0
#: Seconds one request may take: never a hang (the socket timeout is 1 s).
SLOWEST = 5.0


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path / "failover", primaries=3, replicas=1) as cluster:
        yield cluster


def test_a_killed_primary_means_503_then_the_replica_takes_over(
    replicated: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    entry = replicated.primaries[0]
    app = make_app(
        f"redis://127.0.0.1:{entry.port}/0",
        BITCORE_TRACK_KEYS=KEY,
        BITCORE_TRACK_RATE_LIMIT=0,
        BITCORE_REDIS_TIMEOUT=1.0,
    )
    web = app.test_client()
    probe = RedisCluster(startup_nodes=replicated.startup_nodes())
    layout = bitcore.BitCore(probe).keys
    victim_port = probe.get_node_from_key(layout.shard_tag(0)).port  # shard 0's primary
    victim = next(n for n in replicated.primaries if n.port == victim_port)
    statuses: list[int] = []
    acknowledged: list[int] = []
    killed_at = recovered_after = None
    started = time.monotonic()
    for uid in range(MAX_BEACONS):  # every uid in shard 0: the shard whose primary dies
        if time.monotonic() - started > DEADLINE:
            break
        if uid == 200:
            victim.kill()
            killed_at = uid
        sent = time.monotonic()
        answer = web.post("/track", json={"event": "play", "uid": uid}, headers=HEADERS)
        assert time.monotonic() - sent < SLOWEST, "a request hung"
        assert answer.status_code in (200, 503), answer.get_data(as_text=True)
        statuses.append(answer.status_code)
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) >= 1
        else:
            acknowledged.append(uid)
        if killed_at is not None and statuses[-20:] == [200] * 20 and 503 in statuses:
            recovered_after = time.monotonic() - started
            break
    assert killed_at is not None and 503 in statuses, "the kill was never seen"
    assert recovered_after is not None, f"no recovery in {DEADLINE} s: {statuses[-10:]}"
    replicated.primaries.remove(victim)  # its replica is the primary now
    after = bitcore.BitCore(RedisCluster(startup_nodes=replicated.startup_nodes()))
    stored = set(after.MonthEvents("play"))
    lost = [uid for uid in acknowledged if uid not in stored]
    print(  # noqa: T201  (the number the issue asks for: read it with -s)
        f"failover: {statuses.count(503)} answers 503 of {len(statuses)}, recovered after "
        f"{recovered_after:.1f} s, {len(lost)} of {len(acknowledged)} acknowledged beacons lost"
    )
    assert not [uid for uid in acknowledged if uid > killed_at and uid not in stored]
    assert len(lost) <= killed_at  # only writes the old primary acknowledged can be lost
