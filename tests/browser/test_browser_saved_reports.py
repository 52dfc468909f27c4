"""Saved reports in a real chromium: save a report from its page, see its card on the overview,
edit it, and delete it through the confirmation step; at desktop (1440 px) and phone (390 px)."""

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
MONDAY = datetime(2026, 9, 28, 12)


@pytest.fixture
def base_url(
    redis_client: redis.Redis, redis_url: str, bc: bitcore.BitCore, tmp_path: Path
) -> Iterator[str]:
    marks = [("active", u, MONDAY - timedelta(weeks=w)) for w in range(6) for u in range(10 + w)]
    marks += [("active", u, MONDAY + timedelta(days=d)) for d in range(3) for u in range(4 * d)]
    bc.mark_many(marks)
    with live_server(make_app(redis_url, tmp_path, WTF_CSRF_ENABLED=True)) as url:
        yield url


def fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("width", WIDTHS)
def test_save_a_report_and_see_its_card_on_the_overview(
    page: Any, base_url: str, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base_url}/lifecycle?event=active&period=week&count=6&end=2026-W40")
    page.locator("details.save-report summary").click()
    assert fits(page)
    page.fill("#save-name", "Active, 6 weeks")
    assert page.locator("#save-pinned").is_checked(), "the page shows pinned dates"
    page.get_by_role("button", name="Save report").click()
    page.wait_for_url("**/reports?saved=*")
    row = page.locator("table.saved-reports tbody tr", has_text="Active, 6 weeks")
    assert "Pinned" in row.inner_text() and fits(page)
    page.goto(f"{base_url}/")
    card = page.locator("article.card", has_text="Active, 6 weeks")
    assert "Pinned: 2026-W35 to 2026-W40" in card.inner_text()
    assert card.locator("rect.bar-new").count() >= 1, "the card draws the lifecycle's bars"
    box = card.bounding_box()
    assert box and box["width"] <= width and fits(page)
    card.get_by_role("link", name="Active, 6 weeks").click()
    page.wait_for_selector("svg.chart.bars")
    assert "end=2026-W40" in page.url, "the card opens the report as saved"


def test_edit_then_delete_after_confirming(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/stickiness?event=active&period=week&start=2026-W40")
    page.locator("details.save-report summary").click()
    page.fill("#save-name", "Sticky")
    page.locator("#save-rolling").check()
    page.locator("#save-overview").uncheck()
    page.get_by_role("button", name="Save report").click()
    page.wait_for_url("**/reports?saved=*")
    assert "Rolling" in page.locator("table.saved-reports tbody tr").inner_text()
    page.get_by_role("link", name="Edit Sticky").click()
    page.fill("#name", "Sticky weeks")
    page.get_by_role("button", name="Save report").click()
    page.wait_for_url("**/reports?saved=*")
    page.get_by_role("button", name="Show Sticky weeks on the overview").click()
    page.goto(f"{base_url}/")
    assert "Rolling: the current week" in page.locator("article.card").inner_text()
    page.goto(f"{base_url}/reports")
    page.get_by_role("link", name="Delete Sticky weeks").click()
    assert page.locator("h1").inner_text() == "Delete report Sticky weeks?"
    page.get_by_role("button", name="Delete Sticky weeks").click()
    page.wait_for_url("**/reports?deleted=*")
    assert "No saved reports yet" in page.locator("main").inner_text()
