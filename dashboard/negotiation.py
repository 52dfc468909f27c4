"""The one negotiator: every page answers HTML, JSON (and, where it has a table, CSV) from the same
data, and every JSON error answer has one body.

Format. The URL's extension decides first (``/funnel.json``, ``/cohort.csv``, ``/index.json``),
then the ``Accept`` header: ``application/json`` (or ``text/csv`` where a page offers CSV) when the
client prefers it to ``text/html``. A browser's ``*/*`` gets HTML.

The error body. Every JSON answer with a 4xx or 5xx status is exactly::

    {"error": {"status": 400,                   # the HTTP status, repeated
               "title": "Bad Request",          # its name, or a short headline
               "message": "Enter a user id.",   # what went wrong, for a person
               "fields": {"user": ["Enter a user id."]},   # form-field errors ({} when none)
               "limit": "BITCORE_REPORT_MAX_BYTES"}}       # only when a setting refused it

plus, where a page has more to say, detail members inside ``"error"`` (``"syntax_error"`` of a
segment expression, ``"used_by"`` of a segment in use, ``"link"`` of a held cross-site link).
HTML answers show the same error in the page; CSV downloads answer errors as ``text/plain``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.http import HTTP_STATUS_CODES

MIMETYPES = {"html": "text/html", "json": "application/json", "csv": "text/csv"}


def requested_format(offered: Sequence[str] = ("html", "json")) -> str:
    """``"html"``, ``"json"`` or ``"csv"`` (one of ``offered``): the URL's extension, else the
    ``Accept`` header when it prefers that format to HTML, else HTML."""
    for fmt in offered:
        if fmt != "html" and request.path.endswith("." + fmt):
            return fmt
    accept = request.accept_mimetypes
    best = accept.best_match([MIMETYPES[fmt] for fmt in dict.fromkeys(("html", *offered))])
    for fmt in offered:
        if fmt != "html" and best == MIMETYPES[fmt] and accept[best] > accept["text/html"]:
            return fmt
    return "html"


def wants_json() -> bool:
    """A ``.json`` path, or an ``Accept`` header that prefers JSON to HTML."""
    return requested_format() == "json"


def error_body(
    status: int,
    message: str,
    *,
    title: str | None = None,
    fields: Mapping[str, Any] | None = None,
    limit: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The one JSON error body (see the module's docstring).

    >>> error_body(400, "Enter a user id.", fields={"user": ["Enter a user id."]})
    {'error': {'status': 400, 'title': 'Bad Request', 'message': 'Enter a user id.', 'fields': {'user': ['Enter a user id.']}}}
    """  # noqa: E501
    error: dict[str, Any] = {
        "status": status,
        "title": title or HTTP_STATUS_CODES.get(status, "Error"),
        "message": message,
        "fields": dict(fields or {}),
    }
    if limit:
        error["limit"] = limit
    error.update(details)
    return {"error": error}


def fields_message(fields: Mapping[str, Any]) -> str:
    """Form-field errors in one line: ``"user: Enter a user id. date: Enter a date."``."""
    return " ".join(
        f"{name}: {' '.join(map(str, _flat(errors)))}" for name, errors in fields.items()
    )


def _flat(errors: Any) -> list[Any]:
    """WTForms' errors of a field list (``steps``) are lists of lists: one flat list."""
    if isinstance(errors, Mapping):
        return [e for value in errors.values() for e in _flat(value)]
    if isinstance(errors, list | tuple):
        return [e for value in errors for e in _flat(value)]
    return [errors]


def page(
    template: str,
    data: Any,
    status: int = 200,
    *,
    error: dict[str, Any] | None = None,
    csv: Callable[[], Response] | None = None,
    **context: Any,
) -> ResponseReturnValue:
    """One page in the format asked for. ``data`` is the page's JSON twin (its public API, so it
    must be JSON-serialisable) and the template's ``data``; ``error`` (an :func:`error_body`)
    replaces the JSON with the error body when the answer is an error. ``csv`` makes the CSV
    download of a page that offers one."""
    fmt = requested_format(("html", "json", "csv") if csv else ("html", "json"))
    if fmt == "json":
        if status >= 400:
            return jsonify(error or error_body(status, HTTP_STATUS_CODES.get(status, ""))), status
        return jsonify(data), status
    if fmt == "csv" and csv is not None:
        if status >= 400:
            return plain_error(status, error)
        return csv()
    return render_template(template, data=data, **context), status


def plain_error(status: int, error: dict[str, Any] | None) -> Response:
    """A CSV download's error: the message and each field's errors, as ``text/plain``."""
    body = (error or error_body(status, HTTP_STATUS_CODES.get(status, "")))["error"]
    lines = [f"{name}: {' '.join(map(str, _flat(errs)))}" for name, errs in body["fields"].items()]
    if body["message"] and (
        not body["fields"] or body["message"] != fields_message(body["fields"])
    ):
        lines.append(body["message"])
    return Response("\n".join(lines) + "\n", status=status, mimetype="text/plain")


def form_error(
    status: int, fields: Mapping[str, Any], message: str | None = None, **kw: Any
) -> dict[str, Any]:
    """The error body of a form that did not validate: its field errors, and a message that
    repeats them (or ``message``)."""
    return error_body(
        status, message or fields_message(fields) or "The form is incomplete.", fields=fields, **kw
    )


def nothing_to_download() -> Response:
    """The CSV of a form not filled in yet: a 400 that says so."""
    return plain_error(400, error_body(400, "Fill in the form to get a table."))


def csv_download(
    columns: Sequence[str], rows: Sequence[Mapping[str, Any]], filename: str
) -> Response:
    """Rows as a CSV attachment, ``columns`` in order (``None`` written empty)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
