"""The web layer: the Flask app through its test client. ``app`` is the shared ``make_app`` on the
emptied session Redis; a test file that needs other settings or data first defines its own.
Under ``@pytest.mark.all_layouts`` (tests/conftest.py) ``redis_url`` names the test's layout, so
every app a test makes runs on flat, sharded and the cluster in turn."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from cluster_support import LocalCluster
from dashboard_support import make_app
from flask import Flask
from flask.testing import FlaskClient
from redis.cluster import RedisCluster


@pytest.fixture
def redis_url(
    redis_url: str, layout: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The URL every app of the test is made on, in the test's ``layout``: the session's Redis
    (with ``BITCORE_LAYOUT=sharded`` for ``sharded``), or a node of the session's cluster with
    ``BITCORE_REDIS_CLUSTER=1`` (its primaries emptied first) for ``cluster``."""
    if layout == "sharded":
        monkeypatch.setenv("BITCORE_LAYOUT", "sharded")
    if layout != "cluster":
        return redis_url
    request.getfixturevalue("redis_client")  # the emptied cluster
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    return f"redis://127.0.0.1:{cluster.primaries[0].port}/0"


@pytest.fixture
def app(redis_client: redis.Redis, redis_url: str, tmp_path: Path, layout: str) -> Flask:
    made = make_app(redis_url, tmp_path)
    client = made.extensions["bitcore"]
    assert client.layout == ("flat" if layout == "flat" else "sharded")
    assert isinstance(client.redis, RedisCluster) is (layout == "cluster")
    return made


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def flat_app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    """The app on bitmapist's flat layout under its own prefix (``flat_``), on the emptied
    session Redis: the answers a ``sharded_app`` must give (both can share one Redis)."""
    return make_app(redis_url, tmp_path / "flat", BITCORE_KEY_PREFIX="flat_")


@pytest.fixture(params=["sharded", "cluster"])
def sharded_app(
    request: pytest.FixtureRequest,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Flask:
    """The app on the sharded layout, once on one Redis (``BITCORE_LAYOUT=sharded``) and once on
    the session's Redis Cluster (``BITCORE_REDIS_CLUSTER=1``, emptied first): a test that takes it
    runs on both."""
    if request.param == "sharded":
        app = make_app(redis_url, tmp_path / "sharded", BITCORE_LAYOUT="sharded")
    else:
        cluster = request.getfixturevalue("redis_cluster")
        request.getfixturevalue("cluster_client")  # every primary emptied
        monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
        url = f"redis://127.0.0.1:{cluster.primaries[0].port}/0"
        app = make_app(url, tmp_path / "cluster")
    assert app.extensions["bitcore"].layout == "sharded"
    return app
