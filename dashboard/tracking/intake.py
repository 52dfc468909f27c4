"""Answering a beacon request: origin, write key, body, rate limit, validation, write, response.

Everything the tracking endpoint decides, as a function of the WSGI environ and the app's
settings, client and logger: the HTTP half (reading the request with werkzeug's helpers, CORS,
the answers) is here, what a beacon may be and cost is the library's (``bitcore.tracking``),
which gets plain values.

The answer is a plain ``Answer`` (status, headers, body) that the WSGI app
(``dashboard.tracking.app``) hands to the server as it is: building and serializing a werkzeug
``Response`` was a fifth of a single beacon's Python time. For the same reason headers are read
from the WSGI environ directly, not through a werkzeug ``Request``.

Every refusal is a 4xx JSON ``{"error", "field"}`` (and ``"limit"``, the setting, when a limit
refused it) decided before anything is written, so it writes nothing. Redis at its ``maxmemory``
is a 507 with ``Retry-After`` (nothing written: Redis refuses the write's first command). Redis
down or timing out is a 503 with ``Retry-After``; after a timeout the write may still have
happened (marks are idempotent: sending it again is safe).
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request
from werkzeug.wsgi import get_content_length, get_input_stream

from bitcore import BitCore, bulk
from bitcore.tracking.budget import Limits, OverBudget
from bitcore.tracking.schema import (
    BeaconError,
    BeaconRules,
    parse_payload,
    parse_pixel,
    request_id_of,
)
from bitcore.tracking.write import Parse, RateLimited, WriteResult, accept

#: The two routes: ``collect`` is ``POST``/``OPTIONS /track``, ``pixel`` is ``GET /track/p.gif``.
Route = Literal["collect", "pixel"]

#: The smallest transparent GIF: 1x1, one palette entry, 43 bytes.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
KEY_HEADER = "X-Bitcore-Key"
_KEY_ENVIRON = "HTTP_X_BITCORE_KEY"
#: Seconds a client is told to wait when Redis is unreachable.
UNAVAILABLE_RETRY_AFTER = 5


@functools.lru_cache(maxsize=64)
def listed(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """A comma-separated config value (from the environment), or a tuple already, as a tuple.
    (Remembered: it is read on every beacon and changes only when the config does.)

    >>> listed(" a, b ,,")
    ('a', 'b')
    """
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


def _setting_list(config: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = config.get(name)
    return listed(tuple(value) if isinstance(value, list) else value)


def rules_from_config(
    config: Mapping[str, Any], universe: str, id_mapping: bool = False
) -> BeaconRules:
    """The app's rules, built once for each set of the settings they come from (tests change the
    config of a running app, so the settings themselves are the cache key). ``universe`` and
    ``id_mapping`` are the client's."""
    settings = (universe, id_mapping, *(config.get(name) for name in _RULE_SETTINGS))
    rules = _rules_cache.get(settings)
    if rules is None:
        if len(_rules_cache) > 64:
            _rules_cache.clear()
        rules = _rules_cache[settings] = _build_rules(config, universe, id_mapping)
    return rules


#: Every config value (and the client's universe, above) that ``BeaconRules`` is built from.
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


def _build_rules(config: Any, universe: str, id_mapping: bool) -> BeaconRules:
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
        id_mapping=id_mapping,
    )


def limits_from_config(config: Mapping[str, Any]) -> Limits:
    """The rate limit and write budget of every write key, from the settings."""
    return Limits(
        rate_limit=int(config["BITCORE_TRACK_RATE_LIMIT"]),
        max_write_bytes=int(config["BITCORE_TRACK_MAX_WRITE_BYTES"]),
        window_write_bytes=int(config["BITCORE_TRACK_WINDOW_WRITE_BYTES"]),
        max_event_names=int(config["BITCORE_TRACK_MAX_EVENT_NAMES"]),
        max_new_names=int(config["BITCORE_TRACK_MAX_NEW_NAMES"]),
        window=int(config["BITCORE_TRACK_RATE_WINDOW"]),
        max_new_ids=int(config.get("BITCORE_TRACK_MAX_NEW_IDS") or 0),
    )


class BeaconRequest:
    """What a beacon's answer reads of its request, straight from the WSGI environ: making a
    werkzeug ``Request`` and going through its cached properties was a tenth of a single beacon's
    Python time. Body and length are read by werkzeug's own functions, with the same limits; the
    query string (pixels, a key given as ``k``) by a werkzeug ``Request`` made only then."""

    __slots__ = ("environ", "_args")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self._args: MultiDict[str, str] | None = None

    @property
    def method(self) -> str:
        return str(self.environ["REQUEST_METHOD"]).upper()

    @property
    def remote_addr(self) -> str | None:
        return self.environ.get("REMOTE_ADDR")

    @property
    def content_length(self) -> int | None:
        return get_content_length(self.environ)

    @property
    def stream(self) -> Any:
        return get_input_stream(self.environ)

    @property
    def args(self) -> MultiDict[str, str]:
        if self._args is None:
            self._args = Request(self.environ).args
        return self._args


