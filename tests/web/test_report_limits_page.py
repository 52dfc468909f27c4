"""A report over ``BITCORE_REPORT_MAX_BYTES`` is answered 422, in every format, naming the limit
and its setting; under it, the same URL answers 200."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dashboard_support import make_app
from flask.testing import FlaskClient

import bitcore
from bitcore.limits import TooCostly
from bitcore.reading import ReportTooCostly
from bitcore.segments import SegmentStore, SegmentTooCostly
from dashboard import config, report_limits

DAY = datetime(2024, 5, 6, 12)
#: Ids up to 7,999: every key below is 1,000 bytes.
HIGH_ID = 7999
FUNNEL = "/funnel{}?steps-0=signup&steps-1=buy&kind=day&start=2024-05-06&window=3&trend=1"
COHORT = "/cohort{}?select1=signup&select2=buy&num_results=2&num_of_rows=1&start_date=2024-05-06"


@pytest.fixture
def data(bc: bitcore.BitCore) -> None:
    """signup on 2 days and buy on 3: a 3-day funnel reads 4 keys, a 2 x 2 cohort 5 (4,000 and
    5,000 bytes)."""
    bc.mark_many([("signup", HIGH_ID, DAY + timedelta(days=d)) for d in range(2)])
    bc.mark_many([("buy", HIGH_ID, DAY + timedelta(days=d)) for d in range(3)])


def client_with_limit(redis_url: str, tmp_path: Path, limit: int) -> FlaskClient:
    return make_app(redis_url, tmp_path, BITCORE_REPORT_MAX_BYTES=limit).test_client()


def test_the_setting_has_a_default_of_one_gib() -> None:
    assert config.from_environ({})["BITCORE_REPORT_MAX_BYTES"] == 1 << 30
    assert config.from_environ({"BITCORE_REPORT_MAX_BYTES": "0"})["BITCORE_REPORT_MAX_BYTES"] == 0


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (ReportTooCostly(5000, 3000), "BITCORE_REPORT_MAX_BYTES"),
        (SegmentTooCostly(5 << 20, 1 << 20), "BITCORE_SEGMENT_MAX_BYTES"),
    ],
)
def test_every_cost_refusal_is_one_kind_with_one_answer(error: TooCostly, setting: str) -> None:
    """Reports' and segments' refusals share ``TooCostly`` (the limit and the cost), and the
    dashboard answers both in one place: 422, naming the setting that holds the limit."""
    assert isinstance(error, TooCostly) and isinstance(error, ValueError)
    assert error.needed > error.limit
    refused = report_limits.refusal(error)
    assert refused == (422, refused.message, setting)
    assert f"{setting}" in refused.message


@pytest.mark.parametrize(("url", "needed"), [(FUNNEL, "4,000"), (COHORT, "5,000")])
def test_over_the_limit_is_422_naming_the_setting(
    data: None, redis_url: str, tmp_path: Path, url: str, needed: str
) -> None:
    client = client_with_limit(redis_url, tmp_path, 3000)
    html = client.get(url.format(""))
    assert html.status_code == 422
    page = html.get_data(as_text=True)
    assert f"read {needed} bytes" in page and "limit of 3,000 bytes" in page
    assert "BITCORE_REPORT_MAX_BYTES" in page
    as_json = client.get(url.format(".json"))
    assert as_json.status_code == 422
    assert "BITCORE_REPORT_MAX_BYTES" in as_json.get_json()["error"]["message"]
    assert as_json.get_json()["error"]["limit"] == "BITCORE_REPORT_MAX_BYTES"
    as_csv = client.get(url.format(".csv"))
    assert as_csv.status_code == 422
    assert as_csv.mimetype == "text/plain"
    assert "limit of 3,000 bytes (BITCORE_REPORT_MAX_BYTES)" in as_csv.get_data(as_text=True)


@pytest.mark.parametrize("limit", [5000, 0])
@pytest.mark.parametrize("url", [FUNNEL, COHORT])
def test_at_the_limit_or_without_one_the_report_is_computed(
    data: None, redis_url: str, tmp_path: Path, url: str, limit: int
) -> None:
    client = client_with_limit(redis_url, tmp_path, limit)
    for fmt in ("", ".json", ".csv"):
        assert client.get(url.format(fmt)).status_code == 200
    payload = client.get(url.format(".json")).get_json()
    if url == FUNNEL:
        assert [s["users"] for s in payload["funnel"]["steps"]] == [1, 1]


@pytest.mark.parametrize(
    "url",
    [
        "/cohort{}?select1=segment:heavy&select2=buy&num_results=2&num_of_rows=1"
        "&start_date=2024-05-06",
        "/funnel{}?steps-0=signup&steps-1=segment:heavy&kind=day&start=2024-05-06&window=3",
    ],
)
def test_a_segment_step_is_held_to_the_segment_limit_with_a_422(
    data: None, bc: bitcore.BitCore, redis_url: str, tmp_path: Path, url: str
) -> None:
    """A report's saved-segment step is evaluated within ``BITCORE_SEGMENT_MAX_BYTES`` (not the
    library's default) and refused as the segments pages refuse: 422 naming the setting."""
    SegmentStore(bc, max_bytes=None).save("heavy", "signup & ~buy")
    tiny = make_app(redis_url, tmp_path, BITCORE_SEGMENT_MAX_BYTES=100).test_client()
    as_json = tiny.get(url.format(".json"))
    assert as_json.status_code == 422, as_json.get_data(as_text=True)
    error = as_json.get_json()["error"]
    assert error["limit"] == "BITCORE_SEGMENT_MAX_BYTES"
    assert "BITCORE_SEGMENT_MAX_BYTES=100" in error["message"]
    html = tiny.get(url.format(""))
    assert html.status_code == 422 and "BITCORE_SEGMENT_MAX_BYTES" in html.get_data(as_text=True)
    roomy = make_app(redis_url, tmp_path, BITCORE_SEGMENT_MAX_BYTES=0).test_client()
    assert roomy.get(url.format(".json")).status_code == 200
