"""The /cohort page and its JSON and CSV twins, through the real app on the test Redis."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from html import unescape
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

pytestmark = pytest.mark.all_layouts

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
    from_json.append([table["average_label"], "", *(c["text"] for c in table["average"])])
    assert from_json == shown
    assert shown[0] == ["Cohort", "Size", "Day 0", "Day 1", "Day 2"]
    assert shown[1][:2] == ["Mon 06 May 2024", "8"]
    expected = ["25.0%", "37.5%", ""] if as_percent == "1" else ["2", "3", ""]
    assert shown[1][2:] == expected  # of 0..7: 0 and 1 played on day 0; 0, 5, 6 on day 1
    # the average row is weighted by cohort size: (2 + 2) of (8 + 6) on day 0, not (25 + 33.3) / 2
    average = table["average"][0]
    assert (average["count"], average["size"], average["percent"]) == (4, 14, 28.6)
    assert all(isinstance(c["percent"], float) for c in table["average"][:2]), "numbers, not text"
    assert table["average_label"] == (
        "Average, weighted by cohort size" if as_percent == "1" else "All cohorts (total)"
    )


def test_cells_are_a_heatmap_with_exact_counts_in_titles(client: FlaskClient) -> None:
    rows = html_table(client.get(f"/cohort?{QUERY}").get_data(as_text=True))
    text, attrs = rows[1][2]
    assert text == "25.0%"
    assert attrs["title"] == "2 of 8 users (25.0%)"
    assert "style" not in attrs and "cohort-base" in attrs["class"], "column 0 is not coloured"
    # the scale is the largest share after column 0 (3 of 8 = 37.5 %): that cell is the darkest
    _, darkest = rows[1][3]
    darkest_style = r"background-color: hsla\(200, 80%, 40%, 0\.85\); color: #fff"
    assert re.fullmatch(darkest_style, darkest["style"])
    page = client.get(f"/cohort?{QUERY}").get_data(as_text=True)
    assert page.count('class="cohort-swatch"') == 5 and "37.5%</span>" in page, "a legend"
    assert rows[-1][0][0] == "Average, weighted by cohort size"


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
        ("select1=nope&select2=play", "select1", "Unknown event &#39;nope&#39;"),
        ("select1=active&select2=play&select2b=segment:nope", "select2b", "Unknown segment"),
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
    assert any(unescape(message) in e for e in errors[field]), errors
    assert client.get(f"/cohort.csv?{query}").status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "end_date=0001-01-20&time_group=weeks",
        "end_date=0001-02-01&time_group=months",
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
    assert '<option value="active">active</option>' in html and "cohort-table" not in html
    assert "event:" not in html, "names, not tokens"
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


@pytest.mark.flat_only("its app runs on a client of a dead single Redis")
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


def links(html: str) -> dict[str, str]:
    """The report's links by their text (``link to this report``, ``JSON``, ``CSV``)."""
    found = re.findall(r'<a href="(/cohort[^"]*)"[^>]*>([^<]+)</a>', html)
    return {text: unescape(href) for href, text in found}


def test_a_range_is_the_first_and_the_last_cohort(client: FlaskClient) -> None:
    weeks = "select1=active&select2=play&time_group=weeks&num_of_rows=1"
    table = client.get(f"/cohort.json?{weeks}&start_date=2024-05-08&end_date=2024-05-22")
    rows = table.get_json()["table"]["rows"]
    # the weeks containing the two dates, both included: W19 (Monday 6 May) to W21
    assert [r["cohort"] for r in rows] == [
        "2024-W19 (06 May)",
        "2024-W20 (13 May)",
        "2024-W21 (20 May)",
    ]
    days = client.get(
        "/cohort.json?select1=active&select2=play&start_date=2024-05-06&num_results=2"
    )
    assert [r["cohort"] for r in days.get_json()["table"]["rows"]] == [
        "Mon 06 May 2024",
        "Tue 07 May 2024",
    ], "a first cohort and a number of rows"
    page = client.get(f"/cohort?{weeks}&start_date=2024-05-08&end_date=2024-05-22&num_results=9")
    shown = re.search(r'<input [^>]*id="num_results"[^>]*>', page.get_data(as_text=True))
    assert shown and 'value="3"' in shown.group(0), "the form shows how many cohorts they make"
    backwards = client.get(f"/cohort?{weeks}&start_date=2024-05-22&end_date=2024-05-08")
    assert backwards.status_code == 400
    assert "must not be before the first" in backwards.get_data(as_text=True)


