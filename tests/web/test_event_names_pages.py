"""The dashboard on the registry of event names: the overview pages and searches, the pickers offer
a bounded list and accept any registered name, and the cleanup run refreshes the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from dashboard_support import make_app
from flask import Flask

from bitcore import BitCore, event_names


@pytest.fixture
def app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    return make_app(redis_url, tmp_path, BITCORE_OVERVIEW_PAGE_SIZE=50, BITCORE_PICKER_NAMES=20)


@pytest.fixture
def bc_of(app: Flask) -> BitCore:
    return app.extensions["bitcore"]  # type: ignore[no-any-return]


def register(bc: BitCore, *names: str) -> None:
    bc.redis.zadd(bc.keys.event_names_key(), dict.fromkeys(names, 0))


NAMES = [f"song:{i:03d}" for i in range(80)] + [f"video:{i:03d}" for i in range(40)]


@pytest.fixture
def many(bc_of: BitCore) -> None:
    """120 events marked today (the first read builds the registry from their keys)."""
    bc_of.mark_many([(name, i) for i, name in enumerate(NAMES)])


def names_in(data: dict[str, object]) -> list[str]:
    return [row["name"] for row in data["events"]]  # type: ignore[attr-defined, index]


def test_overview_pages_through_every_event(app: Flask, many: None) -> None:
    client = app.test_client()
    first = client.get("/index.json").get_json()
    assert names_in(first) == sorted(NAMES)[:50]
    assert first["total"] == 120 and first["page"] == 1 and first["pages"] == 3
    assert first["previous"] is None and first["next"] == "/index.json?page=2"
    third = client.get(first["next"].replace("2", "3")).get_json()
    assert names_in(third) == sorted(NAMES)[100:] and third["next"] is None
    assert third["previous"] == "/index.json?page=2"
    assert all(row["today"] == 1 for row in third["events"])
    html = client.get("/?page=2").get_data(as_text=True)
    assert 'rel="next" href="/?page=3"' in html and 'rel="prev" href="/?page=1"' in html
    assert "Page 2 of 3" in html and html.count('<th scope="row">') == 50


def test_overview_search_pages_too(app: Flask, many: None) -> None:
    client = app.test_client()
    data = client.get("/index.json?q=SONG&page=2").get_json()
    assert names_in(data) == [f"song:{i:03d}" for i in range(50, 80)]
    assert data["total"] == 80 and data["filter"] == "SONG" and data["complete"]
    assert data["previous"] == "/index.json?q=SONG&page=1" and data["next"] is None
    html = client.get("/?q=video").get_data(as_text=True)
    assert "40 events matching" in html and "song:" not in html


@pytest.mark.parametrize("page", ["0", "-1", "two", "1e3", "99999999999"])
def test_a_bad_page_number_is_a_400(app: Flask, page: str) -> None:
    response = app.test_client().get(f"/index.json?page={page}")
    assert response.status_code == 400 and "page" in response.get_json()["error"]["fields"]


def test_a_page_past_the_end_says_so(app: Flask, many: None) -> None:
    response = app.test_client().get("/?page=9")
    assert response.status_code == 200 and b"There is no page 9" in response.data
    assert app.test_client().get("/index.json?page=9").get_json()["events"] == []


def test_event_page_needs_a_registered_name(app: Flask, bc_of: BitCore) -> None:
    bc_of.mark_many([("song", 1)])
    client = app.test_client()
    assert client.get("/event/song").status_code == 200
    assert client.get("/event/so").status_code == 404
    assert client.get("/event/_seen").status_code == 404


def datalist(html: str, list_id: str) -> list[str]:
    found = re.search(rf'<datalist id="{list_id}">(.*?)</datalist>', html, re.S)
    assert found, f"no datalist {list_id}"
    return re.findall(r'<option value="([^"]*)"', found.group(1))


def test_pickers_offer_a_bounded_list_plus_what_was_typed(app: Flask, many: None) -> None:
    client = app.test_client()
    funnel = client.get("/funnel").get_data(as_text=True)
    assert datalist(funnel, "funnel-choices") == sorted(NAMES)[:20]  # by name, as typed
    cohort = client.get("/cohort?select1=video:03").get_data(as_text=True)
    offered = datalist(cohort, "cohort-choices")
    assert offered[:20] == sorted(NAMES)[:20]
    assert offered[20:] == [f"video:{i:03d}" for i in range(30, 40)], "the typed prefix"


def test_any_registered_name_is_accepted_offered_or_not(app: Flask, many: None) -> None:
    client = app.test_client()
    steps = {"steps-0": "video:039", "steps-1": "event:song:079", "start": "2024-05-06"}
    response = client.get("/funnel.json", query_string=steps)
    assert response.status_code == 200, response.get_json()
    assert [s["token"] for s in response.get_json()["funnel"]["steps"]] == [
        "event:video:039",
        "event:song:079",
    ]
    cohort = client.get("/cohort.json?select1=video:039&select2=song:079")
    assert cohort.status_code == 200, cohort.get_json()


def test_an_unknown_name_is_refused_clearly(app: Flask, many: None) -> None:
    client = app.test_client()
    response = client.get("/cohort.json?select1=video:999&select2=song:079")
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"]["select1"] == [
        "Unknown event 'video:999': nothing has been tracked under this name."
    ]
    funnel = client.get("/funnel", query_string={"steps-0": "song:000", "steps-1": "nope"})
    assert funnel.status_code == 400
    assert "Unknown event &#39;nope&#39;" in funnel.get_data(as_text=True)


def test_cleanup_run_registers_names_bitmapist_wrote(app: Flask, bc_of: BitCore) -> None:
    bc_of.mark_many([("old", 1)])
    app.test_client().get("/")  # the registry is built once
    bc_of.redis.setbit("trackist_from-bitmapist_2024-5", 3, 1)  # no registry entry
    assert not event_names.is_registered(bc_of, "from-bitmapist")
    result = app.test_cli_runner().invoke(args=["cleanup"])
    assert result.exit_code == 0, result.output
    assert "Registered 1 new event names." in result.output
    assert event_names.is_registered(bc_of, "from-bitmapist")
    assert b"from-bitmapist" in app.test_client().get("/").data


def test_scheduled_cleanup_registers_names_too(app: Flask, bc_of: BitCore) -> None:
    bc_of.redis.setbit("trackist_from-bitmapist_2024-5", 3, 1)
    register(bc_of, "new")
    scheduler = app.extensions["bitcore_cleanup"]
    scheduler.tick()
    assert event_names.is_registered(bc_of, "from-bitmapist")


@pytest.mark.parametrize(
    "url",
    ["/index.json?page=" + "9" * 400, "/event/signup.json?user=" + "9" * 400 + "&date=2024-05-07"],
)
def test_a_number_of_hundreds_of_digits_is_a_400(app: Flask, bc_of: BitCore, url: str) -> None:
    """WTForms' NumberRange raises OverflowError on it: the field refuses it first."""
    bc_of.mark_many([("signup", 1)])
    response = app.test_client().get(url)
    assert response.status_code == 400
    assert "Not a valid integer value." in str(response.get_json())


@pytest.mark.parametrize("name", ["bitop", "bitop_AND_trackist_x", "bitop_x.json"])
def test_a_name_the_library_refuses_is_no_event(app: Flask, name: str) -> None:
    assert app.test_client().get(f"/event/{name}").status_code == 404
