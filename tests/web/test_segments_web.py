"""The segments pages through the real app (Flask test client) on the test Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from dashboard_support import make_app
from flask import Flask
from flask.testing import FlaskClient

import bitcore
from bitcore.segments import SegmentStore
from dashboard.forms.choices import selection_choices

WHEN = datetime(2025, 1, 8, 12)


def segments_app(redis_url: str, **overrides: Any) -> Flask:
    """The shared ``make_app`` with CSRF off, so forms post without a token unless a test asks."""
    return make_app(redis_url, **{"WTF_CSRF_ENABLED": False, **overrides})


@pytest.fixture
def bc(redis_client: redis.Redis) -> bitcore.BitCore:
    b = bitcore.BitCore(redis_client)
    b.mark_many(
        [
            ("active", 1, WHEN),
            ("active", 2, WHEN),
            ("active", 3, WHEN),
            ("bought", 2, WHEN),
            ("bought", 9, WHEN),
        ]
    )
    return b


@pytest.fixture
def client(redis_url: str, bc: bitcore.BitCore) -> Iterator[FlaskClient]:
    yield segments_app(redis_url).test_client()


def form(**fields: str) -> dict[str, str]:
    data = {"name": "", "expression": "", "description": "", "kind": "week", "when": "2025-01-08"}
    data.update(fields)
    return data


def test_create_then_list_shows_the_segment_and_its_size_this_week(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    response = client.post(
        "/segments/new", data=form(name="buyers", expression="active & bought", save="Save")
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/segments?saved=buyers")
    assert SegmentStore(bc).get("buyers").expression == "active & bought"
    listing = client.get("/segments?saved=buyers").get_data(as_text=True)
    assert "Saved segment <strong>buyers</strong>" in listing
    assert "<code>active &amp; bought</code>" in listing
    data = client.get("/segments.json").get_json()
    assert [s["name"] for s in data["segments"]] == ["buyers"]
    assert data["segments"][0]["size"] == 0  # this week (the marks are in January 2025)


def test_preview_button_rerenders_the_form_with_the_size_and_saves_nothing(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    response = client.post(
        "/segments/new", data=form(name="", expression="active & ~bought", preview="Preview")
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(r"<strong>2</strong> users in 2025-W02", page)
    assert 'value="2025-01-08"' in page
    assert SegmentStore(bc).names() == []


@pytest.mark.parametrize(
    ("kind", "when", "size", "label"),
    [
        ("day", "2025-01-08", 4, "2025-01-08"),
        ("month", "2025-01-31", 4, "2025-01"),
        ("year", "2025-06-01", 4, "2025"),
        ("day", "2025-01-09", 0, "2025-01-09"),
    ],
)
def test_preview_json_for_any_period(
    client: FlaskClient, kind: str, when: str, size: int, label: str
) -> None:
    response = client.get(
        "/segments/preview.json",
        query_string={"expression": "active | bought", "kind": kind, "when": when},
    )
    assert response.status_code == 200
    assert response.get_json()["preview"] == {"kind": kind, "period": label, "size": size}


def test_syntax_error_is_shown_with_the_bad_part_underlined(client: FlaskClient) -> None:
    response = client.post(
        "/segments/new", data=form(name="x", expression="active $ bought", save="Save")
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "expected a name" in page and "column 8" in page
    assert "<code>active <mark>$</mark> bought\n       ^</code>" in page
    data = client.post(
        "/segments/new.json", data=form(name="x", expression="(active", save="Save")
    ).get_json()
    assert data["error"]["syntax_error"]["column"] == 8
    assert data["error"]["syntax_error"]["expected"].startswith("')'")


def test_preview_page_shows_syntax_errors_too(client: FlaskClient) -> None:
    response = client.get("/segments/preview", query_string={"expression": "a &", "kind": "week"})
    assert response.status_code == 400
    assert "<mark> </mark>" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", "not &#39;/&#39;"),
        ("x" * 65, "at most 64 characters"),
        ("", "This field is required"),
    ],
)
def test_bad_names_are_refused(
    client: FlaskClient, bc: bitcore.BitCore, name: str, message: str
) -> None:
    response = client.post("/segments/new", data=form(name=name, expression="active", save="Save"))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert SegmentStore(bc).names() == []


def test_hostile_name_and_description_are_shown_escaped(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    hostile = "<script>alert(1)</script>"
    refused = client.post(
        "/segments/new", data=form(name=hostile, expression="active", save="Save")
    )
    assert refused.status_code == 400
    assert hostile not in refused.get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.get_data(as_text=True)
    client.post(
        "/segments/new",
        data=form(name="ok", expression=f'active & "{hostile}"', description=hostile, save="Save"),
    )
    assert SegmentStore(bc).get("ok").description == hostile
    for url in ["/segments", "/segments/ok/edit"]:
        page = client.get(url).get_data(as_text=True)
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_edit_updates_and_renames(client: FlaskClient, bc: bitcore.BitCore) -> None:
    SegmentStore(bc).save("old", "active")
    page = client.get("/segments/old/edit").get_data(as_text=True)
    assert 'value="old"' in page
    assert "\nactive</textarea>" in page
    response = client.post(
        "/segments/old/edit", data=form(name="new", expression="bought", save="Save")
    )
    assert response.status_code == 302
    assert SegmentStore(bc).names() == ["new"]
    assert client.get("/segments/old/edit").status_code == 404


def test_unknown_reference_and_cycle_are_refused_with_a_message(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    response = client.post("/segments/new", data=form(name="s", expression="@nope", save="Save"))
    assert response.status_code == 400
    assert "unknown segment: &#39;nope&#39;" in response.get_data(as_text=True)
    SegmentStore(bc).save("a", "active")
    SegmentStore(bc).save("b", "@a")
    response = client.post("/segments/a/edit", data=form(name="a", expression="@b", save="Save"))
    assert response.status_code == 400
    assert "cycle: a -&gt; b -&gt; a" in response.get_data(as_text=True)
    assert SegmentStore(bc).get("a").expression == "active"


def test_taken_name_is_a_conflict(client: FlaskClient, bc: bitcore.BitCore) -> None:
    SegmentStore(bc).save("s", "active")
    response = client.post(
        "/segments/new.json", data=form(name="s", expression="bought", save="Save")
    )
    assert response.status_code == 409
    assert "already exists" in response.get_json()["error"]["message"]


def test_delete_and_delete_in_use(client: FlaskClient, bc: bitcore.BitCore) -> None:
    store = SegmentStore(bc)
    store.save("base", "active")
    store.save("user one", "@base & bought")
    response = client.post("/segments/base/delete")
    assert response.status_code == 409
    assert "used by &#39;user one&#39;" in response.get_data(as_text=True)
    assert client.post("/segments/base/delete.json").get_json()["error"]["used_by"] == ["user one"]
    assert client.post("/segments/user one/delete").status_code == 302
    assert client.post("/segments/base/delete.json").get_json() == {"deleted": "base"}
    assert store.names() == []
    assert client.post("/segments/base/delete").status_code == 404


def test_segments_appear_in_selection_choices(client: FlaskClient, bc: bitcore.BitCore) -> None:
    client.post("/segments/new", data=form(name="ios users", expression="active", save="Save"))
    choices = selection_choices(bc)
    assert ("segment:ios users", "ios users (segment)") in choices
    assert choices.index(("event:active", "active")) < choices.index(
        ("segment:ios users", "ios users (segment)")
    )


def test_selection_token_evaluates_the_segment(bc: bitcore.BitCore) -> None:
    from bitcore import periods
    from bitcore.selections import Selection

    SegmentStore(bc).save("buyers", "active & bought")
    assert set(Selection.parse("segment:buyers").bitmap(bc, periods.week(2025, 2))) == {2}


def test_csrf_refusal_saves_nothing(redis_url: str, bc: bitcore.BitCore) -> None:
    app = segments_app(redis_url, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    response = client.post("/segments/new", data=form(name="s", expression="active", save="Save"))
    assert response.status_code == 400
    assert SegmentStore(bc).names() == []
    SegmentStore(bc).save("keep", "active")
    assert client.post("/segments/keep/delete").status_code == 400
    assert SegmentStore(bc).names() == ["keep"]
    # with the token from the page, the same POST works
    page = client.get("/segments/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    ok = client.post(
        "/segments/new",
        data=form(name="s", expression="active", save="Save", csrf_token=token.group(1)),
    )
    assert ok.status_code == 302
    assert SegmentStore(bc).names() == ["keep", "s"]


def test_every_page_has_a_json_twin(client: FlaskClient, bc: bitcore.BitCore) -> None:
    SegmentStore(bc).save("s", "active", "desc")
    edit = client.get("/segments/s/edit.json").get_json()
    assert edit["segment"] == {"name": "s", "expression": "active", "description": "desc"}
    assert edit["original"] == "s"
    assert client.get("/segments/new.json").get_json()["segment"]["expression"] is None
    assert client.get("/segments", headers={"Accept": "application/json"}).is_json
    bad = client.get("/segments/preview.json", query_string={"expression": "a &", "kind": "week"})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["syntax_error"]["column"] == 4
    saved = client.post("/segments/new.json", data=form(name="t", expression="@s", save="Save"))
    assert saved.status_code == 201
    assert saved.get_json()["saved"]["expression"] == "@s"
