"""The dashboard's keyspace commands on a sharded app (issue 17), on one Redis
(``BITCORE_LAYOUT=sharded``) and on a Redis Cluster (``BITCORE_REDIS_CLUSTER=1``):
``flask cleanup`` registers the names its registry lacks and ``flask rebuild-first-time``
rebuilds first times from history, saying what the flat app says over the same marks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from cluster_support import LocalCluster
from dashboard_support import make_app
from flask import Flask
from redis.cluster import RedisCluster

from bitcore import BitCore, event_names
from bitcore.cohort.engine import cohort_table

SHARD = 1 << 20
USERS = [4, SHARD + 2, 3 * SHARD + 1, 3 * SHARD + 8]
DAY = datetime(2024, 5, 6)


def _run(app: Flask) -> tuple[list[str], list[str], tuple[list[int], list[list[int | None]]]]:
    """Marks written without first-time keys, the registry then emptied: both commands' output
    and the first-time cohort they make possible."""
    client: BitCore = app.extensions["bitcore"]
    plain = BitCore(
        client.redis,  # type: ignore[arg-type]
        key_prefix=client.keys.prefix,
        layout=client.layout,
        track_first_time=False,
    )
    plain.mark_many([("signup", u, DAY + timedelta(days=k % 2)) for k, u in enumerate(USERS)])
    plain.mark_many([("play", u, DAY + timedelta(days=1)) for u in USERS[::2]])
    plain.mark_unique("premium", USERS[1])
    client.redis.delete(client.keys.event_names_key())
    client.redis.delete(client.keys.flag_names_key())
    runner = app.test_cli_runner()
    cleanup = runner.invoke(args=["cleanup"])
    assert cleanup.exit_code == 0, cleanup.output
    names = event_names.page(client).names + event_names.flag_page(client).names
    rebuilt = runner.invoke(args=["rebuild-first-time"])
    assert rebuilt.exit_code == 0, rebuilt.output
    table = cohort_table(
        client, "signup", "play", None, None, "days", 2, 1, "2024-05-06", cohort_type="first_time"
    )
    lines = [line for line in cleanup.output.splitlines() if "event names" in line]
    return lines + rebuilt.output.splitlines()[-1:], names, (table.sizes, table.cells)


@pytest.fixture
def flat_run(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> tuple[list[str], list[str], tuple[list[int], list[list[int | None]]]]:
    return _run(make_app(redis_url, tmp_path / "flat", BITCORE_KEY_PREFIX="flat_"))


def test_one_redis_with_the_sharded_layout(
    redis_url: str, flat_run: tuple[object, ...], tmp_path: Path
) -> None:
    assert _run(make_app(redis_url, tmp_path / "sharded", BITCORE_LAYOUT="sharded")) == flat_run
    output, names, table = flat_run
    assert output == [
        "Registered 3 new event names.",
        "Rebuilt 2 events (7 first-time bitmaps); 0 were done already (--restart rebuilds them).",
    ]
    assert names == ["play", "signup", "premium"]
    assert table == ([2, 2], [[None, 2], [0, None]])  # day one's new users played on day two


def test_a_redis_cluster(
    redis_cluster: LocalCluster,
    cluster_client: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
    flat_run: tuple[object, ...],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    url = f"redis://127.0.0.1:{redis_cluster.primaries[0].port}/0"
    assert _run(make_app(url, tmp_path / "cluster")) == flat_run
