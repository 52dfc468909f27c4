"""Every page has a JSON twin: the same URL with ``.json`` (or ``Accept: application/json``)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask.typing import ResponseReturnValue


def wants_json() -> bool:
    """A ``.json`` path, or an ``Accept`` header that prefers JSON to HTML."""
    if request.path.endswith(".json"):
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(["text/html", "application/json"])
    return best == "application/json" and accept[best] > accept["text/html"]


def page(template: str, data: Any, status: int = 200, **context: Any) -> ResponseReturnValue:
    """Render ``template`` with ``data`` (and ``context``), or ``data`` as JSON when JSON is asked
    for. ``data`` must be JSON-serialisable: it is the page's public API."""
    if wants_json():
        return jsonify(data), status
    return render_template(template, data=data, **context), status
