"""Error pages in the house style, each with a JSON twin; a dead Redis is a calm 503 with
``Retry-After``, a full one a 507, never a traceback."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from bitcore.idmap import IdMappingMismatch
from bitcore.shards import ShardedLayoutUnsupported
from dashboard import negotiation


def error_page(status: int, title: str, message: str, **details: Any) -> ResponseReturnValue:
    """The error page, or as JSON the one error body (``dashboard.negotiation.error_body``)."""
    body = negotiation.error_body(status, message, title=title, **details)
    return negotiation.page("error.html", body["error"], status, error=body)


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
    """503 with ``Retry-After``: the breaker (``bitcore.breaker``) refuses every Redis call for
    ``BITCORE_REDIS_BREAKER_SECONDS`` after a failure, so asking again sooner is pointless."""
    current_app.logger.error("Redis unavailable: %s", error)
    page = error_page(
        503,
        "Redis is not answering",
        "The dashboard cannot reach its Redis server right now, so there is nothing to show. "
        "Check that Redis is running (see /healthz) and reload this page.",
    )
    response = current_app.make_response(page)
    response.headers["Retry-After"] = str(retry_after(current_app.config))
    return response


def retry_after(config: Mapping[str, Any]) -> int:
    """Whole seconds until Redis is asked again: the breaker's time, at least 1."""
    return max(1, math.ceil(float(config.get("BITCORE_REDIS_BREAKER_SECONDS") or 1)))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether Redis refused a write at ``maxmemory``: ``OutOfMemoryError``, or the ``OOM`` reply
    inside an aborted transaction (``EXECABORT``) or a script's error."""
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        return True
    return isinstance(error, redis.ResponseError) and "OOM command not allowed" in str(error)


def redis_refused(error: redis.ResponseError) -> ResponseReturnValue:
    """Redis at ``maxmemory`` (``noeviction``) refuses writes: 507, and nothing was written. Any
    other error reply is a bug of ours: the 500 page, logged."""
    if not is_out_of_memory(error):
        current_app.logger.exception("Redis error reply", exc_info=error)
        return internal_error(InternalServerError())
    current_app.logger.error("Redis out of memory: %s", error)
    return error_page(
        507,
        "Redis is full",
        "Redis has reached its memory limit (maxmemory), so it refuses anything that needs "
        "more memory, including this request; nothing was written. Pages that only read still "
        "work. Free memory (delete old events or segments) or raise the limit "
        "(BITCORE_REDIS_MAXMEMORY for the embedded Redis).",
        limit="maxmemory",
    )


def internal_error(error: InternalServerError) -> ResponseReturnValue:
    return error_page(
        500,
        "Something went wrong",
        "The dashboard hit an unexpected error. It has been logged; please try again.",
    )


def id_mapping_mismatch(error: IdMappingMismatch) -> ResponseReturnValue:
    """``BITCORE_ID_MAPPING`` disagrees with the data in Redis: a setting to fix, said plainly
    (the library refused before writing anything)."""
    current_app.logger.error("id mapping mismatch: %s", error)
    return error_page(
        500,
        "The id mapping setting does not match the data",
        f"{error}. Set BITCORE_ID_MAPPING to match the data, or use another "
        "BITCORE_KEY_PREFIX for the other kind of ids; nothing was written.",
    )


def not_on_this_layout(error: ShardedLayoutUnsupported) -> ResponseReturnValue:
    """Something the library does not do on the sharded layout (Redis Cluster): 501 with its
    reason, said before anything was read or written, never a 500."""
    current_app.logger.warning("not on the sharded layout: %s", error)
    return error_page(501, "Not available on this layout", f"{error}.")


def init_app(app: Flask) -> None:
    app.register_error_handler(IdMappingMismatch, id_mapping_mismatch)
    app.register_error_handler(ShardedLayoutUnsupported, not_on_this_layout)
    app.register_error_handler(redis.ConnectionError, redis_unavailable)
    app.register_error_handler(redis.TimeoutError, redis_unavailable)
    app.register_error_handler(redis.ResponseError, redis_refused)
    app.register_error_handler(InternalServerError, internal_error)
    app.register_error_handler(HTTPException, http_error)
