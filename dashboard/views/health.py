"""``/healthz``: is Redis answering, and how fast. Public, JSON only, for load balancers and uptime
checks."""

from __future__ import annotations

import time

import redis
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from dashboard import errors, store

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    """``{"status": "ok", "redis_ms": 0.21}``, or 503 with ``"status": "unavailable"`` when Redis
    is not answering (no address or traceback in the answer: the endpoint is public), with
    ``Retry-After``; ``"redis": "BreakerOpen"`` when Redis failed moments ago and was not asked."""
    started = time.perf_counter()
    try:
        store.client().ping()
    except (redis.RedisError, OSError) as error:
        headers = {"Retry-After": str(errors.retry_after(current_app.config))}
        return jsonify({"status": "unavailable", "redis": type(error).__name__}), 503, headers
    elapsed_ms = (time.perf_counter() - started) * 1000
    return jsonify({"status": "ok", "redis_ms": round(elapsed_ms, 3)})
