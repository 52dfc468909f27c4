"""Configuration from environment variables (12-factor), read in one place with safe defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


#: (environment variable, config key, parser, default). Every setting the dashboard reads is listed here.
SETTINGS: list[tuple[str, str, Any, Any]] = [
    ("REDIS_URL", "REDIS_URL", str, None),  # unset: an embedded Redis under instance/
    ("SECRET_KEY", "SECRET_KEY", str, None),
    ("BITCORE_KEY_PREFIX", "BITCORE_KEY_PREFIX", str, "trackist_"),
    ("BITCORE_TIMEZONE", "BITCORE_TIMEZONE", str, "UTC"),
    ("BITCORE_TRACK_HOURLY", "BITCORE_TRACK_HOURLY", _bool, False),
    ("BITCORE_DATA_DIR", "BITCORE_DATA_DIR", str, None),  # default: the app's instance folder
]


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config values for every setting present in ``environ`` (``os.environ`` by default), parsed."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for variable, key, parse, default in SETTINGS:
        raw = environ.get(variable)
        config[key] = default if raw is None or raw == "" else parse(raw)
    return config
