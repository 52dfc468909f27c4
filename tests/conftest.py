"""Shared fixtures: a real redis-server of our own for the whole session, never anyone else's.

The server is started from the embedded binary (or ``redis-server`` on PATH) on a free port,
keeps nothing on disk, and is flushed only between tests, because we started it. ``REDIS_URL``
from the environment is ignored on purpose: a test run must never flush a server it did not start.
"""

from __future__ import annotations

from collections.abc import Iterator

import cluster_support
import id_mapping_support
import pytest
import redis
from redis.cluster import RedisCluster

import bitcore
from bitcore import embedded, systems


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every fallback inside the session's temp dir: no ``REDIS_URL`` from the shell, and an
    embedded default system or app instance folder never lands in the checkout's ``instance/``.
    No app's cleanup scheduler runs unless its test asks: a thread left behind by one app would
    otherwise wake up during a later test and clean the shared test Redis under it."""
    patch = pytest.MonkeyPatch()
    patch.delenv("REDIS_URL", raising=False)
    patch.setenv("BITCORE_CLEANUP_ENABLED", "0")
    patch.setenv("BITCORE_DATA_DIR", str(tmp_path_factory.mktemp("default-data")))
    patch.setenv("BITCORE_INSTANCE_PATH", str(tmp_path_factory.mktemp("instance")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedRedis]:
    server = embedded.start(tmp_path_factory.mktemp("redis"), port=0, persist=False)
    assert server.owned, "the test Redis must be one this session started"
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[cluster_support.LocalCluster]:
    """A real 3-primary Redis Cluster of this session's own (``tests/cluster_support.py``),
    started on first use; its nodes are stopped by their own processes at the end."""
    with cluster_support.local_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_client(redis_cluster: cluster_support.LocalCluster) -> Iterator[RedisCluster]:
    """A redis-py cluster client on the session's cluster, every primary emptied first."""
    redis_cluster.flushall()
    client = redis_cluster.client()
    yield client
    client.close()


#: The three ways bitcore can keep its data: bitmapist's flat layout on one Redis, the sharded
#: layout on one Redis, and the sharded layout on the session's Redis Cluster.
LAYOUTS = ("flat", "sharded", "cluster")


@pytest.fixture(params=LAYOUTS)
def layout_bc(request: pytest.FixtureRequest, redis_client: redis.Redis) -> bitcore.BitCore:
    """A ``BitCore`` on an empty Redis, once per entry of ``LAYOUTS``: a test that takes it
    checks the same answers on single-flat, single-sharded and the cluster."""
    if request.param == "cluster":
        return bitcore.BitCore(request.getfixturevalue("cluster_client"))
    return bitcore.BitCore(redis_client, layout=request.param)


@pytest.fixture(scope="session")
def redis_url(redis_server: embedded.EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: embedded.EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client on the test server, emptied before each test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def bc(redis_client: redis.Redis) -> bitcore.BitCore:
    """A ``BitCore`` on the empty test server."""
    return bitcore.BitCore(redis_client)


@pytest.fixture
def default_system(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[redis.Redis]:
    """Point bitmapist's ``"default"`` system at the test server; put everything back afterwards."""
    monkeypatch.setitem(systems.SYSTEMS, "default", redis_client)
    monkeypatch.setattr(bitcore, "TRACK_HOURLY", False)
    monkeypatch.setattr(bitcore, "TRACK_UNIQUE", False)
    yield redis_client
    bitcore.delete_runtime_bitop_keys()


@pytest.fixture(params=id_mapping_support.FORMS, ids=id_mapping_support.form_id)
def mapped_bc(
    request: pytest.FixtureRequest, redis_client: redis.Redis
) -> id_mapping_support.MappedClient:
    """A ``BitCore`` on the empty test server, once without the id map and once with it, and
    mapped on the sharded layout and on the cluster: ``tests/id_mapping_support.py``."""
    layout, mapping = request.param
    if layout == "cluster":
        return id_mapping_support.make_client(request.getfixturevalue("cluster_client"), mapping)
    return id_mapping_support.make_client(redis_client, mapping, layout=layout)
