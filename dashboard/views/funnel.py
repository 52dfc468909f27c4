"""The funnel page and its twins: ``/funnel`` (HTML), ``/funnel.json`` and ``/funnel.csv``.

All three come from the same rows (``dashboard.presenters.funnel``), so an export is exactly
what is shown. The view only reads the form, calls ``bitcore.funnel`` and renders.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

import redis
from flask import Blueprint, Response, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from bitcore import funnel, periods
from bitcore.reading import ReportTooCostly
from dashboard import negotiation, report_limits, store
from dashboard.forms.choices import selection_choices
from dashboard.forms.funnel import (
    DEFAULT_KIND,
    DEFAULT_TREND,
    DEFAULT_WINDOW,
    FunnelForm,
    default_start,
    edited_args,
    is_edit,
    normalise_steps,
    step_values,
)
from dashboard.presenters.funnel import (
    FUNNEL_COLUMNS,
    funnel_rows,
    percent,
    sparkline,
    trend_columns,
    trend_rows,
)

bp = Blueprint("funnel", __name__)


def _with_defaults(args: MultiDict[str, str]) -> MultiDict[str, str]:
    """A partial URL (``?steps-0=a&steps-1=b``) means the defaults for the rest."""
    filled = normalise_steps(args)
    for name, value in (
        ("kind", DEFAULT_KIND),
        ("window", DEFAULT_WINDOW),
        ("trend", DEFAULT_TREND),
    ):
        if not filled.get(name):
            filled[name] = str(value)
    if not filled.get("start", "").strip():
        window = filled.get("window", "")
        size = int(window) if window.isdigit() else DEFAULT_WINDOW
        filled["start"] = default_start(filled["kind"], size, store.client().now())
    return filled


def _form(args: MultiDict[str, str], choices: list[tuple[str, str]]) -> FunnelForm:
    form = FunnelForm(_with_defaults(args))
    if not form.steps.entries:
        for _ in range(funnel.MIN_STEPS):
            form.steps.append_entry()
    form.set_step_choices(choices)
    return form


def _csv(columns: list[str], rows: list[dict[str, Any]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _share_urls(args: MultiDict[str, str]) -> dict[str, str]:
    pairs = [(k, v) for k, v in args.items(multi=True) if k not in {"add", "remove", "table"}]
    query = urlencode(pairs)
    return {
        "html": f"{url_for('funnel.funnel_page')}?{query}",
        "json": f"{url_for('funnel.funnel_json')}?{query}",
        "csv": f"{url_for('funnel.funnel_csv')}?{query}",
        "trend_csv": f"{url_for('funnel.funnel_csv')}?{urlencode([*pairs, ('table', 'trend')])}",
    }


def _users_urls(report: funnel.Funnel) -> dict[int, dict[str, str]]:
    """Per step, the users page of who reached it and of who dropped off before it."""
    base = [
        ("of", "funnel"),
        *[(f"steps-{k}", step.token) for k, step in enumerate(report.steps)],
        ("kind", report.kind),
        ("start", periods.label(report.start)),
        ("window", str(report.window)),
    ]
    page = url_for("users.users_page")
    return {
        step.position: {
            part: f"{page}?{urlencode([*base, ('step', str(step.position)), ('part', part)])}"
            for part in ("step", "dropoff")
        }
        for step in report.steps
    }


def _respond(
    form: FunnelForm,
    status: int,
    csv: Response | None = None,
    limit: str | None = None,
    **data: Any,
) -> ResponseReturnValue:
    """The page, its JSON twin or its CSV download (``dashboard.negotiation``) of one state;
    errors in every format are the form's field errors and the refusal's message."""
    error = None
    if status >= 400:
        message = data.get("message")
        if message:
            error = negotiation.error_body(status, message, fields=form.errors, limit=limit)
        else:
            error = negotiation.form_error(status, form.errors)
    twin = {"funnel": data.get("funnel"), "trend": data.get("trend")}
    return negotiation.page(
        "funnel.html",
        twin,
        status,
        error=error,
        csv=lambda: csv or negotiation.nothing_to_download(),
        form=form,
        limits=funnel,
        **data,
    )


def _report() -> ResponseReturnValue:
    client = store.client()
    choices = selection_choices(client, step_values(request.args))
    args = request.args
    notice = None
    if is_edit(args):
        args, notice = edited_args(args)
        form = _form(args, choices)
        return _respond(form, 200, notice=notice, urls=_share_urls(args))
    form = _form(args, choices)
    if not any(k.startswith("steps-") for k in args):
        return _respond(form, 200, urls=None)  # a fresh form: nothing asked yet
    if not form.validate():
        return _respond(form, 400, urls=None)
    try:
        trend = funnel.funnel_trend(
            client,
            form.step_tokens(),
            form.start_period(),
            form.window.data,
            form.trend.data,
            max_bytes=report_limits.max_bytes(),
        )
    except ReportTooCostly as error:
        message = report_limits.too_costly_message(error)
        limit = report_limits.SETTING
        return _respond(form, report_limits.STATUS, message=message, limit=limit, urls=None)
    except (funnel.FunnelError, LookupError, ValueError) as error:
        return _respond(form, 400, message=str(error), urls=None)
    except redis.RedisError as error:
        return _respond(form, 503, message=f"Redis is unavailable: {error}", urls=None)
    report = trend.funnels[-1]
    rows, trend_table = funnel_rows(report), trend_rows(trend)
    if request.args.get("table") == "trend":
        download = _csv(trend_columns(len(report.steps)), trend_table, "funnel-trend.csv")
    else:
        download = _csv(FUNNEL_COLUMNS, rows, "funnel.csv")
    summary = {
        "kind": report.kind,
        "start": periods.label(report.start),
        "end": periods.label(report.end),
        "window": report.window,
        "conversion_pct": percent(report.conversion),
        "steps": rows,
    }
    line = sparkline([row["conversion_pct"] for row in trend_table])
    return _respond(
        form,
        200,
        csv=download,
        funnel=summary,
        trend=trend_table,
        sparkline=line,
        urls=_share_urls(args),
        users_urls=_users_urls(report),
    )


@bp.route("/funnel.csv", endpoint="funnel_csv")
@bp.route("/funnel.json", endpoint="funnel_json")
@bp.route("/funnel")
def funnel_page() -> ResponseReturnValue:
    """``/funnel``; ``.json``, ``.csv`` or an ``Accept`` header ask for its twins."""
    return _report()
