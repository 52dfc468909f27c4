"""The funnel page, its JSON and CSV twins and its form, via the real app and the test Redis."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import redis
from dashboard_support import USERS, make_app
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

import bitcore
from bitcore import periods
from bitcore.segments import SegmentStore
from dashboard.forms import choices
from dashboard.forms.fields import parse_start
from dashboard.forms.funnel import edited_args

pytestmark = pytest.mark.all_layouts


@pytest.fixture
def data(bc: bitcore.BitCore) -> None:
    """10 signups on 2024-05-06, 6 of them create a project (one the next day), 2 invite."""
    d = datetime(2024, 5, 6, 12)
    nxt = datetime(2024, 5, 7, 12)
    bc.mark_many(
        [("signup", u, d) for u in range(10)]
        + [("project", u, d) for u in range(5)]
        + [("project", 5, nxt)]
        + [("invite", 0, d), ("invite", 5, nxt)]
        + [("signup", u, datetime(2024, 5, 5, 9)) for u in range(20, 24)]
    )


def query(*steps: str, **params: Any) -> dict[str, Any]:
    args: dict[str, Any] = {f"steps-{n}": step for n, step in enumerate(steps)}
    args.update({"kind": "day", "start": "2024-05-06", "window": 3, "trend": 2})
    args.update(params)
    return args


THREE = ("event:signup", "event:project", "event:invite")


def step_inputs(html: str) -> list[tuple[str, str]]:
    """``(id, value)`` of every step's text input, in page order."""
    inputs = re.findall(r'<input [^>]*id="steps-\d+"[^>]*>', html)
    assert all('list="funnel-choices"' in tag for tag in inputs), "each step offers the datalist"
    return [
        (re.findall(r'id="(steps-\d+)"', tag)[0], re.findall(r'value="([^"]*)"', tag)[0])
        for tag in inputs
    ]


def test_fresh_page_shows_an_empty_form(client: FlaskClient, data: None) -> None:
    response = client.get("/funnel")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert step_inputs(html) == [("steps-0", ""), ("steps-1", "")]
    # offered in the datalist by name, as a person writes it (a bare name is an event)
    assert '<option value="invite">invite</option>' in html, "offered in the datalist"
    assert "event:" not in html
    assert "funnel-table" not in html
    assert "ordered by period, not by time of day" in html


def test_report_in_html_json_and_csv_agree(client: FlaskClient, data: None) -> None:
    html = client.get("/funnel", query_string=query(*THREE)).get_data(as_text=True)
    payload = client.get("/funnel.json", query_string=query(*THREE)).get_json()
    table = client.get("/funnel.csv", query_string=query(*THREE)).get_data(as_text=True)

    steps = payload["funnel"]["steps"]
    assert [(s["name"], s["users"]) for s in steps] == [
        ("signup", 10),
        ("project", 6),
        ("invite", 2),
    ]
    assert [s["pct_of_step_1"] for s in steps] == [100.0, 60.0, 20.0]
    assert [s["pct_of_previous"] for s in steps] == [100.0, 60.0, 33.3]
    assert [s["drop_off"] for s in steps] == [None, 4, 4]  # the page's "—": step 1 has no drop-off
    assert [s["drop_off_pct"] for s in steps] == [None, 40.0, 66.7]
    assert payload["funnel"]["start"] == "2024-05-06" and payload["funnel"]["end"] == "2024-05-08"
    assert payload["trend"] == [
        {"start": "2024-05-05", "end": "2024-05-07", "step_1": 4, "step_2": 0, "step_3": 0,
         "conversion_pct": 0.0, "in_progress": False},
        {"start": "2024-05-06", "end": "2024-05-08", "step_1": 10, "step_2": 6, "step_3": 2,
         "conversion_pct": 20.0, "in_progress": False},
    ]  # fmt: skip

    rows = list(csv.DictReader(io.StringIO(table)))
    as_csv = [{k: "" if v is None else str(v) for k, v in s.items()} for s in steps]
    assert as_csv == rows and rows[0]["drop_off"] == ""
    trend_csv = client.get("/funnel.csv", query_string=query(*THREE, table="trend"))
    assert list(csv.DictReader(io.StringIO(trend_csv.get_data(as_text=True)))) == [
        {k: str(v) for k, v in row.items()} for row in payload["trend"]
    ]

    bars = re.findall(r'class="funnel-bar-fill" width="([\d.]+)"', html)
    assert bars == ["100.0", "60.0", "20.0"]
    for s in steps:
        assert f'<td class="num">{s["users"]}</td>' in html
    assert "33.3%" in html and "<polyline" in html
    assert "/funnel.csv?" in html and "/funnel.json?" in html


