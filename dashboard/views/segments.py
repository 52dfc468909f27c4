"""Saved segments: list, create, edit, delete and preview, each page with a JSON twin (``.json``).

The views only read forms, call ``bitcore.segments.SegmentStore`` and render; every rule (names,
expressions, references, cycles, who uses what) lives in bitcore. Saving and deleting are
CSRF-protected POSTs; the preview is a GET (shareable, read-only) and also a "Preview" button on the
edit form, so it works without JavaScript.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue

from bitcore import event_names, periods
from bitcore.limits import TooCostly
from bitcore.segments import (
    SegmentError,
    SegmentExists,
    SegmentInUse,
    SegmentNotFound,
    SegmentStore,
    SegmentSyntaxError,
    parse_expression,
    references,
)
from bitcore.segments.parser import quote_name
from bitcore.segments.store import Segment
from bitcore.untracked import expression_warnings
from dashboard import auth, negotiation, report_limits, store
from dashboard.forms.segments import DeleteForm, PreviewForm, SegmentForm
from dashboard.presenters import units

bp = Blueprint("segments", __name__)


#: Flags the syntax help names, at most.
FLAGS_IN_HELP = 20


def segment_store() -> SegmentStore:
    """The app's segments, evaluated within the client's limit (``BITCORE_SEGMENT_MAX_BYTES``)."""
    return SegmentStore(store.client())


def _status(error: SegmentError) -> int:
    """409 for conflicts, 422 for an expression too costly to compute
    (``report_limits.refusal``), else 400."""
    if isinstance(error, TooCostly):
        return report_limits.refusal(error).status
    return 409 if isinstance(error, SegmentExists | SegmentInUse) else 400


def _message(error: SegmentError) -> str:
    """The error for the person who typed the segment; a cost refusal names the setting."""
    if isinstance(error, TooCostly):
        return report_limits.refusal(error).message
    return str(error)


def _error_body(
    status: int, form: Any, error: str | None, syntax_error: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The JSON error of a form page: the refusal's message, else the fields' errors; a syntax
    error's position rides along as ``"syntax_error"``."""
    if status < 400:
        return None
    limit = report_limits.SEGMENT_SETTING if status == 422 else None
    if error:
        return negotiation.error_body(
            status, error, fields=form.errors, limit=limit, syntax_error=syntax_error
        )
    return negotiation.form_error(status, form.errors, syntax_error=syntax_error)


def _warnings(expression: str | None) -> list[str]:
    """What ``expression`` names that was never tracked (a warning: saving it is allowed); none
    for an expression that does not parse (its syntax error is shown instead)."""
    try:
        tree = parse_expression(expression or "")
    except SegmentSyntaxError:
        return []
    return expression_warnings(store.client(), tree)


def _flag_names() -> list[str]:
    """The first flags (dateless events), for the syntax help: ``unique(<flag>)`` is how a
    segment uses one."""
    client = store.client()
    event_names.ensure(client)
    return event_names.flag_page(client, FLAGS_IN_HELP).names


# --- list


@bp.route("/segments.json")
@bp.route("/segments")
def index() -> ResponseReturnValue:
    return _index_page()


