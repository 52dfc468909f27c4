"""The cohort page and its twins: ``/cohort`` (HTML heatmap), ``/cohort.json`` and ``/cohort.csv``.

All three render one ``CohortView`` (``dashboard.presenters.cohort.cohort_view``), so a download is
exactly what the page shows, for the same query string. The page's links (itself, its downloads)
carry the first and last cohort it shows (``CohortForm.pinned_query``), unless it is rolling, and
downloads are named after the report (``dashboard.presenters.exports``). The view only reads the
form, calls ``bitcore.cohort`` and renders; bad input re-renders the form with field errors (HTTP
400), a table over ``BITCORE_REPORT_MAX_BYTES`` is a 422 naming it, a Redis outage is a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import redis
from flask import Blueprint, Response, request, url_for
from flask.typing import ResponseReturnValue

from bitcore import periods
from bitcore.cohort import engine
from bitcore.limits import TooCostly
from dashboard import negotiation, report_limits, store
from dashboard.forms.breakdown import GROUP_CHOICES_ID, offered_group_choices
from dashboard.forms.choices import selection_choices
from dashboard.forms.cohort import MAX_CELLS, CohortForm, with_defaults
from dashboard.forms.selection import input_text
from dashboard.presenters import numbers
from dashboard.presenters.cohort import (
    CohortView,
    GroupView,
    cohort_view,
    compared_curves,
    grouped_csv,
    view_csv,
    view_json,
)
from dashboard.presenters.exports import download_name

bp = Blueprint("cohort", __name__)
SELECTIONS = ("select1", "select1b", "select2", "select2b")
FORMATS = ("html", "json", "csv")


def _links(form: CohortForm) -> dict[str, str]:
    """The page, JSON and CSV of the table shown, its dates pinned unless it is rolling, and the
    name its downloads get."""
    query = urlencode([(k, v) for k, v in form.pinned_query() if v])
    assert form.range is not None
    names = [input_text(getattr(form, f).data) for f in SELECTIONS]
    first, last = form.range.first, form.range.last
    mode = ["on-or-after"] if form.retention.data == "on_or_after" else []
    name = download_name("cohort", *[n for n in names if n], *mode, first.kind, first, last)
    return {
        "html": f"{url_for('cohort.cohort_page')}?{query}",
        "json": f"{url_for('cohort.cohort_json')}?{query}",
        "csv": f"{url_for('cohort.cohort_csv')}?{query}",
        "name": name,
    }


def _respond(
    form: CohortForm,
    status: int,
    view: CohortView | None = None,
    message: str | None = None,
    limit: str | None = None,
    users_url: Callable[[int, int | None], str] | None = None,
    groups: list[GroupView] | None = None,
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
    links = _links(form) if view is not None else None
    data: dict[str, Any] = {"table": view_json(view) if view else None}
    if groups:
        data["groups"] = [{"by": g.by, "table": view_json(g.view)} for g in groups]
    return negotiation.page(
        "cohort.html",
        data,
        status,
        error=error,
        csv=lambda: _csv(view, links, groups or []),
        form=form,
        view=view,
        message=message,
        urls=links,
        numbers=numbers,
        input_text=input_text,
        max_cells=MAX_CELLS,
        users_url=users_url,
        groups=groups or [],
        curves=compared_curves(view, groups or []) if view else None,
        group_choices_id=GROUP_CHOICES_ID,
        group_choices=offered_group_choices(store.client()),
    )


def _users_url(table: engine.CohortTable) -> Callable[[int, int | None], str]:
    """The users page of row ``row``'s cohort (``col`` ``None``) or of its cell ``col``."""
    query: dict[str, Any] = {"of": "cohort", "time_group": table.time_group}
    if table.cohort_type != "recurring":
        query["cohort_type"] = table.cohort_type
    if table.retention != "on":
        query["retention"] = table.retention
    for name, token in zip(SELECTIONS, table.selections or (), strict=True):
        if token:
            query[name] = token
    if table.group:
        query["by"] = table.group

    def users_url(row: int, col: int | None) -> str:
        cell: dict[str, Any] = {"offset": col} if col is not None else {}
        return url_for("users.users_page", **query, cohort=periods.label(table.period(row)), **cell)

    return users_url


def _csv(
    view: CohortView | None, links: dict[str, str] | None, groups: list[GroupView]
) -> Response:
    if view is None or links is None:
        return negotiation.nothing_to_download()
    text = view_csv(view) if not groups else grouped_csv(view, [(g.by, g.view) for g in groups])
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{links["name"]}.csv"'},
    )


def _report() -> ResponseReturnValue:
    client = store.client()
    try:
        choices = selection_choices(client, [request.args.get(f, "") for f in SELECTIONS])
    except redis.RedisError as error:
        return _respond(CohortForm(choices=[]), 503, message=f"Redis is unavailable: {error}")
    args = with_defaults(request.args)
    now = client.now()
    form = CohortForm(args, choices=choices, today=now.date())
    if "select1" not in request.args and "select2" not in request.args:
        # a fresh form: nothing asked yet (its JSON and CSV twins have no table to give)
        return _respond(form, 200 if negotiation.requested_format(FORMATS) == "html" else 400)
    if not form.validate():
        return _respond(form, 400)
    try:
        tables = engine.cohort_tables(
            client,
            **form.query(),  # type: ignore[arg-type]
            max_bytes=report_limits.max_bytes(),
        )
    except TooCostly as error:
        refused = report_limits.refusal(error)
        return _respond(form, refused.status, message=refused.message, limit=refused.setting)
    except ValueError as error:
        return _respond(form, 400, message=str(error))
    except redis.RedisError as error:
        return _respond(form, 503, message=f"Redis could not compute the table: {error}")
    view = cohort_view(tables[0], form.percent, now)
    groups = [
        GroupView(group.by, group.label, cohort_view(table, form.percent, now), _users_url(table))
        for group, table in zip(form.by.groups, tables[1:], strict=True)
    ]
    return _respond(form, 200, view=view, users_url=_users_url(tables[0]), groups=groups)


@bp.route("/cohort.csv", endpoint="cohort_csv")
@bp.route("/cohort.json", endpoint="cohort_json")
@bp.route("/cohort")
def cohort_page() -> ResponseReturnValue:
    """``/cohort``; ``.json``, ``.csv`` or an ``Accept`` header ask for its twins."""
    return _report()
