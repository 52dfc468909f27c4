"""The one door into the tracking endpoint: the WSGI app mounted at ``/track`` by ``create_app``
answers every request under it, the same way each time, and keeps Flask out of a beacon's way."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest
import redis
from flask import Flask
from test_tracking import ORIGIN, tracking_app

from bitcore.tracking import ratelimit
from dashboard.tracking import intake

KEY = "door-key"


def door_app(redis_url: str, **overrides: Any) -> Flask:
    """``test_tracking``'s app, with one write key and a rate limit of 3."""
    return tracking_app(redis_url, BITCORE_TRACK_KEYS=KEY, BITCORE_TRACK_RATE_LIMIT=3, **overrides)


#: (method, path, keyword arguments of the test client's ``open``): good, bad and odd requests.
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/track", {"json": {"event": "play", "uid": 1}, "headers": {"X-Bitcore-Key": KEY}}),
    ("POST", "/track", {"data": b"{not json", "headers": {"X-Bitcore-Key": KEY}}),
    ("POST", "/track", {"json": {"event": "play", "uid": 1}, "headers": {"X-Bitcore-Key": "no"}}),
    ("POST", "/track", {"json": {"event": "play", "uid": -1}, "query_string": {"k": KEY}}),
    (
        "POST",
        "/track",
        {
            "data": json.dumps({"events": [{"event": "a", "uid": 2}] * 3, "key": KEY}),
            "content_type": "text/plain",
            "headers": {"Origin": ORIGIN},
        },
    ),
    ("POST", "/track", {"json": {"event": "play", "uid": 1}, "headers": {"Origin": "https://x"}}),
    ("OPTIONS", "/track", {"headers": {"Origin": ORIGIN}}),
    ("GET", "/track/p.gif", {"query_string": {"e": "mail", "u": "3", "k": KEY}}),
    ("GET", "/track/p.gif", {"query_string": {"e": "mail", "u": "x", "k": KEY}}),
    ("POST", "/track", {"json": {"event": "play", "uid": 4}, "headers": {"X-Bitcore-Key": KEY}}),
]


def answers(app: Flask) -> list[tuple[int, dict[str, str], bytes]]:
    client = app.test_client()
    seen = []
    for method, path, kwargs in REQUESTS:
        response = client.open(path, method=method, **kwargs)
        seen.append((response.status_code, dict(response.headers), response.data))
    return seen


def test_the_same_requests_get_the_same_answers_byte_for_byte(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same requests (rate limit of 3 included: the last ones are 429) in two fresh windows,
    at the same moment of the window (``Retry-After`` counts the seconds left in it), to two
    apps: nothing of an answer depends on the app instance or on what came before."""
    moment = time.time()
    fixed = functools.partial(ratelimit.window_for, now=moment)
    monkeypatch.setattr(ratelimit, "window_for", fixed)
    first = answers(door_app(redis_url))
    redis_client.flushdb()
    second = answers(door_app(redis_url))
    assert first == second
    statuses = [status for status, _, _ in first]
    assert statuses == [200, 400, 403, 400, 200, 403, 204, 429, 429, 429]


def test_flask_hooks_never_see_beacons(redis_url: str, redis_client: redis.Redis) -> None:
    app = door_app(redis_url)
    seen: list[str] = []
    app.before_request(lambda: seen.append("hook") and None)
    client = app.test_client()
    answer = client.post("/track", json={"event": "play", "uid": 1}, headers={"X-Bitcore-Key": KEY})
    assert answer.status_code == 200
    assert seen == []
    assert client.get("/healthz").status_code == 200  # everything else still goes through Flask
    assert seen == ["hook"]


def test_other_methods_and_paths_are_refused(redis_url: str, redis_client: redis.Redis) -> None:
    client = door_app(redis_url).test_client()
    assert client.get("/track").status_code == 405
    assert client.get("/track").headers["Allow"] == "POST, OPTIONS"
    assert client.get("/track/nope").status_code == 404
    assert client.post("/track/").status_code == 404
    assert client.put("/track/p.gif").status_code == 405
    head = client.head("/track/p.gif", query_string={"e": "mail", "u": "3", "k": KEY})
    assert head.status_code == 200
    assert head.headers["Content-Type"] == "image/gif"
    assert head.data == b""
    bad = client.head("/track/p.gif", query_string={"e": "mail", "u": "x", "k": KEY})
    assert bad.status_code == 400  # what a GET would answer...
    assert redis_client.dbsize() == 0  # ...but a HEAD marks nothing


def test_a_bug_is_logged_and_answered_500_without_a_traceback(
    redis_url: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug, secret detail")

    monkeypatch.setattr(intake, "_answer", broken)
    app = door_app(redis_url, TESTING=False)
    answer = app.test_client().post("/track", json={"event": "play", "uid": 1})
    assert answer.status_code == 500
    assert b"secret detail" not in answer.data
    assert "secret detail" in caplog.text


def test_behind_a_proxy_the_rate_limit_counts_each_real_client(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """``ProxyFix`` runs before the mount: two clients behind one proxy (one ``REMOTE_ADDR``) get
    a rate limit each, from ``X-Forwarded-For``."""
    client = door_app(redis_url, BITCORE_PROXIES=1).test_client()

    def beacon(address: str) -> int:
        return client.post(
            "/track",
            json={"event": "play", "uid": 1},
            headers={"X-Bitcore-Key": KEY, "X-Forwarded-For": address},
        ).status_code

    assert [beacon("203.0.113.1") for _ in range(4)] == [200, 200, 200, 429]
    assert beacon("203.0.113.2") == 200
