"""The write budget of a beacon request, and how a write over it is answered.

Every beacon write goes through ``bitcore.bulk``'s gate script with a ``bulk.Budget``: the bytes
the write would make Redis allocate (per request, and per write key and rate window), the size of
the registry of event names, and the new names per write key and window, all checked atomically
before anything is written. The window counters are per write key, whatever the address: an
attacker with many addresses and the site's public key shares one budget.

The limits come as plain values (``Limits``), read from the settings by the dashboard; the
settings' names are only quoted in the refusals, so a client can tell which one refused it.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

from bitcore import bulk
from bitcore.tracking import ratelimit

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
    "new_ids_quota": (
        429,
        "BITCORE_TRACK_MAX_NEW_IDS",
        "uid",
        "new user ids in the id map for this write key in this window",
    ),
}


class Limits(NamedTuple):
    """What a write key may cost (each setting's value; 0 turns a limit off): requests per key
    and address, and the write budget, in rate windows of ``window`` seconds."""

    rate_limit: int  # BITCORE_TRACK_RATE_LIMIT: requests per write key + address and window
    max_write_bytes: int  # BITCORE_TRACK_MAX_WRITE_BYTES
    window_write_bytes: int  # BITCORE_TRACK_WINDOW_WRITE_BYTES
    max_event_names: int  # BITCORE_TRACK_MAX_EVENT_NAMES
    max_new_names: int  # BITCORE_TRACK_MAX_NEW_NAMES
    window: int  # BITCORE_TRACK_RATE_WINDOW
    max_new_ids: int = 0  # BITCORE_TRACK_MAX_NEW_IDS: new ids the id map allocates per window


class OverBudget(Exception):
    """A write over its budget (``bulk.WriteRefused``), as the refusal the client gets:
    ``retry_after`` is set for the window limits (seconds until the window turns over)."""

    def __init__(self, refused: bulk.WriteRefused, window: int) -> None:
        self.status, self.setting, self.field, what = _BUDGET_LIMITS[refused.limit]
        self.message = (
            f"refused, nothing written: this request would bring {what} to {refused.amount}, "
            f"over the limit of {refused.allowed} ({self.setting})"
        )
        self.retry_after: int | None = None
        if self.status == 429:
            self.retry_after = ratelimit.window_for("", refused.allowed, window).retry_after
        super().__init__(self.message)


def budget_for(key: str, limits: Limits, now: float | None = None) -> bulk.Budget:
    """The budget of a write with write key ``key`` at ``now``: the window counters are per
    write key and rate window. A limit of 0 is off."""
    index = int((time.time() if now is None else now) // limits.window)
    return _budget(
        key,
        index,
        limits.window,
        limits.max_write_bytes,
        limits.window_write_bytes,
        limits.max_event_names,
        limits.max_new_names,
        limits.max_new_ids,
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
    new_ids: int = 0,
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
        new_ids_quota=quota("ids", new_ids),
    )