def test_links_pin_the_dates_shown(client: FlaskClient, bc: bitcore.BitCore) -> None:
    html = client.get("/cohort?select1=active&select2=play&num_results=3&start_date=").get_data(
        as_text=True
    )
    today = bc.now().date()
    first = (today - timedelta(days=2)).isoformat()
    for text in ("link to this report", "CSV", "JSON"):
        href = links(html)[text]
        assert f"start_date={first}" in href and f"end_date={today.isoformat()}" in href, text
        assert "select1=active" in href, "names, not tokens"
    # the pinned link shows the same table tomorrow: its rows do not depend on today
    pinned = links(html)["JSON"]
    assert client.get(pinned).get_json() == client.get(pinned).get_json()


def test_a_rolling_table_links_to_today(client: FlaskClient, bc: bitcore.BitCore) -> None:
    bc.mark_many([("active", 1, bc.now()), ("play", 1, bc.now())])
    query = "select1=active&select2=play&num_results=3&start_date=2024-05-06&rolling=1"
    html = client.get(f"/cohort?{query}").get_data(as_text=True)
    href = links(html)["link to this report"]
    assert "rolling=1" in href and "num_results=3" in href and "start_date" not in href
    rows = client.get(f"/cohort.json?{query}").get_json()["table"]["rows"]
    assert rows[-1]["in_progress"] and rows[-1]["cells"][0]["in_progress"], "today is not over"
    assert not rows[0]["in_progress"]
    assert "(in progress)" in html


