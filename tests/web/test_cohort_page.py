"""The /cohort page and its JSON and CSV twins, through the real app on the test Redis."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis
from dashboard_support import make_app
from flask.testing import FlaskClient
from redis.backoff import NoBackoff
from redis.retry import Retry

import bitcore
from bitcore.segments import SegmentStore

QUERY = "select1=active&select2=play&num_results=3&num_of_rows=2&start_date=2024-05-06"


@pytest.fixture
def client(bc: bitcore.BitCore, redis_url: str, tmp_path: Path) -> FlaskClient:
    day = datetime(2024, 5, 6, 12)
    bc.mark_many(
        [("active", u, day) for u in range(8)]
        + [("active", u, day + timedelta(days=1)) for u in range(4, 10)]
        + [("play", u, day) for u in (0, 1, 20)]
        + [("play", u, day + timedelta(days=1)) for u in (0, 5, 6)]
        + [("ios", u, day) for u in range(0, 8, 2)]
    )
    return make_app(redis_url, tmp_path).test_client()


class TableParser(HTMLParser):
    """Rows of the cohort table's cells as ``(text, attributes)``, header and footer included."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, dict[str, str]]]] = []
        self.inside = False
        self.cell: tuple[list[str], dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "cohort-table") in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ([], {k: v or "" for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(("".join(self.cell[0]).strip(), self.cell[1]))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[0].append(data)


def html_table(html: str) -> list[list[tuple[str, dict[str, str]]]]:
    parser = TableParser()
    parser.feed(html)
    return parser.rows


@pytest.mark.parametrize("as_percent", ["1", "0"])
def test_csv_and_json_are_exactly_the_html_table(client: FlaskClient, as_percent: str) -> None:
    query = f"{QUERY}&as_percent={as_percent}&select1b=&select2b="
    page = client.get(f"/cohort?{query}")
    assert page.status_code == 200
    shown = [[text for text, _ in row] for row in html_table(page.get_data(as_text=True))]
    download = client.get(f"/cohort.csv?{query}")
    assert download.mimetype == "text/csv"
    assert list(csv.reader(io.StringIO(download.get_data(as_text=True)))) == shown
    table = client.get(f"/cohort.json?{query}").get_json()["table"]
    from_json = [table["header"]]
    from_json += [
        [r["cohort"], str(r["size"]), *(c["text"] for c in r["cells"])] for r in table["rows"]
    ]
    from_json.append(["Average", "", *table["average"]])
    assert from_json == shown
    assert shown[0] == ["Cohort", "Size", "0", "1", "2"]
    assert shown[1][:2] == ["Mon 06 May 2024", "8"]
    expected = ["25.0%", "37.5%", ""] if as_percent == "1" else ["2", "3", ""]
    assert shown[1][2:] == expected  # of 0..7: 0 and 1 played on day 0; 0, 5, 6 on day 1


def test_cells_are_a_heatmap_with_exact_counts_in_titles(client: FlaskClient) -> None:
    rows = html_table(client.get(f"/cohort?{QUERY}").get_data(as_text=True))
    text, attrs = rows[1][2]
    assert text == "25.0%"
    assert attrs["title"] == "2 of 8 users (25.00%)"
    assert re.fullmatch(
        r"background-color: hsla\(200, 80%, 40%, 0\.25\); color: #111", attrs["style"]
    )
    darker = [a for _, a in rows[2][2:] if a.get("style")]
    assert darker and all("hsla(200" in a["style"] for a in darker)
    assert rows[-1][0][0] == "Average"


def test_and_selections_and_segments_work_on_the_page(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    SegmentStore(bc).save("ios_players", "ios AND play")
    page = client.get(f"/cohort?{QUERY}&select1b=ios&select2=segment:ios_players")
    assert page.status_code == 200
    rows = html_table(page.get_data(as_text=True))
    assert rows[1][1][0] == "4"  # active AND ios on day 0: 0, 2, 4, 6
    assert rows[1][2][0] == "25.0%"  # of those, ios AND play on day 0: user 0
    assert 'value="segment:ios_players"' in page.get_data(as_text=True)  # offered in the datalist


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("select1=active", "select2", "Choose an event or segment."),
        ("select1=nope&select2=play", "select1", "is not a tracked event or saved segment"),
        ("select1=active&select2=play&select2b=segment:nope", "select2b", "is not a tracked"),
        ("select1=active&select2=play&num_results=0", "num_results", "Between 1 and 366"),
        ("select1=active&select2=play&num_results=x", "num_results", "Not a valid integer"),
        ("select1=active&select2=play&num_of_rows=500", "num_of_rows", "Between 0 and 104"),
        ("select1=active&select2=play&num_results=366&num_of_rows=100", "num_of_rows", "At most"),
        ("select1=active&select2=play&start_date=2024-13-01", "start_date", "Not a valid date"),
        ("select1=active&select2=play&time_group=hours", "time_group", "Not a valid choice"),
    ],
)
def test_invalid_input_re_renders_the_form_with_errors(
    client: FlaskClient, query: str, field: str, message: str
) -> None:
    page = client.get(f"/cohort?{query}")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert message in html and 'class="cohort-form"' in html and "cohort-table" not in html
    as_json = client.get(f"/cohort.json?{query}")
    assert as_json.status_code == 400
    errors = as_json.get_json()["error"]["fields"]
    assert any(message in e for e in errors[field]), errors
    assert client.get(f"/cohort.csv?{query}").status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "start_date=0001-01-01&time_group=weeks",
        "start_date=0001-02-01&time_group=months",
        "start_date=9999-12-01&num_of_rows=60",
        "start_date=9999-06-01&time_group=years",
    ],
)
def test_dates_out_of_range_are_a_400(client: FlaskClient, query: str) -> None:
    page = client.get(f"/cohort?select1=active&select2=play&{query}")
    assert page.status_code == 400
    assert "year" in page.get_data(as_text=True)


