"""The pure beacon rules (bitcore/tracking/schema.py) and the write plan, without an app."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitcore import BitCore
from bitcore.bulk import SCRIPT_MAX_BITS
from bitcore.tracking import ratelimit
from bitcore.tracking.schema import (
    Beacon,
    BeaconError,
    BeaconRules,
    parse_payload,
    parse_pixel,
    sign_uid,
)
from bitcore.tracking.write import WriteResult, plan_beacons, write_beacons

NOW = 1_750_000_000.0
RULES = BeaconRules(max_uid=1000, max_batch=5)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["event", "uid", "sig", "ts", "events", "unique", "track_hourly", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_is_either_beacons_or_a_named_error(payload: Any) -> None:
    """Whatever arrives, the answer is checked beacons or a BeaconError: never another exception."""
    try:
        beacons = parse_payload(payload, RULES, NOW)
    except BeaconError as error:
        assert error.field
        assert 400 <= error.status < 500
        assert error.message.startswith(error.field)
        return
    assert beacons
    for beacon in beacons:
        assert 0 <= beacon.uid < RULES.max_uid
        assert type(beacon.uid) is int
        assert isinstance(beacon.event, str) and beacon.event


names = st.text("abcXYZ019:_.-", min_size=1, max_size=120).filter(
    lambda n: not n.startswith("bitop_")
)


@given(st.lists(st.tuples(names, st.integers(0, 999)), min_size=1, max_size=5))
def test_valid_batches_come_back_as_given(pairs: list[tuple[str, int]]) -> None:
    payload = {"events": [{"event": e, "uid": u} for e, u in pairs]}
    beacons = parse_payload(payload, RULES, NOW)
    assert [(b.event, b.uid) for b in beacons] == pairs
    assert all(b.ts is None and not b.unique and not b.track_hourly for b in beacons)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"uid": 1, "events": [{"event": "a"}, {"event": "b", "uid": "2"}]}, "events[1].uid"),
        ({"uid": "1", "events": [{"event": "a"}]}, "uid"),  # the shared uid is named plainly
        ({"ts": "x", "uid": 1, "events": [{"event": "a"}]}, "ts"),
        ({"events": [{"event": "a", "uid": 1, "ts": "soon"}]}, "events[0].ts"),
        ({"events": [{"uid": 1}]}, "events[0].event"),
    ],
)
def test_errors_name_the_field_where_it_was_given(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(BeaconError) as caught:
        parse_payload(payload, RULES, NOW)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("ts", "kept_as"),
    [
        (NOW, NOW),
        (NOW + 300, NOW + 300),
        (NOW + 301, NOW + 300),  # a fast clock: the window's future edge
        (NOW + 10**9, NOW + 300),
        (NOW - 7 * 86400, NOW - 7 * 86400),
        (NOW - 7 * 86400 - 1, NOW - 7 * 86400),  # queued offline too long: the oldest edge
        (0, NOW - 7 * 86400),
    ],
)
def test_ts_outside_the_window_is_clamped_to_its_edge(ts: float, kept_as: float) -> None:
    [beacon] = parse_payload({"event": "a", "uid": 1, "ts": ts}, BeaconRules(), NOW)
    assert beacon.ts == kept_as
    assert beacon.clamped == (ts != kept_as)


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), -float("inf"), True, "1", [1]])
def test_ts_that_is_not_a_finite_number_is_refused(ts: Any) -> None:
    with pytest.raises(BeaconError, match="ts"):
        parse_payload({"event": "a", "uid": 1, "ts": ts}, BeaconRules(), NOW)


def test_sign_uid_is_the_documented_recipe() -> None:
    secret = b"s3cret"
    expected = hmac.new(secret, str(123).encode(), hashlib.sha256).hexdigest()
    assert sign_uid(secret, 123) == expected
    rules = BeaconRules(hmac_secret=secret)
    assert parse_payload({"event": "a", "uid": 123, "sig": expected.upper()}, rules, NOW)
    with pytest.raises(BeaconError) as caught:
        parse_payload({"event": "a", "uid": 124, "sig": expected}, rules, NOW)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"e": "a"}, "u"),
        ({"e": "a", "u": "1e3"}, "u"),
        ({"u": "1"}, "e"),
        ({"e": "a", "u": "1000"}, "u"),
    ],
)
def test_pixel_errors_use_the_short_names(args: dict[str, str], field: str) -> None:
    with pytest.raises(BeaconError) as caught:
        parse_pixel(args, RULES, NOW)
    assert caught.value.field == field
    assert caught.value.message.startswith(field)


def test_write_plan_matches_mark_keys(bc: BitCore) -> None:
    """The keys the endpoint writes are the keys mark_event writes, each with its own offsets."""
    when = datetime(2025, 12, 29, 23, 50, tzinfo=UTC)  # ISO week 2026-1, in 2025's December
    beacons = [
        Beacon("a", 1, None, False, False),
        Beacon("a", 2, None, True, False),
        Beacon("b", 3, when.timestamp(), False, True),
    ]
    plan = plan_beacons(bc, beacons, datetime(2026, 1, 5, 12, tzinfo=UTC)).writes
    assert plan["trackist__seen_u"] == {1, 2, 3}
    assert plan["trackist_a_2026-1-5"] == {1, 2}
    assert plan["trackist_a_2026-1-5-12"] == {2}
    assert plan["trackist_b_W2026-1"] == {3}
    assert plan["trackist_b_2025-12-29"] == {3}
    assert plan["trackist_b_u"] == {3}
    expected = set(bc.mark_keys("b", when, False, True)) | set(
        bc.mark_keys("a", datetime(2026, 1, 5, 12, tzinfo=UTC), True, False)
    )
    assert set(plan) == expected | {"trackist__seen_u"}


def test_ratelimit_window_and_key(redis_client: Any) -> None:
    now = 6000.5
    counter = ratelimit.window_for("k|1.2.3.4", 2, 60, now)
    verdicts = [ratelimit.hit(redis_client, counter) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[-1].retry_after == 60  # 6000.5 is in the window [6000, 6060)
    later = ratelimit.window_for("k|1.2.3.4", 2, 60, now + 60)
    assert later.key != counter.key
    assert ratelimit.hit(redis_client, later).allowed  # a new window
    assert ratelimit.window_for("k|1.2.3.5", 2, 60, now).key != counter.key
    assert all(k.startswith(b"bitcore:ratelimit:") for k in redis_client.keys("*"))
    assert 0 < redis_client.ttl(counter.key) <= 61


def test_write_script_counts_and_refuses_without_writing(bc: BitCore, redis_client: Any) -> None:
    counter = ratelimit.window_for("k|script", 1, 60, NOW)
    beacons = [Beacon("a", 5, None, False, False)]
    assert write_beacons(bc, beacons, counter) == WriteResult(1, True)
    before = {k: redis_client.dump(k) for k in redis_client.keys("trackist_*")}
    assert write_beacons(bc, [Beacon("a", 6, None, False, False)], counter) == WriteResult(0, False)
    assert {k: redis_client.dump(k) for k in redis_client.keys("trackist_*")} == before
    assert int(redis_client.get(counter.key)) == 2
    assert set(bc.MonthEvents("a")) == {5}


@pytest.mark.parametrize("size", ["script", "transaction"])
def test_batch_over_the_limit_writes_nothing(bc: BitCore, redis_client: Any, size: str) -> None:
    counter = ratelimit.window_for("k|big", 1, 60, NOW)
    count = 1 if size == "script" else SCRIPT_MAX_BITS
    first = [Beacon("a", u, None, False, False) for u in range(count)]
    assert write_beacons(bc, first, counter) == WriteResult(count, True)
    before = {k: redis_client.dump(k) for k in redis_client.keys("trackist_*")}
    second = [Beacon("a", u, None, False, False) for u in range(1000, 1000 + count)]
    assert write_beacons(bc, second, counter) == WriteResult(0, False)
    assert {k: redis_client.dump(k) for k in redis_client.keys("trackist_*")} == before


@pytest.mark.parametrize("count", [1, 10, 5000])  # the script, and MULTI/EXEC in several commands
def test_writes_set_the_bits_setbit_would(bc: BitCore, redis_client: Any, count: int) -> None:
    """Against an oracle: the same marks through mark_many on another prefix give equal strings."""
    pool = [0, 7, 8, 1000, 4095, 4096, 123_456, 2**27 - 1] + list(range(20_000, 40_000, 3))
    uids = pool[:count]
    when = datetime(2026, 3, 4, 5, tzinfo=UTC)
    write_beacons(bc, [Beacon("e", u, None, False, False) for u in uids], None, when)
    oracle = BitCore(redis_client, key_prefix="oracle_")
    oracle.mark_many([("e", u, when) for u in uids])
    for key in oracle.mark_keys("e", when) + ["oracle__seen_u"]:
        ours = "trackist_" + key.removeprefix("oracle_")
        assert redis_client.get(ours) == redis_client.get(key), key
