"""The tracking endpoint's limits on what a public request may cost Redis, a full Redis, and
hostile input: every refusal is a clear JSON answer under 500 and writes nothing.

Requests that would allocate are sent only to private servers with a small ``maxmemory``
(``tests/private_redis.py``): had a check failed, the biggest of them would take ~30 MiB there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from private_redis import fill_up, private_redis, used_memory

# the same app settings
from test_tracking import HEADERS, KEY, tracking_app

from bitcore.tracking.schema import DEFAULT_MAX_UID

OTHER_KEY = {"X-Bitcore-Key": "other-key"}
MiB = 1 << 20


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a private server capped at 128 MiB."""
    with private_redis(tmp_path_factory.mktemp("limits-redis")) as server:
        yield server.url


@pytest.fixture
def r(capped: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(capped)
    client.flushall()
    client.config_set("maxmemory", str(128 * MiB))
    yield client
    client.close()


@pytest.fixture
def client(capped: str, r: redis.Redis) -> FlaskClient:
    return tracking_app(capped).test_client()


def batch(names: list[str], uid: int) -> dict[str, Any]:
    return {"uid": uid, "events": [{"event": name} for name in names]}


def assert_refused(answer: Any, status: int, limit: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.get_data(as_text=True)
    body = answer.json
    assert body["limit"] == limit and limit in body["error"], body
    return dict(body)


# --- bytes of Redis memory


def test_the_issues_request_is_refused_and_allocates_nothing(
    client: FlaskClient, r: redis.Redis
) -> None:
    """Issue 13's 440-byte request, at today's highest uid: 20 new events x 3 new keys x 512 KiB
    would be 30 MiB. Refused whole, and Redis grows by no more than a request's bookkeeping."""
    before = used_memory(r)
    body = batch([f"evil{i}" for i in range(20)], DEFAULT_MAX_UID - 1)
    answer = client.post("/track", json=body, headers=HEADERS)
    refusal = assert_refused(answer, 413, "BITCORE_TRACK_MAX_WRITE_BYTES")
    assert str(8 * MiB) in refusal["error"]
    assert r.keys("trackist_*") == [] and r.keys("bitcore:event_names*") == []
    assert used_memory(r) - before < MiB


def test_a_single_beacon_with_every_kind_of_key_fits_the_default_budget(
    capped: str, r: redis.Redis
) -> None:
    """The default uid cap is chosen so: month, week, day, hour, unique and universe keys, all
    new, at the highest uid, take 3 MiB of the 8 MiB a request may."""
    app = tracking_app(capped, BITCORE_TRACK_ALLOW_HOURLY=True)
    body = {"event": "buy", "uid": DEFAULT_MAX_UID - 1, "track_hourly": True, "unique": True}
    assert app.test_client().post("/track", json=body, headers=HEADERS).status_code == 200
    keys = r.keys("trackist_*")
    assert len(keys) == 6
    assert all(r.strlen(key) == DEFAULT_MAX_UID // 8 for key in keys)


def test_a_write_key_has_a_byte_budget_per_window(capped: str, r: redis.Redis) -> None:
    """Per write key, whatever the address; 429 with Retry-After once over it."""
    per_key = 64 * 1024  # bytes of each new key at this uid
    app = tracking_app(capped, BITCORE_TRACK_WINDOW_WRITE_BYTES=16 * per_key)
    client = app.test_client()
    uid = per_key * 8 - 1
    first = client.post("/track", json={"event": "a", "uid": uid}, headers=HEADERS)
    assert first.status_code == 200  # 8 new keys: month, week, day, universe, ever, 3 first
    other_address = {"REMOTE_ADDR": "10.9.8.7"}
    second = client.post(
        "/track", json={"event": "b", "uid": uid}, headers=HEADERS, environ_base=other_address
    )
    assert second.status_code == 200  # 7 more: 15 of 16
    refused = client.post("/track", json=batch(["c", "d"], uid), headers=HEADERS)
    refusal = assert_refused(refused, 429, "BITCORE_TRACK_WINDOW_WRITE_BYTES")
    assert str(29 * per_key) in refusal["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert r.keys("trackist_c_*") == []
    # known keys cost nothing more, and another write key has its own budget
    assert client.post("/track", json={"event": "a", "uid": 5}, headers=HEADERS).status_code == 200
    other = client.post(
        "/track", json=batch(["c", "d"], uid), headers={"X-Bitcore-Key": "other-key"}
    )
    assert other.status_code == 200


# --- the registry of event names


def test_registry_cap_refuses_new_names_with_422(capped: str, r: redis.Redis) -> None:
    client = tracking_app(capped, BITCORE_TRACK_MAX_EVENT_NAMES=3).test_client()
    assert client.post("/track", json=batch(["a", "b", "c"], 1), headers=HEADERS).status_code == 200
    answer = client.post("/track", json=batch(["a", "d"], 2), headers=HEADERS)
    refusal = assert_refused(answer, 422, "BITCORE_TRACK_MAX_EVENT_NAMES")
    assert refusal["field"] == "event"
    assert r.getbit("trackist__seen_u", 2) == 0  # nothing of the batch, not even "a"
    pixel = client.get(f"/track/p.gif?e=e&u=3&k={KEY}")
    assert pixel.status_code == 422
    assert client.post("/track", json=batch(["a", "c"], 4), headers=HEADERS).status_code == 200
    names = r.zrange("bitcore:event_names:trackist_", 0, -1)
    assert names == [b"a", b"b", b"c"]


def test_new_names_per_write_key_and_window(capped: str, r: redis.Redis) -> None:
    client = tracking_app(capped, BITCORE_TRACK_MAX_NEW_NAMES=2).test_client()
    answer = client.post("/track", json=batch(["a", "b", "c"], 1), headers=HEADERS)
    assert_refused(answer, 429, "BITCORE_TRACK_MAX_NEW_NAMES")
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert r.keys("trackist_*") == []
    assert client.post("/track", json=batch(["a", "b"], 1), headers=HEADERS).status_code == 200
    assert client.post("/track", json=batch(["a", "b"] * 50, 2), headers=HEADERS).status_code == 200
    assert client.post("/track", json={"event": "c", "uid": 3}, headers=HEADERS).status_code == 429
    other = client.post(
        "/track", json={"event": "c", "uid": 3}, headers={"X-Bitcore-Key": "other-key"}
    )
    assert other.status_code == 200


def test_limits_of_zero_are_off(capped: str, r: redis.Redis) -> None:
    app = tracking_app(
        capped,
        BITCORE_TRACK_MAX_WRITE_BYTES=0,
        BITCORE_TRACK_WINDOW_WRITE_BYTES=0,
        BITCORE_TRACK_MAX_EVENT_NAMES=0,
        BITCORE_TRACK_MAX_NEW_NAMES=0,
        BITCORE_TRACK_MAX_UID=2**20,
    )
    body = batch([f"e{i}" for i in range(150)], 2**20 - 1)  # 150 x 3 x 128 KiB: 56 MiB
    assert app.test_client().post("/track", json=body, headers=HEADERS).status_code == 200
    assert r.zcard("bitcore:event_names:trackist_") == 150


# --- Redis at its maxmemory: 507, nothing written


@pytest.mark.parametrize(
    "request_args",
    [
        {"path": "/track", "json": {"event": "a", "uid": 1}},
        {"path": "/track", "json": batch([f"e{i}" for i in range(30)], 1)},  # > SCRIPT_MAX_BITS
        {"path": f"/track/p.gif?e=a&u=1&k={KEY}", "method": "GET"},
    ],
    ids=["single", "batch", "pixel"],
)
def test_redis_at_maxmemory_answers_507(
    capped: str, r: redis.Redis, request_args: dict[str, Any]
) -> None:
    for rate_limit in (0, 600):  # the rate-limit counter is the script's first write
        app = tracking_app(capped, BITCORE_TRACK_RATE_LIMIT=rate_limit)
        r.flushall()
        fill_up(r)
        args = {"method": "POST", "headers": HEADERS, **request_args}
        answer = app.test_client().open(**args)
        assert answer.status_code == 507
        assert answer.json is not None and answer.json["limit"] == "maxmemory"
        assert int(answer.headers["Retry-After"]) > 0
        r.config_set("maxmemory", str(128 * MiB))
        assert r.dbsize() == 0


# --- hostile input: never a 500, nothing written


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


HOSTILE_BODIES: list[tuple[str, bytes | str, dict[str, str]]] = [
    ("nested 1,000 deep", nested(1000), HEADERS),
    ("nested 10,000 deep", nested(10_000), HEADERS),
    ("nested lists", "[" * 30_000 + "]" * 30_000, HEADERS),
    (
        "nested in events",
        json.dumps({"events": [{"event": "a", "uid": 1, "x": 1}]}).replace(
            '"x": 1', '"x": ' + "[" * 5000 + "]" * 5000
        ),
        HEADERS,
    ),  # fmt: skip
    ("huge uid", '{"event": "a", "uid": 1' + "0" * 5000 + "}", HEADERS),
    ("huge float uid", '{"event": "a", "uid": 1e999}', HEADERS),
    ("NaN uid", '{"event": "a", "uid": NaN}', HEADERS),
    ("NaN ts", '{"event": "a", "uid": 1, "ts": NaN}', HEADERS),
    ("Infinity ts", '{"event": "a", "uid": 1, "ts": Infinity}', HEADERS),
    ("-Infinity ts", '{"event": "a", "uid": 1, "ts": -Infinity}', HEADERS),
    ("huge ts", '{"event": "a", "uid": 1, "ts": 1' + "0" * 400 + "}", HEADERS),
    ("event bitop", '{"event": "bitop", "uid": 1}', HEADERS),
    ("event bitop_x", '{"event": "bitop_x", "uid": 1}', HEADERS),
    ("event _seen", '{"event": "_seen", "uid": 1}', HEADERS),
    ("event bitop in batch", '{"uid": 1, "events": [{"event": "a"}, {"event": "bitop"}]}', HEADERS),
    ("event with newline", '{"event": "a\\n", "uid": 1}', HEADERS),
    ("event with NUL", '{"event": "a\\u0000", "uid": 1}', HEADERS),
    ("event lone surrogate", '{"event": "\\ud800", "uid": 1}', HEADERS),
    ("event non-ascii", json.dumps({"event": "caf\u00e9\u2603", "uid": 1}), HEADERS),
    ("event a list", '{"event": ["a"], "uid": 1}', HEADERS),
    ("event an object", '{"event": {"a": 1}, "uid": 1}', HEADERS),
    ("events a string", '{"events": "a", "uid": 1}', HEADERS),
    ("events null", '{"events": null}', HEADERS),
    ("uid a list", '{"event": "a", "uid": [1]}', HEADERS),
    ("uid an object", '{"event": "a", "uid": {"n": 1}}', HEADERS),
    ("flags wrong", '{"event": "a", "uid": 1, "unique": "yes", "track_hourly": 1}', HEADERS),
    ("duplicate keys", '{"event": "a", "event": "bitop", "uid": 1, "uid": 2}', HEADERS),
    ("body a number", "12", HEADERS),
    ("body a string", '"x"', HEADERS),
    ("body null", "null", HEADERS),
    ("body empty", "", HEADERS),
    ("body not UTF-8", b'{"event": "\xff\xfe", "uid": 1}', HEADERS),
    ("body binary", bytes(range(256)), HEADERS),
    ("key non-ascii header", '{"event": "a", "uid": 1}', {"X-Bitcore-Key": "cl\u00e9"}),
    ("key latin-1 bytes header", '{"event": "a", "uid": 1}', {"X-Bitcore-Key": "\xff\xfe"}),
    ("key non-ascii in body", json.dumps({"key": "\u2603", "event": "a", "uid": 1}), {}),
    ("key lone surrogate in body", '{"key": "\\udfff", "event": "a", "uid": 1}', {}),
    ("key a list in body", '{"key": ["site-key-1"], "event": "a", "uid": 1}', {}),
    ("key an object in body", '{"key": {"k": 1}, "event": "a", "uid": 1}', {}),
    ("key a number in body", '{"key": 5, "event": "a", "uid": 1}', {}),
]


@pytest.mark.parametrize(
    ("body", "headers"),
    [case[1:] for case in HOSTILE_BODIES],
    ids=[case[0] for case in HOSTILE_BODIES],
)
def test_hostile_bodies_are_refused_without_a_500(
    client: FlaskClient, r: redis.Redis, body: bytes | str, headers: dict[str, str]
) -> None:
    answer = client.post("/track", data=body, headers=headers, content_type="application/json")
    assert 400 <= answer.status_code < 500, answer.get_data(as_text=True)
    assert answer.json is not None and answer.json["error"]
    assert r.keys("*") == []


@pytest.mark.parametrize("name", ["bitop", "bitop_x", "bitop_AND_a-b", "_seen"])
def test_reserved_names_are_refused_by_the_schema_on_every_route(
    client: FlaskClient, r: redis.Redis, name: str
) -> None:
    single = client.post("/track", json={"event": name, "uid": 1}, headers=HEADERS)
    many = client.post("/track", json=batch(["ok", name], 1), headers=HEADERS)
    pixel = client.get(f"/track/p.gif?e={name}&u=1&k={KEY}")
    head = client.head(f"/track/p.gif?e={name}&u=1&k={KEY}")
    assert [single.status_code, many.status_code, pixel.status_code, head.status_code] == [400] * 4
    assert single.json["field"] == "event" and many.json["field"] == "events[1].event"
    assert pixel.json["field"] == "e"
    assert r.keys("*") == []


HOSTILE_QUERIES = [
    "e=a&u=1&k=cl%C3%A9",
    "e=a&u=1&k=%FF%FE",
    "e=a&u=1&k=%ED%A0%80",
    "e=caf%C3%A9&u=1",
    "e=a%00&u=1",
    "e=bitop&u=1",
    "e=a&u=%EF%BC%91",  # a full-width digit one
    "e=a&u=1" + "0" * 5000,
    "e=a&u=-1",
    "e=a&u=1&t=nan",
    "e=a&u=1&t=inf",
    "e=a&u=1&t=-inf",
    "e=a&u=1&t=1e999",
    "e=a&u=1&t=" + "9" * 5000,
    "e=bitop&e=a&u=2&u=1",  # the first of each counts
    "e=&u=",
    "e[]=a&u[]=1",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_hostile_pixel_queries_are_refused_without_a_500(
    client: FlaskClient, r: redis.Redis, query: str, method: str
) -> None:
    key = "" if "k=" in query else f"&k={KEY}"
    answer = client.open(f"/track/p.gif?{query}{key}", method=method)
    assert 400 <= answer.status_code < 500, answer.get_data(as_text=True)
    assert r.keys("*") == []


@pytest.mark.parametrize("sig", ["\u00e9" * 64, "\u2603", "\\ud800", "\xff" * 64])
def test_non_ascii_signatures_are_refused_with_403(capped: str, r: redis.Redis, sig: str) -> None:
    client = tracking_app(capped, BITCORE_TRACK_HMAC_SECRET="s3cret").test_client()
    body = json.dumps({"event": "a", "uid": 1, "sig": sig})
    answer = client.post("/track", data=body, headers=HEADERS, content_type="application/json")
    pixel = client.get("/track/p.gif", query_string={"e": "a", "u": "1", "s": sig, "k": KEY})
    assert answer.status_code == pixel.status_code == 403
    assert r.keys("*") == []


def test_a_private_server_for_these_tests(tmp_path: Path) -> None:
    """What the fixtures rely on: the capped server is not the session's shared one."""
    with private_redis(tmp_path, 8 * MiB) as server:
        client = server.client()
        assert int(client.config_get("maxmemory")["maxmemory"]) == 8 * MiB
        client.close()
