"""The users page (drill-down): every number of the cohort, funnel and segment pages links to
the users behind it; the page, its CSV and its JSON list exactly those users (a set oracle) and
count what the report counts. Every input is hostile."""

from __future__ import annotations

import csv
import html
import io
import json
import random
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from dashboard_support import USERS, make_app
from drill_support import reached_sets
from flask import render_template
from id_mapping_support import external

from bitcore.segments import SegmentStore
from dashboard.views.users import PAGE_USERS, Drill, _csv_stream, _json_stream

pytestmark = pytest.mark.all_layouts(mapped="site")

DAY = datetime(2024, 12, 30, 12)  # windows cross a calendar year and an ISO week
EVENTS = ("signup", "ios", "active", "pay")


class Site:
    """An app on the test Redis with random marks, and who did what on which day."""

    def __init__(self, redis_url: str, tmp_path: Path, mapping: bool, **config: Any) -> None:
        if mapping:
            config["BITCORE_ID_MAPPING"] = "1"
        self.app = make_app(redis_url, tmp_path, **config)
        self.http = self.app.test_client()
        self.bc = self.app.extensions["bitcore"]
        self.mapping = mapping
        self.did: dict[tuple[str, int], set[int]] = {}

    def ext(self, user: int) -> int | str:
        return external(user, self.mapping)

    def mark(self, marks: list[tuple[str, int, int]]) -> None:
        for event, user, day in marks:
            self.did.setdefault((event, day), set()).add(user)
        self.bc.mark_many((e, self.ext(u), DAY + timedelta(days=d)) for e, u, d in marks)

    def users(self, event: str, day: int) -> set[int]:
        return self.did.get((event, day), set())

    def listed(self, link: str) -> tuple[int, list[Any], list[Any], dict[str, Any]]:
        """The page's count and ids, the CSV's ids and the JSON of a users link."""
        page = self.http.get(link)
        assert page.status_code == 200, page.text
        count = int(re.search(r"<strong>([\d,]+)</strong> user", page.text)[1].replace(",", ""))  # type: ignore[index]
        shown = [html.unescape(u) for u in re.findall(r"<li>(.*?)</li>", page.text)]
        as_csv = self.http.get(link.replace("/users?", "/users.csv?"))
        assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(as_csv.text)))
        assert rows[0] == ["user_id"]
        as_json = self.http.get(link.replace("/users?", "/users.json?"))
        assert as_json.status_code == 200 and as_json.mimetype == "application/json"
        return count, shown, [r[0] for r in rows[1:]], json.loads(as_json.text)


def links(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="(/users\?[^"]*)"', page)]


def texts(ids: set[int], site: Site) -> set[str]:
    return {str(site.ext(u)) for u in ids}


