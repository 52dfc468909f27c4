"""The write budget of a beacon request, and how a write over it is answered.

Every beacon write goes through ``bitcore.bulk``'s gate script with a ``bulk.Budget``: the bytes
the write would make Redis allocate (per request, and per write key and rate window), the size of
the registry of event names, and the new names per write key and window, all checked atomically
before anything is written. The window counters are per write key, whatever the address: an
attacker with many addresses and the site's public key shares one budget.
"""

from __future__ import annotations

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
    """A write over its budget (``bulk.WriteRefused``), as the refusal the client gets."""

    def __init__(self, refused: bulk.WriteRefused, window: ratelimit.Window | None) -> None:
        self.status, self.setting, self.field, what = _BUDGET_LIMITS[refused.limit]
        self.message = (
            f"refused, nothing written: this request would bring {what} to {refused.amount}, "
            f"over the limit of {refused.allowed} ({self.setting})"
        )
        self.retry_after = window.retry_after if window else None
        super().__init__(self.message)


def budget_for(key: str, config: Any) -> tuple[bulk.Budget, dict[str, ratelimit.Window]]:
    """The budget of a write with ``key`` now, and the windows of its quotas by limit name.
    A setting of 0 turns its limit off."""
    window = int(config["BITCORE_TRACK_RATE_WINDOW"])
    windows: dict[str, ratelimit.Window] = {}
    for limit, setting, kind in (
        ("bytes_quota", "BITCORE_TRACK_WINDOW_WRITE_BYTES", "bytes"),
        ("new_names_quota", "BITCORE_TRACK_MAX_NEW_NAMES", "names"),
    ):
        allowed = int(config[setting])
        if allowed > 0:
            windows[limit] = ratelimit.window_for(f"{kind}|{key}", allowed, window)
    quotas = {
        limit: bulk.Quota(counter.key, counter.limit, counter.ttl)
        for limit, counter in windows.items()
    }
    budget = bulk.Budget(
        max_bytes=int(config["BITCORE_TRACK_MAX_WRITE_BYTES"]) or None,
        bytes_quota=quotas.get("bytes_quota"),
        max_event_names=int(config["BITCORE_TRACK_MAX_EVENT_NAMES"]) or None,
        new_names_quota=quotas.get("new_names_quota"),
    )
    return budget, windows
