"""Saved reports through the real app: save from each report page, list, edit, delete (confirmed),
pin to the overview as cards, pinned and rolling dates, limits, CSRF, failures kept to a card."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis
from dashboard_support import csrf_token, make_app
from flask import Flask
from flask.testing import FlaskClient

import bitcore
from bitcore import embedded, periods
from bitcore.saved_reports import MAX_ON_OVERVIEW, MAX_QUERY_LENGTH, ReportStore
from bitcore.segments import SegmentStore

pytestmark = pytest.mark.all_layouts

MONDAY = datetime(2026, 9, 28, 12)  # ISO week 2026-W40
QUERIES = {
    "cohort": "select1=active&select2=active&time_group=weeks&start_date=2026-09-21"
    "&end_date=2026-10-05&num_of_rows=2",
    "funnel": "steps-0=active&steps-1=paid&kind=week&window=2&trend=2&start=2026-W40",
    "lifecycle": "event=active&period=week&count=3&end=2026-W41",
    "stickiness": "event=active&period=week&start=2026-W40",
    "segment": "expression=active&kind=week&when=2026-09-30",
}
#: What each card says (the numbers below, checked by hand against the marks of ``_data``).
SUMMARIES = {
    "cohort": "Week 1: 40.0%",  # W39: 3 of 5 back in W40; W40: 1 of 5 back in W41
    "funnel": "% convert",
    "lifecycle": "2 active in 2026-W41",  # user 0 returning, user 3 resurrecting
    "stickiness": "5 users, by days active",
    "segment": "5 users in 2026-W40",
}


def _data(bc: bitcore.BitCore) -> None:
    """W39: users 0-4. W40: 0-2 and 5-6 (1, 2 pays). W41: 0 and 3."""
    week = timedelta(weeks=1)
    marks = [("active", u, MONDAY - week) for u in range(5)]
    marks += [("active", u, MONDAY) for u in (0, 1, 2, 5, 6)]
    marks += [("paid", u, MONDAY + timedelta(days=2)) for u in (1, 2)]
    marks += [("active", u, MONDAY + week) for u in (0, 3)]
    bc.mark_many(marks)
    SegmentStore(bc).save("some", "active")


@pytest.fixture
def app(bc: bitcore.BitCore, redis_url: str, tmp_path: Path) -> Flask:
    _data(bc)
    return make_app(redis_url, tmp_path, WTF_CSRF_ENABLED=False)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _save(client: FlaskClient, name: str, page: str, query: str, **fields: Any) -> Any:
    form = {"name": name, "page": page, "query": query, **fields}
    return client.post("/reports/new", data=form)


def _saved(client: FlaskClient) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in client.get("/reports.json").get_json()["reports"]}


@pytest.mark.parametrize("page", sorted(QUERIES))
def test_each_page_saves_and_its_card_shows_its_report(client: FlaskClient, page: str) -> None:
    answer = _save(client, f"my {page}", page, QUERIES[page], dates="pinned", on_overview="y")
    assert answer.status_code == 302 and "saved=my" in answer.location
    saved = _saved(client)[f"my {page}"]
    assert saved["page"] == page and saved["dates"] == "pinned" and saved["on_overview"]
    assert saved["created_by"] == "local"  # an open dashboard: someone on this machine
    opened = client.get(saved["url"])  # its link is the page with its query
    assert opened.status_code == 200
    assert "Save this report" in opened.get_data(as_text=True)
    overview = client.get("/")
    html = overview.get_data(as_text=True)
    assert overview.status_code == 200 and f"my {page}" in html
    assert SUMMARIES[page] in html and "Pinned: 2026-W" in html
    card = client.get("/index.json").get_json()["reports"][0]
    assert card["error"] is None and SUMMARIES[page] in card["summary"]
    assert card["url"] == saved["url"]


def test_cards_draw_their_charts(client: FlaskClient) -> None:
    for page in ("cohort", "lifecycle", "funnel"):
        _save(client, page, page, QUERIES[page], on_overview="y")
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="card"') == 3
    assert 'class="bar bar-dormant"' in html  # lifecycle: bars below zero
    assert 'class="chart card-spark"' in html  # funnel: its conversion trend
    assert 'polyline class="line"' in html  # cohort: its retention curve


def test_a_report_page_offers_save_with_its_query(client: FlaskClient) -> None:
    html = client.get("/lifecycle?" + QUERIES["lifecycle"]).get_data(as_text=True)
    assert 'action="/reports/new"' in html
    assert 'name="page" value="lifecycle"' in html
    assert 'value="event=active&amp;period=week&amp;count=3&amp;end=2026-W41"' in html
    assert 'value="pinned" checked' in html
    rolling = client.get("/lifecycle?event=active").get_data(as_text=True)
    assert 'value="rolling" checked' in rolling


def test_pinned_and_rolling_dates(client: FlaskClient, bc: bitcore.BitCore) -> None:
    _save(client, "rolled", "lifecycle", QUERIES["lifecycle"], dates="rolling")
    _save(client, "pinned", "lifecycle", "event=active&count=3", dates="pinned")
    _save(client, "cohort rolled", "cohort", QUERIES["cohort"], dates="rolling")
    saved = _saved(client)
    assert saved["rolled"]["dates"] == "rolling" and "end=" not in saved["rolled"]["query"]
    this_week = periods.label(periods.period_of("week", bc.now()))
    assert saved["pinned"]["dates"] == "pinned"
    assert ("end", this_week) in parse_qsl(saved["pinned"]["query"])
    assert ("rolling", "1") in parse_qsl(saved["cohort rolled"]["query"])
    listing = client.get("/reports").get_data(as_text=True)
    assert "Rolling" in listing and "Pinned" in listing
    client.post("/reports/rolled/overview", data={"on_overview": "1"})
    card = client.get("/").get_data(as_text=True)
    assert "Rolling: the last 3 weeks" in card  # count=3, up to the current week


def test_edit_renames_and_changes_the_query(client: FlaskClient) -> None:
    _save(client, "a", "stickiness", QUERIES["stickiness"])
    form = client.get("/reports/a/edit").get_data(as_text=True)
    assert 'value="a"' in form and "start=2026-W40" in form
    query = "event=active&period=week&start=2026-W39"
    answer = client.post("/reports/a/edit", data={"name": "b", "query": query, "dates": "pinned"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    saved = _saved(client)
    assert list(saved) == ["b"] and "2026-W39" in saved["b"]["query"]
    assert saved["b"]["page"] == "stickiness"
    assert client.get("/reports/a/edit").status_code == 404


def test_delete_asks_first(client: FlaskClient) -> None:
    _save(client, "a", "segment", QUERIES["segment"])
    confirm = client.get("/reports/a/delete")
    assert confirm.status_code == 200 and "Delete report a?" in confirm.get_data(as_text=True)
    assert "a" in _saved(client)  # asking deletes nothing
    answer = client.post("/reports/a/delete")
    assert answer.status_code == 302 and "deleted=a" in answer.location
    assert _saved(client) == {}
    assert client.get("/reports/a/delete").status_code == 404
    assert client.post("/reports/a/delete.json").status_code == 404


def test_on_and_off_the_overview(client: FlaskClient) -> None:
    for i in range(MAX_ON_OVERVIEW + 1):
        _save(client, f"r{i}", "lifecycle", QUERIES["lifecycle"])
    for i in range(MAX_ON_OVERVIEW):
        assert client.post(f"/reports/r{i}/overview", data={"on_overview": "1"}).status_code == 302
    refused = client.post(f"/reports/r{MAX_ON_OVERVIEW}/overview.json", data={"on_overview": "1"})
    assert refused.status_code == 409
    assert f"at most {MAX_ON_OVERVIEW}" in refused.get_json()["error"]["message"]
    assert client.get("/").get_data(as_text=True).count('class="card"') == MAX_ON_OVERVIEW
    client.post("/reports/r0/overview", data={"on_overview": "0"})
    assert client.get("/").get_data(as_text=True).count('class="card"') == MAX_ON_OVERVIEW - 1
    assert client.post("/reports/nope/overview", data={"on_overview": "1"}).status_code == 404


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"name": ""}, 400, "Name the report."),
        ({"name": "x" * 81}, 400, "at most 80"),
        ({"name": "a/b"}, 400, "may use letters, digits"),
        ({"page": "users"}, 400, "A report is one of"),
        ({"page": ""}, 400, "Save it from its page"),
        ({"query": ""}, 400, "needs its query"),
        ({"query": "x=" + "y" * MAX_QUERY_LENGTH}, 400, "at most"),
        ({"query": "event=nosuch&period=week"}, 400, "nosuch"),
        ({"query": "event=active&period=year"}, 400, "Not a valid choice"),
        ({"query": "event=active&count=100000"}, 400, "Between"),
    ],
)
def test_bad_input_is_a_4xx_with_its_reason(
    client: FlaskClient, fields: dict[str, str], status: int, message: str
) -> None:
    form = {"name": "ok", "page": "lifecycle", "query": QUERIES["lifecycle"], **fields}
    answer = client.post("/reports/new", data=form)
    assert answer.status_code == status
    assert message in answer.get_data(as_text=True)
    json_answer = client.post("/reports/new.json", data=form)
    assert json_answer.status_code == status
    assert json_answer.get_json()["error"]["status"] == status
    assert _saved(client) == {}


def test_names_taken_and_the_limit_are_409(
    bc: bitcore.BitCore, redis_url: str, tmp_path: Path
) -> None:
    _data(bc)
    client = make_app(
        redis_url, tmp_path, WTF_CSRF_ENABLED=False, BITCORE_SAVED_REPORTS_MAX=2
    ).test_client()
    assert _save(client, "a", "lifecycle", QUERIES["lifecycle"]).status_code == 302
    taken = _save(client, "a", "lifecycle", QUERIES["lifecycle"])
    assert taken.status_code == 409 and "already exists" in taken.get_data(as_text=True)
    assert _save(client, "b", "lifecycle", QUERIES["lifecycle"]).status_code == 302
    full = _save(client, "c", "lifecycle", QUERIES["lifecycle"])
    assert full.status_code == 409 and "at most 2 reports" in full.get_data(as_text=True)
    assert sorted(_saved(client)) == ["a", "b"]


def test_csrf_is_required(bc: bitcore.BitCore, redis_url: str, tmp_path: Path) -> None:
    _data(bc)
    client = make_app(redis_url, tmp_path, WTF_CSRF_ENABLED=True).test_client()
    form = {"name": "a", "page": "lifecycle", "query": QUERIES["lifecycle"]}
    assert client.post("/reports/new", data=form).status_code == 400
    ReportStore(bc).save("kept", "lifecycle", QUERIES["lifecycle"])
    assert client.post("/reports/kept/delete").status_code == 400
    assert client.post("/reports/kept/overview", data={"on_overview": "1"}).status_code == 400
    assert [r.name for r in ReportStore(bc).all()] == ["kept"]
    token = csrf_token(client.get("/lifecycle?" + QUERIES["lifecycle"]).get_data(as_text=True))
    saved = client.post("/reports/new", data={**form, "csrf_token": token})
    assert saved.status_code == 302
    assert sorted(r.name for r in ReportStore(bc).all()) == ["a", "kept"]


def test_a_failing_card_shows_its_error_not_a_broken_page(
    bc: bitcore.BitCore, redis_url: str, tmp_path: Path
) -> None:
    _data(bc)
    reports = ReportStore(bc)
    # saved by the library, so never checked by a page: an event that is not there, a bad period
    reports.save("gone", "lifecycle", "event=nosuch", on_overview=True)
    reports.save("odd", "stickiness", "event=active&period=week&start=2026-W99", on_overview=True)
    reports.save("big", "cohort", QUERIES["cohort"], on_overview=True)
    client = make_app(redis_url, tmp_path, BITCORE_CARD_MAX_BYTES=1).test_client()
    overview = client.get("/")
    assert overview.status_code == 200
    html = overview.get_data(as_text=True)
    assert "nosuch" in html and "2026-W99" in html
    assert "more than a card may read" in html and "BITCORE_CARD_MAX_BYTES" in html
    cards = {c["name"]: c for c in client.get("/index.json").get_json()["reports"]}
    assert all(card["error"] for card in cards.values())


def test_a_dead_redis_is_the_usual_503(tmp_path: Path) -> None:
    client = make_app(f"redis://127.0.0.1:{embedded.free_port()}/0", tmp_path).test_client()
    for url in ("/reports", "/reports/a/edit", "/reports/a/delete"):
        answer = client.get(url)
        assert answer.status_code == 503
        assert "Redis is not answering" in answer.get_data(as_text=True)
    assert client.get("/reports.json").get_json()["error"]["status"] == 503


def test_the_link_keeps_unknown_parameters(client: FlaskClient) -> None:
    """A parameter a page learns later (here one no page knows yet) is saved and kept in the
    link."""
    query = QUERIES["lifecycle"] + "&by=segment%3Asome&retention=on_or_after"
    assert _save(client, "later", "lifecycle", query).status_code == 302
    url = _saved(client)["later"]["url"]
    pairs = parse_qsl(urlsplit(url).query)
    assert ("by", "segment:some") in pairs and ("retention", "on_or_after") in pairs


def test_the_demo_reports_show_as_cards(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    from bitcore import demo

    app = make_app(redis_url, tmp_path)
    demo.load_demo(app.extensions["bitcore"], users=800, days=60, seed=5)
    cards = {c["name"]: c for c in app.test_client().get("/index.json").get_json()["reports"]}
    assert sorted(cards) == sorted(demo.REPORTS)
    assert all(card["error"] is None and card["dates"] == "rolling" for card in cards.values())
    assert cards["Weekly retention"]["span"].count("W") == 2  # 8 weekly cohorts, up to this week


#: Queries no page would have saved (a hash edited by hand, an old page's parameters): each card
#: says what is wrong, and the overview stays a 200.
HOSTILE = {
    "cohort": [
        "select1=active",
        "select1=active&select2=active&time_group=years&num_results=400",
        "select1=active&select2=active&start_date=9999-12-31",
        "select1=active&select2=active&num_of_rows=-1&num_results=abc",
        "select1=segment%3Anosuch&select2=active",
        "select1=active&select2=active&time_group=days&num_results=366&num_of_rows=104",
    ],
    "funnel": [
        "steps-0=active",
        "steps-0=active&steps-7=paid&kind=hour&window=0",
        "steps-0=active&steps-1=paid&start=0001-01-01&trend=99",
        "steps-0=active&steps-1=paid&kind=year",
        "steps-0=" + "x" * 500 + "&steps-1=paid",
        "steps-0=active&steps-1=paid&window=99999999999999999999999",
    ],
    "lifecycle": [
        "event=",
        "event=active&period=hour",
        "event=active&count=0",
        "event=active&end=0001-W01&count=52",
        "event=segment%3Asome",
        "event=active&end=2026-13",
    ],
    "stickiness": [
        "event=active&period=day",
        "event=active&start=2026-W60",
        "event=unique%3Aios",
        "period=week",
        "event=active&period=month&start=9999-12",
        "event=%00",
    ],
    "segment": [
        "expression=((((active",
        "expression=active&kind=decade",
        "expression=%40nosuch",
        "expression=active&when=0000-01-01",
        "expression=" + "~" * 1900,
        "kind=week",
    ],
}


@pytest.mark.parametrize("page", sorted(HOSTILE))
def test_cards_of_hostile_queries_say_what_is_wrong(
    bc: bitcore.BitCore, redis_url: str, tmp_path: Path, page: str
) -> None:
    _data(bc)
    reports = ReportStore(bc)
    for i, query in enumerate(HOSTILE[page]):
        reports.save(f"{page} {i}", page, query, on_overview=True)
    client = make_app(redis_url, tmp_path).test_client()
    overview = client.get("/")
    assert overview.status_code == 200
    cards = client.get("/index.json").get_json()["reports"]
    assert len(cards) == len(HOSTILE[page])
    failed = [card["name"] for card in cards if card["error"]]
    assert len(failed) >= len(HOSTILE[page]) - 1, cards  # an hourly lifecycle, say, is fine
    assert client.get("/reports").status_code == 200


def _offered_query(html: str) -> list[tuple[str, str]]:
    """The query the page's "Save this report" control would save."""
    import html as html_module
    import re

    found = re.search(r'<input type="hidden" name="query" value="([^"]*)">', html)
    assert found, "the page offers no save control"
    return parse_qsl(html_module.unescape(found.group(1)))


