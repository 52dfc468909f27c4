"""``BitCore``: the client object that owns a Redis connection, a key prefix and the tracking defaults.

Everything that talks to Redis goes through it. Its bound classes (``b.MonthEvents``, ``b.BitOpAnd``, ...)
are the real implementation; the module-level bitmapist API is a thin facade over a default client.

>>> b = BitCore("redis://localhost:6399/0")  # doctest: +SKIP
>>> b.mark_event("active", 123)  # doctest: +SKIP
>>> 123 in b.MonthEvents("active")  # doctest: +SKIP
True
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timezone, tzinfo
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import redis

from bitcore import bitops, events, periods
from bitcore.bitmaps import ITER_CHUNK_BYTES, Bitmap, set_bits
from bitcore.keys import DEFAULT_PREFIX, KeyLayout
from bitcore.validation import check_event_name, check_uuid

if TYPE_CHECKING:
    from redis.client import Pipeline

#: Seconds a client waits on Redis before raising ``redis.ConnectionError``/``TimeoutError``: never a hang.
DEFAULT_SOCKET_TIMEOUT = 5.0
#: Name of the unique event that holds every user bitcore has marked: the universe that ``~x`` is taken in.
DEFAULT_UNIVERSE = "_seen"
DELETE_BATCH = 1000

T = TypeVar("T", bound=type)

#: One mark to write in bulk: ``(event, uuid)`` or ``(event, uuid, when)``.
Mark = tuple[str, int] | tuple[str, int, "date | datetime | None"]


def connect(url: str, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT, **kwargs: Any) -> redis.Redis:
    """A redis-py client for ``url`` with timeouts set, so a dead server raises instead of hanging."""
    kwargs.setdefault("socket_connect_timeout", socket_timeout)
    kwargs.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, **kwargs)


def _bind(cls: T, client: BitCore) -> T:
    """A subclass of ``cls`` whose instances use ``client`` unless given another system."""
    return type(cls.__name__, (cls,), {"_bound_client": client, "__doc__": cls.__doc__})  # type: ignore[return-value]


class BitCore:
    """A bitcore client.

    ``redis_or_url``: a ``redis://`` or ``unix://`` URL, a redis-py client (or pipeline), or ``None`` for the
    process default (``REDIS_URL``, else an embedded Redis under ``instance/``).
    ``timezone``: ``None`` reads datetimes by their wall-clock fields as bitmapist does (and "now" is UTC);
    a zone name or ``tzinfo`` converts aware datetimes into that zone and takes "now" there.
    ``universe``: the unique event that ``mark_event`` also sets, and that ``~x`` is taken against.
    ``bitop_ttl_open`` / ``bitop_ttl_closed``: seconds a bit-op result key lives when any of its periods is
    still open / when all are over.
    """

    def __init__(
        self,
        redis_or_url: str | redis.Redis | None = None,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        track_hourly: bool = False,
        track_unique: bool = False,
        timezone: str | tzinfo | None = None,
        universe: str = DEFAULT_UNIVERSE,
        bitop_ttl_open: int = 300,
        bitop_ttl_closed: int = 86400,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> None:
        if redis_or_url is None:
            from bitcore.systems import default_redis

            self.redis = default_redis()
        elif isinstance(redis_or_url, str):
            self.redis = connect(redis_or_url, socket_timeout)
        else:
            self.redis = redis_or_url
        self.keys = KeyLayout(key_prefix)
        self.track_hourly = track_hourly
        self.track_unique = track_unique
        self.tz: tzinfo | None = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.universe = check_event_name(universe)
        self.bitop_ttl_open = bitop_ttl_open
        self.bitop_ttl_closed = bitop_ttl_closed
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<BitCore {self.redis!r} prefix={self.keys.prefix!r}>"

    # --- time

    @property
    def tz_or_utc(self) -> tzinfo:
        return self.tz or timezone.utc

    def now(self) -> datetime:
        return datetime.now(self.tz_or_utc)

    # --- bound classes: b.MonthEvents("active") runs on this client

    @cached_property
    def UniqueEvents(self) -> type[events.UniqueEvents]:  # noqa: N802 - bitmapist's class names
        return _bind(events.UniqueEvents, self)

    @cached_property
    def HourEvents(self) -> type[events.HourEvents]:  # noqa: N802
        return _bind(events.HourEvents, self)

    @cached_property
    def DayEvents(self) -> type[events.DayEvents]:  # noqa: N802
        return _bind(events.DayEvents, self)

    @cached_property
    def WeekEvents(self) -> type[events.WeekEvents]:  # noqa: N802
        return _bind(events.WeekEvents, self)

    @cached_property
    def MonthEvents(self) -> type[events.MonthEvents]:  # noqa: N802
        return _bind(events.MonthEvents, self)

    @cached_property
    def YearEvents(self) -> type[events.YearEvents]:  # noqa: N802
        return _bind(events.YearEvents, self)

    @cached_property
    def BitOpAnd(self) -> type[bitops.BitOpAnd]:  # noqa: N802
        return _bind(bitops.BitOpAnd, self)

    @cached_property
    def BitOpOr(self) -> type[bitops.BitOpOr]:  # noqa: N802
        return _bind(bitops.BitOpOr, self)

    @cached_property
    def BitOpXor(self) -> type[bitops.BitOpXor]:  # noqa: N802
        return _bind(bitops.BitOpXor, self)

    @cached_property
    def BitOpNot(self) -> type[bitops.BitOpNot]:  # noqa: N802
        return _bind(bitops.BitOpNot, self)

    def events_of(self, kind: periods.Kind) -> type[events.GenericPeriodEvents]:
        """The bound events class for a period kind: ``b.events_of("week") is b.WeekEvents``."""
        classes: dict[str, type[events.GenericPeriodEvents]] = {
            "hour": self.HourEvents,
            "day": self.DayEvents,
            "week": self.WeekEvents,
            "month": self.MonthEvents,
            "year": self.YearEvents,
        }
        return classes[kind]

    def event(self, event_name: str, period: periods.Period) -> events.GenericPeriodEvents:
        """The events of ``event_name`` in ``period``: ``b.event("active", periods.week(2025, 1))``."""
        cls = self.events_of(period.kind)
        return cls(event_name, *[getattr(period, f) for f in cls.fields])

    def universe_bitmap(self) -> events.UniqueEvents:
        """Every user this client has marked: what NOT is taken against."""
        return self.UniqueEvents(self.universe)

    # --- marking

    def mark_keys(
        self,
        event_name: str,
        now: date | datetime | None = None,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> list[str]:
        """The keys one mark sets: month, ISO week, day, and the hour and unique keys when tracked."""
        check_event_name(event_name)
        moment = self.now() if now is None else periods.to_local(now, self.tz)
        kinds: list[periods.Kind] = ["month", "week", "day"]
        if self.track_hourly if track_hourly is None else track_hourly:
            kinds.append("hour")
        keys = [self.keys.event_key(event_name, periods.period_of(k, moment)) for k in kinds]
        if self.track_unique if track_unique is None else track_unique:
            keys.append(self.keys.unique_key(event_name))
        return keys

    def mark_event(
        self,
        event_name: str,
        uuid: int,
        now: date | datetime | None = None,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
        use_pipeline: bool = True,
    ) -> None:
        """Mark ``uuid`` as having done ``event_name`` at ``now`` (default: this moment)."""
        self._set(event_name, uuid, now, track_hourly, track_unique, use_pipeline, value=1)

    def unmark_event(
        self,
        event_name: str,
        uuid: int,
        now: date | datetime | None = None,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
        use_pipeline: bool = True,
    ) -> None:
        """Undo ``mark_event`` for the same periods (the user stays in the universe: they were seen)."""
        self._set(event_name, uuid, now, track_hourly, track_unique, use_pipeline, value=0)

    def _set(
        self,
        event_name: str,
        uuid: int,
        now: date | datetime | None,
        track_hourly: bool | None,
        track_unique: bool | None,
        use_pipeline: bool,
        value: int,
    ) -> None:
        offset = check_uuid(uuid)
        keys = self.mark_keys(event_name, now, track_hourly, track_unique)
        if value:
            keys.append(self.keys.unique_key(self.universe))
        target = self.redis.pipeline() if use_pipeline else self.redis
        for key in keys:
            target.setbit(key, offset, value)
        if use_pipeline:
            target.execute()  # type: ignore[union-attr]

    def mark_unique(self, event_name: str, uuid: int) -> None:
        """Flag ``uuid`` with a dateless event (``trackist_<event>_u``)."""
        offset = check_uuid(uuid)
        with self.redis.pipeline() as pipe:
            pipe.setbit(self.keys.unique_key(check_event_name(event_name)), offset, 1)
            pipe.setbit(self.keys.unique_key(self.universe), offset, 1)
            pipe.execute()

    def unmark_unique(self, event_name: str, uuid: int) -> None:
        offset = check_uuid(uuid)
        self.redis.setbit(self.keys.unique_key(check_event_name(event_name)), offset, 0)

    def mark_many(
        self,
        marks: Iterable[Mark],
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> int:
        """Mark many ``(event, uuid[, when])`` in one MULTI/EXEC round trip: all are written, or none.

        Every mark is checked before anything is sent, so one bad uuid or name writes nothing. Returns the
        number of marks written.

        >>> b.mark_many([("active", 1), ("signup", 2, datetime(2024, 5, 7))])  # doctest: +SKIP
        2
        """
        writes: dict[str, list[int]] = {}
        count = 0
        universe_key = self.keys.unique_key(self.universe)
        for mark in marks:
            event_name, uuid, *rest = mark
            when = rest[0] if rest else None
            offset = check_uuid(uuid)
            for key in self.mark_keys(event_name, when, track_hourly, track_unique):
                writes.setdefault(key, []).append(offset)
            writes.setdefault(universe_key, []).append(offset)
            count += 1
        if not count:
            return 0
        with self.redis.pipeline() as pipe:
            for key, offsets in writes.items():
                for offset in offsets:
                    pipe.setbit(key, offset, 1)
            pipe.execute()
        return count

    # --- reads, on behalf of Bitmap objects

    def read(self, bitmap: Bitmap, command: str, *args: Any) -> Any:
        """Run ``command`` on the bitmap's key; a derived key that has expired is computed again first."""
        key = bitmap.redis_key
        if not bitmap.derived:
            return self.redis.execute_command(command, key, *args)
        with self.redis.pipeline() as pipe:
            pipe.exists(key)
            pipe.execute_command(command, key, *args)
            exists, result = pipe.execute()
        if exists:
            return result
        with self.redis.pipeline() as pipe:
            bitmap.build(pipe, self.bitop_ttl(bitmap))
            pipe.execute_command(command, key, *args)
            return pipe.execute()[-1]

    def iter_members(self, bitmap: Bitmap) -> Iterator[int]:
        """Ids in ``bitmap``, ascending, in 1 MiB slices decoded by numpy."""
        if bitmap.derived:
            self.materialize(bitmap)
        start = 0
        while True:
            chunk = self.redis.getrange(bitmap.redis_key, start, start + ITER_CHUNK_BYTES - 1)
            if not chunk:
                return
            yield from set_bits(bytes(chunk), start * 8)
            if len(chunk) < ITER_CHUNK_BYTES:
                return
            start += ITER_CHUNK_BYTES

    # --- temporary bit-op keys

    def materialize(self, bitmap: Bitmap) -> None:
        """Compute a derived bitmap's key (and its inner ones) in one MULTI/EXEC round trip."""
        with self.redis.pipeline() as pipe:
            bitmap.build(pipe, self.bitop_ttl(bitmap))
            pipe.execute()

    def bitop_ttl(self, bitmap: Bitmap) -> int:
        """Short TTL while any period under ``bitmap`` is still open (or dateless), long once all are over."""
        now = self.now()
        for leaf in bitmap.leaves():
            period = getattr(leaf, "period", None)
            if period is None or periods.end(period, self.tz_or_utc) >= now:
                return self.bitop_ttl_open
        return self.bitop_ttl_closed

    def register_bitop(self, bitmap: Bitmap) -> None:
        """Remember a bit-op key made in this thread, for ``delete_runtime_bitop_keys``."""
        self._runtime_keys().add(bitmap.redis_key)

    def _runtime_keys(self) -> set[str]:
        keys: set[str] | None = getattr(self._local, "bitop_keys", None)
        if keys is None:
            keys = self._local.bitop_keys = set()
        return keys

    def delete_runtime_bitop_keys(self) -> int:
        """Delete the bit-op keys this thread created through this client. Returns how many were named."""
        keys = sorted(self._runtime_keys())
        self._delete(keys)
        self._runtime_keys().clear()
        return len(keys)

    def delete_temporary_bitop_keys(self) -> int:
        """Delete every ``trackist_bitop_*`` key, walking the keyspace with SCAN (never KEYS)."""
        return self._delete_matching(self.keys.bitop_keys_pattern())

    def delete_all_events(self) -> int:
        """Delete every key under the prefix: events, unique events and bit-op results."""
        return self._delete_matching(self.keys.all_keys_pattern())

    def _delete_matching(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=pattern, count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += self._delete(batch)
                batch = []
        return deleted + self._delete(batch)

    def _delete(self, keys: Sequence[str | bytes]) -> int:
        if not keys:
            return 0
        return int(self.redis.unlink(*keys))

    # --- the catalogue of events

    def get_event_names(self, prefix: str = "", batch: int = 10000) -> list[str]:
        """Every event name with at least one key, in no particular order (bit-op keys left out)."""
        names: set[str] = set()
        for key in self.redis.scan_iter(match=self.keys.event_keys_pattern(prefix), count=batch):
            parsed = self.keys.parse_event_key(key)
            if parsed and parsed[0] != self.universe:
                names.add(parsed[0])
        return list(names)

    def rebuild_universe(self) -> int:
        """OR every event key into the universe: for data written by plain bitmapist. Returns its size."""
        universe_key = self.keys.unique_key(self.universe)
        sources = [
            key
            for key in self.redis.scan_iter(match=self.keys.all_keys_pattern(), count=DELETE_BATCH)
            if self.keys.parse_event_key(key)
        ]
        for start in range(0, len(sources), DELETE_BATCH):
            self.redis.bitop("OR", universe_key, universe_key, *sources[start : start + DELETE_BATCH])
        return int(self.redis.bitcount(universe_key))

    def ping(self) -> bool:
        return bool(self.redis.ping())
