"""The public tracking endpoint: beacons from browsers, apps and e-mails, written to Redis bitmaps.

``POST /track`` takes one event or a batch as JSON (``application/json`` or the ``text/plain`` that
``navigator.sendBeacon`` sends); ``GET /track/p.gif?e=..&u=..&k=..`` is a pixel for ``<img>`` tags
and e-mail. No login and no CSRF (the auth allow-list exempts this blueprint by name): a configured
write key gates it instead, optionally with HMAC-signed ids. Requests are rate-limited per write key
and client IP in Redis. Every refusal is a 4xx JSON ``{"error", "field"}`` and writes nothing; Redis
being down is a 503."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.sessions import SessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from flask.wrappers import Request
from werkzeug.exceptions import RequestEntityTooLarge

from dashboard import ratelimit, store
from dashboard.beacon_schema import Beacon, BeaconError, BeaconRules, parse_payload, parse_pixel
from dashboard.beacon_write import write_beacons
from dashboard.extensions import csrf

PREFIX = "/track"
bp = Blueprint("tracking", __name__, url_prefix=PREFIX)
csrf.exempt(bp)

#: The smallest transparent GIF: 1x1, one palette entry, 43 bytes.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
KEY_HEADER = "X-Bitcore-Key"
#: Seconds a client is told to wait when Redis is unreachable.
UNAVAILABLE_RETRY_AFTER = 5


def _listed(value: Any) -> list[str]:
    """A config value that is a comma-separated string (from the environment) or already a list."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


