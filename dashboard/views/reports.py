"""The lifecycle and stickiness pages and their twins: ``/lifecycle`` and ``/stickiness`` (HTML with
an SVG bar chart), each with ``.json`` and ``.csv`` (or an ``Accept`` header).

Every format renders one report from ``bitcore.lifecycle`` / ``bitcore.stickiness``, so a
download is what the page shows. Bad input re-renders the form with field errors (400), a report
over ``BITCORE_REPORT_MAX_BYTES`` is a 422 naming it, a Redis outage a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from flask import Blueprint, Response, request, url_for
from flask.typing import ResponseReturnValue

from bitcore import lifecycle, stickiness
from bitcore.breakdown import Group
from bitcore.limits import TooCostly
from dashboard import negotiation, report_limits, store
from dashboard.forms.breakdown import GROUP_CHOICES_ID, offered_group_choices
from dashboard.forms.choices import selection_choices
from dashboard.forms.reports import EVENT_CHOICES_ID, LifecycleForm, StickinessForm
from dashboard.presenters import reports as present
from dashboard.presenters.exports import download_name

bp = Blueprint("reports", __name__)


def _respond(
    template: str,
    endpoint: str,
    form: Any,
    status: int,
    data: dict[str, Any],
    csv: Callable[[], Response] | None = None,
    message: str | None = None,
    limit: str | None = None,
    **context: Any,
) -> ResponseReturnValue:
    """One state of a report page in the format asked for; errors are the form's field errors
    and the refusal's message, in every format."""
    error = None
    if status >= 400:
        fields = form.errors
        if message:
            error = negotiation.error_body(status, message, fields=fields, limit=limit)
        else:
            error = negotiation.form_error(status, fields, None if fields else "Choose an event.")
    query: dict[str, Any] = request.args.to_dict(flat=False)
    urls = {fmt: url_for(f"reports.{endpoint}_{fmt}", **query) for fmt in ("json", "csv")}
    return negotiation.page(
        template,
        data,
        status,
        error=error,
        csv=csv or negotiation.nothing_to_download,
        form=form,
        message=message,
        urls=urls,
        choices_id=EVENT_CHOICES_ID,
        group_choices_id=GROUP_CHOICES_ID,
        group_choices=offered_group_choices(store.client()),
        **context,
    )


def _run(form: Any, compute: Callable[[], Any]) -> tuple[int, Any, str | None, str | None]:
    """Validate and compute: ``(status, report or None, message, limit)``."""
    if "event" not in request.args:  # a fresh form: nothing asked yet
        return (200 if negotiation.requested_format() == "html" else 400), None, None, None
    if not form.validate():
        return 400, None, None, None
    try:
        return 200, compute(), None, None
    except TooCostly as error:
        refused = report_limits.refusal(error)
        return refused.status, None, refused.message, refused.setting
    except ValueError as error:
        return 400, None, str(error), None
    except redis.RedisError as error:
        return 503, None, f"Redis could not compute the report: {error}", None


def _with_groups(data: dict[str, Any], groups: list[tuple[Group, Any]]) -> dict[str, Any]:
    """The report's JSON, with ``groups`` (one report per compared group) when there are any."""
    if groups:
        data["groups"] = [{"by": group.by, **report.as_dict()} for group, report in groups]
    return data


def _grouped(
    columns: list[str],
    rows: list[dict[str, object]],
    groups: list[tuple[Group, Any]],
    rows_of: Callable[[Any], list[dict[str, object]]],
) -> tuple[list[str], list[dict[str, object]]]:
    """The CSV's columns and rows: the report's, or with groups everyone's (``all``) then each
    group's, after a first ``group`` column."""
    if not groups:
        return columns, rows
    table = [{"group": "all", **row} for row in rows]
    table += [{"group": group.by, **row} for group, report in groups for row in rows_of(report)]
    return ["group", *columns], table


def _choices() -> Any:
    return selection_choices(store.client(), [request.args.get("event", "")])


