"""Shared fixtures: a real redis-server of our own for the whole session, never anyone else's.

The server is started from the embedded binary (or ``redis-server`` on PATH) on a free port,
keeps nothing on disk, and is flushed only between tests, because we started it. ``REDIS_URL``
from the environment is ignored on purpose: a test run must never flush a server it did not start.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

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
    """A redis-py cluster client on the session's cluster, every primary emptied first. Its
    KEYS and DBSIZE ask every primary (redis-py sends them to one node), so a test's look at
    "every key" sees the whole cluster; bitcore itself never sends either."""
    redis_cluster.flushall()
    client = redis_cluster.client()
    client.command_flags["KEYS"] = client.command_flags["DBSIZE"] = RedisCluster.PRIMARIES
    yield client
    client.close()


#: The three ways bitcore can keep its data: bitmapist's flat layout on one Redis, the sharded
#: layout on one Redis, and the sharded layout on the session's Redis Cluster.
LAYOUTS = ("flat", "sharded", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test under ``@pytest.mark.all_layouts`` (usually a module's ``pytestmark``) that uses the
    ``layout`` fixture, directly or through ``bc``, ``redis_client`` or a web app, runs once per
    entry of ``LAYOUTS`` (ids ``[flat]``, ``[sharded]``, ``[cluster]``); ``@pytest.mark.flat_only
    ("why")`` keeps one such test on the flat layout alone. A fixture with and without the id map
    (``mapped_bc``, or the one ``all_layouts(mapped="name")`` names: its ``request.param``) runs
    once per ``id_mapping_support.LAYOUT_MAPPINGS`` pair: the id map on the flat layout only."""
    definition = metafunc.definition
    marker = definition.get_closest_marker("all_layouts")
    every_layout = (
        "layout" in metafunc.fixturenames
        and marker is not None
        and definition.get_closest_marker("flat_only") is None
        and "layout" not in _parametrized_names(definition)  # the test's own table of layouts
    )
    # a fixture run with and without the id map: mapped_bc, or the one all_layouts(mapped=) names
    mapped = marker.kwargs.get("mapped", "mapped_bc") if marker is not None else "mapped_bc"
    if mapped in metafunc.fixturenames:
        if every_layout:
            pairs, ids = id_mapping_support.LAYOUT_MAPPINGS, id_mapping_support.LAYOUT_MAPPING_IDS
            metafunc.parametrize(("layout", mapped), pairs, indirect=True, ids=ids)
        elif (
            "layout" in metafunc.fixturenames and definition.get_closest_marker("flat_only") is None
        ):
            # the id map's own forms: flat with and without it, mapped on sharded and the cluster
            forms, ids = (
                id_mapping_support.FORMS,
                [id_mapping_support.form_id(f) for f in id_mapping_support.FORMS],
            )
            metafunc.parametrize(("layout", mapped), forms, indirect=True, ids=ids)
        else:
            mappings = id_mapping_support.MAPPINGS
            ids = ["mapped" if mapping else "plain" for mapping in mappings]
            metafunc.parametrize(mapped, mappings, indirect=True, ids=ids)
    elif every_layout:
        metafunc.parametrize("layout", LAYOUTS, indirect=True)


def _parametrized_names(definition: pytest.Function) -> set[str]:
    names: set[str] = set()
    for mark in definition.iter_markers("parametrize"):
        arg = mark.args[0]
        names.update(n.strip() for n in (arg.split(",") if isinstance(arg, str) else arg))
    return names


@pytest.fixture
def layout(request: pytest.FixtureRequest) -> str:
    """The layout a test runs on: one of ``LAYOUTS`` under ``all_layouts``, else ``"flat"``."""
    return str(getattr(request, "param", "flat"))


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
def redis_client(
    request: pytest.FixtureRequest, layout: str, redis_server: embedded.EmbeddedRedis
) -> Iterator[redis.Redis]:
    """A client on the test server, emptied before each test; on the ``cluster`` layout a
    cluster client on the session's cluster (every primary emptied), whose KEYS, SCAN, DBSIZE
    and FLUSHDB cover every primary."""
    if layout == "cluster":
        yield request.getfixturevalue("cluster_client")
        return
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def bc(redis_client: redis.Redis, layout: str) -> bitcore.BitCore:
    """A ``BitCore`` on the empty test server (in the test's ``layout``)."""
    return cluster_support.layout_client(redis_client, layout)


@pytest.fixture
def make_bc(redis_client: redis.Redis, layout: str) -> Callable[..., bitcore.BitCore]:
    """``make_bc(**options)``: another ``BitCore`` on the test's Redis and layout."""
    return functools.partial(cluster_support.layout_client, redis_client, layout)


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


@pytest.fixture
def mapped_bc(
    request: pytest.FixtureRequest, redis_client: redis.Redis, layout: str
) -> id_mapping_support.MappedClient:
    """A ``BitCore`` on the empty test server, once without the id map and (when the client has
    one) once with it (``tests/id_mapping_support.py``; parametrized by ``pytest_generate_tests``);
    under ``all_layouts`` once per entry of ``id_mapping_support.LAYOUT_MAPPINGS``."""
    return id_mapping_support.make_client(redis_client, request.param, layout)
