"""bitcore: real-time product analytics on Redis bitmaps, with bitmapist's API and key layout.

``import bitcore as bitmapist`` runs bitmapist code unchanged. The functions here are a thin facade
over ``BitCore`` clients (one per named system); new code can hold a ``BitCore`` directly::

    import bitcore
    bitcore.mark_event("active", 123)
    assert 123 in bitcore.MonthEvents("active")

    b = bitcore.BitCore("redis://localhost:6379/0", key_prefix="trackist_")
    b.mark_many([("active", 1), ("signup", 2)])
    len(b.WeekEvents("active") & b.WeekEvents("signup"))

Both libraries can share one Redis: keys are bitmapist's, byte for byte. Where bitcore deliberately
differs from bitmapist (NOT against a universe, input checked before writing, TTLs on bit-op
results, timeouts, the default system, ...) is listed once, in ``docs/library.md``:
"Differences from bitmapist".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from bitcore.bitmaps import Bitmap
from bitcore.bitops import BitOpAnd, BitOperation, BitOpNot, BitOpOr, BitOpXor
from bitcore.client import BitCore, Mark
from bitcore.events import (
    DailyEvents,
    DayEvents,
    GenericPeriodEvents,
    HourEvents,
    HourlyEvents,
    MonthEvent,
    MonthEvents,
    MonthlyEvents,
    UniqueEvents,
    WeekEvents,
    WeeklyEvents,
    YearEvents,
    YearlyEvents,
)
from bitcore.systems import SYSTEMS, client_for, get_redis, known_clients, setup_redis

#: bitmapist's defaults for ``mark_event``: hourly keys cost memory, so both are off.
TRACK_HOURLY = False
TRACK_UNIQUE = False

__all__ = [
    "SYSTEMS", "TRACK_HOURLY", "TRACK_UNIQUE", "BitCore", "Bitmap", "BitOperation", "BitOpAnd",
    "BitOpNot", "BitOpOr", "BitOpXor", "DailyEvents", "DayEvents", "GenericPeriodEvents",
    "HourEvents", "HourlyEvents", "Mark", "MonthEvent", "MonthEvents", "MonthlyEvents",
    "UniqueEvents", "WeekEvents", "WeeklyEvents", "YearEvents", "YearlyEvents",
    "delete_all_events", "delete_runtime_bitop_keys", "delete_temporary_bitop_keys",
    "get_event_names", "get_redis", "mark_event", "mark_unique", "setup_redis", "unmark_event",
    "unmark_unique",
]  # fmt: skip


def _flags(track_hourly: bool | None, track_unique: bool | None) -> tuple[bool, bool]:
    """Explicit arguments win; else the module-level defaults, read at call time (as bitmapist)."""
    return (
        TRACK_HOURLY if track_hourly is None else track_hourly,
        TRACK_UNIQUE if track_unique is None else track_unique,
    )


def mark_event(
    event_name: str,
    uuid: int | str,
    system: Any = "default",
    now: date | datetime | None = None,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    use_pipeline: bool = True,
) -> None:
    """Mark ``uuid`` as having done ``event_name``: month, ISO week and day keys, plus the hour and
    unique keys when tracked. ``system`` may be a name, a redis client or a pipeline (with
    ``use_pipeline=False`` the bits are queued on it for the caller to execute)."""
    hourly, unique = _flags(track_hourly, track_unique)
    client_for(system).mark_event(event_name, uuid, now, hourly, unique, use_pipeline)


def unmark_event(
    event_name: str,
    uuid: int | str,
    system: Any = "default",
    now: date | datetime | None = None,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    use_pipeline: bool = True,
) -> None:
    """Clear the bits ``mark_event`` with the same arguments would set."""
    hourly, unique = _flags(track_hourly, track_unique)
    client_for(system).unmark_event(event_name, uuid, now, hourly, unique, use_pipeline)


def mark_unique(event_name: str, uuid: int | str, system: Any = "default") -> None:
    """Flag ``uuid`` with a dateless event, e.g. ``mark_unique("premium", 42)``."""
    client_for(system).mark_unique(event_name, uuid)


def unmark_unique(event_name: str, uuid: int | str, system: Any = "default") -> None:
    client_for(system).unmark_unique(event_name, uuid)


def get_event_names(system: Any = "default", prefix: str = "", batch: int = 10000) -> list[str]:
    """Every event name stored (optionally only those starting with ``prefix``), in no order."""
    return client_for(system).get_event_names(prefix, batch)


def delete_all_events(system: Any = "default") -> None:
    """Delete every bitmapist key (events and bit-op results) of ``system``."""
    client_for(system).delete_all_events()


def delete_temporary_bitop_keys(system: Any = "default") -> None:
    """Delete every ``trackist_bitop_*`` key of ``system`` (SCAN, never KEYS)."""
    client_for(system).delete_temporary_bitop_keys()


def delete_runtime_bitop_keys() -> None:
    """Delete the bit-op keys this thread created, on every system."""
    for client in known_clients():
        client.delete_runtime_bitop_keys()
