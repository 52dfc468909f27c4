"""The tracking endpoint, driven through the real app against the test Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from dashboard_support import make_app
from flask import Flask
from flask.testing import FlaskClient

from bitcore import BitCore, embedded
from bitcore.tracking.schema import sign_uid
from dashboard.tracking.intake import PIXEL_GIF

pytestmark = pytest.mark.all_layouts

KEY = "site-key-1"
ORIGIN = "https://shop.example"
SECRET = "backend-secret"
HEADERS = {"X-Bitcore-Key": KEY}


def tracking_app(redis_url: str, **overrides: Any) -> Flask:
    """The shared ``make_app`` with two write keys, one allowed origin and no rate limit."""
    config: dict[str, Any] = {
        "BITCORE_TRACK_KEYS": f"{KEY}, other-key",
        "BITCORE_TRACK_ORIGINS": ORIGIN,
        "BITCORE_TRACK_RATE_LIMIT": 0,
        "BITCORE_TRACK_MAX_BODY": 64 * 1024,
    }
    config.update(overrides)
    return make_app(redis_url, **config)


@pytest.fixture
def client(redis_url: str, redis_client: redis.Redis) -> Iterator[FlaskClient]:
    yield tracking_app(redis_url).test_client()


def keyspace(r: redis.Redis) -> dict[bytes, bytes]:
    return {key: r.dump(key) or b"" for key in r.keys("*")}


def members(bc: BitCore, event: str) -> set[int]:
    return set(bc.MonthEvents(event))


# --- good input


@pytest.mark.flat_only("compares the flat layout's key names")
def test_single_event_marks_the_same_keys_as_mark_event(
    client: FlaskClient, redis_client: redis.Redis, redis_url: str
) -> None:
    answer = client.post("/track", json={"event": "song:played", "uid": 123}, headers=HEADERS)
    assert answer.status_code == 200
    assert answer.json == {"accepted": 1}
    ours = set(redis_client.keys("trackist_*"))
    redis_client.flushall()
    BitCore(redis_client).mark_event("song:played", 123)
    assert ours == set(redis_client.keys("trackist_*"))
    assert redis_client.getbit(b"trackist__seen_u", 123) == 1


def test_batch_is_written_whole(client: FlaskClient, bc: BitCore) -> None:
    events = [{"event": "play", "uid": uid} for uid in range(0, 1000, 2)]
    answer = client.post("/track", json={"events": events}, headers=HEADERS)
    assert answer.status_code == 200
    assert answer.json == {"accepted": 500}
    assert members(bc, "play") == set(range(0, 1000, 2))


def test_batch_takes_uid_and_sig_from_the_top(client: FlaskClient, bc: BitCore) -> None:
    body = {"uid": 42, "events": [{"event": "a"}, {"event": "b", "uid": 43}]}
    assert client.post("/track", json=body, headers=HEADERS).status_code == 200
    assert members(bc, "a") == {42}
    assert members(bc, "b") == {43}


def test_text_plain_body_as_sendbeacon_sends_it(client: FlaskClient, bc: BitCore) -> None:
    body = json.dumps({"key": KEY, "events": [{"event": "page:view", "uid": 7}]})
    answer = client.post("/track", data=body, content_type="text/plain;charset=UTF-8")
    assert answer.status_code == 200
    assert members(bc, "page:view") == {7}


def test_key_as_query_parameter(client: FlaskClient, bc: BitCore) -> None:
    assert client.post(f"/track?k={KEY}", json={"event": "x", "uid": 1}).status_code == 200
    assert members(bc, "x") == {1}


def test_ts_places_the_event_in_its_own_day(client: FlaskClient, bc: BitCore) -> None:
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    body = {"event": "late", "uid": 5, "ts": three_days_ago.timestamp()}
    assert client.post("/track", json=body, headers=HEADERS).status_code == 200
    assert 5 in bc.DayEvents.from_date("late", three_days_ago)
    assert 5 not in bc.DayEvents.from_date("late", datetime.now(UTC))


def test_ts_outside_the_window_is_kept_at_its_edge_and_counted(
    client: FlaskClient, bc: BitCore
) -> None:
    """A phone with a fast clock, and events queued offline for a month: nothing is lost, each
    lands at the nearest edge of the window (5 minutes ahead, 7 days back), and the answer says
    how many were moved."""
    now = datetime.now(UTC)
    body = {
        "uid": 6,
        "events": [
            {"event": "ahead", "ts": (now + timedelta(days=2)).timestamp()},
            {"event": "stale", "ts": (now - timedelta(days=30)).timestamp()},
            {"event": "fine", "ts": now.timestamp()},
        ],
    }
    answer = client.post("/track", json=body, headers=HEADERS)
    assert answer.status_code == 200
    assert answer.json == {"accepted": 3, "clamped": 2}
    assert 6 in bc.DayEvents.from_date("ahead", now + timedelta(minutes=5))
    assert 6 in bc.DayEvents.from_date("stale", now - timedelta(days=7))
    assert 6 not in bc.DayEvents.from_date("stale", now - timedelta(days=30))


def test_flags_within_what_the_server_allows(
    redis_url: str, redis_client: redis.Redis, bc: BitCore
) -> None:
    app = tracking_app(redis_url, BITCORE_TRACK_ALLOW_HOURLY=True)
    body = {"event": "buy", "uid": 9, "track_hourly": True, "unique": True}
    assert app.test_client().post("/track", json=body, headers=HEADERS).status_code == 200
    assert 9 in bc.HourEvents("buy")
    assert 9 in bc.UniqueEvents("buy")


# --- bad input: a clear 4xx naming the field, and nothing written


def single(**fields: Any) -> dict[str, Any]:
    return {"event": "ok", "uid": 1, **fields}


def batch_with(bad: dict[str, Any]) -> dict[str, Any]:
    return {"events": [{"event": "ok", "uid": 1}, {"event": "ok", "uid": 2}, bad]}


NOW = time.time()
BAD_JSON: list[tuple[str, Any, int, str]] = [
    ("uid missing", {"event": "ok"}, 400, "uid"),
    ("uid string", single(uid="123"), 400, "uid"),
    ("uid float", single(uid=1.0), 400, "uid"),
    ("uid bool", single(uid=True), 400, "uid"),
    ("uid null", single(uid=None), 400, "uid"),
    ("uid negative", single(uid=-1), 400, "uid"),
    ("uid at the cap", single(uid=2**22), 400, "uid"),
    ("uid way above", single(uid=2**32 + 5), 400, "uid"),
    ("event missing", {"uid": 1}, 400, "event"),
    ("event empty", single(event=""), 400, "event"),
    ("event not a string", single(event=5), 400, "event"),
    ("event too long", single(event="a" * 121), 400, "event"),
    ("event with space", single(event="song played"), 400, "event"),
    ("event with star", single(event="song*"), 400, "event"),
    ("event with slash", single(event="a/b"), 400, "event"),
    ("event non-ascii", single(event="caf\u00e9"), 400, "event"),
    ("event reserved bitop", single(event="bitop_AND_x"), 400, "event"),
    ("event is the universe", single(event="_seen"), 400, "event"),
    ("ts a string", single(ts="yesterday"), 400, "ts"),
    ("ts a bool", single(ts=True), 400, "ts"),
    ("hourly not allowed", single(track_hourly=True), 400, "track_hourly"),
    ("unique not a bool", single(unique="yes"), 400, "unique"),
    ("body a list", [single()], 400, "body"),
    ("events not a list", {"events": {"event": "ok"}}, 400, "events"),
    ("events empty", {"events": []}, 400, "events"),
    ("event not an object", {"events": [single(), "ok"]}, 400, "events[1]"),
    ("batch too large", {"events": [single()] * 501}, 413, "events"),
    ("bad uid late in a batch", batch_with({"event": "ok", "uid": "3"}), 400, "events[2].uid"),
    ("bad name late in a batch", batch_with({"event": "a b", "uid": 3}), 400, "events[2].event"),
    (
        "bad ts late in a batch",
        batch_with({"event": "ok", "uid": 3, "ts": "1"}),
        400,
        "events[2].ts",
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [case[1:] for case in BAD_JSON],
    ids=[case[0] for case in BAD_JSON],
)
def test_bad_json_is_refused_and_writes_nothing(
    client: FlaskClient, redis_client: redis.Redis, payload: Any, status: int, field: str
) -> None:
    answer = client.post("/track", json=payload, headers=HEADERS)
    assert answer.status_code == status
    assert answer.json is not None
    assert answer.json["field"] == field
    assert answer.json["error"]
    assert redis_client.dbsize() == 0


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no key", {"json": single()}, 401, "key"),
    ("unknown key", {"json": single(), "headers": {"X-Bitcore-Key": "nope"}}, 403, "key"),
    ("unknown key in body", {"json": single(key="nope")}, 403, "key"),
    ("malformed json", {"data": '{"event": "ok", "uid": 1', "headers": HEADERS}, 400, "body"),
    ("not utf-8", {"data": b"\xff\xfe{}", "headers": HEADERS}, 400, "body"),
    ("empty body", {"data": b"", "headers": HEADERS}, 400, "body"),
    ("body too large", {"data": b" " * (64 * 1024 + 1), "headers": HEADERS}, 413, "body"),
    (
        "foreign origin",
        {"json": single(), "headers": {**HEADERS, "Origin": "https://evil.example"}},
        403,
        "origin",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_are_refused_and_write_nothing(
    client: FlaskClient, redis_client: redis.Redis, kwargs: dict[str, Any], status: int, field: str
) -> None:
    answer = client.post("/track", **kwargs)
    assert answer.status_code == status
    assert answer.json is not None
    assert answer.json["field"] == field
    assert redis_client.dbsize() == 0


def test_app_wide_max_content_length_is_json_413(redis_url: str, redis_client: redis.Redis) -> None:
    app = tracking_app(redis_url, MAX_CONTENT_LENGTH=1000)
    answer = app.test_client().post(
        "/track", data=json.dumps({"events": [single()] * 100}), headers=HEADERS
    )
    assert answer.status_code == 413
    assert answer.json is not None
    assert answer.json["field"] == "body"
    assert redis_client.dbsize() == 0


def test_failure_leaves_existing_data_untouched(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    assert client.post("/track", json=single(uid=3), headers=HEADERS).status_code == 200
    before = keyspace(redis_client)
    bad = batch_with({"event": "ok", "uid": 2**30})
    assert client.post("/track", json=bad, headers=HEADERS).status_code == 400
    assert keyspace(redis_client) == before


# --- CORS


def test_preflight_for_a_configured_origin(client: FlaskClient, redis_client: redis.Redis) -> None:
    answer = client.options(
        "/track",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-bitcore-key",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "X-Bitcore-Key" in answer.headers["Access-Control-Allow-Headers"]
    assert "Origin" in answer.headers["Vary"]
    assert redis_client.dbsize() == 0


def test_preflight_for_another_origin_gets_no_cors_headers(client: FlaskClient) -> None:
    answer = client.options("/track", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_cors_headers_on_answers_and_errors(client: FlaskClient) -> None:
    good = client.post("/track", json=single(), headers={**HEADERS, "Origin": ORIGIN})
    bad = client.post("/track", json=single(uid="x"), headers={**HEADERS, "Origin": ORIGIN})
    assert good.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert bad.status_code == 400
    assert bad.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_wildcard_origin(redis_url: str, redis_client: redis.Redis) -> None:
    app = tracking_app(redis_url, BITCORE_TRACK_ORIGINS="*")
    answer = app.test_client().post(
        "/track", json=single(), headers={**HEADERS, "Origin": "https://any.example"}
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "https://any.example"


# --- the pixel


def test_pixel_is_a_gif_and_marks_the_event(client: FlaskClient, bc: BitCore) -> None:
    answer = client.get(f"/track/p.gif?e=email:opened&u=77&k={KEY}")
    assert answer.status_code == 200
    assert answer.mimetype == "image/gif"
    assert answer.data == PIXEL_GIF
    assert answer.data.startswith(b"GIF89a\x01\x00\x01\x00") and answer.data.endswith(b";")
    assert answer.headers["Cache-Control"] == "no-store"
    assert members(bc, "email:opened") == {77}


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("e=ok&u=1", 401, "key"),
        (f"e=ok&u=1&k=wrong{KEY}", 403, "key"),
        (f"e=ok&k={KEY}", 400, "u"),
        (f"e=ok&u=1.5&k={KEY}", 400, "u"),
        (f"e=ok&u=-1&k={KEY}", 400, "u"),
        (f"e=ok&u={2**22}&k={KEY}", 400, "u"),
        (f"u=1&k={KEY}", 400, "e"),
        (f"e=a%20b&u=1&k={KEY}", 400, "e"),
        (f"e=ok&u=1&t=soon&k={KEY}", 400, "t"),
        (f"e=ok&u=1&t=nan&k={KEY}", 400, "t"),
    ],
)
def test_bad_pixels_are_refused(
    client: FlaskClient, redis_client: redis.Redis, query: str, status: int, field: str
) -> None:
    answer = client.get(f"/track/p.gif?{query}")
    assert answer.status_code == status
    assert answer.json is not None and answer.json["field"] == field
    assert redis_client.dbsize() == 0


# --- signed ids


@pytest.fixture
def signed_client(redis_url: str, redis_client: redis.Redis) -> FlaskClient:
    return tracking_app(redis_url, BITCORE_TRACK_HMAC_SECRET=SECRET).test_client()


def test_signature_made_as_the_readme_shows(signed_client: FlaskClient, bc: BitCore) -> None:
    import hashlib
    import hmac

    sig = hmac.new(SECRET.encode(), str(123).encode(), hashlib.sha256).hexdigest()
    assert sig == sign_uid(SECRET.encode(), 123)
    body = {"event": "ok", "uid": 123, "sig": sig}
    assert signed_client.post("/track", json=body, headers=HEADERS).status_code == 200
    assert members(bc, "ok") == {123}
    pixel = signed_client.get(f"/track/p.gif?e=px&u=123&s={sig}&k={KEY}")
    assert pixel.status_code == 200 and pixel.data == PIXEL_GIF


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "ok", "uid": 123}, "sig"),
        ({"event": "ok", "uid": 124, "sig": sign_uid(SECRET.encode(), 123)}, "sig"),
        ({"event": "ok", "uid": 123, "sig": sign_uid(b"other", 123)}, "sig"),
        (
            {
                "uid": 1,
                "sig": sign_uid(SECRET.encode(), 1),
                "events": [{"event": "ok"}, {"event": "ok", "uid": 2}],
            },
            "sig",
        ),
        (
            {"events": [{"event": "ok", "uid": 2, "sig": sign_uid(SECRET.encode(), 3)}]},
            "events[0].sig",
        ),
    ],
)
def test_unsigned_or_missigned_ids_are_refused(
    signed_client: FlaskClient, redis_client: redis.Redis, body: dict[str, Any], field: str
) -> None:
    answer = signed_client.post("/track", json=body, headers=HEADERS)
    assert answer.status_code == 403
    assert answer.json is not None and answer.json["field"] == field
    assert redis_client.dbsize() == 0


def test_signatures_are_ignored_when_not_configured(client: FlaskClient, bc: BitCore) -> None:
    body = {"event": "ok", "uid": 5, "sig": "anything"}
    assert client.post("/track", json=body, headers=HEADERS).status_code == 200


# --- rate limit


def test_rate_limit_answers_429_with_retry_after(
    redis_url: str, redis_client: redis.Redis, bc: BitCore
) -> None:
    app = tracking_app(redis_url, BITCORE_TRACK_RATE_LIMIT=3, BITCORE_TRACK_RATE_WINDOW=60)
    client = app.test_client()
    statuses = [
        client.post("/track", json=single(uid=uid), headers=HEADERS).status_code for uid in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.post("/track", json=single(uid=9), headers=HEADERS)
    assert refused.json is not None and refused.json["field"] == "key"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert members(bc, "ok") == {0, 1, 2}
    # the counters (requests; the write key's bytes and new names) live outside the event
    # prefix, so no scan for events can see them
    counters = redis_client.keys("bitcore:ratelimit:*")
    assert len(counters) == 3
    assert all(0 < redis_client.ttl(counter) <= 61 for counter in counters)
    assert not any(k.startswith(b"trackist_") for k in counters)
    assert "ok" in bc.get_event_names() and len(bc.get_event_names()) == 1
    # another write key (or address) has its own budget
    other = client.post("/track", json=single(uid=9), headers={"X-Bitcore-Key": "other-key"})
    assert other.status_code == 200


def test_a_retried_request_with_its_id_is_not_charged_again(
    redis_url: str, redis_client: redis.Redis, bc: BitCore
) -> None:
    """bitcore.js resends a batch it got no answer to with the same ``request_id``: the copies
    are answered as the first was, and neither counted against the rate limit nor written."""
    client = tracking_app(redis_url, BITCORE_TRACK_RATE_LIMIT=2).test_client()
    batch = {"request_id": "k3x9-1", "events": [single(uid=5), single(uid=6)]}
    answers = [client.post("/track", json=batch, headers=HEADERS) for _ in range(4)]
    assert [(a.status_code, a.json) for a in answers] == [(200, {"accepted": 2})] * 4
    assert members(bc, "ok") == {5, 6}
    assert client.post("/track", json=single(uid=7), headers=HEADERS).status_code == 200
    assert client.post("/track", json=single(uid=8), headers=HEADERS).status_code == 429
    unlimited = tracking_app(redis_url).test_client()
    bad = unlimited.post("/track", json={**batch, "request_id": "x" * 65}, headers=HEADERS)
    assert bad.status_code == 400 and bad.json is not None
    assert bad.json["field"] == "request_id"


def test_rate_limit_is_shared_between_app_instances(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Two apps stand in for two gunicorn workers: the count is in Redis, not in a process."""
    apps = [tracking_app(redis_url, BITCORE_TRACK_RATE_LIMIT=2).test_client() for _ in range(2)]
    statuses = [c.post("/track", json=single(), headers=HEADERS).status_code for c in apps * 2]
    assert statuses == [200, 200, 429, 429]