def test_a_report_leaves_no_keys(
    client: FlaskClient, data: None, redis_client: redis.Redis
) -> None:
    client.get("/funnel")  # the first page builds the registry of event names: kept, not temporary
    before = set(redis_client.keys())
    assert client.get("/funnel", query_string=query(*THREE, trend=8, window=30)).status_code == 200
    assert set(redis_client.keys()) == before


def test_missing_fields_take_defaults(client: FlaskClient, data: None) -> None:
    response = client.get("/funnel.json?steps-0=event:signup&steps-1=project")
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    assert payload["funnel"]["kind"] == "day" and payload["funnel"]["window"] == 7
    assert len(payload["trend"]) == 8


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (query("event:signup"), "steps", "at least 2 steps"),
        (query(*["event:signup" for _ in range(11)]), "steps", "at most 10 steps"),
        (query("event:signup", "event:nope"), "steps", "Unknown event 'nope'"),
        (query("event:signup", "segment:nope"), "steps", "Unknown segment 'nope'"),
        (query("event:signup", ""), "steps", "Choose an event or segment"),
        (query(*THREE, window=0), "window", "Between 1 and 90"),
        (query(*THREE, window=91), "window", "Between 1 and 90"),
        (query(*THREE, window="a week"), "window", "Not a valid integer"),
        (query(*THREE, trend=53), "trend", "Between 1 and 52"),
        (query(*THREE, kind="year"), "kind", "Not a valid choice"),
        (query(*THREE, start="2024-02-30"), "start", "not a real date"),
        (query(*THREE, start="last tuesday"), "start", "is not a period"),
        (query(*THREE, start="9999-12-31", window=5), "start", "out of range"),
    ],
)
def test_invalid_forms_rerender_with_field_errors(
    client: FlaskClient, data: None, params: dict[str, Any], field: str, message: str
) -> None:
    html = client.get("/funnel", query_string=params)
    assert html.status_code == 400
    assert message in unescape(html.get_data(as_text=True))
    assert "funnel-table" not in html.get_data(as_text=True)
    payload = client.get("/funnel.json", query_string=params)
    assert payload.status_code == 400
    assert message in str(payload.get_json()["error"]["fields"][field])
    assert client.get("/funnel.csv", query_string=params).status_code == 400


def test_unknown_step_stays_in_its_input_next_to_its_error(client: FlaskClient, data: None) -> None:
    html = client.get("/funnel", query_string=query("event:signup", "event:<gone>")).get_data(
        as_text=True
    )
    assert step_inputs(html) == [("steps-0", "signup"), ("steps-1", "&lt;gone&gt;")]
    assert "Unknown event &#39;&lt;gone&gt;&#39;: nothing has been tracked under this name." in html
    assert "(unknown)" not in html
    assert "<gone>" not in html


def test_add_and_remove_step_rerender_what_was_entered(client: FlaskClient, data: None) -> None:
    added = client.get("/funnel", query_string=query(*THREE[:2], add="1", window=5))
    html = added.get_data(as_text=True)
    assert added.status_code == 200
    assert step_inputs(html) == [("steps-0", "signup"), ("steps-1", "project"), ("steps-2", "")]
    assert 'name="window" type="number" value="5"' in html or 'value="5"' in html
    assert "field-error" not in html, "the new, empty step is not an error yet"
    # the funnel of the filled steps stays shown while the new step is filled in
    assert "funnel-table" in html and "signup → project</h2>" in html

    removed = client.get("/funnel", query_string=query(*THREE, remove="0"))
    html = removed.get_data(as_text=True)
    assert step_inputs(html) == [("steps-0", "project"), ("steps-1", "invite")]
    assert "project → invite</h2>" in html, "the edited funnel is shown at once"
    # its links are of the funnel shown: no add/remove, the start written out
    link = re.findall(r'href="(/funnel\?[^"]*)">link to this funnel', html)[0]
    assert "remove" not in link and "steps-0=project&amp;steps-1=invite" in link


