"""The lifecycle and stickiness pages in a real chromium, at desktop (1440 px) and phone (390 px)
width: the form works, the chart is drawn, and the page never scrolls sideways."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from browser_support import live_server
from dashboard_support import make_app

import bitcore

pytestmark = pytest.mark.browser
WIDTHS = [1440, 390]


@pytest.fixture
def base_url(
    redis_client: redis.Redis, redis_url: str, bc: bitcore.BitCore, tmp_path: Path
) -> Iterator[str]:
    monday = datetime(2026, 9, 28, 12)
    # earlier weeks: more users each week, a third of them away in turn (dormant, resurrecting)
    marks = [
        ("active", u, monday - timedelta(weeks=w))
        for w in range(1, 6)
        for u in range(40 - 4 * w)
        if (u + w) % 3
    ]
    marks += [("active", u, monday + timedelta(days=d)) for d in range(7) for u in range(d * 5)]
    bc.mark_many(marks)
    with live_server(make_app(redis_url, tmp_path)) as url:
        yield url


def no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", WIDTHS)
def test_lifecycle_page(page: Any, base_url: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base_url}/lifecycle")
    assert page.locator("#event").get_attribute("list") == "report-events"
    page.fill("#event", "active")
    page.select_option("#period", "week")
    page.fill("#count", "6")
    page.fill("#end", "2026-W40")
    page.get_by_role("button", name="Show lifecycle").click()
    page.wait_for_selector("svg.chart.bars")
    assert "event=active" in page.url and "end=2026-W40" in page.url
    assert page.locator("rect.bar-dormant").count() >= 1
    box = page.locator("svg.chart.bars").bounding_box()
    assert box and 0 < box["width"] <= width
    dormant = page.locator("rect.bar-dormant").first.bounding_box()
    new = page.locator("rect.bar-new").first.bounding_box()
    assert dormant and new and dormant["y"] >= new["y"] + new["height"] - 1  # below the gains
    assert page.locator(".report-table tbody tr").count() == 6
    no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_stickiness_page(page: Any, base_url: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base_url}/stickiness")
    page.fill("#event", "active")
    page.select_option("#period", "week")
    page.fill("#start", "2026-W40")
    page.get_by_role("button", name="Show stickiness").click()
    page.wait_for_selector("svg.chart.bars")
    assert page.locator("rect.bar-users").count() == 6  # 5 users on each of 1..6 days
    assert page.locator(".report-table tbody tr").count() == 7
    no_sideways_scroll(page)
    page.set_viewport_size({"width": width, "height": 900})
    page.select_option("#period", "month")
    page.fill("#start", "2026-09")
    page.get_by_role("button", name="Show stickiness").click()
    page.wait_for_selector("text=Days active in the month")
    assert page.locator(".report-table tbody tr").count() == 30
    no_sideways_scroll(page)
