"""The segments pages as a product manager meets them (issue 15): warnings for events never
tracked, readable "Updated", links to the segments that use one, a delete that asks first, a
rename of a used segment refused before the save, and valid HTML (one id per page)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest
from dashboard_support import csrf_token, make_app
from flask.testing import FlaskClient
from test_segments_web import WHEN, form, segments_app

import bitcore
from bitcore.segments import SegmentStore

pytestmark = pytest.mark.all_layouts


@pytest.fixture
def bc(make_bc: Callable[..., bitcore.BitCore]) -> bitcore.BitCore:
    b = make_bc()
    b.mark_many([("active", 1, WHEN), ("active", 2, WHEN), ("bought", 2, WHEN)])
    b.mark_unique("ios", 2)
    return b


@pytest.fixture
def client(redis_url: str, bc: bitcore.BitCore) -> FlaskClient:
    return segments_app(redis_url).test_client()


def test_an_untracked_event_is_previewed_and_saved_with_a_warning(client: FlaskClient) -> None:
    query = "expression=active+AND+NOT+churned&kind=week&when=2025-01-08"
    page = client.get(f"/segments/preview?{query}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "No event named &#39;churned&#39; has been tracked yet" in html
    answer = client.get(f"/segments/preview.json?{query}").get_json()
    assert answer["preview"]["size"] == 2
    assert answer["warnings"] == [
        "No event named 'churned' has been tracked yet: it stands for nobody until it is."
    ]
    saved = client.post(
        "/segments/new.json", data=form(name="kept", expression="active AND NOT churned", save="1")
    )
    assert saved.status_code == 201, "a warning, not a refusal: the event may come later"
    assert saved.get_json()["warnings"] == answer["warnings"]
    listing = client.get("/segments").get_data(as_text=True)
    assert "churned&#39; has been tracked yet" in listing, "the list says it too, after the save"
    edit = client.get("/segments/kept/edit").get_data(as_text=True)
    assert "churned&#39; has been tracked yet" in edit


def test_a_flag_used_as_an_event_is_named_as_such(client: FlaskClient) -> None:
    answer = client.get("/segments/preview.json?expression=active+AND+ios&kind=week").get_json()
    assert answer["warnings"] == [
        "'ios' is a flag (a dateless event): as ios it counts nobody; write unique(ios)."
    ]
    fine = client.get("/segments/preview.json?expression=active+AND+unique(ios)&kind=week")
    assert fine.get_json()["warnings"] == []
    missing = client.get("/segments/preview.json?expression=unique(android)&kind=week")
    assert "No user carries the flag 'android'" in missing.get_json()["warnings"][0]


def test_the_list_reads_as_people_write(client: FlaskClient, bc: bitcore.BitCore) -> None:
    store = SegmentStore(bc)
    store.save("buyers", "active & bought", by="local")
    store.save("loyal buyers", "@buyers & active", by="ana")
    store.save("scripted", "active", by="")
    html = client.get("/segments").get_data(as_text=True)
    shown = re.findall(r'<time datetime="[^"]+">([^<]+)</time>', html)
    assert len(shown) == 3 and all(
        re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d UTC", s) for s in shown
    )
    assert "by someone on this machine (no login)" in html and "by local" not in html
    assert "by ana" in html and "by the library (no author given)" in html
    assert '<a href="/segments/loyal%20buyers/edit">loyal buyers</a>' in html, "Used by: a link"
    assert html.count('<td class="num">') == 3


def test_every_id_is_unique_on_every_segments_page(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    store = SegmentStore(bc)
    for i in range(4):
        store.save(f"s{i}", "active")
    app = make_app(client.application.config["REDIS_URL"])  # CSRF on: the real forms
    real = app.test_client()
    for path in ("/segments", "/segments/new", "/segments/s1/edit", "/segments/s1/delete"):
        html = real.get(path).get_data(as_text=True)
        ids = Counter(re.findall(r'\sid="([^"]+)"', html))
        assert all(n == 1 for n in ids.values()), (path, [i for i, n in ids.items() if n > 1])
        assert 'id="csrf_token"' not in html


def test_delete_asks_first_without_javascript(redis_url: str, bc: bitcore.BitCore) -> None:
    SegmentStore(bc).save("buyers", "active & bought")
    client = make_app(redis_url).test_client()
    listing = client.get("/segments").get_data(as_text=True)
    assert 'href="/segments/buyers/delete"' in listing
    assert '<form method="post" action="/segments/buyers/delete"' not in listing, (
        "no one-click delete on the list"
    )
    confirm = client.get("/segments/buyers/delete")
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "Delete segment buyers?" in html
    assert SegmentStore(bc).exists("buyers"), "asking deletes nothing"
    refused = client.post("/segments/buyers/delete")
    assert refused.status_code == 400 and SegmentStore(bc).exists("buyers"), "CSRF is required"
    done = client.post("/segments/buyers/delete", data={"csrf_token": csrf_token(html)})
    assert done.status_code == 302 and not SegmentStore(bc).exists("buyers")
    assert client.get("/segments/nope/delete").status_code == 404


@pytest.fixture
def used(bc: bitcore.BitCore) -> None:
    """``buyers``, used by ``loyal``."""
    store = SegmentStore(bc)
    store.save("buyers", "active & bought")
    store.save("loyal", "@buyers & active")


@pytest.mark.usefixtures("used")
def test_a_used_segment_cannot_be_deleted_from_its_confirmation(client: FlaskClient) -> None:
    html = client.get("/segments/buyers/delete").get_data(as_text=True)
    assert "cannot be deleted while" in html and 'href="/segments/loyal/edit"' in html
    assert "<button" not in html.split("<main>")[1], "nothing to press"


@pytest.mark.usefixtures("used")
def test_the_edit_page_warns_before_renaming_a_used_segment(client: FlaskClient) -> None:
    html = client.get("/segments/buyers/edit").get_data(as_text=True)
    assert re.search(r'<input[^>]*id="name"[^>]*readonly', html), "the name is locked"
    assert 'class="warning"' in html and 'href="/segments/loyal/edit"' in html
    free = client.get("/segments/loyal/edit").get_data(as_text=True)
    assert not re.search(r'<input[^>]*id="name"[^>]*readonly', free)
