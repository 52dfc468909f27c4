"""A person builds a 3-step funnel in a real chromium, without JavaScript doing any of the work.

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
        + [("project", 4, next_day), ("invite", 4, next_day), ("invite", 9, day)]
    )
    app = make_app(redis_url, tmp_path)
    with live_server(app) as url:
        yield url


def counts(page: Any) -> list[str]:
    return page.locator(".funnel-report tbody tr td:nth-child(4)").all_inner_texts()


def test_build_a_three_step_funnel(page: Any, base_url: str, redis_client: redis.Redis) -> None:
    page.goto(f"{base_url}/funnel")
    # the steps are text inputs offering names from a datalist; the value is what is typed
    assert page.locator("#steps-0").get_attribute("list") == "funnel-choices"
    # offered by name, as a person writes it
    assert page.locator('#funnel-choices option[value="signup"]').count() == 1
    page.fill("#steps-0", "signup")
    page.fill("#steps-1", "project")
    page.get_by_role("button", name="Add step").click()

    # the re-rendered form kept what was entered and has a third, empty step; the funnel of the
    # two filled ones is shown meanwhile
    assert page.locator("#steps-0").input_value() == "signup"
    assert page.locator("#steps-1").input_value() == "project"
    page.wait_for_selector(".funnel-report")
    page.fill("#steps-2", "invite")
    page.fill("#start", "2024-05-06")
    page.fill("#window", "2")
    page.fill("#trend", "3")
    page.locator("#trend").press("Enter")  # Enter means "Show funnel", not "Remove step"

    page.wait_for_selector(".funnel-report")
    assert counts(page) == ["10", "5", "1"]
    assert "steps-2=invite" in page.url  # a GET: the URL is the report
    widths = [
        box["width"]
        for box in (b.bounding_box() for b in page.locator(".funnel-bar-fill").all())
        if box
    ]
    assert widths[0] > widths[1] > widths[2] > 0
    assert abs(widths[1] / widths[0] - 0.5) < 0.02
    assert page.locator(".funnel-trend tbody tr").count() == 3
    assert "ordered by period" in page.inner_text(".funnel-note")

    # the shared URL reproduces the report; the CSV link is its twin
    fresh = page.context.new_page()
    fresh.goto(page.url)
    assert counts(fresh) == ["10", "5", "1"]
    csv_href = fresh.get_by_role("link", name="CSV").first.get_attribute("href")
    csv_text = fresh.request.get(f"{base_url}{csv_href}").text()
    assert csv_text.splitlines()[1].startswith("1,signup,event:signup,10,100.0")

    # remove the middle step: the funnel becomes signup -> invite
    page.get_by_role("button", name="Remove step 2").click()
    assert page.locator("input[id^=steps-]").count() == 2
    assert page.locator("#steps-1").input_value() == "invite"
    assert counts(page) == ["10", "2"], "the edited funnel is shown at once"
    page.get_by_role("button", name="Show funnel").last.click()
    page.wait_for_selector(".funnel-report")
    assert counts(page) == ["10", "2"]
    assert not list(redis_client.scan_iter(match="trackist_bitop_*"))


def test_invalid_window_shows_the_error_in_the_page(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/funnel?steps-0=event:signup&steps-1=event:project&window=91")
    assert "Between 1 and 90" in page.inner_text(".funnel-form")
    assert page.locator("#window").get_attribute("aria-invalid") == "true"
    assert page.locator(".funnel-report").count() == 0


def test_add_and_remove_work_on_a_fresh_page(page: Any, base_url: str) -> None:
    """The steps are required for "Show funnel", not for editing the list of steps."""
    page.goto(f"{base_url}/funnel")
    page.get_by_role("button", name="Add step").click()  # nothing filled in yet
    page.wait_for_selector("#steps-2")
    assert page.locator("input[id^=steps-]").count() == 3
    page.fill("#steps-0", "signup")
    page.get_by_role("button", name="Remove step 3").click()  # an empty step
    page.wait_for_function("document.querySelectorAll('input[id^=steps-]').length === 2")
    assert page.locator("#steps-0").input_value() == "signup"
    assert page.locator(".field-error").count() == 0


def test_the_parameters_labels_line_up_above_their_controls(page: Any, base_url: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{base_url}/funnel")
    labels = [
        page.locator(f'label[for="{name}"]').bounding_box()
        for name in ("kind", "start", "window", "trend")
    ]
    controls = [
        page.locator(f"#{name}").bounding_box() for name in ("kind", "start", "window", "trend")
    ]
    assert max(b["y"] for b in labels) - min(b["y"] for b in labels) < 2, "one line of labels"
    assert all(
        c["y"] >= lab["y"] + lab["height"] - 1 for lab, c in zip(labels, controls, strict=True)
    ), "above"


def test_click_a_drop_off_and_a_cohort_cell(page: Any, base_url: str) -> None:
    """Drill-down: a funnel's drop-off and a cohort cell lead to their users and a CSV of them."""
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
