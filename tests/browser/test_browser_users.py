"""A person clicks a funnel's drop-off and a cohort cell in a real chromium and sees who they are.

Uses the shared ``page`` fixture and ``live_server`` from tests/browser_support.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from browser_support import live_server
from dashboard_support import make_app

import bitcore

pytestmark = pytest.mark.browser


@pytest.fixture
def base_url(
    redis_client: redis.Redis, redis_url: str, bc: bitcore.BitCore, tmp_path: Path
) -> Iterator[str]:
    day, next_day = datetime(2024, 5, 6, 12), datetime(2024, 5, 7, 12)
    bc.mark_many(
        [("signup", u, day) for u in range(10)]
        + [("project", u, day) for u in range(4)]
        + [("project", 4, next_day)]
    )
    app = make_app(redis_url, tmp_path)
    with live_server(app) as url:
        yield url


def test_click_a_drop_off_and_a_cohort_cell(page: Any, base_url: str) -> None:
    page.goto(
        f"{base_url}/funnel?steps-0=signup&steps-1=project&kind=day&start=2024-05-06&window=2"
    )
    page.locator(".funnel-report tbody tr:nth-child(2) td:nth-child(7) a").click()
    page.wait_for_url("**/users?**part=dropoff**")
    assert page.locator(".users-count strong").inner_text() == "5"
    assert page.locator(".users-list li").all_inner_texts() == ["5", "6", "7", "8", "9"]
    assert (
        "reached step 1 (signup) but not step 2 (project)"
        in page.locator(".users-what").inner_text()
    )
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    lines = Path(download.value.path()).read_text().split()
    assert lines == ["user_id", "5", "6", "7", "8", "9"]

    page.goto(f"{base_url}/cohort?select1=signup&select2=project&num_results=2&num_of_rows=1"
              "&start_date=2024-05-06&as_percent=0")  # fmt: skip
    cell = page.locator(".cohort-table tbody tr:first-child td:nth-child(4) a")
    assert cell.inner_text() == "1"  # user 4, the next day
    cell.click()
    page.wait_for_url("**/users?**offset=1**")
    assert page.locator(".users-list li").all_inner_texts() == ["4"]