def test_the_save_control_keeps_what_the_page_link_leaves_out(client: FlaskClient) -> None:
    """Cohort and funnel save their own link (dates written out), plus any parameter of the
    request the link does not know (one a page learns later), but not the funnel's buttons."""
    cohort = client.get(f"/cohort?{QUERIES['cohort']}&retention=on_or_after&later=a&later=b")
    pairs = _offered_query(cohort.get_data(as_text=True))
    assert ("start_date", "2026-09-21") in pairs and ("end_date", "2026-10-05") in pairs
    assert ("retention", "on_or_after") in pairs
    assert [v for k, v in pairs if k == "later"] == ["a", "b"]
    funnel = client.get(f"/funnel?{QUERIES['funnel']}&add=1")
    pairs = _offered_query(funnel.get_data(as_text=True))
    assert ("start", "2026-W40") in pairs and not {"add", "steps-2"} & {k for k, _ in pairs}
    rolling = client.get("/cohort?select1=active&select2=active&time_group=weeks&rolling=1")
    pairs = _offered_query(rolling.get_data(as_text=True))
    assert ("rolling", "1") in pairs and not {"start_date", "end_date"} & {k for k, _ in pairs}


def test_the_json_api_saves_renames_and_refuses(client: FlaskClient) -> None:
    body = {"name": "a", "page": "lifecycle", "query": QUERIES["lifecycle"], "on_overview": True}
    saved = client.post("/reports/new.json", json=body)
    assert saved.status_code == 200
    assert saved.get_json()["report"]["on_overview"] is True
    assert saved.get_json()["report"]["url"].startswith("/lifecycle?event=active")
    client.post("/reports/new.json", json={**body, "name": "b", "on_overview": False})
    taken = client.post("/reports/a/edit.json", json={**body, "name": "b"})
    assert taken.status_code == 409 and "already exists" in taken.get_json()["error"]["message"]
    bad = client.post("/reports/new.json", json={**body, "name": "c", "query": "event=nosuch"})
    assert bad.status_code == 400 and "nosuch" in str(bad.get_json()["error"]["fields"])
    assert client.post("/reports/new.json", json=["not", "fields"]).status_code == 400
    assert sorted(_saved(client)) == ["a", "b"]
