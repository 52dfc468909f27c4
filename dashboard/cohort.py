"""The cohort page and its twins: ``/cohort`` (HTML heatmap), ``/cohort.json`` and ``/cohort.csv``.

All three render one ``CohortView`` (``bitcore.cohort.render.cohort_view``), so a download is
exactly what the page shows, for the same query string. The view only reads the form, calls
``bitcore.cohort`` and renders; bad input re-renders the form with field errors (HTTP 400), a
table over ``BITCORE_REPORT_MAX_BYTES`` is a 422 naming it, a Redis outage is a 503.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bitcore.cohort import engine
from bitcore.cohort.render import CohortView, cohort_view, view_csv, view_json
from bitcore.reading import ReportTooCostly
from dashboard import report_limits, store
from dashboard.choices import selection_choices
from dashboard.cohort_form import CohortForm

bp = Blueprint("cohort", __name__)
SELECTIONS = ("select1", "select1b", "select2", "select2b")
DEFAULTS = {"time_group": "days", "as_percent": "1", "num_results": "31", "num_of_rows": "12"}


def _respond(
    fmt: str,
    form: CohortForm,
    status: int,
    view: CohortView | None = None,
    message: str | None = None,
) -> ResponseReturnValue:
    if fmt == "json":
        payload: dict[str, object] = {
            "errors": form.errors,
            "table": view_json(view) if view else None,
        }
        if message:
            payload["message"] = message
        return jsonify(payload), status
    if fmt == "csv":
        if view is None:
            lines = [f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()]
            lines += [message] if message else ["Fill in the form to get a table."]
            return Response("\n".join(lines) + "\n", status=status or 400, mimetype="text/plain")
        return Response(
            view_csv(view),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="cohort.csv"'},
        )
    query: dict[str, Any] = request.args.to_dict(flat=False)
    urls = {
        "json": url_for("cohort.cohort_json", **query),
        "csv": url_for("cohort.cohort_csv", **query),
    }
    html = render_template("cohort.html", form=form, view=view, message=message, urls=urls)
    return html, status


def _report(fmt: str) -> ResponseReturnValue:
    client = store.client()
    try:
        choices = selection_choices(client, [request.args.get(f, "") for f in SELECTIONS])
    except redis.RedisError as error:
        return _respond(fmt, CohortForm(choices=[]), 503, message=f"Redis is unavailable: {error}")
    args = request.args.copy()
    for name, default in DEFAULTS.items():
        if not args.get(name, "").strip():
            args[name] = (
                default  # a hand-written URL (?select1=a&select2=b) means the defaults for the rest
            )
    form = CohortForm(args, choices=choices)
    if "select1" not in request.args and "select2" not in request.args:
        return _respond(fmt, form, 200 if fmt == "html" else 400)  # a fresh form: nothing asked yet
    if not form.validate():
        return _respond(fmt, form, 400)
    try:
        table = engine.cohort_table(
            client,
            **form.query(),  # type: ignore[arg-type]
            max_bytes=report_limits.max_bytes(),
        )
    except ReportTooCostly as error:
        return _respond(
            fmt, form, report_limits.STATUS, message=report_limits.too_costly_message(error)
        )
    except ValueError as error:
        return _respond(fmt, form, 400, message=str(error))
    except redis.RedisError as error:
        return _respond(fmt, form, 503, message=f"Redis could not compute the table: {error}")
    return _respond(fmt, form, 200, view=cohort_view(table, form.percent))


@bp.route("/cohort")
def cohort_page() -> ResponseReturnValue:
    return _report("html")


@bp.route("/cohort.json")
def cohort_json() -> ResponseReturnValue:
    return _report("json")


@bp.route("/cohort.csv")
def cohort_csv() -> ResponseReturnValue:
    return _report("csv")
