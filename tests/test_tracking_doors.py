"""The two ways into the tracking endpoint, the WSGI shortcut and the blueprint's views, answer
alike, and the shortcut really does keep Flask out of a beacon's way."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest
import redis
from flask import Flask

from dashboard import beacon_intake, create_app, ratelimit

KEY = "door-key"
ORIGIN = "https://shop.example"


def make_app(redis_url: str, shortcut: bool, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "REDIS_URL": redis_url,
        "BITCORE_TRACK_KEYS": KEY,
        "BITCORE_TRACK_ORIGINS": ORIGIN,
        "BITCORE_TRACK_RATE_LIMIT": 3,
        "BITCORE_TRACK_SHORTCUT": shortcut,
        **overrides,
    }
    return create_app(config)


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


def test_both_doors_answer_byte_for_byte_alike(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same requests (rate limit of 3 included: the last ones are 429) in two fresh windows,
    at the same moment of the window: ``Retry-After`` counts the seconds left in it."""
    moment = time.time()
    fixed = functools.partial(ratelimit.window_for, now=moment)
    monkeypatch.setattr(ratelimit, "window_for", fixed)
    through_shortcut = answers(make_app(redis_url, shortcut=True))
    redis_client.flushdb()
    through_flask = answers(make_app(redis_url, shortcut=False))
    assert through_shortcut == through_flask
    statuses = [status for status, _, _ in through_shortcut]
    assert statuses == [200, 400, 403, 400, 200, 403, 204, 429, 429, 429]


@pytest.mark.parametrize("shortcut", [True, False])
def test_flask_hooks_see_beacons_only_without_the_shortcut(
    redis_url: str, redis_client: redis.Redis, shortcut: bool
) -> None:
    app = make_app(redis_url, shortcut)
    seen: list[str] = []
    app.before_request(lambda: seen.append("hook") and None)
    client = app.test_client()
    answer = client.post("/track", json={"event": "play", "uid": 1}, headers={"X-Bitcore-Key": KEY})
    assert answer.status_code == 200
    assert seen == ([] if shortcut else ["hook"])
    assert client.get("/healthz").status_code == 200  # everything else still goes through Flask
    assert seen == (["hook"] if shortcut else ["hook", "hook"])


@pytest.mark.parametrize("shortcut", [True, False])
def test_other_methods_get_flask_answers(
    redis_url: str, redis_client: redis.Redis, shortcut: bool
) -> None:
    client = make_app(redis_url, shortcut).test_client()
    assert client.get("/track").status_code == 405
    assert client.put("/track/p.gif").status_code == 405
    head = client.head("/track/p.gif", query_string={"e": "mail", "u": "3", "k": KEY})
    assert head.status_code == 200
    assert head.headers["Content-Type"] == "image/gif"
    assert head.data == b""
    bad = client.head("/track/p.gif", query_string={"e": "mail", "u": "x", "k": KEY})
    assert bad.status_code == 400  # what a GET would answer...
    assert redis_client.dbsize() == 0  # ...but a HEAD marks nothing


@pytest.mark.parametrize("shortcut", [True, False])
def test_a_bug_is_logged_and_answered_500_without_a_traceback(
    redis_url: str,
    redis_client: redis.Redis,
    shortcut: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug, secret detail")

    monkeypatch.setattr(beacon_intake, "_answer", broken)
    app = make_app(redis_url, shortcut, TESTING=False)
    answer = app.test_client().post("/track", json={"event": "play", "uid": 1})
    assert answer.status_code == 500
    assert b"secret detail" not in answer.data
    assert "secret detail" in caplog.text
