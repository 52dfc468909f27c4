"""A saved report as a small card on the overview: its chart, one number, and which dates it shows.

Each page's saved query is read by that page's own form (with the page's defaults), so a card
shows what the page shows, and a query the page would refuse is refused when it is saved
(:func:`check`). The report is computed by bitcore within the app's cost limits
(``BITCORE_REPORT_MAX_BYTES``, ``BITCORE_SEGMENT_MAX_BYTES``); a card whose report fails carries
its error instead of a chart, so one bad report never breaks the overview.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from flask import current_app
from werkzeug.datastructures import MultiDict

from bitcore import BitCore, funnel, lifecycle, periods, stickiness
from bitcore.cohort import engine
from bitcore.reading import ReportTooCostly
from bitcore.saved_reports import SavedReport
from bitcore.segments import SegmentError, SegmentStore
from dashboard import negotiation, report_limits
from dashboard.forms import cohort as cohort_form
from dashboard.forms import funnel as funnel_form
from dashboard.forms.choices import selection_choices
from dashboard.forms.reports import LifecycleForm, StickinessForm
from dashboard.forms.segments import PreviewForm
from dashboard.presenters import cohort as cohort_present
from dashboard.presenters import reports as reports_present
from dashboard.presenters.funnel import conversion_line, trend_rows
from dashboard.saved import queries

#: The setting bounding what one card may read.
CARD_SETTING = "BITCORE_CARD_MAX_BYTES"
#: A card's chart, in the card's SVG units (it scales to the card's width).
WIDTH, HEIGHT = 360, 150


class BadQuery(ValueError):
    """The page's form refuses the saved query; the message has its field errors."""


@dataclass(frozen=True)
class Drawn:
    """What a computed report shows on a card: ``kind`` says how ``chart`` is drawn (``line``,
    ``spark``, ``bars``, or ``number`` without a chart); ``span`` the periods it covers."""

    kind: str
    chart: Any
    summary: str
    span: str
    recent: str  # what rolling means for it: "the last 12 weeks"


@dataclass(frozen=True)
class Card:
    report: SavedReport
    url: str
    title: str  # the page's
    dates: str  # "Rolling: ..." or "Pinned: ..."
    drawn: Drawn | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        """The card in the overview's JSON: what it is, where it opens, and its one number."""
        return {
            "name": self.report.name,
            "page": self.report.page,
            "dates": self.report.dates,
            "url": self.url,
            "span": self.drawn.span if self.drawn else None,
            "summary": self.drawn.summary if self.drawn else None,
            "error": self.error,
        }


Compute = Callable[[], Drawn]


def _validated(form: Any) -> None:
    if not form.validate():
        raise BadQuery(negotiation.fields_message(form.errors) or "the query is incomplete")


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first} to {last}"


def _last(count: int, kind: str) -> str:
    """``the current week``, ``the last 12 weeks``."""
    return f"the current {kind}" if count == 1 else f"the last {count} {kind}s"


def _cohort(
    args: MultiDict[str, str], client: BitCore, now: datetime, limit: int | None
) -> Compute:
    args = cohort_form.with_defaults(args)
    typed = [args.get(name, "") for name in ("select1", "select1b", "select2", "select2b")]
    form = cohort_form.CohortForm(args, choices=selection_choices(client, typed), today=now.date())
    _validated(form)

    def compute() -> Drawn:
        table = engine.cohort_tables(  # a card shows everyone's table (the first)
            client,
            **form.query(),  # type: ignore[arg-type]
            max_bytes=limit,
        )[0]
        view = cohort_present.cohort_view(table, form.percent, now)
        curve = cohort_present.retention_curve(view.header, view.average, WIDTH, HEIGHT)
        shown = [(h, c) for h, c in zip(view.header, view.average, strict=True) if c.text][1:]
        summary = f"{shown[0][0]}: {shown[0][1].text}" if shown else "no finished period yet"
        assert form.range is not None
        first, last = form.range.first, form.range.last
        span = _span(periods.label(first), periods.label(last))
        return Drawn("line", curve, summary, span, _last(form.range.count, first.kind))

    return compute


def _funnel(
    args: MultiDict[str, str], client: BitCore, now: datetime, limit: int | None
) -> Compute:
    args = funnel_form.with_defaults(args, now)
    form = funnel_form.FunnelForm(args)
    form.set_step_choices(selection_choices(client, funnel_form.step_values(args)))
    _validated(form)

    def compute() -> Drawn:
        trend = funnel.funnel_trend(
            client,
            form.step_tokens(),
            form.start_period(),
            form.window.data,
            form.trend.data,
            max_bytes=limit,
        )
        rows = trend_rows(trend, now)
        latest = rows[-1]["conversion_pct"]
        summary = "nobody at the first step" if latest is None else f"{latest} % convert"
        span = _span(rows[0]["start"], rows[-1]["start"])
        recent = f"the latest {len(rows)} start{'s' if len(rows) > 1 else ''}"
        return Drawn("spark", conversion_line(rows), summary, span, recent)

    return compute


