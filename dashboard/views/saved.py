"""Saved reports: save one from its page, list, edit, put on the overview, delete (with a
confirmation step); each page with a JSON twin (``.json``).

A saved report is a report page and its query string (``bitcore.saved_reports``): the views read
the CSRF-protected forms, check the query with the page's own form (``dashboard.saved.cards``),
and call ``ReportStore``. Bad input is a 400 with the form's errors, a name taken or a limit
reached a 409, a report that is not there a 404; a Redis outage is the app's usual 503 page.
"""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue

from bitcore.saved_reports import (
    MAX_ON_OVERVIEW,
    ReportExists,
    ReportNotFound,
    ReportStore,
    SavedReport,
    SavedReportError,
    TooManyReports,
    dates_of,
    parse_query,
)
from dashboard import auth, negotiation, store
from dashboard.forms.saved import ConfirmDeleteForm, OverviewForm, SavedReportForm
from dashboard.presenters import units
from dashboard.saved import cards, queries

bp = Blueprint("saved", __name__)


def report_store() -> ReportStore:
    limit = int(current_app.config.get("BITCORE_SAVED_REPORTS_MAX") or 0)
    return ReportStore(store.client(), max_reports=limit if limit > 0 else 100)


def _status(error: SavedReportError) -> int:
    if isinstance(error, ReportNotFound):
        return 404
    return 409 if isinstance(error, ReportExists | TooManyReports) else 400


def _row(report: SavedReport) -> dict[str, Any]:
    return {**report.as_dict(), "url": queries.link(report)}


# --- list


@bp.route("/reports.json")
@bp.route("/reports")
def index() -> ResponseReturnValue:
    return _index_page()


def _index_page(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    saved = report_store().all()
    data = {
        "reports": [_row(r) for r in saved],
        "max_reports": report_store().max_reports,
        "max_on_overview": MAX_ON_OVERVIEW,
        "error": error,
    }
    notice = {k: request.args.get(k) for k in ("saved", "deleted", "pinned", "unpinned")}
    shown = {
        r.name: {"when": units.moment(r.updated_at), "who": auth.who(r.updated_by)} for r in saved
    }
    body = negotiation.error_body(status, error) if error else None
    return negotiation.page(
        "reports.html",
        data,
        status,
        error=body,
        notice=notice,
        shown=shown,
        titles=queries.TITLES,
        overview_form=OverviewForm(),
    )


# --- save and edit


@bp.route("/reports/new.json", methods=["GET", "POST"])
@bp.route("/reports/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    """POST: the "Save this report" control of a report page (its page and query, a name, pinned
    or rolling, on the overview or not). GET: that form, filled from ``?page=&query=``."""
    # a POST's form fields or JSON body (Flask-WTF reads either), a GET's query string
    form = SavedReportForm() if request.method == "POST" else SavedReportForm(request.args)
    return _save_page(None, form)


@bp.route("/reports/<name>/edit.json", methods=["GET", "POST"])
@bp.route("/reports/<name>/edit", methods=["GET", "POST"])
def edit(name: str) -> ResponseReturnValue:
    try:
        current = report_store().get(name)
    except ReportNotFound:
        abort(404, description=f"There is no saved report named {name!r}.")
    if request.method == "POST":
        form = SavedReportForm()
    else:
        form = SavedReportForm(
            data={
                "name": current.name,
                "page": current.page,
                "query": current.query,
                "dates": current.dates,
                "on_overview": current.on_overview,
            },
            formdata=None,
        )
    return _save_page(current, form)


def _save_page(current: SavedReport | None, form: SavedReportForm) -> ResponseReturnValue:
    """The save form, or the save: back to the list (HTML) or the saved report (JSON)."""
    if current is not None:
        form.page.data = current.page  # an edit changes the name and query, not the page
    status, message = 200, None
    if request.method == "POST":
        if form.validate():
            try:
                saved = _save(current, form)
            except cards.BadQuery as refused:
                form.query.errors = [*form.query.errors, str(refused)]
                status = 400
            except SavedReportError as refused:
                status, message = _status(refused), str(refused)
            else:
                if negotiation.wants_json():
                    return negotiation.page("reports.html", {"report": _row(saved)}, 200)
                return redirect(url_for("saved.index", saved=saved.name))
        else:
            status = 400
    if form.query.data and not form.dates.data and form.page.data in queries.ENDPOINTS:
        with contextlib.suppress(SavedReportError):
            form.dates.data = dates_of(form.page.data, parse_query(form.query.data))
    error = None
    if status >= 400:
        if message:
            error = negotiation.error_body(status, message, fields=form.errors)
        else:
            error = negotiation.form_error(status, form.errors)
    data = {"report": _row(current) if current else None, "errors": form.errors}
    return negotiation.page(
        "reports_form.html", data, status, error=error, form=form, current=current, message=message
    )


def _save(current: SavedReport | None, form: SavedReportForm) -> SavedReport:
    client = store.client()
    page = form.page.data or ""
    query = queries.with_dates(page, form.query.data or "", form.dates.data or None, client.now())
    cards.check(page, parse_query(query), client)
    return report_store().save(
        form.name.data or "",
        page,
        query,
        auth.author(),
        original=current.name if current else None,
        on_overview=bool(form.on_overview.data),
    )


# --- the overview


@bp.route("/reports/<name>/overview.json", methods=["POST"])
@bp.route("/reports/<name>/overview", methods=["POST"])
def overview(name: str) -> ResponseReturnValue:
    """Put report ``name`` on the overview (``on_overview=1``) or take it off (``0``)."""
    form = OverviewForm()
    if not form.validate():
        abort(400, description="The form was incomplete; reload the page and try again.")
    try:
        report = report_store().pin(name, form.wanted, auth.author())
    except ReportNotFound:
        abort(404, description=f"There is no saved report named {name!r}.")
    except SavedReportError as error:
        if negotiation.wants_json():
            body = negotiation.error_body(_status(error), str(error))
            return negotiation.page("reports.html", {}, _status(error), error=body)
        return _index_page(error=str(error), status=_status(error))
    if negotiation.wants_json():
        return negotiation.page("reports.html", {"report": _row(report)}, 200)
    notice = {"pinned" if form.wanted else "unpinned": name}
    return redirect(url_for("saved.index", **notice))  # type: ignore[arg-type]


# --- delete


@bp.route("/reports/<name>/delete.json", methods=["POST"])
@bp.route("/reports/<name>/delete", methods=["GET", "POST"])
def delete(name: str) -> ResponseReturnValue:
    """GET: "Delete report X?" (a step that needs no JavaScript); POST (that page's form, with its
    CSRF token): delete it."""
    form = ConfirmDeleteForm()
    if request.method == "GET":
        try:
            report = report_store().get(name)
        except ReportNotFound:
            abort(404, description=f"There is no saved report named {name!r}.")
        return negotiation.page(
            "reports_delete.html", {"report": _row(report)}, form=form, titles=queries.TITLES
        )
    if not form.validate():
        abort(400, description="The form was incomplete; reload the page and try again.")
    try:
        report_store().delete(name)
    except ReportNotFound:
        abort(404, description=f"There is no saved report named {name!r}.")
    if negotiation.wants_json():
        return negotiation.page("reports.html", {"deleted": name}, 200)
    return redirect(url_for("saved.index", deleted=name))
