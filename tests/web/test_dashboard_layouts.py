"""The dashboard's home, event and flag pages on the sharded layout (issue 17), on one Redis
(``BITCORE_LAYOUT=sharded``) and on a Redis Cluster (``BITCORE_REDIS_CLUSTER=1``): the same
numbers as the flat app over the same marks."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from cluster_support import LocalCluster
from dashboard_support import make_app
from flask import Flask
from redis.cluster import RedisCluster

from bitcore import BitCore
from bitcore import overview as report

SHARD = 1 << 20
#: Users in shards 0, 1 and 6, so every count crosses shards.
USERS = [1, 7, SHARD, SHARD + 2, 6 * SHARD + 3, 6 * SHARD + 8]
PAGES = [
    "/index.json",
    "/index.json?q=act",
    "/event/active.json",
    f"/event/active.json?user={SHARD + 2}&date={{today}}",
    f"/event/active.json?user={6 * SHARD + 8}&date={{today}}",
    "/event/ios.json",
    f"/event/ios.json?user={6 * SHARD + 3}",
    "/event/ios.json?user=7",
]

#: A number shown on its own in an element: the counts an HTML page shows.
NUMBER = re.compile(r">\s*([\d,]+)\s*<")


def _mark(client: BitCore) -> None:
    today = report.today_of(client)
    marks = [("active", u, today - timedelta(days=i % 3)) for i, u in enumerate(USERS)]
    marks += [("signup", u, today - timedelta(days=40)) for u in USERS[::2]]
    client.mark_many(marks)
    client.mark_unique_many([("ios", u) for u in USERS[2:]] + [("android", USERS[0])])


def _answers(app: Flask) -> dict[str, Any]:
    client = app.extensions["bitcore"]
    _mark(client)
    today = report.today_of(client).isoformat()
    web = app.test_client()
    answers: dict[str, Any] = {}
    for page in (page.format(today=today) for page in PAGES):
        response = web.get(page)
        assert response.status_code == 200, (page, response.get_data(as_text=True)[:300])
        answers[page] = response.get_json()
    home = web.get("/")
    assert home.status_code == 200
    html = home.get_data(as_text=True)
    answers["/ numbers"] = NUMBER.findall(html)
    flag_page = web.get("/event/ios")
    assert flag_page.status_code == 200
    answers["/event/ios numbers"] = NUMBER.findall(flag_page.get_data(as_text=True))
    return answers


@pytest.fixture
def flat_answers(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> dict[str, Any]:
    return _answers(make_app(redis_url, tmp_path / "flat", BITCORE_KEY_PREFIX="flat_"))


def _check(answers: dict[str, Any], flat: dict[str, Any]) -> None:
    assert answers == flat
    index = answers["/index.json"]
    active = next(row for row in index["events"] if row["name"] == "active")
    assert active["this_week"] + active["today"] > 0
    assert {"name": "ios", "users": 4} in index["flags"]
    assert answers[f"/event/ios.json?user={6 * SHARD + 3}"]["lookup"]["flagged"] is True
    assert answers["/event/ios.json?user=7"]["lookup"]["flagged"] is False
    looked_up = [value["lookup"]["active"] for page, value in answers.items() if "date=" in page]
    assert looked_up[0]["day"] is True  # marked today
    assert answers["/event/active.json"]["users_last_30_days"] == len(USERS)


def test_one_redis_with_the_sharded_layout(
    redis_url: str, flat_answers: dict[str, Any], tmp_path: Path
) -> None:
    app = make_app(redis_url, tmp_path / "sharded", BITCORE_LAYOUT="sharded")
    assert app.extensions["bitcore"].layout == "sharded"
    _check(_answers(app), flat_answers)


def test_a_redis_cluster(
    redis_cluster: LocalCluster,
    cluster_client: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
    flat_answers: dict[str, Any],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
    url = f"redis://127.0.0.1:{redis_cluster.primaries[0].port}/0"
    app = make_app(url, tmp_path / "cluster")
    assert app.extensions["bitcore"].layout == "sharded"
    _check(_answers(app), flat_answers)


def test_a_bad_layout_stops_the_start() -> None:
    from dashboard.config import from_environ

    assert from_environ({"BITCORE_LAYOUT": "Sharded"})["BITCORE_LAYOUT"] == "sharded"
    with pytest.raises(ValueError, match="BITCORE_LAYOUT='ring' is not valid"):
        from_environ({"BITCORE_LAYOUT": "ring"})
