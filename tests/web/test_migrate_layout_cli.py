"""``flask --app wsgi migrate-layout`` (issue 17): the app's flat dataset into the sharded layout,
on its own Redis or into the session's cluster."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import redis
from cluster_support import LocalCluster
from dashboard_support import make_app
from redis.cluster import RedisCluster

import bitcore

MAY = datetime(2024, 5, 7)
USERS = [1, (1 << 20) + 2, (3 << 20) + 3]


def test_migrate_layout_into_the_cluster(
    redis_client: redis.Redis,
    redis_url: str,
    redis_cluster: LocalCluster,
    cluster_client: RedisCluster,
    tmp_path: Path,
) -> None:
    app = make_app(redis_url, tmp_path)
    app.extensions["bitcore"].mark_many([("play", u, MAY) for u in USERS])
    node = f"redis://127.0.0.1:{redis_cluster.primaries[2].port}/0"
    result = app.test_cli_runner().invoke(args=["migrate-layout", "--to", node, "--cluster"])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "The source is kept" in result.output
    assert list(bitcore.BitCore(cluster_client).MonthEvents("play", 2024, 5)) == USERS
    again = app.test_cli_runner().invoke(args=["migrate-layout", "--to", node, "--cluster"])
    assert "Copied 0 keys" in again.output, again.output


def test_migrate_layout_on_the_same_redis_and_delete(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app = make_app(redis_url, tmp_path)
    app.extensions["bitcore"].mark_many([("play", u, MAY) for u in USERS])
    result = app.test_cli_runner().invoke(args=["migrate-layout", "--delete-source"])
    assert result.exit_code == 0, result.output
    assert "Deleted" in result.output
    assert not redis_client.exists("trackist_play_2024-5")
    sharded = bitcore.BitCore(redis_client, layout="sharded")
    assert list(sharded.MonthEvents("play", 2024, 5)) == USERS
    refused = app.test_cli_runner().invoke(args=["migrate-layout", "--cluster"])
    assert refused.exit_code != 0 and "--cluster needs --to" in refused.output