def test_a_cohort_in_the_future_says_so_and_offers_no_download(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    later = (bc.now().date() + timedelta(days=30)).isoformat()
    page = client.get(f"/cohort?select1=active&select2=play&start_date={later}")
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert f"{later} is in the future" in html and "Nobody is in any" not in html
    assert "Download" not in html and not links(html).get("CSV")
    assert (
        client.get(f"/cohort.csv?select1=active&select2=play&start_date={later}").status_code == 400
    )


def test_downloads_are_named_after_the_report(client: FlaskClient) -> None:
    query = "select1=active&select2=play&start_date=2024-05-06&end_date=2024-05-08&num_of_rows=1"
    download = client.get(f"/cohort.csv?{query}")
    name = "cohort-active-play-day-2024-05-06-2024-05-08"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{name}.csv"'
    assert f'download="{name}.json"' in client.get(f"/cohort?{query}").get_data(as_text=True)


def test_the_form_states_and_checks_the_cell_limit(client: FlaskClient) -> None:
    from dashboard.forms.cohort import MAX_CELLS

    html = client.get("/cohort").get_data(as_text=True)
    assert f'data-max-cells="{MAX_CELLS}"' in html and "At most 20,000 cells" in html
    answer = client.get(
        "/cohort.json?select1=active&select2=play&start_date=2023-01-01&end_date=2023-12-31"
        "&num_of_rows=60"
    ).get_json()
    assert answer["error"]["fields"]["num_of_rows"] == [
        "At most 20,000 cells: 365 cohorts x 61 columns is 22,265. "
        "Ask for fewer cohorts or columns."
    ]


def test_retention_curve_and_headers_with_units(client: FlaskClient) -> None:
    html = client.get(f"/cohort?{QUERY}").get_data(as_text=True)
    assert "Retention curve" in html and '<svg class="chart"' in html
    assert '<th scope="col">Day 1</th>' in html
    assert "active → play, by day</h2>" in " ".join(html.split())


def test_the_page_weighs_by_cohort_size_and_the_library_keeps_bitmapists_mean() -> None:
    """A cohort of 100 with 10 % back and one of 10 with 90 % back: the page's average is 17.3 %
    (19 of 110 users), bitmapist's ``column_averages`` stays the plain mean of the cells, 50 %."""
    from bitcore.cohort.engine import CohortTable
    from bitcore.cohort.render import column_averages
    from dashboard.presenters.cohort import cohort_view

    table = CohortTable(
        "days", [datetime(2024, 5, 6), datetime(2024, 5, 7)], [100, 10], [[100, 10], [10, 9]], 1
    )
    assert column_averages(table.bitmapist_rows(), 1)[1] == 50.0
    average = cohort_view(table, True, now=datetime(2024, 6, 1)).average[1]
    assert (average.count, average.size, average.text) == (19, 110, "17.3%")


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


def test_a_first_time_cohorts_links_lead_to_its_first_timers(client: FlaskClient) -> None:
    """Day 2's first-time "active" cohort is users 8 and 9: its size's link lists just them,
    and a cell's link the first-timers who came back (nobody of 8, 9 played on day 2)."""
    html = client.get(f"/cohort?{QUERY}&as_percent=0&cohort_type=first_time").get_data(as_text=True)
    found = [unescape(h) for h in re.findall(r'href="(/users\?[^"]*)"', html)]
    sized = [h for h in found if "cohort=2024-05-07" in h and "offset" not in h]
    assert sized and all("cohort_type=first_time" in h for h in found)
    users = client.get(sized[0].replace("/users?", "/users.json?")).get_json()
    assert sorted(int(u) for u in users["users"]) == [8, 9]
    cell = client.get(sized[0].replace("/users?", "/users.json?") + "&offset=0").get_json()
    assert cell["users"] == []
    recurring = client.get(sized[0].replace("cohort_type=first_time", "cohort_type=recurring"))
    assert "6</strong> user" in recurring.get_data(as_text=True)


def test_on_or_after_retention_its_twins_and_its_links(client: FlaskClient) -> None:
    """Day 1's cohort (users 0..7) played on day 1 (0, 1) or day 2 (0, 5, 6): on or after day 1
    that is 4 of them, on or after day 2 three, after that nobody (an empty cell)."""
    query = QUERY + "&as_percent=0&retention=on_or_after"
    table = client.get(f"/cohort.json?{query}").get_json()["table"]
    assert table["retention"] == "on_or_after" and table["header"][2:] == [
        "Day 0+",
        "Day 1+",
        "Day 2+",
    ]
    assert [c["count"] for c in table["rows"][0]["cells"]] == [4, 3, None]
    assert [c["count"] for c in table["rows"][1]["cells"]] == [2, None, None]
    on = client.get(f"/cohort.json?{QUERY}&as_percent=0").get_json()["table"]
    assert on["retention"] == "on" and [c["count"] for c in on["rows"][0]["cells"]] == [2, 3, None]
    page = client.get(f"/cohort?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'selected value="on_or_after"' in html
    assert 'data-retention="on_or_after"' in html and "on or after" in html
    for text in ("link to this report", "CSV", "JSON"):
        assert "retention=on_or_after" in links(html)[text], text
    assert (
        client.get(f"/cohort.csv?{query}")
        .get_data(as_text=True)
        .splitlines()[0]
        .endswith("Day 0+,Day 1+,Day 2+")
    )
    found = [unescape(h) for h in re.findall(r'href="(/users\?[^"]*)"', html)]
    assert found and all("retention=on_or_after" in h for h in found)
    cell = next(h for h in found if "cohort=2024-05-06" in h and "offset=0" in h)
    users = client.get(cell.replace("/users?", "/users.json?")).get_json()
    assert sorted(int(u) for u in users["users"]) == [0, 1, 5, 6]
    bad = client.get(f"/cohort.json?{QUERY}&retention=ever")
    assert bad.status_code == 400 and "retention" in bad.get_json()["error"]["fields"]


def test_compared_groups_a_segment_and_a_flag(client: FlaskClient, bc: bitcore.BitCore) -> None:
    """Day 1's cohort is users 0..7; the "ios" users are 0, 2, 4, 6 (a segment of the event) and
    the premium flag is users 0 and 5: each group's table counts only its members."""
    SegmentStore(bc).save("iosers", "ios")
    bc.mark_unique_many([("premium", 0), ("premium", 5)])
    query = QUERY + "&as_percent=0&by=segment:iosers&by=unique:premium"
    data = client.get(f"/cohort.json?{query}").get_json()
    assert [c["count"] for c in data["table"]["rows"][0]["cells"]][:2] == [2, 3]
    assert [g["by"] for g in data["groups"]] == ["segment:iosers", "unique:premium"]
    ios, premium = (g["table"]["rows"][0] for g in data["groups"])
    assert ios["size"] == 4 and [c["count"] for c in ios["cells"]][:2] == [1, 2]  # 0; 0, 6
    assert premium["size"] == 2 and [c["count"] for c in premium["cells"]][:2] == [1, 2]  # 0; 0, 5
    assert "groups" not in client.get(f"/cohort.json?{QUERY}").get_json()
    page = client.get(f"/cohort?{query}")
    html = page.get_data(as_text=True)
    assert (
        page.status_code == 200
        and "Only iosers (segment)" in html
        and "Only premium (flag)" in html
    )
    assert 'class="chart lines"' in html and html.count('class="series series-') == 3
    assert '<option value="flag:premium">' in html, "flags are offered as groups and filters"
    for text in ("link to this report", "CSV", "JSON"):
        assert (
            "by=segment%3Aiosers" in links(html)[text]
            and "by=unique%3Apremium" in links(html)[text]
        )
    lines = client.get(f"/cohort.csv?{query}").get_data(as_text=True).splitlines()
    assert lines[0].startswith("Group,Cohort,Size") and any(
        x.startswith("unique:premium,") for x in lines
    )
    found = [unescape(h) for h in re.findall(r'href="(/users\?[^"]*)"', html)]
    cell = next(
        h for h in found if "by=flag:premium" in h and "cohort=2024-05-06" in h and "offset=1" in h
    )
    users = client.get(cell.replace("/users?", "/users.json?")).get_json()
    assert sorted(int(u) for u in users["users"]) == [0, 5]


@pytest.mark.parametrize(
    ("by", "message"),
    [
        ("&by=segment:nope", "no saved segment has this name"),
        ("&by=flag:nope", "no flag has this name"),
        ("&by=active", "is not a group"),
        ("".join(f"&by=flag:f{k}" for k in range(6)), "at most 5 groups"),
    ],
)
def test_bad_groups_are_a_400_in_the_form(
    client: FlaskClient, bc: bitcore.BitCore, by: str, message: str
) -> None:
    bc.mark_unique_many([(f"f{k}", 1) for k in range(6)])
    page = client.get(f"/cohort?{QUERY}{by}")
    assert page.status_code == 400 and message in page.get_data(as_text=True)
    body = client.get(f"/cohort.json?{QUERY}{by}").get_json()
    assert "by" in body["error"]["fields"]


def test_a_rolling_on_or_after_link_keeps_its_mode_and_groups(
    client: FlaskClient, bc: bitcore.BitCore
) -> None:
    bc.mark_unique_many([("premium", 0)])
    query = (
        "select1=active&select2=play&num_results=3&rolling=1&retention=on_or_after&by=flag:premium"
    )
    href = links(client.get(f"/cohort?{query}").get_data(as_text=True))["link to this report"]
    assert "rolling=1" in href and "retention=on_or_after" in href and "by=flag%3Apremium" in href
