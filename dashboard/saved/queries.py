"""A saved report's query on the dashboard: the page it opens, and its dates pinned or rolling.

``bitcore.saved_reports`` reads which a query is (``dates_of``) and rolls one (``rolled``); pinning
needs the periods a page shows now (its defaults), so it is here, next to the forms that know them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode

from flask import url_for

from bitcore import periods, saved_reports
from bitcore.saved_reports import Dates, SavedReport
from dashboard.forms import funnel as funnel_form

#: The endpoint of each page a report can be saved from.
ENDPOINTS = {
    "cohort": "cohort.cohort_page",
    "funnel": "funnel.funnel_page",
    "lifecycle": "reports.lifecycle_html",
    "stickiness": "reports.stickiness_html",
    "segment": "segments.preview",
}
#: What the list and the cards call each page.
TITLES = {
    "cohort": "Cohort",
    "funnel": "Funnel",
    "lifecycle": "Lifecycle",
    "stickiness": "Stickiness",
    "segment": "Segment",
}
#: The period parameter of the pages that have one, and its default.
_PERIOD = {
    "lifecycle": ("period", "week"),
    "stickiness": ("period", "week"),
    "segment": ("kind", "week"),
}


def link(report: SavedReport) -> str:
    """The report's page with its query: what opening it shows."""
    return f"{url_for(ENDPOINTS[report.page])}?{report.query}"


def pinned(page: str, pairs: Sequence[tuple[str, str]], now: datetime) -> list[tuple[str, str]]:
    """The query of what the page shows ``now``, its dates written out: opened later, it shows
    the same periods. A query whose period kind is no kind is left as it is (the page's form
    says what is wrong with it)."""
    values = dict(pairs)
    kept = [(k, v) for k, v in pairs if k != "rolling"]
    if saved_reports.dates_of(page, kept) == "pinned":
        return kept
    try:
        written = _dates_now(page, values, now)
    except (ValueError, KeyError):
        return kept
    return [(k, v) for k, v in kept if k not in written] + list(written.items())


def _dates_now(page: str, values: dict[str, str], now: datetime) -> dict[str, str]:
    if page == "cohort":  # the rows up to today, as many as asked for
        return {"end_date": now.date().isoformat()}
    if page == "funnel":
        kind = values.get("kind") or funnel_form.DEFAULT_KIND
        window = values.get("window", "")
        size = int(window) if window.isdigit() else funnel_form.DEFAULT_WINDOW
        return {"start": funnel_form.default_start(kind, size, now)}
    if page == "segment":
        return {"when": now.date().isoformat()}
    name, default = _PERIOD[page]
    kind = values.get(name) or default
    current = periods.label(periods.period_of(kind, now))  # type: ignore[arg-type]
    return {"end" if page == "lifecycle" else "start": current}


def with_dates(page: str, query: str, dates: Dates | None, now: datetime) -> str:
    """``query`` pinned or rolling as asked (``None``: as it is)."""
    pairs = saved_reports.parse_query(query)
    if dates == "rolling":
        pairs = saved_reports.rolled(page, pairs)
    elif dates == "pinned":
        pairs = pinned(page, pairs, now)
    return urlencode(pairs)