def _lifecycle(
    args: MultiDict[str, str], client: BitCore, now: datetime, limit: int | None
) -> Compute:
    args = args.copy()
    args.setdefault("period", "week")
    args.setdefault("count", "12")
    form = LifecycleForm(args, choices=selection_choices(client, [args.get("event", "")]))
    _validated(form)

    def compute() -> Drawn:
        end = form.period_of(form.end, form.period.data, now)
        report = lifecycle.lifecycle(
            client,
            form.event.data,
            form.period.data,
            form.count.data,
            end,
            max_bytes=limit,
        )
        chart = reports_present.lifecycle_chart(report, WIDTH, HEIGHT)
        last = report.periods[-1]
        active = last.new + last.returning + last.resurrecting
        summary = f"{active:,} active in {last.period}"
        span = _span(report.periods[0].period, last.period)
        return Drawn("bars", chart, summary, span, _last(len(report.periods), report.kind))

    return compute


def _stickiness(
    args: MultiDict[str, str], client: BitCore, now: datetime, limit: int | None
) -> Compute:
    args = args.copy()
    args.setdefault("period", "week")
    form = StickinessForm(args, choices=selection_choices(client, [args.get("event", "")]))
    _validated(form)

    def compute() -> Drawn:
        period = form.period_of(form.start, form.period.data, now)
        report = stickiness.stickiness(client, form.event.data, period, max_bytes=limit)
        chart = reports_present.stickiness_chart(report, WIDTH, HEIGHT)
        summary = f"{sum(report.histogram):,} users, by days active"
        return Drawn("bars", chart, summary, periods.label(period), _last(1, period.kind))

    return compute


def _segment(
    args: MultiDict[str, str], client: BitCore, now: datetime, limit: int | None
) -> Compute:
    form = PreviewForm(args)
    _validated(form)

    def compute() -> Drawn:
        scratch = current_app.config.get("BITCORE_SEGMENT_MAX_BYTES") or None
        period = form.period()
        size = SegmentStore(client, max_bytes=scratch).preview_size(
            form.expression.data, period, form.name.data or None
        )
        label = periods.label(period)
        return Drawn("number", None, f"{size:,} users in {label}", label, _last(1, period.kind))

    return compute


_PAGES: dict[str, Callable[[MultiDict[str, str], BitCore, datetime, int | None], Compute]] = {
    "cohort": _cohort,
    "funnel": _funnel,
    "lifecycle": _lifecycle,
    "stickiness": _stickiness,
    "segment": _segment,
}


def check(page: str, pairs: list[tuple[str, str]], client: BitCore) -> None:
    """``BadQuery`` unless ``page``'s form takes the query (nothing is computed)."""
    _PAGES[page](MultiDict(pairs), client, client.now(), None)


def max_bytes() -> int | None:
    """What one card may read: ``BITCORE_CARD_MAX_BYTES``, and never over the report limit."""
    limits = [report_limits.max_bytes(), int(current_app.config.get(CARD_SETTING) or 0) or None]
    return min((limit for limit in limits if limit), default=None)


def card(report: SavedReport, client: BitCore) -> Card:
    """The report's card, computed now; its error instead of a chart when it fails."""
    title = queries.TITLES[report.page]
    url = queries.link(report)
    drawn, error = None, None
    try:
        drawn = _PAGES[report.page](MultiDict(report.pairs), client, client.now(), max_bytes())()
    except ReportTooCostly as failure:
        error = (
            f"This report reads {failure.needed:,} bytes of bitmaps, more than a card may read "
            f"({failure.limit:,} bytes, {CARD_SETTING} and {report_limits.SETTING}): open it to "
            "see it."
        )
    except (SegmentError, funnel.FunnelError, LookupError, ValueError) as failure:
        error = str(failure)
    except redis.RedisError as failure:
        error = f"Redis could not compute this report: {failure}"
    return Card(report, url, title, _dates(report, drawn), drawn, error)


def _dates(report: SavedReport, drawn: Drawn | None) -> str:
    """``Rolling: the last 12 weeks (2026-W30 to 2026-W41)`` or ``Pinned: 2026-W30 to ...``."""
    if report.dates == "rolling":
        if drawn is None:
            return "Rolling: always up to the current period"
        return f"Rolling: {drawn.recent} ({drawn.span})"
    return f"Pinned: {drawn.span}" if drawn else "Pinned dates"
