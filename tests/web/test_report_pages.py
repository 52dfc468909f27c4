"""The /lifecycle and /stickiness pages and their JSON and CSV twins, through the real app."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dashboard_support import make_app
from flask.testing import FlaskClient

import bitcore
from bitcore.segments import SegmentStore

pytestmark = pytest.mark.all_layouts

MONDAY = datetime(2026, 9, 28, 12)  # ISO week 2026-W40
LIFECYCLE = "/lifecycle.json?event=active&period=week&count=3&end=2026-W41"
STICKINESS = "/stickiness.json?event=active&period=week&start=2026-W40"


@pytest.fixture
def client(bc: bitcore.BitCore, redis_url: str, tmp_path: Path) -> FlaskClient:
    """W39: users 0-4. W40: 0-2 (returning) and 5-6 (new), on 1, 2 and 3 days. W41: 0 and 3
    (resurrecting)."""
    week = timedelta(weeks=1)
    marks = [("active", u, MONDAY - week) for u in range(5)]
    marks += [("active", u, MONDAY) for u in (0, 1, 2, 5, 6)]
    marks += [("active", u, MONDAY + timedelta(days=1)) for u in (1, 2)]
    marks += [("active", 2, MONDAY + timedelta(days=6))]
    marks += [("active", u, MONDAY + week) for u in (0, 3)]
    bc.mark_many(marks)
    SegmentStore(bc).save("some", "active")
    return make_app(redis_url, tmp_path).test_client()


def test_lifecycle_json_is_the_contract(client: FlaskClient) -> None:
    answer = client.get(LIFECYCLE)
    assert answer.status_code == 200
    assert answer.get_json()["periods"] == [
        {"period": "2026-W39", "new": 5, "returning": 0, "resurrecting": 0, "dormant": 0},
        {"period": "2026-W40", "new": 2, "returning": 3, "resurrecting": 0, "dormant": 2},
        {"period": "2026-W41", "new": 0, "returning": 1, "resurrecting": 1, "dormant": 4},
    ]


def test_lifecycle_page_draws_bars_below_zero_and_csv_matches(client: FlaskClient) -> None:
    page = client.get(LIFECYCLE.replace(".json", ""))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('class="bar bar-dormant"') == 2  # W40 and W41 lose users
    assert 'class="bar bar-new"' in html and "/lifecycle.csv?" in html
    rows = list(csv.DictReader(io.StringIO(client.get(LIFECYCLE.replace(".json", ".csv")).text)))
    assert rows[1] == {
        "period": "2026-W40",
        "new": "2",
        "returning": "3",
        "resurrecting": "0",
        "dormant": "2",
    }
    assert client.get(LIFECYCLE.replace(".json", ""), headers={"Accept": "application/json"}).json


def test_stickiness_json_page_and_csv(client: FlaskClient) -> None:
    answer = client.get(STICKINESS).get_json()
    assert answer["histogram"] == [
        {"days": 1, "users": 3},
        {"days": 2, "users": 1},
        {"days": 3, "users": 1},
        *({"days": n, "users": 0} for n in range(4, 8)),
    ]
    html = client.get(STICKINESS.replace(".json", "")).get_data(as_text=True)
    assert html.count('class="bar bar-users"') == 3 and "5 users" in html
    text = client.get(STICKINESS.replace(".json", ".csv")).text
    assert text.splitlines()[:2] == ["days,users", "1,3"]
    month = client.get("/stickiness.json?event=active&period=month&start=2026-09").get_json()
    assert len(month["histogram"]) == 30


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/lifecycle.json?event=nope", "event"),
        ("/lifecycle.json?event=segment:some", "event"),
        ("/lifecycle.json?event=active&count=0", "count"),
        ("/lifecycle.json?event=active&count=99999999999999999999999", "count"),
        ("/lifecycle.json?event=active&period=year", "period"),
        ("/lifecycle.json?event=active&end=2026-W99", "end"),
        ("/stickiness.json?event=active&period=day", "period"),
        ("/stickiness.json?event=active&start=yesterday", "start"),
        ("/stickiness.json?event=", "event"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client: FlaskClient, url: str, field: str) -> None:
    answer = client.get(url)
    assert answer.status_code == 400
    assert field in answer.get_json()["error"]["fields"]
    assert client.get(url.replace(".json", "")).status_code == 400
    assert client.get(url.replace(".json", ".csv")).status_code == 400


def test_fresh_forms_and_cost_limit(client: FlaskClient, redis_url: str, tmp_path: Path) -> None:
    for page in ("/lifecycle", "/stickiness"):
        fresh = client.get(page)
        assert fresh.status_code == 200 and b'list="report-events"' in fresh.data
        assert b'<option value="active">' in fresh.data
        assert client.get(f"{page}.json").status_code == 400
    limited = make_app(redis_url, tmp_path, BITCORE_REPORT_MAX_BYTES=1).test_client()
    for url in (LIFECYCLE, STICKINESS):
        refused = limited.get(url)
        assert refused.status_code == 422
        assert refused.get_json()["error"]["limit"] == "BITCORE_REPORT_MAX_BYTES"


def test_nav_links_to_the_new_pages(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert 'href="/lifecycle"' in html and 'href="/stickiness"' in html


def test_lifecycle_and_stickiness_compare_a_flag(client: FlaskClient, bc: bitcore.BitCore) -> None:
    """Premium (a flag) is users 0, 2 and 5: each report again, only for them, from one read."""
    bc.mark_unique_many([("premium", u) for u in (0, 2, 5)])
    life = client.get(LIFECYCLE + "&by=unique:premium").get_json()
    assert life["periods"][1]["returning"] == 3, "everyone's report keeps its place"
    assert [g["by"] for g in life["groups"]] == ["unique:premium"]
    assert life["groups"][0]["periods"] == [
        {"period": "2026-W39", "new": 2, "returning": 0, "resurrecting": 0, "dormant": 0},
        {"period": "2026-W40", "new": 1, "returning": 2, "resurrecting": 0, "dormant": 0},
        {"period": "2026-W41", "new": 0, "returning": 1, "resurrecting": 0, "dormant": 2},
    ]
    sticky = client.get(STICKINESS + "&by=flag:premium").get_json()
    assert [h["users"] for h in sticky["groups"][0]["histogram"]] == [2, 0, 1, 0, 0, 0, 0]
    html = client.get(STICKINESS.replace(".json", "") + "&by=flag:premium").get_data(as_text=True)
    assert "Only premium (flag)" in html and html.count('class="bar bar-users"') == 5
    assert '<option value="flag:premium">' in html
    text = client.get(LIFECYCLE.replace(".json", ".csv") + "&by=flag:premium").text
    assert text.splitlines()[0] == "group,period,new,returning,resurrecting,dormant"
    assert "flag:premium,2026-W41,0,1,0,2" in text
    assert "groups" not in client.get(LIFECYCLE).get_json()
    bad = client.get(LIFECYCLE + "&by=flag:nope&by=segment:some")
    assert bad.status_code == 400 and "by" in bad.get_json()["error"]["fields"]


def test_a_period_still_in_progress_is_marked_and_past_ones_are_not(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    past = client.get(LIFECYCLE).get_json()
    assert past["in_progress"] is None, "2026-W41 is over"
    assert client.get(STICKINESS).get_json()["in_progress"] is False
    bc.mark_event("active", 9)  # now
    this_week = bitcore.periods.label(bitcore.periods.period_of("week", bc.now()))
    current = client.get("/lifecycle.json?event=active&period=week&count=3").get_json()
    assert current["in_progress"] == this_week == current["periods"][-1]["period"]
    html = client.get("/lifecycle?event=active&period=week&count=3").get_data(as_text=True)
    assert f"{this_week} is still in progress" in html
    assert html.count("(in progress)") == 1, "only the last row is marked"
    assert 'in-progress" x=' in html, "its bars are drawn as in progress"
    sticky = client.get("/stickiness.json?event=active&period=week").get_json()
    assert sticky["in_progress"] is True
    page = client.get("/stickiness?event=active&period=week").get_data(as_text=True)
    assert f"{this_week} is still in" in page


def test_downloads_are_named_after_the_report_and_its_dates(client: FlaskClient) -> None:
    lifecycle = client.get(LIFECYCLE.replace(".json", ".csv"))
    assert (
        'filename="lifecycle-active-week-2026-W39-2026-W41.csv"'
        in lifecycle.headers["Content-Disposition"]
    )
    sticky = client.get(STICKINESS.replace(".json", ".csv"))
    assert 'filename="stickiness-active-week-2026-W40.csv"' in sticky.headers["Content-Disposition"]
