"""A person in a real browser defines a segment (with a typo first), previews it, saves it, and uses
it in a report. Runs Debian's chromium through Playwright (fixtures in tests/browser_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from browser_support import live_server

import bitcore
from bitcore.segments import SegmentStore
from dashboard import create_app

WHEN = datetime(2025, 1, 8, 12)  # ISO week 2025-W02
NEXT_WEEK = datetime(2025, 1, 15, 12)


@pytest.fixture
def live_app(redis_url: str, redis_client: redis.Redis) -> Iterator[str]:
    b = bitcore.BitCore(redis_client)
    b.mark_many(
        [
            ("active", 1, WHEN),
            ("active", 2, WHEN),
            ("active", 3, WHEN),
            ("bought", 2, WHEN),
            ("bought", 3, WHEN),
            ("bought", 9, WHEN),
            ("paid", 2, NEXT_WEEK),
        ]
    )
    app = create_app({"SECRET_KEY": "browser", "REDIS_URL": redis_url})  # CSRF on, as in production
    with live_server(app) as url:
        yield url


@pytest.mark.browser
def test_define_a_segment_and_use_it_in_a_report(
    page: Any, live_app: str, redis_client: redis.Redis
) -> None:
    base = live_app
    page.goto(f"{base}/segments")
    page.get_by_role("link", name="New segment").click()

    page.get_by_label("Name", exact=True).fill("engaged buyers")
    page.get_by_label("Expression", exact=True).fill("active & (bought")
    page.get_by_label("Period").select_option("week")
    page.get_by_label("containing").fill("2025-01-08")
    page.get_by_role("button", name="Preview").click()
    error = page.locator(".segment-syntax-error")
    assert "expected ')'" in error.inner_text()
    assert page.locator(".segment-syntax-error mark").inner_text() == " "

    page.get_by_label("Expression", exact=True).fill("active & (bought | paid)")
    page.get_by_role("button", name="Preview").click()
    assert page.locator("output.preview").inner_text() == "2 users in 2025-W02"
    assert SegmentStore(bitcore.BitCore(redis_client)).names() == []  # a preview saves nothing

    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/segments?saved=engaged*")
    assert page.locator("p.notice").inner_text() == "Saved segment engaged buyers."
    assert page.get_by_role("row", name="engaged buyers").is_visible()
    assert SegmentStore(bitcore.BitCore(redis_client)).get("engaged buyers").created_by == "local"

    # the cohort page offers the segment among its choices; its row is the segment's users per week
    page.goto(f"{base}/cohort")
    assert page.locator('#cohort-choices option[value="segment:engaged buyers"]').count() == 1
    page.get_by_label("People who did").fill("segment:engaged buyers")
    page.get_by_label("and came back to").fill("event:paid")
    page.get_by_label("Group by").select_option("weeks")
    page.get_by_label("Show").select_option("0")
    page.get_by_label("Cohorts (rows)").fill("2")
    page.get_by_label("Periods after the first (columns)").fill("1")
    page.get_by_label("First cohort").fill("2025-01-06")  # its ISO week, 2025-W02, is the first row
    page.get_by_role("button", name="Show cohorts").click()
    week2 = page.locator("table.cohort-table tbody tr", has_text="2025-W02")
    assert week2.locator("td.cohort-size").inner_text() == "2"  # users 2 and 3
    assert week2.locator("td").nth(2).inner_text() == "1"  # user 2 paid the week after

    # use the segment as step 1 of a funnel: the steps' datalist offers it, a person types it
    page.goto(f"{base}/funnel")
    offered = page.locator('#funnel-choices option[value="segment:engaged buyers"]')
    assert offered.text_content() == "engaged buyers (segment)"
    page.get_by_label("Step 1").fill("segment:engaged buyers")
    page.get_by_label("Step 2").fill("paid")
    page.locator('select[name="kind"]').select_option("week")
    page.locator('input[name="start"]').fill("2025-W02")
    page.locator('input[name="window"]').fill("2")
    page.locator('input[name="trend"]').fill("1")
    page.locator("button.primary").click()
    table = page.locator("table.funnel-table").first
    first, second = table.locator("tbody tr").nth(0), table.locator("tbody tr").nth(1)
    assert "engaged buyers (segment)" in first.inner_text()
    assert first.locator("td.num").first.inner_text().strip() == "2"  # users 2 and 3 in W02
    assert "paid" in second.inner_text()
    assert second.locator("td.num").first.inner_text().strip() == "1"  # user 2 paid in W03
