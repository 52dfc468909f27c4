"""Flags (dateless events: ``mark_unique``) on the dashboard: listed apart with their size, a
page that checks membership, never offered as an event to count per period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from bitcore import BitCore
from bitcore import overview as report
from dashboard.forms.choices import flag_choices, known_token, selection_choices

pytestmark = pytest.mark.all_layouts


@pytest.fixture
def client_of(app: Flask) -> BitCore:
    client: BitCore = app.extensions["bitcore"]
    today = report.today_of(client)
    client.mark_many([("active", uid, today - timedelta(days=uid % 3)) for uid in range(1, 7)])
    client.mark_unique_many([("ios", 1), ("ios", 2), ("android", 3)])
    return client


def test_the_overview_lists_flags_apart_with_their_size(app: Flask, client_of: BitCore) -> None:
    data = app.test_client().get("/index.json").get_json()
    assert [row["name"] for row in data["events"]] == ["active"]
    assert data["flags"] == [{"name": "android", "users": 1}, {"name": "ios", "users": 2}]
    assert data["flags_complete"] is True
    html = app.test_client().get("/").get_data(as_text=True)
    flags = html.split('id="flags-heading"')[1]
    assert 'href="/event/ios"' in flags and "<svg" not in flags, "a size, no zero chart"
    assert app.test_client().get("/index.json?q=and").get_json()["flags"] == [
        {"name": "android", "users": 1}
    ], "the filter narrows flags too"


def test_a_flag_page_is_a_membership_check(app: Flask, client_of: BitCore) -> None:
    page = app.test_client().get("/event/ios")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "flag" in html
    assert "<svg" not in html and 'type="date"' not in html, "no zero charts, no date form"
    answer = app.test_client().get("/event/ios.json?user=2").get_json()
    assert answer["kind"] == "flag" and answer["users"] == 2
    assert answer["lookup"] == {"user": 2, "flagged": True}
    assert app.test_client().get("/event/ios.json?user=3").get_json()["lookup"]["flagged"] is False
    bad = app.test_client().get("/event/ios.json?user=-1")
    assert bad.status_code == 400
    assert "unique(ios)" in html, "says how a segment uses it"
    assert app.test_client().get("/event/active.json").get_json()["kind"] == "event"


def test_report_pickers_never_offer_a_flag_and_say_why_one_is_refused(
    app: Flask, client_of: BitCore
) -> None:
    with app.app_context():
        choices = selection_choices(client_of)
        assert [token for token, _ in choices] == ["event:active"]
        with pytest.raises(Exception, match="'ios' is a flag"):
            known_token(choices, "ios")
        assert flag_choices(client_of) == [
            ("flag:android", "android (flag)"),
            ("flag:ios", "ios (flag)"),
        ]
    page = app.test_client().get("/cohort.json?select1=ios&select2=active")
    assert page.status_code == 400 and "flag:ios" in page.get_data(as_text=True)
    today = report.today_of(client_of) - timedelta(days=2)
    filtered = app.test_client().get(
        f"/cohort.json?select1=active&select1b=flag:ios&select2=active&start_date={today}"
    )
    assert filtered.status_code == 200, "as a filter a flag means something: iOS users"
    day0 = [row["cells"][0]["count"] for row in filtered.get_json()["table"]["rows"]]
    assert day0[0] == len({1, 2} & {u for u in range(1, 7) if u % 3 == 2}), day0
    assert "event:ios" not in app.test_client().get("/funnel").get_data(as_text=True)


def test_a_flag_selection_is_its_users_whatever_the_period(client_of: BitCore) -> None:
    from bitcore import periods
    from bitcore.selections import Selection

    flag = Selection.parse("flag:ios")
    for kind in ("day", "month"):
        assert set(flag.bitmap(client_of, periods.period_of(kind, report.today_of(client_of)))) == {
            1,
            2,
        }


def test_the_cohort_filters_offer_flags_and_the_events_do_not(
    app: Flask, client_of: BitCore
) -> None:
    html = app.test_client().get("/cohort").get_data(as_text=True)
    lists = {
        name: html.split(f'<datalist id="{name}">')[1].split("</datalist>")[0]
        for name in ("cohort-choices", "cohort-filter-choices")
    }
    assert 'value="flag:ios"' in lists["cohort-filter-choices"]
    assert 'value="flag:android"' in lists["cohort-filter-choices"]
    assert 'value="active"' in lists["cohort-filter-choices"], "events stay offered as filters"
    assert "flag:" not in lists["cohort-choices"], "as the cohort or return event a flag counts 0"
    for name, datalist in (("select1", "cohort-choices"), ("select1b", "cohort-filter-choices")):
        field = (
            html.split(f'name="{name}"')[0].rsplit("<input", 1)[1]
            + html.split(f'name="{name}"')[1].split(">")[0]
        )
        assert f'list="{datalist}"' in field, (name, field)
    today = report.today_of(client_of)
    chosen = app.test_client().get(
        f"/cohort?select1=active&select1b=flag:ios&select2=active&end_date={today}"
    )
    assert chosen.status_code == 200, "the flag offered is accepted"
    assert 'value="flag:ios"' in chosen.get_data(as_text=True).split('name="select1b"')[1][:200]
