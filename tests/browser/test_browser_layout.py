"""Every page at a 390 px phone and at 1440 px: the page never scrolls sideways, wide tables
scroll in their own box, and the shared look holds (right-aligned numbers, one control style).

The pages come from the app's URL map, so a new page is checked without being listed here: a
route with a parameter needs a sample below, else the test says so. Reports are loaded with a
query that fills their tables (the widest content there is)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import redis
from browser_support import live_server
from dashboard_support import PASSWORD, USERS, make_app
from flask import Flask

from bitcore import demo
from bitcore import overview as report

pytestmark = pytest.mark.browser

WIDTHS = (390, 1440)
#: A value for each route parameter, per endpoint.
SAMPLES: dict[str, list[dict[str, str]]] = {
    "pages.event": [{"name": "active"}, {"name": "ios"}, {"name": "song:played"}],
    "segments.edit": [{"name": "mobile churn"}],
    "segments.delete": [{"name": "mobile"}],
    "saved.edit": [{"name": "Weekly retention"}],  # the demo's saved reports
    "saved.delete": [{"name": "Active users, lifecycle"}],
}
#: Five groups to compare: the most a report takes (segments and flags of the demo).
COMPARE = "".join(
    f"&by={by}"
    for by in ("segment:mobile", "segment:creators", "flag:ios", "unique:android", "flag:web")
)
#: Endpoints that are no HTML page (a file, a probe, a POST-only action).
NOT_PAGES = {"static", "health.healthz", "auth.logout"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[Flask, str]]:
    redis.Redis.from_url(redis_url).flushall()
    app = make_app(redis_url, tmp_path_factory.mktemp("layout"), BITCORE_USERS=USERS, TESTING=False)
    demo.load_demo(app.extensions["bitcore"], users=3000, days=70, seed=7)
    with live_server(app) as url:
        yield app, url


def page_paths(app: Flask) -> list[str]:
    """Every HTML page of the URL map (GET, no ``.json``/``.csv`` twin), samples filled in, and
    the reports with a query that fills their tables."""
    today = report.today_of(app.extensions["bitcore"])
    paths = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            if rule.endpoint in NOT_PAGES or "GET" not in (rule.methods or ()):
                continue
            if rule.rule.endswith((".json", ".csv")):
                continue
            if rule.arguments:
                assert rule.endpoint in SAMPLES, f"add a sample for {rule.rule} to SAMPLES"
                paths += [url_for(rule.endpoint, **args) for args in SAMPLES[rule.endpoint]]
            else:
                paths.append(rule.rule)
    year, week, _ = (today - timedelta(weeks=6)).isocalendar()
    steps = "&".join(
        f"steps-{i}=event:{name}"
        for i, name in enumerate(
            ["signup", "active", "song:played", "project:created", "teammate:invited", "churned"]
        )
    )
    return [
        *paths,
        f"/funnel?{steps}&kind=week&start={year}-W{week:02d}&window=3&trend=8",
        "/cohort?select1=event:signup&select2=event:active&time_group=days&num_results=30"
        f"&start_date={today - timedelta(days=40)}",
        "/segments/preview?expression=active+AND+NOT+churned+AND+unique(ios)&kind=week",
        # compared groups (by=) and retention on or after: the widest forms and reports
        f"/funnel?{steps}&kind=week&start={year}-W{week:02d}&window=3&trend=8{COMPARE}",
        "/cohort?select1=event:signup&select2=event:active&time_group=weeks&num_results=8"
        f"&retention=on_or_after{COMPARE}",
        f"/lifecycle?event=active&period=week&count=12{COMPARE}",
        f"/stickiness?event=active&period=month{COMPARE}",
        "/lifecycle?event=active&period=week&count=12",  # with its "Save this report" control
        "/stickiness?event=active&period=month",
        "/reports/new?page=lifecycle&query=event%3Dactive",
        "/event/no-such-event",  # the error page
    ]


def log_in(tab: Any, url: str) -> None:
    tab.goto(f"{url}/login")
    tab.fill("#username", "alice")
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(r".*/$"))


@contextmanager
def window(browser: Any, url: str, width: int, logged_in: bool = True) -> Iterator[Any]:
    """A tab in a fresh context of ``width`` CSS pixels, logged in unless told."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    try:
        tab = context.new_page()
        if logged_in:
            log_in(tab, url)
        yield tab
    finally:
        context.close()


def sideways_overflow(tab: Any) -> int:
    """How many CSS pixels the page is wider than the window (0: it fits)."""
    return int(
        tab.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth"
        )
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways(browser: Any, site: tuple[Flask, str], width: int) -> None:
    app, url = site
    with window(browser, url, width) as tab:
        too_wide = {}
        paths = page_paths(app)
        assert len(paths) >= 12, paths
        compared = [p for p in paths if "by=" in p]
        assert len(compared) == 4, compared
        for path in paths:
            tab.goto(url + path)
            assert path == "/login" or "/login" not in tab.url, path
            if overflow := sideways_overflow(tab):
                too_wide[path] = overflow
        assert not too_wide, f"pages wider than {width} px (by px): {too_wide}"


