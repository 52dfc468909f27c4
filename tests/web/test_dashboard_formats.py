"""One negotiator and one JSON error body for every page (``dashboard/negotiation.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from dashboard_support import make_app
from docs_support import all_code_blocks
from flask import Flask

import bitcore

HTML_AND_JSON = {"Accept": "application/json"}
ERROR_KEYS = {"status", "title", "message", "fields"}


@pytest.fixture
def app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    client = bitcore.BitCore(redis_client)
    client.mark_event("active", 1)
    client.mark_event("play", 1)
    return make_app(redis_url, tmp_path)


def assert_error_body(body: Any, status: int) -> dict[str, Any]:
    """Exactly ``{"error": {...}}`` with at least the four keys every error has."""
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= ERROR_KEYS and error["status"] == status, error
    assert isinstance(error["title"], str) and error["title"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "url",
    [
        "/cohort?select1=active&select2=play",
        "/funnel?steps-0=active&steps-1=play&kind=day&window=3&trend=1",
        "/",
        "/event/active",
        "/segments",
        "/system",
    ],
)
def test_accept_json_gets_the_json_twin_on_every_page(app: Flask, url: str) -> None:
    client = app.test_client()
    as_json = client.get(url, headers=HTML_AND_JSON)
    assert as_json.status_code == 200 and as_json.is_json
    path, _, query = url.partition("?")
    twin = client.get(f"{'/index' if path == '/' else path}.json?{query}").get_json()
    if path == "/system":  # its clock moves between the two requests
        assert twin.keys() == as_json.get_json().keys()
    else:
        assert twin == as_json.get_json()
    browser = client.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.mimetype == "text/html"


def test_accept_csv_gets_the_download_where_a_page_has_one(app: Flask) -> None:
    query = "select1=active&select2=play&num_results=2&num_of_rows=1"
    answer = app.test_client().get(f"/cohort?{query}", headers={"Accept": "text/csv"})
    assert answer.mimetype == "text/csv"
    assert answer.data == app.test_client().get(f"/cohort.csv?{query}").data


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/cohort.json?select1=active", 400, "select2"),
        ("/cohort?select1=active", 400, "select2"),
        ("/funnel.json?steps-0=active&steps-1=play&window=0", 400, "window"),
        ("/index.json?page=0", 400, "page"),
        ("/event/active.json?user=x&date=2024-01-01", 400, "user"),
        ("/segments/preview.json?expression=a+%26&kind=week", 400, "expression"),
        ("/no/such/page.json", 404, None),
        ("/event/nothing.json", 404, None),
    ],
)
def test_every_json_error_has_the_one_body(
    app: Flask, url: str, status: int, field: str | None
) -> None:
    response = app.test_client().get(url, headers=HTML_AND_JSON)
    assert response.status_code == status
    error = assert_error_body(response.get_json(), status)
    if field:
        assert field in error["fields"] and field in error["message"]


def test_a_held_cross_site_link_and_a_refused_login_have_the_one_body(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app = make_app(redis_url, tmp_path)
    held = app.test_client().get("/index.json", headers={"Sec-Fetch-Site": "cross-site"})
    assert assert_error_body(held.get_json(), 403)["link"] == "/index.json"
    users = "alice:scrypt:32768:8:1$salt$" + "0" * 128
    locked = make_app(redis_url, tmp_path / "locked", BITCORE_USERS=users)
    refused = locked.test_client().get("/index.json")
    assert "POST /login" in assert_error_body(refused.get_json(), 401)["message"]


def test_the_error_page_shows_the_same_error(app: Flask) -> None:
    page = app.test_client().get("/no/such/page")
    assert page.status_code == 404 and b'<p class="status">404</p>' in page.data


def test_today_means_one_thing_in_every_json_twin(app: Flask) -> None:
    """``date`` is the day a page counts up to; ``today`` is always a count of users."""
    client = app.test_client()
    index = client.get("/index.json").get_json()
    event = client.get("/event/active.json").get_json()
    assert index["date"] == event["date"] and len(event["date"]) == 10
    row = next(row for row in index["events"] if row["name"] == "active")
    assert isinstance(row["today"], int) and event["today"] == row["today"] == 1
    assert event["today"] == event["daily"][-1]["count"]


def _shape(value: Any) -> Any:
    """The keys of ``value``, recursively (a list by its first item): what the docs promise."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value and isinstance(value[0], dict | list) else []
    return type(value).__name__ if value is not None else None


def _readme_json(first_key: str) -> Any:
    import json

    blocks = [body for _, _, body in all_code_blocks("json")]
    return next(json.loads(b) for b in blocks if b.lstrip().startswith(f'{{"{first_key}"'))


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("table", "/cohort.json?select1=active&select2=play&num_results=1&num_of_rows=1"),
        ("funnel", "/funnel.json?steps-0=active&steps-1=play&window=3&trend=1"),
    ],
)
def test_the_docs_show_the_json_twins_shapes(app: Flask, key: str, url: str) -> None:
    answer = app.test_client().get(url).get_json()
    documented, real = _shape(_readme_json(key)), _shape(answer)
    # a null in the docs stands for a number the page may show as "—"
    assert _keys(documented) == _keys(real)


def _keys(shape: Any) -> Any:
    if isinstance(shape, dict):
        return {key: _keys(value) for key, value in shape.items()}
    if isinstance(shape, list):
        return [_keys(item) for item in shape]
    return "value"