@bp.route("/lifecycle.csv", endpoint="lifecycle_csv")
@bp.route("/lifecycle.json", endpoint="lifecycle_json")
@bp.route("/lifecycle", endpoint="lifecycle_html")
def lifecycle_page() -> ResponseReturnValue:
    """``/lifecycle?event=active&period=week&count=12[&end=2026-W40]``."""
    client = store.client()
    args = request.args.copy()
    args.setdefault("period", "week")
    args.setdefault("count", "12")
    form = LifecycleForm(args, choices=_choices())
    now = client.now()  # one moment for the report and its in-progress mark

    def compute() -> list[lifecycle.Lifecycle]:
        end = form.period_of(form.end, form.period.data, now)
        return lifecycle.lifecycle_groups(
            client,
            form.event.data,
            form.period.data,
            form.count.data,
            end,
            form.by.groups,
            max_bytes=report_limits.max_bytes(),
        )

    status, reports, message, limit = _run(form, compute)
    data: dict[str, Any] = {"periods": None}
    context: dict[str, Any] = {}
    csv = None
    if reports is not None:
        report, groups = reports[0], list(zip(form.by.groups, reports[1:], strict=True))
        data = _with_groups(report.as_dict(), groups)
        current = present.lifecycle_in_progress(report, now)
        data["in_progress"] = current
        rows = present.lifecycle_rows(report)
        shown = [
            (g.label, present.lifecycle_chart(r), present.lifecycle_rows(r)) for g, r in groups
        ]
        context = {
            "chart": present.lifecycle_chart(report),
            "rows": rows,
            "groups": shown,
            "current": current,
        }
        columns, table = _grouped(present.LIFECYCLE_COLUMNS, rows, groups, present.lifecycle_rows)
        first, last = rows[0]["period"], rows[-1]["period"]
        name = download_name("lifecycle", form.event.data, report.kind, str(first), str(last))
        csv = lambda: negotiation.csv_download(columns, table, f"{name}.csv")  # noqa: E731
    return _respond(
        "lifecycle.html", "lifecycle", form, status, data, csv, message, limit, **context
    )


@bp.route("/stickiness.csv", endpoint="stickiness_csv")
@bp.route("/stickiness.json", endpoint="stickiness_json")
@bp.route("/stickiness", endpoint="stickiness_html")
def stickiness_page() -> ResponseReturnValue:
    """``/stickiness?event=active&period=week[&start=2026-W40]``."""
    client = store.client()
    args = request.args.copy()
    args.setdefault("period", "week")
    form = StickinessForm(args, choices=_choices())
    now = client.now()  # one moment for the report and its in-progress mark

    def compute() -> list[stickiness.Stickiness]:
        period = form.period_of(form.start, form.period.data, now)
        return stickiness.stickiness_groups(
            client, form.event.data, period, form.by.groups, max_bytes=report_limits.max_bytes()
        )

    status, reports, message, limit = _run(form, compute)
    data: dict[str, Any] = {"histogram": None}
    context: dict[str, Any] = {}
    csv = None
    if reports is not None:
        report, groups = reports[0], list(zip(form.by.groups, reports[1:], strict=True))
        data = _with_groups(report.as_dict(), groups)
        data["in_progress"] = present.stickiness_in_progress(report, now)
        rows = present.stickiness_rows(report)
        shown = [
            (g.label, present.stickiness_chart(r), present.stickiness_rows(r)) for g, r in groups
        ]
        context = {
            "chart": present.stickiness_chart(report),
            "rows": rows,
            "report": report,
            "groups": shown,
        }
        columns, table = _grouped(present.STICKINESS_COLUMNS, rows, groups, present.stickiness_rows)
        name = download_name("stickiness", form.event.data, report.period.kind, report.period)
        csv = lambda: negotiation.csv_download(columns, table, f"{name}.csv")  # noqa: E731
    return _respond(
        "stickiness.html", "stickiness", form, status, data, csv, message, limit, **context
    )