def test_removing_an_empty_step_needs_no_other_step_filled(client: FlaskClient, data: None) -> None:
    empty = {"steps-0": "", "steps-1": "", "steps-2": "", "remove": "2"}
    response = client.get("/funnel", query_string=empty)
    assert response.status_code == 200
    assert step_inputs(response.get_data(as_text=True)) == [("steps-0", ""), ("steps-1", "")]


def test_edit_buttons_skip_the_browsers_required_check(client: FlaskClient, data: None) -> None:
    """A fresh page's steps are ``required``: "Add step" and "Remove step" must still submit."""
    html = client.get("/funnel", query_string=query(*THREE)).get_data(as_text=True)
    buttons = re.findall(r'<button [^>]*name="(?:add|remove)"[^>]*>', html)
    assert len(buttons) == 4 and all("formnovalidate" in tag for tag in buttons)
    assert re.search(r'<input [^>]*id="steps-0"[^>]*required', html)


def test_cannot_add_an_eleventh_step(client: FlaskClient, data: None) -> None:
    response = client.get("/funnel", query_string=query(*["event:signup"] * 10, add="1"))
    html = response.get_data(as_text=True)
    assert len(step_inputs(html)) == 10
    assert "at most 10 steps" in html
    assert ">Add step<" not in html


@pytest.mark.parametrize(
    ("args", "steps"),
    [
        ({"steps-0": "a", "steps-1": "b", "add": "1"}, ["a", "b", ""]),
        ({"steps-0": "a", "steps-1": "b", "steps-2": "c", "remove": "1"}, ["a", "c"]),
        ({"steps-3": "c", "steps-0": "a", "remove": "9"}, ["a", "c"]),
        ({"steps-0": "a", "steps-1": "b", "remove": "x"}, ["a", "b"]),
    ],
)
def test_edited_args_renumbers_steps(args: dict[str, str], steps: list[str]) -> None:
    edited, _ = edited_args(MultiDict(args))
    assert [edited[f"steps-{n}"] for n in range(len(steps))] == steps
    assert "add" not in edited and "remove" not in edited
    assert f"steps-{len(steps)}" not in edited


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("day", "2024-05-07", periods.day(2024, 5, 7)),
        ("week", "2024-12-30", periods.week(2025, 1)),
        ("week", "2025-W01", periods.week(2025, 1)),
        ("week", "2025-w1", periods.week(2025, 1)),
        ("month", "2024-05-31", periods.month(2024, 5)),
        ("day", "2024-05", periods.day(2024, 5, 1)),
        ("hour", "2024-05-07 13h", periods.hour(2024, 5, 7, 13)),
        ("hour", "2024-05-07T13:00", periods.hour(2024, 5, 7, 13)),
        ("day", "2025-W01", periods.day(2024, 12, 30)),
    ],
)
def test_parse_start(kind: periods.Kind, text: str, expected: periods.Period) -> None:
    assert parse_start(kind, text) == expected


@pytest.mark.parametrize("text", ["", "2024-13", "2024-02-30", "2024-W54", "2024-05-07 25h", "x"])
def test_parse_start_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_start("day", text)


