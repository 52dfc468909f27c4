"""Error pages in the house style, each with a JSON twin; a dead Redis is a calm 503, never a
traceback."""

from __future__ import annotations

import redis
from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from dashboard import render


def error_page(status: int, title: str, message: str) -> ResponseReturnValue:
    data = {"error": status, "title": title, "message": message}
    return render.page("error.html", data, status)


def http_error(error: HTTPException) -> ResponseReturnValue:
    """404, 403, 405, CSRF failures (400) ...: the status and werkzeug's description, in our
    layout."""
    page = error_page(error.code or 500, error.name, error.description or "")
    response = current_app.make_response(page)
    for header, value in error.get_headers():
        if header.lower() != "content-type":
            response.headers[header] = value
    return response


def redis_unavailable(error: Exception) -> ResponseReturnValue:
    current_app.logger.error("Redis unavailable: %s", error)
    return error_page(
        503,
        "Redis is not answering",
        "The dashboard cannot reach its Redis server right now, so there is nothing to show. "
        "Check that Redis is running (see /healthz) and reload this page.",
    )


def internal_error(error: InternalServerError) -> ResponseReturnValue:
    return error_page(
        500,
        "Something went wrong",
        "The dashboard hit an unexpected error. It has been logged; please try again.",
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(redis.ConnectionError, redis_unavailable)
    app.register_error_handler(redis.TimeoutError, redis_unavailable)
    app.register_error_handler(InternalServerError, internal_error)
    app.register_error_handler(HTTPException, http_error)