@dataclass(frozen=True)
class Answer:
    """One complete HTTP answer: ``status``, ``headers`` (Content-Type and Content-Length
    included) and ``body``."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status_line(self) -> str:
        """``"200 OK"``, worded as werkzeug words it."""
        return f"{self.status} {HTTP_STATUS_CODES[self.status]}"


@dataclass(frozen=True)
class Endpoint:
    """What the answers read of the app: its settings (the write keys, origins and beacon rules
    read on every request: tests change them on a running app), its Redis client and its
    logger."""

    config: Mapping[str, Any]
    client: Callable[[], BitCore]
    logger: logging.Logger

    @functools.cached_property
    def limits(self) -> Limits:
        """The rate limit and write budget, read from the settings once, at the first beacon (a
        running server reads its settings once too)."""
        return limits_from_config(self.config)


def answer(request: BeaconRequest, route: Route, endpoint: Endpoint) -> Answer:
    """The whole answer to one request to ``route``, CORS headers included."""
    try:
        answered = _answer(request, route, endpoint)
    except BeaconError as error:
        answered = _refusal(error.message, error.field, error.status)
    except RateLimited as limited:
        answered = _refusal("too many requests, slow down", "key", 429, limited.retry_after)
    except OverBudget as over:
        answered = _refusal(over.message, over.field, over.status, over.retry_after, over.setting)
    except redis.RedisError as exc:
        answered = _storage_refusal(exc, endpoint.logger)
    answered.headers.extend(_cors_headers(request.environ.get("HTTP_ORIGIN"), endpoint.config))
    return answered


def _answer(request: BeaconRequest, route: Route, endpoint: Endpoint) -> Answer:
    config = endpoint.config
    _check_origin(request.environ.get("HTTP_ORIGIN"), config)
    if route == "pixel":
        key = _check_key(request, config)
        pixel: Parse = lambda rules, now: parse_pixel(request.args, rules, now)  # noqa: E731
        if request.method == "HEAD":
            # What a GET would answer, and nothing written: link checkers and mail scanners
            # ask for a pixel's headers without anyone having opened anything.
            pixel(_rules(endpoint), time.time())
        else:
            _accept(request, key, endpoint, pixel)
        return _with_body(200, PIXEL_GIF, "image/gif")
    if request.method == "OPTIONS":
        return Answer(204, b"")
    payload = _read_json_body(request, config)
    key = _check_key(request, config, payload.get("key") if isinstance(payload, dict) else None)
    parse: Parse = lambda rules, now: parse_payload(payload, rules, now)  # noqa: E731
    result = _accept(request, key, endpoint, parse, request_id_of(payload))
    return _accepted(result.written, result.clamped)


def _storage_refusal(error: redis.RedisError, logger: logging.Logger) -> Answer:
    """Redis could not take the request: full (507) or unavailable (503), with Retry-After.
    Redis at its ``maxmemory`` refuses a write before any of it is done; a timeout may come
    after the write was done (marks are idempotent: sending it again is safe)."""
    if bulk.is_out_of_memory(error):
        logger.warning("tracking: Redis is full (maxmemory): %s", error)
        message = "storage is full (Redis maxmemory reached): nothing was written, retry later"
        return _refusal(message, None, 507, UNAVAILABLE_RETRY_AFTER, "maxmemory")
    logger.warning("tracking: Redis unavailable: %s", error)
    message = "storage is unavailable, retry later"
    return _refusal(message, None, 503, UNAVAILABLE_RETRY_AFTER)


def _with_body(status: int, body: bytes, content_type: str) -> Answer:
    """An answer with a body; ``nosniff`` so a browser never reads a beacon's JSON as anything else
    (the dashboard's other security headers are about pages, which beacons are not)."""
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Answer(status, body, headers)


def _refusal(
    message: str,
    field: str | None,
    status: int,
    retry_after: int | None = None,
    limit: str | None = None,
) -> Answer:
    """``{"error": message, "field": field}`` with ``status``, and ``Retry-After`` if given;
    ``"limit"`` names the setting (or Redis's ``maxmemory``) that refused the request."""
    content: dict[str, Any] = {"error": message, "field": field}
    if limit is not None:
        content["limit"] = limit
    body = (json.dumps(content) + "\n").encode()
    refusal = _with_body(status, body, "application/json")
    if retry_after is not None:
        refusal.headers.append(("Retry-After", str(retry_after)))
    return refusal


def _accepted(count: int, clamped: int) -> Answer:
    """``{"accepted": count}``, and ``"clamped"`` when some events' ``ts`` was moved into the
    window; encoded by hand: ``json.dumps`` costs more than the rest of a single beacon."""
    body = (
        b'{"accepted":%d,"clamped":%d}\n' % (count, clamped)
        if clamped
        else b'{"accepted":%d}\n' % count
    )
    return _with_body(200, body, "application/json")


def _origin_allowed(origin: str, config: Any) -> bool:
    allowed = _setting_list(config, "BITCORE_TRACK_ORIGINS")
    return "*" in allowed or origin in allowed


_NOT_CACHED = [("Vary", "Origin"), ("Cache-Control", "no-store")]


def _cors_headers(origin: str | None, config: Any) -> list[tuple[str, str]]:
    """CORS for configured origins, on every answer (errors too, so a page can read why)."""
    if origin and _origin_allowed(origin, config):
        return [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            ("Access-Control-Allow-Headers", f"Content-Type, {KEY_HEADER}"),
            ("Access-Control-Max-Age", "86400"),
            *_NOT_CACHED,
        ]
    return _NOT_CACHED


def _check_origin(origin: str | None, config: Any) -> None:
    """A browser names the page's origin; one not configured is refused (others name none)."""
    if origin and not _origin_allowed(origin, config):
        raise BeaconError("origin", f"{origin!r} may not send beacons here", 403)


def _check_key(request: BeaconRequest, config: Any, body_key: Any = None) -> str:
    key = request.environ.get(_KEY_ENVIRON) or request.args.get("k") or body_key
    if not key:
        raise BeaconError("key", f"is required ({KEY_HEADER} header or k parameter)", 401)
    if not isinstance(key, str) or not _known_key(key, config):
        raise BeaconError("key", "is not a known write key", 403)
    return key


def _known_key(key: str, config: Any) -> bool:
    """Compared as bytes: ``hmac.compare_digest`` raises on a str that is not ASCII, and a key
    from the outside may be anything (a lone surrogate from JSON too)."""
    given = key.encode("utf-8", "surrogatepass")
    known = _setting_list(config, "BITCORE_TRACK_KEYS")
    return any(hmac.compare_digest(given, k.encode()) for k in known)


def body_limit(config: Any) -> int:
    """Bytes a beacon body may have: the tracking limit, or the app-wide one if that is lower."""
    limit = int(config["BITCORE_TRACK_MAX_BODY"])
    app_wide = config.get("MAX_CONTENT_LENGTH")
    return min(limit, int(app_wide)) if app_wide else limit


def _read_json_body(request: BeaconRequest, config: Any) -> Any:
    """The body, at most ``body_limit`` bytes, as JSON whatever its content type."""
    limit = body_limit(config)
    too_large = BeaconError("body", f"is larger than {limit} bytes", 413)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = request.stream.read(limit + 1)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) > limit:
        raise too_large
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BeaconError("body", "is not valid JSON") from None
    except RecursionError:  # nested deeper than Python's stack: no beacon looks like that
        raise BeaconError("body", "is nested too deeply") from None


def _rules(endpoint: Endpoint) -> BeaconRules:
    client = endpoint.client()
    return rules_from_config(endpoint.config, client.universe, client.id_mapping)


def _accept(
    request: BeaconRequest, key: str, endpoint: Endpoint, parse: Parse, request_id: Any = None
) -> WriteResult:
    """Check with ``parse``, count and write (``bitcore.tracking.write.accept``): the tail of
    both routes. The rate limit counts per write key and client address; a repeat of
    ``request_id`` (a client's retry) is answered the same, not counted nor written again."""
    client = endpoint.client()
    address = request.remote_addr
    return accept(client, _rules(endpoint), parse, key, address, endpoint.limits, request_id)


def internal_error() -> Answer:
    """The answer to a bug, once it is logged: a JSON 500 that says nothing of the cause."""
    return _refusal("internal error", None, 500)


def not_found() -> Answer:
    """A path under ``/track`` that is no beacon route."""
    return _refusal("no such tracking route", None, 404)


def method_not_allowed(allowed: tuple[str, ...]) -> Answer:
    """A beacon route asked with another method: 405, with the ones it takes in ``Allow``."""
    refusal = _refusal("method not allowed", None, 405)
    refusal.headers.append(("Allow", ", ".join(allowed)))
    return refusal