def test_redis_down_is_a_503_not_a_500(
    client: FlaskClient, data: None, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection refused")

    from bitcore import funnel

    monkeypatch.setattr(funnel, "_counted", down)  # what every layout's count reads through
    response = client.get("/funnel", query_string=query(*THREE))
    assert response.status_code == 503
    assert "Redis is unavailable" in response.get_data(as_text=True)


def test_segment_steps_from_the_segment_store(
    client: FlaskClient, data: None, bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    """Saved segments are offered as steps and counted; their bit-op keys are deleted afterwards."""
    SegmentStore(bc).save("builders", "project or invite")
    SegmentStore(bc).save("idle", "signup and not project")
    page = client.get("/funnel").get_data(as_text=True)
    assert '<option value="segment:builders">builders (segment)</option>' in page
    before = set(redis_client.keys())
    payload = client.get(
        "/funnel.json", query_string=query("event:signup", "segment:builders", "event:invite")
    ).get_json()
    assert [s["users"] for s in payload["funnel"]["steps"]] == [10, 6, 2]
    assert payload["funnel"]["steps"][1]["name"] == "builders (segment)"
    idle = client.get("/funnel.json", query_string=query("event:signup", "segment:idle")).get_json()
    # idle on the start day: users 5..9 (user 5's project came a day later)
    assert [s["users"] for s in idle["funnel"]["steps"]] == [10, 5]
    assert set(redis_client.keys()) == before


def test_segment_deleted_after_the_form_was_filled_is_a_400(
    client: FlaskClient, data: None, bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segment is still there when the form is checked and gone when the report runs."""
    SegmentStore(bc).save("gone", "project")
    offered_by = choices.selection_choices

    def offer_then_delete(client: bitcore.BitCore, typed: Any = ()) -> Any:
        offered = offered_by(client, typed)
        SegmentStore(bc).delete("gone")
        return offered

    monkeypatch.setattr("dashboard.views.funnel.selection_choices", offer_then_delete)
    response = client.get("/funnel", query_string=query("event:signup", "segment:gone"))
    assert response.status_code == 400
    assert "gone" in response.get_data(as_text=True)


def test_login_is_required_when_users_are_configured(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    guarded = make_app(redis_url, tmp_path, BITCORE_USERS=USERS).test_client()
    for url in ("/funnel", "/funnel.json", "/funnel.csv"):
        assert guarded.get(url, query_string=query(*THREE)).status_code in {302, 401}


def test_trend_line_is_scaled_to_its_range() -> None:
    from dashboard.presenters.funnel import conversion_line

    rows = [{"conversion_pct": v} for v in (14.9, None, 15.4, 15.9)]
    line = conversion_line(rows)
    assert line is not None and (line.low, line.high) == (14.9, 15.9)
    heights = [y for _, y, _ in line.dots]
    assert heights[0] == line.height - 5 and heights[-1] == 5, "14.9 % -> 15.9 % fills the height"
    assert [i for *_, i in line.dots] == [0, 2, 3], "no point where there is no rate"
    assert conversion_line([{"conversion_pct": None}] * 3) is None, "nothing to draw"


def links(html: str) -> dict[str, str]:
    """The report's links by their text (``link to this funnel``, ``JSON``, ``CSV``)."""
    found = re.findall(r'<a href="(/funnel[^"]*)"[^>]*>([^<]+)</a>', html)
    return {text: unescape(href) for href, text in found}


def test_an_empty_start_gives_links_pinned_to_the_start_shown(
    client: FlaskClient, data: None
) -> None:
    html = client.get("/funnel?steps-0=signup&steps-1=project&start=").get_data(as_text=True)
    payload = client.get("/funnel.json?steps-0=signup&steps-1=project&start=").get_json()
    shown = payload["funnel"]["start"]
    for text in ("link to this funnel", "JSON", "CSV"):
        assert f"start={shown}" in links(html)[text], text
    assert payload["funnel"]["in_progress"], "the latest start's window ends today"
    assert "still in progress" in html


def test_a_rolling_funnel_links_to_the_latest_start(client: FlaskClient, data: None) -> None:
    html = client.get("/funnel", query_string=query(*THREE, rolling="1")).get_data(as_text=True)
    link = links(html)["link to this funnel"]
    assert "rolling=1" in link and "start=" not in link
    payload = client.get("/funnel.json", query_string=query(*THREE, rolling="1")).get_json()
    assert payload["funnel"]["start"] != "2024-05-06", "rolling ignores the start typed"


def test_downloads_are_named_after_the_report(client: FlaskClient, data: None) -> None:
    table = client.get("/funnel.csv", query_string=query(*THREE))
    expected = "funnel-signup-project-invite-day-2024-05-05-2024-05-08"
    assert table.headers["Content-Disposition"] == f'attachment; filename="{expected}.csv"'
    trend = client.get("/funnel.csv", query_string=query(*THREE, table="trend"))
    assert f'filename="{expected}-trend.csv"' in trend.headers["Content-Disposition"]
    html = client.get("/funnel", query_string=query(*THREE)).get_data(as_text=True)
    assert f'download="{expected}.json"' in html


def test_an_all_zero_funnel_says_there_is_nothing_to_draw(client: FlaskClient, data: None) -> None:
    html = client.get("/funnel", query_string=query(*THREE, start="2020-01-01"))
    text = html.get_data(as_text=True)
    assert html.status_code == 200
    assert "funnel-sparkline" not in text and "there is no conversion to draw" in text


def test_compared_groups_side_by_side(client: FlaskClient, data: None, bc: bitcore.BitCore) -> None:
    """Signups 0..9; "evens" (a segment of the flag-like event "even" on the start day) are
    0, 2, 4, 6, 8 and the premium flag 0 and 5: 0 invites, 5 too (the day after)."""
    bc.mark_many([("even", u, datetime(2024, 5, 6, 12)) for u in range(0, 10, 2)])
    SegmentStore(bc).save("evens", "even")
    bc.mark_unique_many([("premium", 0), ("premium", 5)])
    asked = query(*THREE, by=["segment:evens", "unique:premium"])
    payload = client.get("/funnel.json", query_string=asked).get_json()
    assert [s["users"] for s in payload["funnel"]["steps"]] == [10, 6, 2]
    assert [g["by"] for g in payload["groups"]] == ["segment:evens", "unique:premium"]
    evens, premium = ([s["users"] for s in g["funnel"]["steps"]] for g in payload["groups"])
    assert evens == [5, 3, 1] and premium == [2, 2, 2]
    assert "groups" not in client.get("/funnel.json", query_string=query(*THREE)).get_json()
    html = client.get("/funnel", query_string=asked).get_data(as_text=True)
    assert 'class="chart grouped-bars"' in html and html.count('class="bar series-') == 9
    assert "premium (flag)" in html and '<option value="flag:premium">' in html
    assert "by=segment%3Aevens" in html and "by=unique%3Apremium" in html  # its links keep them
    rows = list(
        csv.DictReader(
            io.StringIO(client.get("/funnel.csv", query_string=asked).get_data(as_text=True))
        )
    )
    assert [(r["group"], r["users"]) for r in rows if r["step"] == "3"] == [
        ("all", "2"),
        ("segment:evens", "1"),
        ("unique:premium", "2"),
    ]
    found = [unescape(h) for h in re.findall(r'href="(/users\?[^"]*)"', html)]
    step = next(
        h for h in found if "by=unique%3Apremium" in h and "step=2" in h and "part=step" in h
    )
    users = client.get(step.replace("/users?", "/users.json?")).get_json()
    assert sorted(int(u) for u in users["users"]) == [0, 5]


def test_too_many_or_unknown_groups_are_a_400(client: FlaskClient, data: None) -> None:
    six = client.get(
        "/funnel.json", query_string=query(*THREE, by=[f"flag:f{k}" for k in range(6)])
    )
    assert six.status_code == 400 and "at most 5 groups" in str(six.get_json()["error"])
    page = client.get("/funnel", query_string=query(*THREE, by=["segment:nope"]))
    assert page.status_code == 400 and "no saved segment has this name" in page.get_data(
        as_text=True
    )


def test_editing_steps_keeps_the_compared_groups(
    client: FlaskClient, data: None, bc: bitcore.BitCore
) -> None:
    bc.mark_unique_many([("premium", 0)])
    asked = query(*THREE, by=["flag:premium"], add="1")
    html = client.get("/funnel", query_string=asked).get_data(as_text=True)
    assert 'name="by" value="flag:premium"' in html and len(step_inputs(html)) == 4
