"""The tracking endpoint on a Redis Cluster (issue 17): ``REDIS_URL`` plus
``BITCORE_REDIS_CLUSTER=1`` runs the app on the sharded layout; beacons, rate limits and budgets
answer as on one Redis."""

from __future__ import annotations

import pytest
from cluster_support import LocalCluster
from redis.cluster import RedisCluster
from test_tracking import HEADERS, tracking_app

import bitcore


@pytest.fixture
def cluster_url(
    redis_cluster: LocalCluster, cluster_client: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    return f"redis://127.0.0.1:{redis_cluster.primaries[1].port}/0"


def test_beacons_land_in_their_shards(cluster_url: str, cluster_client: RedisCluster) -> None:
    app = tracking_app(cluster_url)
    web = app.test_client()
    users = [3, (1 << 20) + 5, (3 << 20) + 1]
    events = [{"event": "play", "uid": uid} for uid in users]
    answer = web.post("/track", json={"events": events}, headers=HEADERS)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert app.extensions["bitcore"].layout == "sharded"
    b = bitcore.BitCore(cluster_client)
    assert list(b.MonthEvents("play")) == users
    assert web.post("/track", json={"event": "play", "uid": 3}, headers=HEADERS).status_code == 200


def test_rate_limit_and_budget_on_the_cluster(cluster_url: str) -> None:
    web = tracking_app(
        cluster_url, BITCORE_TRACK_RATE_LIMIT=2, BITCORE_TRACK_RATE_WINDOW=60
    ).test_client()
    statuses = [
        web.post("/track", json={"event": "play", "uid": 1}, headers=HEADERS).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    bad = web.post("/track", json={"event": "", "uid": 1}, headers=HEADERS)
    assert bad.status_code == 429  # a bad request is counted too, on the counter's node
