"""The tracking endpoint and the event page with the id map on (``BITCORE_ID_MAPPING=1``), on
single-flat, single-sharded and the cluster (``BITCORE_REDIS_CLUSTER=1``: beacons with string ids
on a cluster dashboard)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from dashboard_support import make_app
from flask.testing import FlaskClient

from bitcore import BitCore
from bitcore.tracking.schema import BeaconError, BeaconRules, parse_payload, parse_pixel, sign_uid

KEY = "site-key-1"
HEADERS = {"X-Bitcore-Key": KEY}
SECRET = "backend-secret"
SNOWFLAKE = 1234567890123456789  # beyond what a JavaScript number holds exactly
UUID = "0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
MAPPED = BeaconRules(id_mapping=True)


def app_client(redis_url: str, **overrides: Any) -> FlaskClient:
    config: dict[str, Any] = {
        "BITCORE_TRACK_KEYS": KEY,
        "BITCORE_TRACK_RATE_LIMIT": 0,
        "BITCORE_ID_MAPPING": True,
    }
    config.update(overrides)
    return make_app(redis_url, **config).test_client()


@dataclass(frozen=True)
class Site:
    """A dashboard's Redis on one layout: its URL, its settings, a mapped library client."""

    url: str
    config: dict[str, Any]
    bc: BitCore

    def app(self, **overrides: Any) -> FlaskClient:
        return app_client(self.url, **{**self.config, **overrides})