def _index_page(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    segments = segment_store()
    saved = segments.all()
    this_week = periods.period_of("week", store.client().now())
    used_by: dict[str, list[str]] = {s.name: [] for s in saved}
    rows = []
    for segment in saved:
        row: dict[str, Any] = {**segment.as_dict(), "size": None, "error": None, "warnings": []}
        try:
            for ref in sorted(references(segment.tree)):
                used_by.setdefault(ref, []).append(segment.name)
            row["warnings"] = expression_warnings(store.client(), segment.tree)
            row["size"] = segments.size(segment.name, this_week)
        except SegmentError as failure:  # a hash edited by hand: show it, do not fail the page
            row["error"] = _message(failure)
        rows.append(row)
    for row in rows:
        row["used_by"] = used_by.get(row["name"], [])
    data = {"period": periods.label(this_week), "segments": rows, "error": error}
    notice = {"saved": request.args.get("saved"), "deleted": request.args.get("deleted")}
    shown = {
        row["name"]: {"when": units.moment(row["updated_at"]), "who": auth.who(row["updated_by"])}
        for row in rows
    }
    today = store.client().now().date()
    users_urls = {
        row["name"]: _users_url(f"@{quote_name(row['name'])}", "week", today) for row in rows
    }
    return negotiation.page(
        "segments.html", data, status, notice=notice, shown=shown, users_urls=users_urls
    )


# --- create and edit


@bp.route("/segments/new.json", methods=["GET", "POST"])
@bp.route("/segments/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    return _edit_page(None, SegmentForm())


@bp.route("/segments/<name>/edit.json", methods=["GET", "POST"])
@bp.route("/segments/<name>/edit", methods=["GET", "POST"])
def edit(name: str) -> ResponseReturnValue:
    try:
        current = segment_store().get(name)
    except SegmentNotFound:
        abort(404, description=f"There is no segment named {name!r}.")
    form = SegmentForm(data=current.as_dict()) if request.method == "GET" else SegmentForm()
    return _edit_page(current, form)


def _edit_page(current: Segment | None, form: SegmentForm) -> ResponseReturnValue:
    original = current.name if current else None
    segments = segment_store()
    preview: dict[str, Any] | None = None
    error: str | None = None
    status = 200
    if request.method == "POST" and form.save.data:
        if not form.validate():
            status = 400
        else:
            try:
                saved = segments.save(
                    form.name.data,
                    form.expression.data,
                    form.description.data or "",
                    by=auth.author(),
                    original=original,
                )
            except SegmentError as failure:
                error, status = _message(failure), _status(failure)
            else:
                if negotiation.wants_json():
                    answer = {"saved": saved.as_dict(), "warnings": _warnings(saved.expression)}
                    return negotiation.page("segments_form.html", answer, 201)
                return redirect(url_for("segments.index", saved=saved.name))
    elif request.method == "POST":  # "Preview" (also what Enter does: it is the first button)
        if _validate_for_preview(form):
            preview, error, status = _preview(
                segments, form.expression.data, form.period(), form.name.data
            )
        else:
            status = 400
    data: dict[str, Any] = {
        "original": original,
        "segment": {
            "name": form.name.data,
            "expression": form.expression.data,
            "description": form.description.data,
        },
        "errors": form.errors,
        "syntax_error": form.syntax_error.as_dict() if form.syntax_error else None,
        "error": error,
        "preview": preview,
        "warnings": _warnings(form.expression.data) if form.expression.data else [],
        "used_by": segments.used_by(original) if original else [],
    }
    body = _error_body(status, form, error, data["syntax_error"])
    users_url = _preview_users_url(form, preview)
    return negotiation.page(
        "segments_form.html",
        data,
        status,
        error=body,
        form=form,
        users_url=users_url,
        flags=_flag_names(),
    )


def _users_url(expression: str, kind: str, when: date, name: str | None = None) -> str:
    """The users page of ``expression`` in the ``kind`` period containing ``when``."""
    query: dict[str, Any] = {"of": "segment", "expression": expression, "kind": kind}
    query["when"] = when.isoformat()
    if name:
        query["name"] = name
    return url_for("users.users_page", **query)


def _preview_users_url(form: Any, preview: dict[str, Any] | None) -> str | None:
    """The users page of a form's previewed expression, when it has a preview."""
    if not preview:
        return None
    when = form.when.data or store.client().now().date()
    return _users_url(form.expression.data, form.kind.data, when, form.name.data or None)


def _validate_for_preview(form: SegmentForm) -> bool:
    """A preview needs the expression and the period; the name only when given (cycle checks)."""
    valid = form.expression.validate(form)
    valid = form.when.validate(form) and valid
    valid = form.kind.validate(form) and valid
    if form.name.data:
        valid = form.name.validate(form) and valid
    return valid


def _preview(
    segments: SegmentStore, expression: str, period: periods.Period, name: str | None
) -> tuple[dict[str, Any] | None, str | None, int]:
    """``({"period", "kind", "size"}, None, 200)``, or ``(None, message, status)`` if it fails.
    The result is counted and deleted in one transaction: a preview leaves no key behind."""
    try:
        size = segments.preview_size(expression, period, name=name or None)
    except SegmentError as failure:
        return None, _message(failure), _status(failure)
    return {"kind": period.kind, "period": periods.label(period), "size": size}, None, 200


# --- preview (read-only, GET)


@bp.route("/segments/preview.json")
@bp.route("/segments/preview")
def preview() -> ResponseReturnValue:
    form = PreviewForm(request.args)
    result: dict[str, Any] | None = None
    error: str | None = None
    status = 200
    if request.args:
        if form.validate():
            result, error, status = _preview(
                segment_store(), form.expression.data, form.period(), form.name.data
            )
        else:
            status = 400
    data: dict[str, Any] = {
        "expression": form.expression.data,
        "preview": result,
        "warnings": _warnings(form.expression.data) if form.expression.data else [],
        "errors": form.errors,
        "syntax_error": form.syntax_error.as_dict() if form.syntax_error else None,
        "error": error,
    }
    body = _error_body(status, form, error, data["syntax_error"])
    users_url = _preview_users_url(form, result)
    return negotiation.page(
        "segments_preview.html",
        data,
        status,
        error=body,
        form=form,
        flags=_flag_names(),
        users_url=users_url,
    )


# --- delete


@bp.route("/segments/<name>/delete.json", methods=["POST"])
@bp.route("/segments/<name>/delete", methods=["GET", "POST"])
def delete(name: str) -> ResponseReturnValue:
    """GET: "Delete segment X?" with the segments that use it (a step that needs no JavaScript);
    POST (that page's form, with its CSRF token): delete it."""
    form = DeleteForm()
    if request.method == "GET":
        try:
            segment = segment_store().get(name)
        except SegmentNotFound:
            abort(404, description=f"There is no segment named {name!r}.")
        data = {"segment": segment.as_dict(), "used_by": segment_store().used_by(name)}
        return negotiation.page("segments_delete.html", data, form=form)
    if not form.validate():
        abort(400, description="The form was incomplete; reload the page and try again.")
    try:
        segment_store().delete(name)
    except SegmentNotFound:
        abort(404, description=f"There is no segment named {name!r}.")
    except SegmentInUse as failure:
        if negotiation.wants_json():
            body = negotiation.error_body(409, str(failure), used_by=failure.users)
            return negotiation.page("segments.html", {}, 409, error=body)
        return _index_page(error=str(failure), status=409)
    if negotiation.wants_json():
        return negotiation.page("segments.html", {"deleted": name}, 200)
    return redirect(url_for("segments.index", deleted=name))
