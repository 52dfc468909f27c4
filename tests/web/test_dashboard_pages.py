"""The overview and event pages, their JSON twins, and the round trips behind them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask

from bitcore import BitCore
from bitcore import overview as report

pytestmark = pytest.mark.all_layouts


@pytest.fixture
def client_of(app: Flask) -> BitCore:
    return app.extensions["bitcore"]  # type: ignore[no-any-return]


def day_ago(client: BitCore, days: int) -> date:
    return report.today_of(client) - timedelta(days=days)


def test_empty_overview_says_how_to_get_data(app: Flask) -> None:
    page = app.test_client().get("/")
    assert (
        page.status_code == 200
        and b"No events yet" in page.data
        and b"flask --app wsgi demo" in page.data
    )
    assert app.test_client().get("/index.json").get_json()["events"] == []


def test_overview_counts_each_period_and_hides_the_universe(app: Flask, client_of: BitCore) -> None:
    today = day_ago(client_of, 0)
    client_of.mark_many([("song:played", uid, today) for uid in (1, 2, 3)])
    client_of.mark_many([("song:played", uid, day_ago(client_of, 1)) for uid in (3, 4)])
    client_of.mark_many(
        [("song:played", 9, day_ago(client_of, 29)), ("song:played", 10, day_ago(client_of, 30))]
    )
    client_of.mark_unique("ios", 5)
    data = app.test_client().get("/index.json").get_json()
    rows = {row["name"]: row for row in data["events"]}
    assert set(rows) == {"song:played"}, "the universe (_seen) and flags are no events"
    assert data["flags"] == [{"name": "ios", "users": 1}]
    song = rows["song:played"]
    assert song["today"] == 3
    assert len(song["trend"]) == 30
    assert song["trend"][-1] == 3 and song["trend"][-2] == 2 and song["trend"][0] == 1
    assert sum(song["trend"]) == 6, "the day 30 days ago is outside the 30-day trend"
    same_week = day_ago(client_of, 1).isocalendar()[:2] == today.isocalendar()[:2]
    assert song["this_week"] == (4 if same_week else 3)
    assert song["this_month"] == len(
        {1, 2, 3}
        | ({4} if day_ago(client_of, 1).month == today.month else set())
        | ({9} if day_ago(client_of, 29).month == today.month else set())
    )
    page = app.test_client().get("/").get_data(as_text=True)
    assert "song:played" in page and "<svg" in page and "_seen" not in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("song", ["song:played"]),
        ("SONG", ["song:played"]),
        ("", ["active", "song:played"]),
        ("zzz", []),
    ],
)
def test_overview_filter(app: Flask, client_of: BitCore, query: str, expected: list[str]) -> None:
    client_of.mark_many([("song:played", 1), ("active", 1)])
    data = app.test_client().get("/index.json", query_string={"q": query}).get_json()
    assert [row["name"] for row in data["events"]] == expected
    page = app.test_client().get("/", query_string={"q": query})
    assert page.status_code == 200
    if not expected:
        assert b"No event name contains" in page.data


def test_overview_filter_too_long_is_a_400_not_a_500(app: Flask) -> None:
    response = app.test_client().get("/index.json", query_string={"q": "x" * 500})
    assert response.status_code == 400 and "q" in response.get_json()["error"]["fields"]


@pytest.mark.flat_only(
    "counts the flat client's pipelines (the sharded round trips: test_sharded_overview.py)"
)
def test_overview_of_hundreds_of_events_counts_one_page_in_one_round_trip(
    app: Flask, client_of: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_of.mark_many([(f"event{i}", i) for i in range(300)])
    app.test_client().get("/index.json")  # the first read rebuilds the registry from the keyspace
    pipelines: list[int] = []
    direct: list[str] = []
    original_pipeline = client_of.redis.pipeline
    original_execute = client_of.redis.execute_command

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original_pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted_execute(*a: Any, **k: Any) -> Any:
            pipelines.append(len(pipe.command_stack))
            return execute(*a, **k)

        pipe.execute = counted_execute  # type: ignore[method-assign]
        return pipe

    def counting_execute(*args: Any, **kwargs: Any) -> Any:
        direct.append(str(args[0]))
        return original_execute(*args, **kwargs)

    monkeypatch.setattr(client_of.redis, "pipeline", counting_pipeline)
    monkeypatch.setattr(client_of.redis, "execute_command", counting_execute)
    data = app.test_client().get("/index.json").get_json()
    rows = data["events"]
    assert len(rows) == 50 and all(row["today"] == 1 for row in rows) and data["total"] == 300
    assert pipelines == [2, 2, 50 * 33, 2], (
        "the registry checked, one page of names, every count in one pipeline, the flags"
    )
    assert direct == ["SMEMBERS"], "no SCAN: nothing but pipelines, and the saved reports' index"


def test_event_page_counts_and_stickiness(app: Flask, client_of: BitCore) -> None:
    # users 1 and 2 every day of the last 30; user 3 once: avg DAU = (60 + 1) / 30, MAU = 3
    for back in range(30):
        client_of.mark_many(
            [("active", 1, day_ago(client_of, back)), ("active", 2, day_ago(client_of, back))]
        )
    client_of.mark_event("active", 3, day_ago(client_of, 10))
    data = app.test_client().get("/event/active.json").get_json()
    assert [row["count"] for row in data["daily"]][-1] == 2
    assert len(data["daily"]) == 30 and len(data["weekly"]) == 12 and len(data["monthly"]) == 6
    assert data["users_last_30_days"] == 3
    assert data["average_daily_users"] == round(61 / 30, 2)
    assert data["stickiness"] == round((61 / 30) / 3, 4)
    assert data["weekly"][-1]["count"] == 2 and data["monthly"][-1]["count"] >= 2
    page = app.test_client().get("/event/active")
    assert page.status_code == 200 and page.data.count(b"<svg") == 3 and b"Stickiness" in page.data
    # the current day, week and month are still in progress: their points are drawn hollow
    assert page.data.count(b'class="dot in-progress"') == 3
    assert page.data.count(b"(still in progress)</title>") == 3


@pytest.mark.parametrize(
    ("back", "user", "active_that_day"),
    [(0, 1, True), (0, 2, False), (3, 2, True), (3, 1, False)],
)
def test_user_lookup(
    app: Flask, client_of: BitCore, back: int, user: int, active_that_day: bool
) -> None:
    client_of.mark_event("active", 1, day_ago(client_of, 0))
    client_of.mark_event("active", 2, day_ago(client_of, 3))
    when = day_ago(client_of, back).isoformat()
    data = (
        app.test_client()
        .get("/event/active.json", query_string={"user": user, "date": when})
        .get_json()
    )
    assert data["lookup"]["active"]["day"] is active_that_day
    assert data["lookup"] == {
        "user": user,
        "date": when,
        "active": report.was_active(client_of, "active", user, day_ago(client_of, back)),
    }
    page = app.test_client().get("/event/active", query_string={"user": user, "date": when})
    assert (b"<strong>was</strong> active" in page.data) is active_that_day


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"user": "-1", "date": "2024-05-07"}, "user"),
        ({"user": str(2**32), "date": "2024-05-07"}, "user"),
        ({"user": "abc", "date": "2024-05-07"}, "user"),
        ({"user": "1.5", "date": "2024-05-07"}, "user"),
        ({"user": "", "date": "2024-05-07"}, "user"),
        ({"user": "1", "date": "2024-02-30"}, "date"),
        ({"user": "1", "date": "yesterday"}, "date"),
        ({"user": "1"}, "date"),
    ],
)
def test_user_lookup_rejects_bad_input_with_a_400(
    app: Flask, client_of: BitCore, args: dict[str, str], field: str
) -> None:
    client_of.mark_event("active", 1)
    response = app.test_client().get("/event/active.json", query_string=args)
    assert response.status_code == 400
    assert field in response.get_json()["error"]["fields"]
    page = app.test_client().get("/event/active", query_string=args)
    assert page.status_code == 400 and b'role="alert"' in page.data


@pytest.mark.parametrize("name", ["nope", "_seen", "song"])
def test_unknown_events_are_404(app: Flask, client_of: BitCore, name: str) -> None:
    client_of.mark_event("song:played", 1)
    assert app.test_client().get(f"/event/{name}").status_code == 404
    assert app.test_client().get(f"/event/{name}.json").status_code == 404


@pytest.mark.parametrize(
    "name", ["a/b", "café", "with space", "x?y#z", "<script>alert(1)</script>"]
)
def test_odd_event_names_round_trip_and_are_escaped(
    app: Flask, client_of: BitCore, name: str
) -> None:
    client_of.mark_event(name, 7)
    client = app.test_client()
    overview = client.get("/").get_data(as_text=True)
    assert "<script>alert" not in overview
    with app.test_request_context():
        from flask import url_for

        url = url_for("pages.event", name=name)
    response = client.get(url)
    assert response.status_code == 200
    assert "<script>alert" not in response.get_data(as_text=True)
    assert client.get(url + ".json").get_json()["name"] == name


def test_accept_header_gives_the_json_twin(app: Flask, client_of: BitCore) -> None:
    client_of.mark_event("active", 1)
    response = app.test_client().get("/", headers={"Accept": "application/json"})
    assert response.is_json and response.get_json()["events"][0]["name"] == "active"