@pytest.fixture(params=("flat", "sharded", "cluster"))
def site(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> Site:
    """The app and a mapped client on single-flat, single-sharded and the cluster (issue 17)."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        on_cluster = request.getfixturevalue("cluster_client")
        monkeypatch.setenv("BITCORE_REDIS_CLUSTER", "1")
        url = f"redis://127.0.0.1:{cluster.primaries[1].port}/0"
        return Site(url, {}, BitCore(on_cluster, id_mapping=True))
    config = {"BITCORE_LAYOUT": request.param}
    return Site(redis_url, config, BitCore(redis_client, layout=request.param, id_mapping=True))


@pytest.fixture
def client(site: Site) -> Iterator[FlaskClient]:
    yield site.app()


@pytest.fixture
def mapped(site: Site) -> BitCore:
    return site.bc


def month_members(b: BitCore, event: str) -> set[Any]:
    now = datetime.now(UTC)
    return set(b.MonthEvents(event, now.year, now.month))


# --- the schema


@pytest.mark.parametrize(
    ("uid", "canonical"),
    [(UUID, UUID), ("usr_8f3a", "usr_8f3a"), (str(SNOWFLAKE), SNOWFLAKE), (2**63 - 1, 2**63 - 1)],
)
def test_mapped_rules_take_string_and_64_bit_ids(uid: Any, canonical: Any) -> None:
    [beacon] = parse_payload({"event": "a", "uid": uid}, MAPPED, now=0.0)
    assert beacon.uid == canonical


@pytest.mark.parametrize("uid", [-1, 2**63, "", "x" * 129, "a\nb", 1.5, True, None, [1], {}])
def test_mapped_rules_refuse_anything_else_naming_the_field(uid: Any) -> None:
    with pytest.raises(BeaconError) as refused:
        parse_payload(
            {"events": [{"event": "a", "uid": "ok"}, {"event": "b", "uid": uid}]}, MAPPED, now=0.0
        )
    assert refused.value.field == "events[1].uid"
    assert refused.value.status == 400


@pytest.mark.parametrize("uid", ["usr_1", "123", 2**40])
def test_without_the_map_todays_rules_stay(uid: Any) -> None:
    with pytest.raises(BeaconError):
        parse_payload({"event": "a", "uid": uid}, BeaconRules(), now=0.0)


def test_the_pixel_takes_string_ids_when_mapped() -> None:
    [beacon] = parse_pixel({"e": "open", "u": "usr_8f3a"}, MAPPED, now=0.0)
    assert beacon.uid == "usr_8f3a"
    [beacon] = parse_pixel({"e": "open", "u": str(SNOWFLAKE)}, MAPPED, now=0.0)
    assert beacon.uid == SNOWFLAKE
    with pytest.raises(BeaconError) as refused:
        parse_pixel({"e": "open", "u": "x" * 129}, MAPPED, now=0.0)
    assert refused.value.field == "u"
    with pytest.raises(BeaconError):
        parse_pixel({"e": "open", "u": "usr_8f3a"}, BeaconRules(), now=0.0)


def test_signatures_cover_the_id_as_sent() -> None:
    rules = BeaconRules(id_mapping=True, hmac_secret=SECRET.encode())
    for uid in ("usr_8f3a", "0123", SNOWFLAKE, str(SNOWFLAKE)):
        sig = sign_uid(SECRET.encode(), uid)
        assert parse_payload({"event": "a", "uid": uid, "sig": sig}, rules, now=0.0)
    assert sign_uid(b"k", SNOWFLAKE) == sign_uid(b"k", str(SNOWFLAKE))
    with pytest.raises(BeaconError) as refused:
        bad = sign_uid(SECRET.encode(), "0123")
        parse_payload({"event": "a", "uid": "123", "sig": bad}, rules, now=0.0)
    assert refused.value.status == 403


# --- through the app


def test_beacons_with_string_ids_are_mapped(client: FlaskClient, mapped: BitCore) -> None:
    events = [{"event": "play", "uid": uid} for uid in (UUID, "usr_1", SNOWFLAKE, str(SNOWFLAKE))]
    answer = client.post("/track", json={"events": events}, headers=HEADERS)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"accepted": 4}
    assert month_members(mapped, "play") == {UUID, "usr_1", SNOWFLAKE}


def test_a_pixel_with_a_string_id(client: FlaskClient, mapped: BitCore) -> None:
    answer = client.get(f"/track/p.gif?e=open&u=usr_8f3a&k={KEY}")
    assert answer.status_code == 200
    assert month_members(mapped, "open") == {"usr_8f3a"}


def test_bad_ids_are_a_clear_400_and_write_nothing(client: FlaskClient, mapped: BitCore) -> None:
    for uid in ("", "x" * 129, -5, 1.5, "tab\there"):
        answer = client.post("/track", json={"event": "play", "uid": uid}, headers=HEADERS)
        assert answer.status_code == 400
        assert answer.json["field"] == "uid"
    assert mapped.get_event_names() == [] and len(mapped.MonthEvents("play")) == 0


def test_the_write_budget_counts_the_dense_internal_id(site: Site, mapped: BitCore) -> None:
    client = site.app(BITCORE_TRACK_MAX_WRITE_BYTES=64)
    answer = client.post("/track", json={"event": "play", "uid": 2**62}, headers=HEADERS)
    assert answer.status_code == 200, answer.json
    assert month_members(mapped, "play") == {2**62}


def test_a_mapped_app_on_plain_data_refuses_beacons_clearly(
    redis_url: str, redis_client: redis.Redis
) -> None:
    BitCore(redis_client).mark_event("play", 1)
    client = app_client(redis_url)
    answer = client.post("/track", json={"event": "play", "uid": "usr_1"}, headers=HEADERS)
    assert answer.status_code == 500  # a misconfiguration, logged: never mixed into the data
    assert not redis_client.exists("bitcore:idmap:trackist_:mode")


# --- the event page's "Was a user active?" box


def test_the_lookup_takes_string_ids(client: FlaskClient, mapped: BitCore) -> None:
    today = datetime.now(UTC).date()
    mapped.mark_event("play", "usr_8f3a")
    page = client.get(f"/event/play.json?user=usr_8f3a&date={today}")
    assert page.status_code == 200
    assert page.json["lookup"]["user"] == "usr_8f3a"
    assert page.json["lookup"]["active"] == {"day": True, "week": True, "month": True}
    other = client.get(f"/event/play.json?user=nobody&date={today}").json
    assert other["lookup"]["active"] == {"day": False, "week": False, "month": False}
    assert client.get(f"/event/play.json?user={'x' * 129}&date={today}").status_code == 400
    html = client.get(f"/event/play?user=usr_8f3a&date={today}").get_data(as_text=True)
    assert 'inputmode="text"' in html and "usr_8f3a" in html


def test_the_flag_lookup_takes_string_ids(client: FlaskClient, mapped: BitCore) -> None:
    mapped.mark_unique("ios", "usr_8f3a")
    mapped.mark_event("play", "usr_other")
    page = client.get("/event/ios.json?user=usr_8f3a")
    assert page.status_code == 200
    assert page.json["lookup"] == {"user": "usr_8f3a", "flagged": True}
    assert client.get("/event/ios.json?user=usr_other").json["lookup"]["flagged"] is False
    assert client.get("/event/ios.json?user=nobody").json["lookup"]["flagged"] is False
    assert client.get(f"/event/ios.json?user={'x' * 129}").status_code == 400
    assert 'inputmode="text"' in client.get("/event/ios?user=usr_8f3a").get_data(as_text=True)


def test_the_lookup_without_the_map_still_wants_a_number(
    redis_url: str, redis_client: redis.Redis
) -> None:
    BitCore(redis_client).mark_event("play", 7)
    client = app_client(redis_url, BITCORE_ID_MAPPING=False)
    today = datetime.now(UTC).date()
    assert client.get(f"/event/play.json?user=usr_1&date={today}").status_code == 400
    assert client.get(f"/event/play.json?user=7&date={today}").json["lookup"]["active"]["day"]


def test_a_mapped_dashboard_on_plain_data_says_which_setting_to_fix(
    redis_url: str, redis_client: redis.Redis
) -> None:
    BitCore(redis_client).mark_event("play", 7)
    client = app_client(redis_url)
    today = datetime.now(UTC).date()
    answer = client.get(f"/event/play.json?user=usr_1&date={today}")
    assert answer.status_code == 500
    assert "BITCORE_ID_MAPPING" in answer.get_data(as_text=True)
    assert not redis_client.exists("bitcore:idmap:trackist_:mode")


def test_new_ids_per_window_are_budgeted_and_known_ids_still_pass(
    site: Site, mapped: BitCore
) -> None:
    client = site.app(BITCORE_TRACK_MAX_NEW_IDS=3)
    first = [{"event": "play", "uid": f"u{n}"} for n in range(3)]
    assert client.post("/track", json={"events": first}, headers=HEADERS).status_code == 200
    more = [{"event": "play", "uid": "u0"}, {"event": "play", "uid": "u9"}]
    refused = client.post("/track", json={"events": more}, headers=HEADERS)
    assert refused.status_code == 429
    assert refused.json["limit"] == "BITCORE_TRACK_MAX_NEW_IDS"
    assert refused.json["field"] == "uid"
    assert "Retry-After" in refused.headers
    assert mapped.internal_id("u9") is None  # nothing allocated
    again = client.post("/track", json={"events": first}, headers=HEADERS)
    assert again.status_code == 200  # known ids cost no budget
    assert month_members(mapped, "play") == {"u0", "u1", "u2"}