def test_a_fresh_form_and_bare_names(client: FlaskClient) -> None:
    fresh = client.get("/cohort")
    assert fresh.status_code == 200
    html = fresh.get_data(as_text=True)
    assert '<option value="event:active">active</option>' in html and "cohort-table" not in html
    assert client.get("/cohort.csv").status_code == 400
    # bare names are read as events, and a partial URL takes the defaults for the rest
    assert client.get("/cohort?select1=active&select2=event:play").status_code == 200


def test_empty_data_says_so(client: FlaskClient) -> None:
    page = client.get("/cohort?select1=active&select2=play&start_date=2020-01-01&num_results=3")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Nobody is in any of these cohorts" in html and "cohort-table" not in html
    assert client.get("/cohort.json?select1=active&select2=play&start_date=2020-01-01").get_json()[
        "table"
    ]["empty"]


def test_names_are_escaped(client: FlaskClient, bc: bitcore.BitCore) -> None:
    bc.mark_event("<b>x</b>", 1, now=datetime(2024, 5, 6))
    html = client.get("/cohort").get_data(as_text=True)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_redis_down_is_a_503_not_a_500(redis_url: str, tmp_path: Path) -> None:
    dead = bitcore.embedded.free_port()
    app = make_app(f"redis://127.0.0.1:{dead}/0", tmp_path)
    app.extensions["bitcore"] = bitcore.BitCore(
        redis.Redis(port=dead, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    )
    response = app.test_client().get(f"/cohort?{QUERY}")
    assert response.status_code == 503
    assert "Redis" in response.get_data(as_text=True)


def test_no_keys_left_behind(client: FlaskClient, redis_client: redis.Redis) -> None:
    client.get("/cohort")  # the first page builds the registry of event names: kept, not temporary
    before: set[Any] = set(redis_client.keys("*"))
    for fmt in ("", ".json", ".csv"):
        assert client.get(f"/cohort{fmt}?{QUERY}&time_group=years").status_code == 200
    assert set(redis_client.keys("*")) == before


def test_first_time_cohorts_and_their_twins(client: FlaskClient) -> None:
    """Day 2's "active" cohort: 6 did it, 2 of them (8, 9) for the first time."""
    query = QUERY + "&as_percent=0"
    every = client.get(f"/cohort.json?{query}").get_json()["table"]
    first = client.get(f"/cohort.json?{query}&cohort_type=first_time").get_json()["table"]
    assert first != every
    html = client.get(f"/cohort?{query}&cohort_type=first_time")
    assert html.status_code == 200 and b'selected value="first_time"' in html.data
    assert b"cohort_type=first_time" in html.data  # the twins keep the query
    bad = client.get(f"/cohort.json?{query}&cohort_type=newest")
    assert bad.status_code == 400 and "cohort_type" in bad.get_json()["error"]["fields"]
