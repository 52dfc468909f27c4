"""A person asks for a cohort table in a real chromium: picks events, submits, reads a cell.

Uses the shared ``page`` fixture and ``live_server`` from tests/browser_support.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from browser_support import live_server

import bitcore
from dashboard import create_app

pytestmark = pytest.mark.browser


@pytest.fixture
def base_url(redis_client: redis.Redis, redis_url: str, bc: bitcore.BitCore) -> Iterator[str]:
    day = datetime(2024, 5, 6, 12)
    bc.mark_many(
        [("signup", u, day) for u in range(10)]
        + [("login", u, day + timedelta(days=1)) for u in range(4)]
        + [("login", u, day + timedelta(days=2)) for u in range(7)]
    )
    app = create_app({"REDIS_URL": redis_url, "SECRET_KEY": "browser", "BITCORE_USERS": ""})
    with live_server(app) as url:
        yield url


def test_pick_events_submit_and_read_a_cell(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/cohort")
    options = page.locator("#cohort-choices option")
    assert sorted(options.evaluate_all("els => els.map(e => e.value)")) == ["login", "signup"]
    page.fill("#select1", "signup")
    page.fill("#select2", "login")
    page.select_option("#as_percent", "1")
    page.fill("#num_results", "2")
    page.fill("#num_of_rows", "3")
    page.fill("#start_date", "2024-05-06")
    page.get_by_role("button", name="Show cohorts").click()

    page.wait_for_selector(".cohort-table")
    assert "select1=signup" in page.url  # a GET: the URL is the report
    first_row = page.locator(".cohort-table tbody tr").first
    cells = first_row.locator("td")
    assert cells.nth(0).inner_text() == "10"  # cohort size
    day_one = cells.nth(2)
    assert day_one.inner_text() == "40.0%"
    assert day_one.get_attribute("title") == "4 of 10 users (40.0%)"
    colour = day_one.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour.startswith("rgba(") and colour != "rgba(0, 0, 0, 0)"  # the heatmap is painted
    assert cells.nth(3).inner_text() == "70.0%"

    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV").click()
    csv_text = download_info.value.path().read_text(encoding="utf-8")
    assert csv_text.splitlines()[1].startswith("Mon 06 May 2024,10,,40.0%,70.0%")


def test_invalid_input_shows_field_errors(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/cohort?select1=nope&select2=event:login")
    assert "Unknown event 'nope'" in page.locator(".field-error").first.inner_text()
    assert page.locator("#select1").input_value() == "nope"


def test_the_form_refuses_too_many_cells_before_submitting(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/cohort")
    page.fill("#select1", "signup")
    page.fill("#select2", "login")
    page.fill("#num_results", "366")
    page.fill("#num_of_rows", "60")
    message = "At most 20,000 cells: 366 cohorts x 61 columns is 22,326."
    assert message in page.inner_text(".cohort-cells")
    page.get_by_role("button", name="Show cohorts").click()
    assert page.locator(".cohort-table").count() == 0 and "select1" not in page.url, "not sent"
    assert message in page.eval_on_selector("#num_of_rows", "el => el.validationMessage")
    page.fill("#num_of_rows", "50")  # 366 x 51 = 18,666: fine
    assert "18,666 cells" in page.inner_text(".cohort-cells")
    # two dates make their own number of cohorts, counted as the server counts them
    page.fill("#start_date", "2023-01-01")
    page.fill("#end_date", "2023-12-31")
    page.fill("#num_of_rows", "60")
    assert "365 cohorts x 61 columns is 22,265." in page.inner_text(".cohort-cells")
    page.select_option("#time_group", "weeks")  # 2022-W52 .. 2023-W52: 53 weeks
    assert "53 cohorts x 61 columns = 3,233 cells" in page.inner_text(".cohort-cells")


def test_show_cohorts_sits_under_the_form_and_stays_put(page: Any, base_url: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{base_url}/cohort")
    form = page.locator("form.cohort-form").bounding_box()
    button = page.get_by_role("button", name="Show cohorts").bounding_box()
    last_fieldset = page.locator(".cohort-form fieldset").last.bounding_box()
    assert abs(button["x"] - form["x"]) < 2, "at the form's left edge, not floating right"
    assert button["y"] >= last_fieldset["y"] + last_fieldset["height"], "under the fields"
    fieldsets = [
        box["x"]
        for box in map(lambda f: f.bounding_box(), page.locator(".cohort-form fieldset").all())
    ]
    page.goto(f"{base_url}/cohort?select1=nope&select2=login")  # an error next to a field
    moved = page.get_by_role("button", name="Show cohorts").bounding_box()
    assert abs(moved["x"] - button["x"]) < 2
    after = [
        box["x"]
        for box in map(lambda f: f.bounding_box(), page.locator(".cohort-form fieldset").all())
    ]
    assert after == fieldsets, "the error wraps in its fieldset: nothing moves sideways"


def test_on_or_after_retention_renders_with_its_mode(page: Any, base_url: str) -> None:
    """Logins on day 1 (users 0..3) and day 2 (0..6): on or after day 1 is 7 of the 10."""
    page.goto(f"{base_url}/cohort")
    page.fill("#select1", "signup")
    page.fill("#select2", "login")
    page.select_option("#retention", "on_or_after")
    page.fill("#num_results", "1")
    page.fill("#num_of_rows", "3")
    page.fill("#start_date", "2024-05-06")
    page.get_by_role("button", name="Show cohorts").click()

    page.wait_for_selector(".cohort-table")
    assert "retention=on_or_after" in page.url
    assert "Retention on or after" in page.inner_text(".cohort-mode")
    headers = page.locator(".cohort-table thead th").all_inner_texts()
    assert headers[2:] == ["Day 0+", "Day 1+", "Day 2+", "Day 3+"]
    cells = page.locator(".cohort-table tbody tr").first.locator("td")
    assert [cells.nth(k).inner_text() for k in (1, 2, 3)] == ["70.0%", "70.0%", "70.0%"]
    assert cells.nth(4).inner_text() == ""  # nobody logged in on day 3 or later
    assert page.locator("#retention").input_value() == "on_or_after"
    assert "retention=on_or_after" in (cells.nth(2).locator("a").get_attribute("href") or "")
