"""Configuration from environment variables (12-factor), read in one place with safe defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bitcore.embedded import check_maxmemory
from bitcore.keys import LAYOUTS


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _layout(value: str) -> str:
    """A key layout's name (``bitcore.keys.LAYOUTS``): ``flat`` or ``sharded``, lower-cased."""
    name = value.strip().lower()
    if name not in LAYOUTS:
        raise ValueError(f"use {' or '.join(LAYOUTS)}")
    return name


def _log_level(value: str) -> str:
    """A ``logging`` level name (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``), upper-cased."""
    name = value.strip().upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("use DEBUG, INFO, WARNING or ERROR")
    return name


#: (environment variable, config key, parser, default).
#: Every setting the dashboard reads is listed here.
SETTINGS: list[tuple[str, str, Any, Any]] = [
    ("REDIS_URL", "REDIS_URL", str, None),  # unset: an embedded Redis under instance/
    ("SECRET_KEY", "SECRET_KEY", str, None),
    ("BITCORE_KEY_PREFIX", "BITCORE_KEY_PREFIX", str, "trackist_"),
    ("BITCORE_TIMEZONE", "BITCORE_TIMEZONE", str, "UTC"),
    ("BITCORE_TRACK_HOURLY", "BITCORE_TRACK_HOURLY", _bool, False),
    # the key layout: "flat" (bitmapist's) or "sharded" (by user-id range, as a Redis Cluster
    # needs: docs/cluster.md); unset: flat on one Redis, sharded when BITCORE_REDIS_CLUSTER=1
    ("BITCORE_LAYOUT", "BITCORE_LAYOUT", _layout, None),
    # user ids are strings or 64-bit ints, mapped to dense ones (chosen when the data starts)
    ("BITCORE_ID_MAPPING", "BITCORE_ID_MAPPING", _bool, False),
    # forward buckets of the id map when it starts: about the expected users / 64
    ("BITCORE_ID_MAP_BUCKETS", "BITCORE_ID_MAP_BUCKETS", int, 1 << 15),
    # seconds a Redis command may take before the request answers 503 (a hung Redis)
    ("BITCORE_REDIS_TIMEOUT", "BITCORE_REDIS_TIMEOUT", float, 3.0),
    # seconds Redis is not asked after it failed or timed out (503 at once); 0: no breaker
    ("BITCORE_REDIS_BREAKER_SECONDS", "BITCORE_REDIS_BREAKER_SECONDS", float, 1.0),
    # the embedded Redis's memory cap ("512mb", "2gb"); default: a quarter of RAM, 256 MiB-4 GiB
    ("BITCORE_REDIS_MAXMEMORY", "BITCORE_REDIS_MAXMEMORY", check_maxmemory, None),
    ("BITCORE_DATA_DIR", "BITCORE_DATA_DIR", str, None),  # default: the app's instance folder
    # Dashboard login (dashboard/auth.py): "alice:<werkzeug hash>,bob:<hash>";
    # no users: open, but only to localhost.
    ("BITCORE_USERS", "BITCORE_USERS", str, ""),
    # reverse proxies in front of the app, whose X-Forwarded-* headers are trusted; 0: none
    ("BITCORE_PROXIES", "BITCORE_PROXIES", int, 0),
    # login attempts per client address and window (seconds); 0: no limit
    ("BITCORE_LOGIN_RATE_LIMIT", "BITCORE_LOGIN_RATE_LIMIT", int, 10),
    ("BITCORE_LOGIN_RATE_WINDOW", "BITCORE_LOGIN_RATE_WINDOW", int, 300),
    # days a login lasts (logout and a password change end it sooner)
    ("BITCORE_SESSION_DAYS", "BITCORE_SESSION_DAYS", float, 7.0),
    ("BITCORE_SECURE_COOKIES", "SESSION_COOKIE_SECURE", _bool, False),  # set behind HTTPS
    # load demo data at start when Redis has no events
    ("BITCORE_DEMO", "BITCORE_DEMO", _bool, False),
    # default: Flask's (./instance in a checkout)
    ("BITCORE_INSTANCE_PATH", "INSTANCE_PATH", str, None),
    # Tracking endpoint (dashboard/tracking/); lists are comma-separated.
    # write keys; none set: every beacon is refused
    ("BITCORE_TRACK_KEYS", "BITCORE_TRACK_KEYS", str, ""),
    ("BITCORE_TRACK_ORIGINS", "BITCORE_TRACK_ORIGINS", str, ""),  # CORS origins, or "*"
    # set: uids must be signed
    ("BITCORE_TRACK_HMAC_SECRET", "BITCORE_TRACK_HMAC_SECRET", str, None),
    # uid < this: one key <= 512 KiB, so any single beacon fits BITCORE_TRACK_MAX_WRITE_BYTES
    ("BITCORE_TRACK_MAX_UID", "BITCORE_TRACK_MAX_UID", int, 2**22),
    # bytes of Redis memory one request may make Redis allocate (bitmaps grown); 0: no limit
    ("BITCORE_TRACK_MAX_WRITE_BYTES", "BITCORE_TRACK_MAX_WRITE_BYTES", int, 8 << 20),
    # the same, per write key and BITCORE_TRACK_RATE_WINDOW, all addresses together; 0: no limit
    ("BITCORE_TRACK_WINDOW_WRITE_BYTES", "BITCORE_TRACK_WINDOW_WRITE_BYTES", int, 64 << 20),
    # event names the registry may hold (known names always pass); 0: no limit
    ("BITCORE_TRACK_MAX_EVENT_NAMES", "BITCORE_TRACK_MAX_EVENT_NAMES", int, 10_000),
    # new event names per write key and BITCORE_TRACK_RATE_WINDOW; 0: no limit
    ("BITCORE_TRACK_MAX_NEW_NAMES", "BITCORE_TRACK_MAX_NEW_NAMES", int, 100),
    # with the id map: new user ids per write key and BITCORE_TRACK_RATE_WINDOW; 0: no limit
    ("BITCORE_TRACK_MAX_NEW_IDS", "BITCORE_TRACK_MAX_NEW_IDS", int, 100_000),
    ("BITCORE_TRACK_MAX_BATCH", "BITCORE_TRACK_MAX_BATCH", int, 500),  # events per request
    ("BITCORE_TRACK_MAX_BODY", "BITCORE_TRACK_MAX_BODY", int, 256 * 1024),  # bytes per request
    ("BITCORE_TRACK_MAX_AGE_DAYS", "BITCORE_TRACK_MAX_AGE_DAYS", float, 7.0),  # older ts is refused
    # seconds of future ts allowed
    ("BITCORE_TRACK_MAX_SKEW", "BITCORE_TRACK_MAX_SKEW", float, 300.0),
    ("BITCORE_TRACK_ALLOW_HOURLY", "BITCORE_TRACK_ALLOW_HOURLY", _bool, False),
    ("BITCORE_TRACK_ALLOW_UNIQUE", "BITCORE_TRACK_ALLOW_UNIQUE", _bool, True),
    # requests per window; 0: off
    ("BITCORE_TRACK_RATE_LIMIT", "BITCORE_TRACK_RATE_LIMIT", int, 600),
    ("BITCORE_TRACK_RATE_WINDOW", "BITCORE_TRACK_RATE_WINDOW", int, 60),  # seconds
    # Reports (funnel, cohort): bytes of bitmaps one report may read, else HTTP 422; 0: no limit.
    # 1 GiB is read in 16 MiB slices (~64 short Redis steps, a few seconds of numpy): 10 steps x
    # 90 days at 1M users reads ~100 MiB, a 31 x 13 day cohort at 50M users ~525 MiB.
    ("BITCORE_REPORT_MAX_BYTES", "BITCORE_REPORT_MAX_BYTES", int, 1 << 30),
    # bytes one saved report's card on the overview may read (and at most the report limit): a
    # card over it says so and links to its page, so the overview stays fast; 0: the report limit
    ("BITCORE_CARD_MAX_BYTES", "BITCORE_CARD_MAX_BYTES", int, 128 << 20),
    # saved reports (bitcore/saved_reports.py), at most
    ("BITCORE_SAVED_REPORTS_MAX", "BITCORE_SAVED_REPORTS_MAX", int, 100),
    # scratch memory (bytes) one segment evaluation may take in Redis; more: 422; 0: no limit
    ("BITCORE_SEGMENT_MAX_BYTES", "BITCORE_SEGMENT_MAX_BYTES", int, 64 << 20),
    # Event names (bitcore/event_names.py): events per overview page (1-500), and how many names
    # the cohort and funnel pickers offer while typing (any registered name is still accepted)
    ("BITCORE_OVERVIEW_PAGE_SIZE", "BITCORE_OVERVIEW_PAGE_SIZE", int, 50),
    ("BITCORE_PICKER_NAMES", "BITCORE_PICKER_NAMES", int, 200),
    # Cleanup of temporary bit-op keys (dashboard/views/cleanup.py, bitcore/cleanup.py).
    ("BITCORE_CLEANUP_ENABLED", "BITCORE_CLEANUP_ENABLED", _bool, None),  # unset: on
    ("BITCORE_CLEANUP_INTERVAL", "BITCORE_CLEANUP_INTERVAL", float, 3600.0),  # seconds
    ("BITCORE_CLEANUP_MAX_IDLE", "BITCORE_CLEANUP_MAX_IDLE", int, 86400),  # idle seconds (no TTL)
    ("BITCORE_CLEANUP_LOCK_TTL", "BITCORE_CLEANUP_LOCK_TTL", float, 300.0),  # dead holder's lock
    # The app's log level: INFO says what the start did (embedded Redis, demo data); WARNING and
    # up are for what needs a look.
    ("BITCORE_LOG_LEVEL", "BITCORE_LOG_LEVEL", _log_level, "INFO"),
]


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config values for every setting in ``environ`` (``os.environ`` by default), parsed; a value
    that does not parse is a ``ValueError`` naming its variable, so a typo stops the start."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for variable, key, parse, default in SETTINGS:
        raw = environ.get(variable)
        try:
            config[key] = default if raw is None or raw == "" else parse(raw)
        except ValueError as error:
            raise ValueError(f"{variable}={raw!r} is not valid: {error}") from None
    return config
