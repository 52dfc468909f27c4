"""The write budget of a beacon request, and how a write over it is answered.

Every beacon write goes through ``bitcore.bulk``'s gate script with a ``bulk.Budget``: the bytes
the write would make Redis allocate (per request, and per write key and rate window), the size of
the registry of event names, and the new names per write key and window, all checked atomically
before anything is written. The window counters are per write key, whatever the address: an
attacker with many addresses and the site's public key shares one budget.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from bitcore import bulk
from dashboard import ratelimit

#: Each limit of a beacon write's budget: its status, the setting that sets it, the field to
#: blame and what it counts. The window ones are per write key (any address) and rate window.
_BUDGET_LIMITS = {
    "max_bytes": (
        413,
        "BITCORE_TRACK_MAX_WRITE_BYTES",
        "uid",
        "bytes of Redis memory for one request",
    ),
    "bytes_quota": (
        429,
        "BITCORE_TRACK_WINDOW_WRITE_BYTES",
        "uid",
        "bytes of Redis memory for this write key in this window",
    ),
    "max_event_names": (
        422,
        "BITCORE_TRACK_MAX_EVENT_NAMES",
        "event",
        "event names in the registry (names already in it are still accepted)",
    ),
    "new_names_quota": (
        429,
        "BITCORE_TRACK_MAX_NEW_NAMES",
        "event",
        "new event names for this write key in this window",
    ),
}


class OverBudget(Exception):
    """A write over its budget (``bulk.WriteRefused``), as the refusal the client gets:
    ``retry_after`` is set for the window limits (seconds until the window turns over)."""

    def __init__(self, refused: bulk.WriteRefused, config: Any) -> None:
        self.status, self.setting, self.field, what = _BUDGET_LIMITS[refused.limit]
        self.message = (
            f"refused, nothing written: this request would bring {what} to {refused.amount}, "
            f"over the limit of {refused.allowed} ({self.setting})"
        )
        self.retry_after: int | None = None
        if self.status == 429:
            window = int(config["BITCORE_TRACK_RATE_WINDOW"])
            self.retry_after = ratelimit.window_for("", refused.allowed, window).retry_after
        super().__init__(self.message)


def budget_for(key: str, config: Any, now: float | None = None) -> bulk.Budget:
    """The budget of a write with write key ``key`` at ``now``: the window counters are per
    write key and rate window. A setting of 0 turns its limit off."""
    window = int(config["BITCORE_TRACK_RATE_WINDOW"])
    index = int((time.time() if now is None else now) // window)
    limits = (int(config[setting]) for setting in _BUDGET_SETTINGS)
    return _budget(key, index, window, *limits)


_BUDGET_SETTINGS = (
    "BITCORE_TRACK_MAX_WRITE_BYTES",
    "BITCORE_TRACK_WINDOW_WRITE_BYTES",
    "BITCORE_TRACK_MAX_EVENT_NAMES",
    "BITCORE_TRACK_MAX_NEW_NAMES",
)


@functools.lru_cache(maxsize=1024)
def _budget(
    key: str,
    index: int,
    window: int,
    max_bytes: int,
    window_bytes: int,
    max_names: int,
    new_names: int,
) -> bulk.Budget:
    """Made once per write key, window and settings (the same for thousands of beacons)."""

    def quota(kind: str, limit: int) -> bulk.Quota | None:
        counter = ratelimit.counter_key(f"{kind}|{key}", index)
        return bulk.Quota(counter, limit, window + 1) if limit > 0 else None

    return bulk.Budget(
        max_bytes=max_bytes or None,
        bytes_quota=quota("bytes", window_bytes),
        max_event_names=max_names or None,
        new_names_quota=quota("names", new_names),
    )
