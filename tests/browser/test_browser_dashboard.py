"""The dashboard in a real browser: log in, read the overview, filter it, open an event, look up a
user."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from browser_support import live_server
from dashboard_support import PASSWORD, USERS, make_app

from bitcore import BitCore, demo
from bitcore import overview as report

pytestmark = pytest.mark.browser


@pytest.fixture
def base_url(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[str]:
    app = make_app(redis_url, tmp_path, BITCORE_USERS=USERS, TESTING=False)
    demo.load_demo(app.extensions["bitcore"], users=1500, days=40, seed=11)
    with live_server(app) as url:
        yield url


def log_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/event/active")
    assert "/login" in page.url
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/event/active$"))


def test_wrong_password_stays_on_the_login_page(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("#username", "alice")
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").first.inner_text() == "Unknown user or wrong password."
    assert "/login" in page.url


def test_log_in_browse_filter_and_open_an_event(
    page: Any, base_url: str, redis_client: redis.Redis
) -> None:
    log_in(page, base_url)
    page.click("header nav >> text=Overview")
    rows = page.locator("table.overview:not(.flags) tbody tr")
    names = [rows.nth(i).locator("th a").inner_text() for i in range(rows.count())]
    assert names == sorted(
        ["active", "churned", "signup", "song:played", "project:created", "teammate:invited"]
    )
    assert page.locator("svg.sparkline").count() == len(names)
    flags = page.locator("table.flags tbody th a").all_inner_texts()
    assert flags == ["android", "ios", "web"], "flags are listed apart, without a chart"
    assert page.locator(".banner").count() == 0, "logged in: no open-dashboard banner"

    page.fill("#q", "song")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r".*\?q=song$"))
    assert page.locator("table.overview:not(.flags) tbody tr").count() == 1

    page.click("text=song:played")
    page.wait_for_url(re.compile(r".*/event/song:played$"))
    assert page.locator("h1").inner_text() == "song:played"
    assert page.locator("svg.chart").count() == 3
    assert page.locator("svg.chart polyline").first.get_attribute("points").count(",") == 30

    bc = BitCore(redis_client)
    yesterday = report.today_of(bc) - timedelta(days=1)
    active_user = next(iter(bc.DayEvents.from_date("song:played", yesterday)))
    page.fill("#user", str(active_user))
    page.fill("#date", yesterday.isoformat())
    page.click(".lookup button[type=submit]")
    assert (
        page.locator(".answer")
        .inner_text()
        .startswith(f"User {active_user} was active on {yesterday}")
    )

    page.fill("#user", "-5")
    page.click(".lookup button[type=submit]")
    assert page.eval_on_selector("#user", "e => e.validity.valid") is False, (
        "the browser checks the range"
    )
    assert page.locator(".answer").count() == 1, "nothing was sent"

    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(f"{base_url}/")
    assert "/login" in page.url
