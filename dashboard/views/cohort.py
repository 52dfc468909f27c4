"""The cohort page and its twins: ``/cohort`` (HTML heatmap), ``/cohort.json`` and ``/cohort.csv``.

All three render one ``CohortView`` (``dashboard.presenters.cohort.cohort_view``), so a download is
exactly what the page shows, for the same query string. The view only reads the form, calls
``bitcore.cohort`` and renders; bad input re-renders the form with field errors (HTTP 400), a
table over ``BITCORE_REPORT_MAX_BYTES`` is a 422 naming it, a Redis outage is a 503.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, request, url_for
from flask.typing import ResponseReturnValue

from bitcore.cohort import engine
from bitcore.reading import ReportTooCostly
from dashboard import negotiation, report_limits, store
from dashboard.forms.choices import selection_choices
from dashboard.forms.cohort import CohortForm
from dashboard.presenters.cohort import CohortView, cohort_view, view_csv, view_json

bp = Blueprint("cohort", __name__)
SELECTIONS = ("select1", "select1b", "select2", "select2b")
FORMATS = ("html", "json", "csv")
DEFAULTS = {
    "cohort_type": "recurring",
    "time_group": "days",
    "as_percent": "1",
    "num_results": "31",
    "num_of_rows": "12",
}


def _respond(
    form: CohortForm,
    status: int,
    view: CohortView | None = None,
    message: str | None = None,
    limit: str | None = None,
) -> ResponseReturnValue:
    """The page, its JSON twin or its CSV download (``dashboard.negotiation``), of one state."""
    error = None
    if status >= 400:
        if message:
            error = negotiation.error_body(status, message, fields=form.errors, limit=limit)
        else:
            error = negotiation.form_error(
                status, form.errors, None if form.errors else "Fill in the form to get a table."
            )
    query: dict[str, Any] = request.args.to_dict(flat=False)
    urls = {
        "json": url_for("cohort.cohort_json", **query),
        "csv": url_for("cohort.cohort_csv", **query),
    }
    data = {"table": view_json(view) if view else None}
    return negotiation.page(
        "cohort.html",
        data,
        status,
        error=error,
        csv=lambda: _csv(view),
        form=form,
        view=view,
        message=message,
        urls=urls,
    )


def _csv(view: CohortView | None) -> Response:
    if view is None:
        return negotiation.nothing_to_download()
    return Response(
        view_csv(view),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="cohort.csv"'},
    )


def _report() -> ResponseReturnValue:
    client = store.client()
    try:
        choices = selection_choices(client, [request.args.get(f, "") for f in SELECTIONS])
    except redis.RedisError as error:
        return _respond(CohortForm(choices=[]), 503, message=f"Redis is unavailable: {error}")
    args = request.args.copy()
    for name, default in DEFAULTS.items():
        if not args.get(name, "").strip():
            args[name] = (
                default  # a hand-written URL (?select1=a&select2=b) means the defaults for the rest
            )
    form = CohortForm(args, choices=choices)
    if "select1" not in request.args and "select2" not in request.args:
        # a fresh form: nothing asked yet (its JSON and CSV twins have no table to give)
        return _respond(form, 200 if negotiation.requested_format(FORMATS) == "html" else 400)
    if not form.validate():
        return _respond(form, 400)
    try:
        table = engine.cohort_table(
            client,
            **form.query(),  # type: ignore[arg-type]
            max_bytes=report_limits.max_bytes(),
        )
    except ReportTooCostly as error:
        message = report_limits.too_costly_message(error)
        return _respond(form, report_limits.STATUS, message=message, limit=report_limits.SETTING)
    except ValueError as error:
        return _respond(form, 400, message=str(error))
    except redis.RedisError as error:
        return _respond(form, 503, message=f"Redis could not compute the table: {error}")
    return _respond(form, 200, view=cohort_view(table, form.percent))


@bp.route("/cohort.csv", endpoint="cohort_csv")
@bp.route("/cohort.json", endpoint="cohort_json")
@bp.route("/cohort")
def cohort_page() -> ResponseReturnValue:
    """``/cohort``; ``.json``, ``.csv`` or an ``Accept`` header ask for its twins."""
    return _report()
