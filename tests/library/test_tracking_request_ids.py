"""A beacon request's optional ``request_id``: a client's retry with the same id, within the rate
window, is answered as the first was, but not counted (rate limit, write budget) nor written
again; the id's key is set by the script that counts the quota."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from bitcore import BitCore, bulk
from bitcore.tracking import ratelimit
from bitcore.tracking.budget import Limits
from bitcore.tracking.schema import (
    MAX_REQUEST_ID_LENGTH,
    BeaconError,
    BeaconRules,
    check_request_id,
    parse_payload,
)
from bitcore.tracking.write import RateLimited, accept

pytestmark = pytest.mark.all_layouts

KEY, ADDRESS = "site-key", "203.0.113.7"
RULES = BeaconRules(max_uid=1 << 20)


def limits(rate_limit: int = 10) -> Limits:
    return Limits(rate_limit, 8 << 20, 64 << 20, 1000, 100, 60)


def send(client: BitCore, payload: dict[str, Any], rate_limit: int = 10) -> int:
    """One request through ``accept``, as the endpoint sends it: what it wrote."""
    parse = lambda rules, now: parse_payload(payload, rules, now)  # noqa: E731
    result = accept(
        client, RULES, parse, KEY, ADDRESS, limits(rate_limit), payload.get("request_id")
    )
    return result.written


def requests_counted(client: BitCore, rate_limit: int = 10) -> int:
    counter = ratelimit.window_for(f"{KEY}|{ADDRESS}", rate_limit, 60)
    return int(client.redis.get(counter.key) or 0)


def bytes_counted(r: redis.Redis) -> int:
    return sum(int(r.get(key) or 0) for key in r.scan_iter(f"{ratelimit.KEY_PREFIX}*"))


@pytest.fixture
def client(bc: BitCore) -> BitCore:
    return bc


@pytest.mark.parametrize("events", [1, 40])  # one script call; a check, then MULTI/EXEC
def test_a_retry_with_the_same_id_is_counted_and_written_once(
    client: BitCore, redis_client: redis.Redis, events: int
) -> None:
    payload = {
        "request_id": "b-1",
        "events": [{"event": f"e{i}", "uid": 9000 + i} for i in range(events)],
    }
    assert (events * 4 > bulk.SCRIPT_MAX_BITS) == (events == 40)
    assert send(client, payload) == events
    counted = bytes_counted(redis_client)
    assert requests_counted(client) == 1
    assert send(client, payload) == events, "answered as the first was"
    assert send(client, payload) == events
    assert requests_counted(client) == 1, "the retries were not counted"
    assert bytes_counted(redis_client) == counted
    assert send(client, {**payload, "request_id": "b-2"}) == events
    assert requests_counted(client) == 2, "another id is another request"
    key = client.keys.request_id_key(KEY, "b-1")
    assert redis_client.get(key) == b"done" and 0 < redis_client.ttl(key) <= 61


def test_a_retry_is_not_rate_limited_but_a_new_request_is(client: BitCore) -> None:
    payload = {"request_id": "only-one", "event": "play", "uid": 7}
    assert send(client, payload, rate_limit=1) == 1
    assert send(client, payload, rate_limit=1) == 1
    with pytest.raises(RateLimited):
        send(client, {**payload, "request_id": "another"}, rate_limit=1)
    with pytest.raises(RateLimited):
        send(client, {"event": "play", "uid": 7}, rate_limit=1)  # no id: counted each time


def test_without_an_id_every_request_counts(client: BitCore) -> None:
    for _ in range(3):
        send(client, {"event": "play", "uid": 7})
    assert requests_counted(client) == 3


def test_a_refused_request_leaves_its_id_free(client: BitCore, redis_client: redis.Redis) -> None:
    payload = {"request_id": "r-9", "event": "play", "uid": 7}
    assert send(client, {"event": "play", "uid": 8}, rate_limit=1) == 1
    with pytest.raises(RateLimited):
        send(client, payload, rate_limit=1)
    assert not redis_client.exists(client.keys.request_id_key(KEY, "r-9"))


def test_a_checked_but_unfinished_batch_is_written_again_uncounted(
    client: BitCore, redis_client: redis.Redis
) -> None:
    """A large request whose connection was lost between its check (counted, id 'pending') and
    its transaction: the retry writes the bits, is not counted, and leaves the id done."""
    payload = {"request_id": "half", "events": [{"event": "e", "uid": u} for u in range(100)]}
    key = client.keys.request_id_key(KEY, "half")
    redis_client.set(key, "pending", ex=61)
    assert send(client, payload) == 100
    assert requests_counted(client) == 0
    assert len(client.universe_bitmap()) == 100
    assert redis_client.get(key) == b"done"


def test_the_id_is_per_write_key() -> None:
    keys = BitCore("redis://127.0.0.1:1").keys  # never connects: keys only
    assert keys.request_id_key("a", "1") != keys.request_id_key("b", "1")
    assert KEY not in keys.request_id_key(KEY, "1")


@pytest.mark.parametrize(
    "bad", ["", "x" * (MAX_REQUEST_ID_LENGTH + 1), "a b", "é", 12, ["b-1"], True]
)
def test_a_bad_request_id_is_refused_naming_it(client: BitCore, bad: object) -> None:
    with pytest.raises(BeaconError) as refused:
        check_request_id(bad)
    assert refused.value.field == "request_id" and refused.value.status == 400
    with pytest.raises(BeaconError):
        send(client, {"request_id": bad, "event": "play", "uid": 7})
    assert check_request_id("x" * MAX_REQUEST_ID_LENGTH) == "x" * MAX_REQUEST_ID_LENGTH