# --- Redis down


@pytest.mark.parametrize("rate_limit", [0, 100])
def test_redis_down_is_503_with_retry_after(rate_limit: int) -> None:
    nobody = f"redis://127.0.0.1:{embedded.free_port()}/0"
    client = tracking_app(nobody, BITCORE_TRACK_RATE_LIMIT=rate_limit).test_client()
    for answer in (
        client.post("/track", json=single(), headers=HEADERS),
        client.get(f"/track/p.gif?e=ok&u=1&k={KEY}"),
    ):
        assert answer.status_code == 503
        assert answer.json is not None and "retry" in answer.json["error"]
        assert int(answer.headers["Retry-After"]) > 0


# --- public even when the dashboard is locked


@pytest.mark.parametrize("users", ["", "alice:" + "pbkdf2:sha256:1000$salt$" + "0" * 64])
def test_tracking_needs_no_login_and_no_csrf_token(
    redis_url: str, redis_client: redis.Redis, bc: BitCore, users: str
) -> None:
    """From a non-local address, with or without dashboard users: beacons need only their key."""
    app = tracking_app(redis_url, BITCORE_USERS=users, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/", environ_base=remote).status_code in {302, 401, 403}
    answer = client.post("/track", json=single(uid=11), headers=HEADERS, environ_base=remote)
    assert answer.status_code == 200
    pixel = client.get(f"/track/p.gif?e=ok&u=12&k={KEY}", environ_base=remote)
    assert pixel.status_code == 200
    assert members(bc, "ok") == {11, 12}
