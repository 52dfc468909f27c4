"""The segments pages against hostile input and costly expressions: never a 500, nothing left."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import redis
from flask.testing import FlaskClient
from test_segments_web import WHEN, form, segments_app

import bitcore
from bitcore import event_names
from bitcore.segments import MAX_DEPTH, MAX_LENGTH

#: ids of a 64 KiB key: big enough that a 1 KiB limit refuses any NOT, small for the shared Redis
HIGH_ID = (64 << 10) * 8 - 1

HOSTILE = [
    "(" * 1000 + "a" + ")" * 1000,  # deep nesting
    "(" * (MAX_DEPTH + 1) + "a",
    "~" * MAX_LENGTH,  # 2,000 characters of NOT
    " & ".join(f"~event_{i:03}" for i in range(MAX_LENGTH // 11))[:MAX_LENGTH],
    "a" * (MAX_LENGTH + 5),  # too long
    "@nope & @nope2",  # unknown references
    '"unclosed',
    '"a\\q"',
    '"\\"" & "\\\\"',
    "é & 日本 | ~ünïcode",
    "a\x00b",
    '"a\x00b" | ~"\x00"',
    '"bitop"',
    'active | "bitop"',
    '"bitop_AND_trackist_active_2025-1-trackist_bought_2025-1"',
    "unique(bitop)",
    "~" * MAX_DEPTH + "a",
    "",
    " ",
]


@pytest.fixture
def bc(redis_client: redis.Redis) -> bitcore.BitCore:
    b = bitcore.BitCore(redis_client)
    b.mark_many([("active", 1, WHEN), ("active", 2, WHEN), ("bought", 2, WHEN)])
    return b


@pytest.fixture
def client(redis_url: str, bc: bitcore.BitCore) -> Iterator[FlaskClient]:
    yield segments_app(redis_url).test_client()


@pytest.mark.parametrize("expression", HOSTILE)
def test_hostile_expressions_are_answered_never_with_a_500(
    client: FlaskClient, expression: str
) -> None:
    query = urlencode({"expression": expression, "kind": "week", "when": "2025-01-08"})
    for url in (f"/segments/preview?{query}", f"/segments/preview.json?{query}"):
        assert client.get(url).status_code in (200, 400, 422)
    for button in ("preview", "save"):
        answer = client.post(
            "/segments/new", data=form(name="hostile", expression=expression, **{button: "1"})
        )
        assert answer.status_code in (200, 302, 400, 409, 422)
    assert client.get("/segments").status_code == 200
    assert client.get("/segments.json").status_code == 200


def test_a_preview_naming_a_bitop_key_is_a_syntax_error(client: FlaskClient) -> None:
    expression = '"bitop_AND_trackist_active_2025-1-trackist_bought_2025-1"'
    answer = client.get(
        "/segments/preview.json?" + urlencode({"expression": expression, "kind": "week"})
    )
    assert answer.status_code == 400
    error = answer.get_json()["error"]["syntax_error"]
    assert "reserved" in error["message"] and error["column"] == 1


@pytest.mark.parametrize("expression", ['active | "bitop"', "unique(bitop_x) & active", "("])
def test_a_segment_saved_before_the_rules_is_listed_with_its_error(
    client: FlaskClient, bc: bitcore.BitCore, expression: str
) -> None:
    """Written by an older version or by hand in Redis: the pages list it with its error."""
    bc.redis.hset(
        bc.keys.segment_key("legacy"), mapping={"name": "legacy", "expression": expression}
    )
    bc.redis.sadd(bc.keys.segments_index_key(), "legacy")
    bc.mark_event("active", 5)  # this week, which the list counts
    client.post("/segments/new", data=form(name="fine", expression="active", save="1"))

    listing = client.get("/segments.json")
    assert listing.status_code == 200
    rows = {row["name"]: row for row in listing.get_json()["segments"]}
    assert rows["legacy"]["size"] is None and rows["legacy"]["error"]
    assert rows["fine"]["size"] == 1 and rows["fine"]["error"] is None
    page = client.get("/segments")
    assert page.status_code == 200 and "legacy" in page.get_data(as_text=True)
    assert client.get("/segments/legacy/edit").status_code == 200
    assert client.get("/segments/fine/edit").status_code == 200
    referring = client.post(
        "/segments/new", data=form(name="user", expression="@legacy", preview="1")
    )
    assert referring.status_code == 400


def test_a_preview_over_the_memory_limit_answers_422_naming_the_setting(
    redis_url: str, bc: bitcore.BitCore
) -> None:
    bc.mark_event("active", HIGH_ID, WHEN)  # every key of this week: 64 KiB
    client = segments_app(redis_url, BITCORE_SEGMENT_MAX_BYTES=1024).test_client()
    event_names.ensure(bc)  # the registry's rebuild marker: a key the first page writes anyway
    keys = bc.redis.dbsize()
    query = urlencode({"expression": "~active", "kind": "week", "when": "2025-01-08"})
    answer = client.get(f"/segments/preview.json?{query}")
    assert answer.status_code == 422
    assert "BITCORE_SEGMENT_MAX_BYTES=1024" in answer.get_json()["error"]["message"]
    assert answer.get_json()["error"]["limit"] == "BITCORE_SEGMENT_MAX_BYTES"
    html = client.get(f"/segments/preview?{query}")
    assert html.status_code == 422 and "BITCORE_SEGMENT_MAX_BYTES" in html.get_data(as_text=True)
    posted = client.post("/segments/new", data=form(name="x", expression="~active", preview="1"))
    assert posted.status_code == 422
    assert "BITCORE_SEGMENT_MAX_BYTES" in posted.get_data(as_text=True)
    # saving does not evaluate; the list shows the refusal on the row instead of failing
    saved = client.post("/segments/new", data=form(name="x", expression="~active", save="1"))
    assert saved.status_code == 302
    row = client.get("/segments.json").get_json()["segments"][0]
    assert row["size"] is None and "BITCORE_SEGMENT_MAX_BYTES" in row["error"]
    assert bc.redis.dbsize() == keys + 2  # the segment's hash and the index: nothing computed


def test_previews_leave_no_keys_and_the_app_remembers_none(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    client.post("/segments/new", data=form(name="lurkers", expression="active & ~bought", save="1"))
    event_names.ensure(bc)  # the registry's rebuild marker: written once, by the first page
    keys = bc.redis.dbsize()
    for i in range(40):
        expression = " & ".join(f"~long_event_name_{i:03}_{j}" for j in range(20))
        query = urlencode({"expression": expression, "kind": "week", "when": "2025-01-08"})
        assert client.get(f"/segments/preview.json?{query}").status_code == 200
        assert client.get("/segments.json").status_code == 200
    assert bc.redis.dbsize() == keys
    app_client: bitcore.BitCore = client.application.extensions["bitcore"]
    assert len(app_client._runtime_keys()) == 0


@pytest.mark.parametrize("kind", ["hour", "day", "week", "month", "year"])
@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31", "2025-02-30", "x"])
def test_previews_of_the_first_and_last_representable_dates_are_answered(
    client: FlaskClient, kind: str, when: str
) -> None:
    """A period ending after year 9999 once made the bit-op TTL overflow: a 500."""
    query = urlencode({"expression": "active & ~bought", "kind": kind, "when": when})
    assert client.get(f"/segments/preview.json?{query}").status_code in (200, 400)
    posted = client.post(
        "/segments/new", data=form(expression="active & ~bought", kind=kind, when=when, preview="1")
    )
    assert posted.status_code in (200, 400)
