"""Every page has a JSON twin: the same URL with ``.json`` (or ``Accept: application/json``)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask.typing import ResponseReturnValue


def wants_json() -> bool:
    if request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def page(template: str, data: Any, status: int = 200, **context: Any) -> ResponseReturnValue:
    """Render ``template`` with ``data`` (and ``context``), or ``data`` as JSON when JSON is asked for."""
    if wants_json():
        return jsonify(data), status
    return render_template(template, data=data, **context), status