@pytest.mark.parametrize("width", WIDTHS)
def test_compared_reports_show_every_group_inside_the_window(
    browser: Any, site: tuple[Flask, str], width: int
) -> None:
    """The four reports with five groups: each group's part is drawn, the group inputs hold
    what was asked, and every part fits the window (phone: one under the other)."""
    app, url = site
    with window(browser, url, width) as tab:
        for path in [p for p in page_paths(app) if "by=" in p]:
            tab.goto(url + path)
            values = tab.locator("input[name=by]").evaluate_all("els => els.map(e => e.value)")
            assert values == ["segment:mobile", "segment:creators", "flag:ios", "unique:android",
                              "flag:web"], path  # fmt: skip
            if path.startswith("/funnel"):
                assert tab.locator(".funnel-compare-table thead th").count() == 7, path
                assert tab.locator("svg.grouped-bars rect.bar").count() > 0, path
            else:
                assert tab.locator(".compare-group").count() == 5, path
            if path.startswith("/cohort"):
                assert tab.locator("svg.lines g.series").count() == 6, path
                assert "on or after" in tab.inner_text(".cohort-mode")
            right = tab.evaluate("document.documentElement.clientWidth")
            edges = tab.locator(".compare-group, .compare-fieldset, svg.chart").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().right)"
            )
            assert edges and max(edges) <= right + 1, (path, max(edges), right)


def test_logged_out_pages_fit_and_show_no_navigation(browser: Any, site: tuple[Flask, str]) -> None:
    app, url = site
    with window(browser, url, 390, logged_in=False) as tab:
        tab.goto(f"{url}/login")
        assert sideways_overflow(tab) == 0
        assert tab.locator("header nav").count() == 0, "no navigation before a login"
        assert "data in" not in tab.locator("footer").inner_text()
        tab.fill("#username", "alice")
        tab.fill("#password", "wrong")
        tab.click("button[type=submit]")
        alert = tab.locator("main .login [role=alert]")
        assert alert.first.inner_text() == "Unknown user or wrong password."


def test_wide_tables_scroll_in_their_own_box_with_a_sticky_first_column(
    browser: Any, site: tuple[Flask, str]
) -> None:
    app, url = site
    with window(browser, url, 390) as tab:
        funnel = [p for p in page_paths(app) if p.startswith("/funnel?")][0]
        tab.goto(url + funnel)
        box = tab.locator(".table-scroll").first
        assert box.evaluate("b => b.scrollWidth > b.clientWidth"), "the table is wider: it scrolls"
        first_cell = box.locator("tbody tr").first.locator("th, td").first
        before = first_cell.bounding_box()
        box.evaluate("b => { b.scrollLeft = 200; }")
        after = first_cell.bounding_box()
        assert abs(after["x"] - before["x"]) < 1, "the first column stays in view"
        header = box.locator("thead th").nth(1)
        assert header.evaluate("h => getComputedStyle(h).position") == "sticky"
        assert sideways_overflow(tab) == 0


def test_numbers_are_right_aligned_and_controls_share_one_style(
    browser: Any, site: tuple[Flask, str]
) -> None:
    app, url = site
    with window(browser, url, 1440) as tab:
        for path in ("/", "/segments"):
            tab.goto(url + path)
            cells = tab.locator("table.overview td.num")
            assert cells.count() > 0, path
            aligns = cells.evaluate_all("cs => cs.map(c => getComputedStyle(c).textAlign)")
            assert set(aligns) == {"right"}, (path, aligns)
        tab.goto(f"{url}/segments/new")
        styles = tab.locator(
            "main input:not([type=hidden]), main select, main textarea, main button"
        ).evaluate_all(
            "els => els.map(e => { const s = getComputedStyle(e);"
            " return [s.fontSize, s.fontFamily, s.borderTopWidth, s.borderRadius]; })"
        )
        assert len(styles) >= 5 and len({tuple(s) for s in styles}) == 1, styles
        for path in (
            "/cohort",
            "/funnel",
            "/lifecycle",
            "/stickiness",
            "/segments/preview",
            "/event/active",
        ):
            tab.goto(url + path)
            controls = tab.locator("main select, main input:not([type=hidden]), main button")
            sizes = controls.evaluate_all("els => els.map(e => getComputedStyle(e).fontSize)")
            assert len(sizes) >= 2 and len(set(sizes)) == 1, f"one control size on {path}: {sizes}"


def test_overview_sparklines_use_their_height(browser: Any, site: tuple[Flask, str]) -> None:
    app, url = site
    with window(browser, url, 1440) as tab:
        spans = tab.locator("svg.sparkline polyline").evaluate_all(
            "ps => ps.map(p => { const ys = Array.from(p.points, q => q.y);"
            " return Math.max(...ys) - Math.min(...ys); })"
        )
        height = tab.locator("svg.sparkline").first.evaluate("s => s.viewBox.baseVal.height")
        assert spans and all(span > height * 0.6 for span in spans), (spans, height)


def test_flags_are_listed_apart_and_their_page_checks_membership(
    browser: Any, site: tuple[Flask, str]
) -> None:
    app, url = site
    with window(browser, url, 390) as tab:
        events = tab.locator("table.overview:not(.flags) tbody th a").all_inner_texts()
        flags = tab.locator("table.flags tbody th a").all_inner_texts()
        assert flags == ["android", "ios", "web"] and not set(flags) & set(events)
        tab.locator("table.flags a", has_text="ios").click()
        assert tab.locator("svg.chart").count() == 0, "a flag has no daily chart"
        assert tab.locator("input[type=date]").count() == 0, "nor a date to ask about"
        tab.fill("#user", "1")
        tab.click("main button[type=submit]")
        assert re.search(r"User 1 (carries|does not carry) the flag ios", tab.inner_text("main"))