@pytest.fixture  # with and without the id map: parametrized by tests/conftest.py
def site(
    request: pytest.FixtureRequest, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> Site:
    site = Site(redis_url, tmp_path, request.param)
    rng = random.Random(11)
    site.mark([(rng.choice(EVENTS), rng.randrange(150), rng.randrange(12)) for _ in range(1500)])
    return site


def test_every_funnel_number_links_to_exactly_its_users(site: Site) -> None:
    query = "steps-0=signup&steps-1=ios&steps-2=pay&kind=day&start=2024-12-30&window=4&trend=2"
    page = site.http.get(f"/funnel?{query}")
    report = site.http.get(f"/funnel.json?{query}").get_json()["funnel"]["steps"]
    drills = links(page.text)
    assert len(drills) == 3 + 2  # every step's users, every drop-off after step 1
    did = [
        [site.users("signup", 0)],
        *[[site.users(e, d) for d in range(4)] for e in ("ios", "pay")],
    ]
    reached = reached_sets(did, 4)
    expected = {}
    for k in (1, 2, 3):
        expected[(k, "step")] = reached[k - 1]
        if k > 1:
            expected[(k, "dropoff")] = reached[k - 2] - reached[k - 1]
    for link in drills:
        step, part = int(re.search(r"step=(\d+)", link)[1]), re.search(r"part=(\w+)", link)[1]  # type: ignore[index]
        count, shown, rows, doc = site.listed(link)
        want = expected[(step, part)]
        assert count == (
            report[step - 1]["users"] if part == "step" else report[step - 1]["drop_off"]
        )
        assert count == len(want) == doc["count"] == len(rows)
        assert set(rows) == set(shown) == texts(want, site)
        assert {str(u) for u in doc["users"]} == texts(want, site)


def test_every_cohort_cell_links_to_exactly_its_users(site: Site) -> None:
    query = (
        "select1=signup&select1b=ios&select2=active"
        "&num_results=5&num_of_rows=3&start_date=2024-12-31"
    )
    page = site.http.get(f"/cohort?{query}")
    table = site.http.get(f"/cohort.json?{query}").get_json()["table"]["rows"]
    drills = links(page.text)
    assert len(drills) == sum(
        1 + sum(c["count"] is not None for c in row["cells"]) for row in table
    )
    for link in drills:
        day = (
            datetime.strptime(re.search(r"cohort=([\d-]+)", link)[1], "%Y-%m-%d")
            - DAY.replace(hour=0)
        ).days  # type: ignore[index]
        row = table[day - 1]  # start_date is 2024-12-31: day 1
        cohort = site.users("signup", day) & site.users("ios", day)
        offset = re.search(r"offset=(\d+)", link)
        if offset is None:
            want, reported = cohort, row["size"]
        else:
            t = int(offset[1])
            want, reported = cohort & site.users("active", day + t), row["cells"][t]["count"]
        count, shown, rows, doc = site.listed(link)
        assert count == reported == len(want) == len(rows) == doc["count"]
        assert set(rows) == set(shown) == texts(want, site)


def test_segment_previews_and_sizes_link_to_their_users(site: Site) -> None:
    SegmentStore(site.bc).save("payers", "pay and not ios")
    when = "2024-12-31"
    page = site.http.get(f"/segments/preview?expression=signup+or+%40payers&kind=day&when={when}")
    (link,) = links(page.text)
    want = site.users("signup", 1) | (site.users("pay", 1) - site.users("ios", 1))
    count, shown, rows, doc = site.listed(link)
    assert count == len(want) == len(rows) and set(rows) == texts(want, site)
    site.bc.mark_event("pay", site.ext(999))  # this week: what the index counts
    (size_link,) = links(site.http.get("/segments").text)
    assert "expression=@payers" in size_link and "kind=week" in size_link
    sized = site.http.get("/segments.json").get_json()["segments"][0]["size"]
    count, shown, rows, doc = site.listed(size_link)
    assert count == sized == 1 and rows == [str(site.ext(999))]


def test_the_page_lists_the_first_thousand_and_the_downloads_all(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    site = Site(redis_url, tmp_path, False)
    everyone = set(range(0, 3 * PAGE_USERS, 2))
    site.mark([("signup", u, 0) for u in everyone])
    site.bc.iter_chunk_bytes = 64  # many slices
    link = "/users?of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-12-30"
    count, shown, rows, doc = site.listed(link)
    assert count == len(everyone) == len(rows) == doc["count"] == len(doc["users"])
    assert shown == [str(u) for u in sorted(everyone)[:PAGE_USERS]]
    assert rows == [str(u) for u in sorted(everyone)]
    assert site.http.get(link.replace("/users?", "/users.csv?")).is_streamed


@pytest.mark.parametrize(
    "query",
    [
        "",
        "of=everyone",
        "of=cohort",
        "of=cohort&select1=nosuch&select2=signup&time_group=days&cohort=2024-12-30",
        "of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-12-30&offset=-1",
        "of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-12-30&offset=105",
        "of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-12-30&offset="
        + "9" * 40,
        "of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-W01",
        "of=cohort&select1=signup&select2=signup&time_group=days&cohort=" + "2" * 5000,
        "of=cohort&select1=signup&select2=signup&time_group=hours&cohort=2024-12-30",
        "of=cohort&select1=signup&select2=signup&time_group=days&cohort=9999-12-31&offset=3",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=3",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=3&step=0",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=3&step=3",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=3&step=1&part=dropoff",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=3&step=2&part=all",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=91&step=2",
        "of=funnel&steps-0=signup&steps-1=pay&kind=year&start=2024&window=3&step=2",
        "of=funnel&steps-0=signup&kind=day&start=2024-12-30&window=3&step=1",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=9999-12-31&window=3&step=2",
        "of=funnel&steps-0=signup&steps-1=pay&kind=day&start=tomorrow&window=3&step=2",
        "of=segment&expression=signup+and+(&kind=day&when=2024-12-30",
        "of=segment&expression=%40nosuch&kind=day&when=2024-12-30",
        "of=segment&expression=signup&kind=decade&when=2024-12-30",
        "of=segment&expression=signup&kind=day&when=yesterday",
        "of=segment&expression=" + "a+or+" * 2000 + "a&kind=day",
    ],
)
def test_nonsense_is_a_400_in_every_format(site: Site, query: str) -> None:
    for path in ("/users", "/users.json", "/users.csv"):
        response = site.http.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.text[:300])
        if path == "/users.json":
            assert response.get_json()["error"]["status"] == 400
        if path == "/users.csv":
            assert response.mimetype == "text/plain"


def test_the_report_cost_limit_holds(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    site = Site(redis_url, tmp_path, False, BITCORE_REPORT_MAX_BYTES=10_000)
    site.mark([("signup", 100_000, 0), ("pay", 100_000, 1), ("signup", 1, 1)])
    before = set(redis_client.scan_iter(match="trackist_*", count=1000))
    for link in (
        "/users.json?of=funnel&steps-0=signup&steps-1=pay&kind=day&start=2024-12-30&window=3&step=2",
        "/users.json?of=cohort&select1=signup&select2=pay&time_group=days&cohort=2024-12-30&offset=1",
        "/users.json?of=segment&expression=signup+or+pay&kind=day&when=2024-12-30",
    ):
        response = site.http.get(link)
        assert response.status_code == 422, response.text
        assert response.get_json()["error"]["limit"] == "BITCORE_REPORT_MAX_BYTES"
        assert site.http.get(link.replace(".json", ".csv")).status_code == 422
    after = set(redis_client.scan_iter(match="trackist_*", count=1000))
    assert after == before  # refused before computing anything
    small = "/users.json?of=cohort&select1=signup&select2=pay&time_group=days&cohort=2024-12-31"
    assert site.http.get(small).get_json()["users"] == [1]  # a small one passes


def test_a_segment_over_its_own_limit_is_a_422(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    site = Site(redis_url, tmp_path, False, BITCORE_SEGMENT_MAX_BYTES=1000)
    site.mark([("signup", 100_000, 0), ("pay", 100_000, 0)])
    response = site.http.get(
        "/users.json?of=segment&expression=signup+and+not+pay&kind=day&when=2024-12-30"
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["limit"] == "BITCORE_SEGMENT_MAX_BYTES"


def test_a_link_from_another_site_is_held(site: Site) -> None:
    link = "/users.csv?of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-12-30"
    held = site.http.get(link, headers={"Sec-Fetch-Site": "cross-site"})
    assert held.status_code == 403 and "user_id" not in held.text
    assert site.http.get(link, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_string_ids_are_escaped_on_the_page(site: Site) -> None:
    """With the id map, ids are strings from beacons: the page autoescapes them."""
    hostile = '<script>alert("x")</script>'
    drill = Drill(site.bc.MonthEvents("signup", 2024, 12), "Users <b>of</b> a test")
    with site.app.test_request_context("/users"):
        page = render_template(
            "users.html", drill=drill, users=[hostile], count=1, urls={"csv": "", "json": ""}
        )
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>of</b>" not in page


def test_string_ids_are_quoted_in_the_downloads() -> None:
    """With the id map, ids are strings with commas, quotes and newlines: still one id a row."""
    ids = ["a,b", 'say "hi"', "two\nlines", 7, "usr_8f3a"]
    rows = list(csv.reader(io.StringIO("".join(_csv_stream(ids)))))
    assert rows == [["user_id"], *[[str(user)] for user in ids]]
    doc = json.loads("".join(_json_stream("segment", "t", ids)))
    assert doc == {"of": "segment", "title": "t", "users": ids, "count": len(ids)}
    assert json.loads("".join(_json_stream("cohort", "t", range(12_001))))["count"] == 12_001
    assert "".join(_csv_stream(range(3))) == "user_id\n0\n1\n2\n"


def test_a_segment_step_over_its_limit_is_a_422(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A cohort's or funnel's segment selection is computed within the app's segment limit
    (``BITCORE_SEGMENT_MAX_BYTES``), as on the segments pages: here a tiny one, so it refuses."""
    site = Site(redis_url, tmp_path, False, BITCORE_SEGMENT_MAX_BYTES=100)
    site.mark([("signup", 100_000, 0), ("pay", 100_000, 0)])
    SegmentStore(site.bc, max_bytes=None).save("heavy", "signup and not pay")
    for link in (
        "/users.json?of=cohort&select1=segment:heavy&select2=pay&time_group=days"
        "&cohort=2024-12-30&offset=0",
        "/users.json?of=funnel&steps-0=signup&steps-1=segment:heavy&kind=day"
        "&start=2024-12-30&window=2&step=2",
    ):
        response = site.http.get(link)
        assert response.status_code == 422, response.text
        error = response.get_json()["error"]
        assert error["limit"] == "BITCORE_SEGMENT_MAX_BYTES"
        assert "BITCORE_SEGMENT_MAX_BYTES=100" in error["message"]


def test_the_users_need_a_login_when_users_are_configured(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    site = Site(redis_url, tmp_path, False, BITCORE_USERS=USERS)
    site.mark([("signup", 1, 0)])
    link = "/users?of=cohort&select1=signup&select2=signup&time_group=days&cohort=2024-12-30"
    assert site.http.get(link).status_code == 302
    assert site.http.get(link.replace("/users?", "/users.json?")).status_code == 401
    held = site.http.get(link.replace("/users?", "/users.csv?"))
    assert held.status_code in (302, 401) and "user_id" not in held.text
