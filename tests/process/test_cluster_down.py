"""A dead or hung Redis Cluster under the dashboard (issue 17): every page, ``/healthz`` and the
tracking endpoint answer 503 with ``Retry-After``, never a 500, quickly once the per-node circuit
breakers (``bitcore.breaker.per_node_class``) have seen each node fail, and never after more
than a few socket timeouts (a hang), on a cluster of this test's own."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cluster_support import LocalCluster, local_cluster
from dashboard_support import make_app
from flask.testing import FlaskClient

from bitcore.connection import ClusterUnreachable, connect_cluster

pytestmark = pytest.mark.process

KEY = "down-key"
TIMEOUT = 0.5
#: Long enough that a test's requests all fall inside one open period of the breakers.
BREAKER = 30.0
#: A request that waits on a hung cluster: its node's socket timeout, and the slots asked of
#: the other nodes again (each a socket timeout), redis-py's retries included. Never a hang.
SLOWEST_HUNG = 8 * TIMEOUT + 2.0
#: A request once every node's breaker is open: Redis is not asked.
FAST = 0.5


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path / "down") as started:
        try:
            yield started
        finally:
            for node in started.primaries:  # a stopped node must go on to its own stop
                if not node.stopped:
                    os.kill(node.process.pid, signal.SIGCONT)


def _web(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FlaskClient:
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    app = make_app(
        f"redis://127.0.0.1:{cluster.primaries[0].port}/0",
        tmp_path,
        BITCORE_TRACK_KEYS=KEY,
        BITCORE_TRACK_RATE_LIMIT=0,
        BITCORE_REDIS_TIMEOUT=TIMEOUT,
        BITCORE_REDIS_BREAKER_SECONDS=BREAKER,
    )
    web = app.test_client()
    beacon = web.post("/track", json={"event": "active", "uid": 5}, headers={"X-Bitcore-Key": KEY})
    assert beacon.status_code in (200, 204), beacon.get_data(as_text=True)
    assert web.get("/event/active.json").status_code == 200
    return web


REQUESTS = [
    ("GET", "/"),
    ("GET", "/event/active.json"),
    ("GET", "/funnel.json?steps=active&steps=active"),
    ("GET", "/healthz"),
    ("POST", "/track"),
]


def _answers(web: FlaskClient) -> list[tuple[str, int, float, str | None]]:
    out = []
    for method, url in REQUESTS:
        began = time.monotonic()
        if method == "POST":
            response = web.post(
                url, json={"event": "active", "uid": 9}, headers={"X-Bitcore-Key": KEY}
            )
        else:
            response = web.get(url)
        out.append(
            (
                url,
                response.status_code,
                time.monotonic() - began,
                response.headers.get("Retry-After"),
            )
        )
    return out


def test_a_dead_cluster_is_503_at_once(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    web = _web(cluster, monkeypatch, tmp_path)
    for node in cluster.primaries:
        node.kill()
    for _ in range(2):  # the first round finds the nodes dead, the second is refused unasked
        for url, status, seconds, retry_after in _answers(web):
            assert status == 503, url
            assert retry_after, url
            assert seconds < FAST * 4, (url, seconds)  # a refused connect is fast either way


def test_a_hung_cluster_is_503_within_a_bound_then_at_once(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    web = _web(cluster, monkeypatch, tmp_path)
    for node in cluster.primaries:
        os.kill(node.process.pid, signal.SIGSTOP)
    first = _answers(web)
    for url, status, seconds, retry_after in first:
        assert status == 503 and retry_after, url
        assert seconds < SLOWEST_HUNG, (url, seconds)
    for url, status, seconds, retry_after in _answers(web):  # every node's breaker is open now
        assert status == 503 and retry_after, url
        assert seconds < FAST, (url, seconds)


def test_no_node_answering_is_a_connection_error(cluster: LocalCluster) -> None:
    url = f"redis://127.0.0.1:{cluster.primaries[0].port}/0"
    client = connect_cluster(url, socket_timeout=TIMEOUT, breaker_seconds=0)
    for node in cluster.primaries:
        node.kill()
    with pytest.raises(redis.ConnectionError):
        client.smembers("anything")  # redis-py's own RedisClusterException, as a ConnectionError
    with pytest.raises(ClusterUnreachable):
        connect_cluster(url, socket_timeout=TIMEOUT)  # nothing to learn the slots from
