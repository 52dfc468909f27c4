"""A saved report's query on the dashboard: the page it opens, and its dates pinned or rolling.

``bitcore.saved_reports`` reads which a query is (``dates_of``) and rolls one (``rolled``); pinning
needs the periods a page shows now (its defaults), so it is here, next to the forms that know them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from flask import request, url_for

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


#: Parameters of a page's state, not of its report: the funnel's add/remove step buttons, the
#: trend table's CSV.
_TRANSIENT = {"add", "remove", "table"}


def page_query(page: str, link: str | None = None) -> str:
    """What "Save this report" saves: the request's query, or the page's own ``link`` to the
    report shown (cohort and funnel links write their dates out, in the page's terms), plus every
    parameter of the request the link leaves out, so one the link does not know yet is kept."""
    asked = [(k, v) for k, v in request.args.items(multi=True) if k not in _TRANSIENT]
    if link is None:
        return urlencode(asked)
    written = parse_qsl(link.partition("?")[2])
    known = {k for k, _ in written} | {*saved_reports.DATE_PARAMETERS[page], "rolling"}
    return urlencode(written + [(k, v) for k, v in asked if k not in known and v])


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