class SessionlessTracking(SessionInterface):
    """The app's session interface, except that requests under ``/track`` get Flask's null session.

    Beacons carry write keys, never a login, so opening (and re-signing) the session cookie on each
    of them is wasted work: a third of a single beacon's time in Flask. The null session reads as
    empty and refuses writes, so nothing under ``/track`` can come to depend on a session by
    accident. Installed by the blueprint when it is registered.
    """

    def __init__(self, inner: SessionInterface, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        path = request.path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return None  # Flask makes it the null session
        return self.inner.open_session(app, request)

    def make_null_session(self, app: Flask) -> Any:
        return self.inner.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return self.inner.is_null_session(obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self.inner.save_session(app, session, response)


@bp.record_once
def _skip_sessions(state: Any) -> None:
    state.app.session_interface = SessionlessTracking(state.app.session_interface, PREFIX)


def rules_from_config(config: Any) -> BeaconRules:
    """The app's rules, built once for each set of the settings they come from (tests change the
    config of a running app, so the settings themselves are the cache key)."""
    universe = store.client().universe
    settings = (universe, *(config.get(name) for name in _RULE_SETTINGS))
    rules = _rules_cache.get(settings)
    if rules is None:
        if len(_rules_cache) > 64:
            _rules_cache.clear()
        rules = _rules_cache[settings] = _build_rules(config, universe)
    return rules


#: Every config value (and the client's universe, below) that ``BeaconRules`` is built from.
_RULE_SETTINGS = (
    "BITCORE_TRACK_MAX_UID",
    "BITCORE_TRACK_MAX_BATCH",
    "BITCORE_TRACK_MAX_AGE_DAYS",
    "BITCORE_TRACK_MAX_SKEW",
    "BITCORE_TRACK_ALLOW_HOURLY",
    "BITCORE_TRACK_ALLOW_UNIQUE",
    "BITCORE_TRACK_HOURLY",
    "BITCORE_TRACK_HMAC_SECRET",
)
_rules_cache: dict[tuple[Any, ...], BeaconRules] = {}


def _build_rules(config: Any, universe: str) -> BeaconRules:
    secret = config.get("BITCORE_TRACK_HMAC_SECRET")
    return BeaconRules(
        max_uid=int(config["BITCORE_TRACK_MAX_UID"]),
        max_batch=int(config["BITCORE_TRACK_MAX_BATCH"]),
        max_age_seconds=float(config["BITCORE_TRACK_MAX_AGE_DAYS"]) * 86400,
        max_skew_seconds=float(config["BITCORE_TRACK_MAX_SKEW"]),
        allow_hourly=bool(config["BITCORE_TRACK_ALLOW_HOURLY"]),
        allow_unique=bool(config["BITCORE_TRACK_ALLOW_UNIQUE"]),
        default_hourly=bool(config.get("BITCORE_TRACK_HOURLY", False)),
        hmac_secret=secret.encode() if isinstance(secret, str) and secret else None,
        universe=universe,
    )


def _error(error: BeaconError) -> ResponseReturnValue:
    return jsonify(error.as_json()), error.status


def _unavailable(exc: Exception) -> ResponseReturnValue:
    current_app.logger.warning("tracking: Redis unavailable: %s", exc)
    body = {"error": "storage is unavailable, retry later", "field": None}
    return jsonify(body), 503, {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}


def _origin_allowed(origin: str) -> bool:
    allowed = _listed(current_app.config.get("BITCORE_TRACK_ORIGINS"))
    return "*" in allowed or origin in allowed


@bp.after_request
def add_cors_headers(response: Response) -> Response:
    """CORS for configured origins, on every answer (errors too, so a page can read why)."""
    origin = request.headers.get("Origin")
    if origin and _origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = f"Content-Type, {KEY_HEADER}"
        response.headers["Access-Control-Max-Age"] = "86400"
    response.vary.add("Origin")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> ResponseReturnValue:
    return _error(BeaconError("body", "is too large", 413))


def _check_origin() -> None:
    """A browser names the page's origin; one not configured is refused (others name none)."""
    origin = request.headers.get("Origin")
    if origin and not _origin_allowed(origin):
        raise BeaconError("origin", f"{origin!r} may not send beacons here", 403)


def _check_key(body_key: Any = None) -> str:
    key = request.headers.get(KEY_HEADER) or request.args.get("k") or body_key
    if not key:
        raise BeaconError("key", f"is required ({KEY_HEADER} header or k parameter)", 401)
    known = _listed(current_app.config.get("BITCORE_TRACK_KEYS"))
    if not isinstance(key, str) or not any(hmac.compare_digest(key, k) for k in known):
        raise BeaconError("key", "is not a known write key", 403)
    return key


def _read_json_body() -> Any:
    """The body, at most ``BITCORE_TRACK_MAX_BODY`` bytes, as JSON whatever its content type."""
    limit = int(current_app.config["BITCORE_TRACK_MAX_BODY"])
    if request.content_length is not None and request.content_length > limit:
        raise BeaconError("body", f"is larger than {limit} bytes", 413)
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise BeaconError("body", f"is larger than {limit} bytes", 413)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BeaconError("body", "is not valid JSON") from None


def _rate_window(key: str) -> ratelimit.Window | None:
    """This client's rate-limit counter (write key + address), or None when the limit is off."""
    limit = int(current_app.config["BITCORE_TRACK_RATE_LIMIT"])
    if limit <= 0:
        return None
    window = int(current_app.config["BITCORE_TRACK_RATE_WINDOW"])
    return ratelimit.window_for(f"{key}|{request.remote_addr}", limit, window)


def _too_many(retry_after: int) -> ResponseReturnValue:
    body = {"error": "too many requests, slow down", "field": "key"}
    return jsonify(body), 429, {"Retry-After": str(retry_after)}


def _accept(key: str, parse: Any) -> ResponseReturnValue:
    """Validate with ``parse(rules, now)``, then count and write in one round trip: the tail of both
    routes. A request refused as invalid is counted too, so a flood of bad ones is slowed."""
    counter = _rate_window(key)
    try:
        beacons: list[Beacon] = parse(rules_from_config(current_app.config), time.time())
    except BeaconError:
        if counter is not None:
            try:
                verdict = ratelimit.hit(store.client().redis, counter)
            except redis.RedisError as exc:
                return _unavailable(exc)
            if not verdict.allowed:
                return _too_many(verdict.retry_after)
        raise
    try:
        result = write_beacons(store.client(), beacons, counter)
    except redis.RedisError as exc:
        return _unavailable(exc)
    if not result.allowed:
        return _too_many(counter.retry_after if counter else 1)
    return _accepted(result.written)


def _accepted(count: int) -> Response:
    """``{"accepted": count}``, encoded by hand: jsonify costs a tenth of a single beacon's time."""
    return Response(b'{"accepted":%d}\n' % count, 200, mimetype="application/json")


@bp.route("", methods=["POST", "OPTIONS"])
def collect() -> ResponseReturnValue:
    """One event or a batch of events as JSON."""
    try:
        _check_origin()
        if request.method == "OPTIONS":
            return "", 204
        payload = _read_json_body()
        key = _check_key(payload.get("key") if isinstance(payload, dict) else None)
        return _accept(key, lambda rules, now: parse_payload(payload, rules, now))
    except BeaconError as error:
        return _error(error)


@bp.route("/p.gif", methods=["GET"])
def pixel() -> ResponseReturnValue:
    """``<img src="/track/p.gif?e=email:opened&u=123&k=KEY">``: one event, answered with a GIF."""
    try:
        _check_origin()
        key = _check_key()
        answer = _accept(key, lambda rules, now: parse_pixel(request.args, rules, now))
    except BeaconError as error:
        return _error(error)
    if isinstance(answer, Response) and answer.status_code == 200:
        return Response(PIXEL_GIF, mimetype="image/gif")
    return answer
