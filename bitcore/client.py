"""``BitCore``: the client that owns a Redis connection, a key prefix and the tracking defaults.

Everything that talks to Redis goes through it. Its bound classes (``b.MonthEvents``,
``b.BitOpAnd``, ...) are the real implementation; the module-level bitmapist API is a thin facade
over a default client.

>>> b = BitCore("redis://localhost:6399/0")  # doctest: +SKIP
>>> b.mark_event("active", 123)  # doctest: +SKIP
>>> 123 in b.MonthEvents("active")  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Generic, TypeVar, cast
from zoneinfo import ZoneInfo

import redis
from redis.client import Pipeline

from bitcore import bitmaps, bitops, bulk, events, periods, planning
from bitcore.bitmaps import Bitmap, set_bits
from bitcore.connection import DEFAULT_SOCKET_TIMEOUT, connect
from bitcore.embedded import default_redis
from bitcore.keys import DEFAULT_PREFIX, KeyLayout
from bitcore.validation import check_event_name, check_uuid

#: The unique event that holds every user bitcore has marked: the universe ``~x`` is taken in.
DEFAULT_UNIVERSE = "_seen"
DELETE_BATCH = 1000
#: Bit-op keys a thread remembers for ``delete_runtime_bitop_keys``, the most recent: enough for a
#: script's worth of bit operations, a bounded few hundred KiB in a process that runs for months.
DEFAULT_REMEMBER_BITOP_KEYS = 1000

T = TypeVar("T", bound=type)

Mark = planning.Mark


def _bind(cls: T, client: BitCore) -> T:
    """A subclass of ``cls`` whose instances use ``client`` unless given another system."""
    return type(cls.__name__, (cls,), {"_bound_client": client, "__doc__": cls.__doc__})  # type: ignore[return-value]


class _BoundClass(Generic[T]):
    """``client.MonthEvents`` and the like: ``cls`` bound to the client it is read from, made on
    first read and kept on that client (as ``functools.cached_property`` would)."""

    def __init__(self, cls: T) -> None:
        self.cls = cls
        self.name = cls.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, client: BitCore | None, owner: type | None = None) -> T:
        if client is None:  # read from the class itself: the unbound class
            return self.cls
        bound = client.__dict__[self.name] = _bind(self.cls, client)
        return bound


class BitCore:
    """A bitcore client.

    ``redis_or_url``: a ``redis://`` or ``unix://`` URL, a redis-py client (or pipeline), or
    ``None`` for the process default (``REDIS_URL``, else an embedded Redis under ``instance/``).
    ``key_prefix``: ``trackist_`` (bitmapist's, which hard-codes it) unless you need another.
    ``timezone``: ``None`` reads datetimes by their wall-clock fields as bitmapist does (and "now"
    is UTC); a zone name or ``tzinfo`` (a bitcore addition) converts aware datetimes into that zone,
    takes naive ones to be in it, and takes "now" there.
    ``universe``: the unique event that marking also sets, and that ``~x`` is taken against
    (bitmapist has none: its NOT is bare). Data written by plain bitmapist gets one from
    ``rebuild_universe()``.
    ``bitop_ttl_open`` / ``bitop_ttl_closed``: seconds a bit-op result key lives while any of its
    periods is still open / once all are over (bitmapist's bit-op keys never expire).
    ``remember_bitop_keys``: how many bit-op keys each thread remembers for
    ``delete_runtime_bitop_keys`` (the most recent; 0: none, as a long-running server wants), so a
    process that lives for months does not grow with every bit operation it ever made.
    ``iter_chunk_bytes``: bytes read per round trip while iterating a bitmap's members.
    ``track_first_time``: also keep, per event, who did it for the first time ever in each
    period (``KeyLayout.first_time_key``, read by first-time cohorts and the lifecycle report),
    in the same write; ``rebuild_first_time`` makes them for data written without.
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
        remember_bitop_keys: int = DEFAULT_REMEMBER_BITOP_KEYS,
        iter_chunk_bytes: int = bitmaps.ITER_CHUNK_BYTES,
        track_first_time: bool = True,
    ) -> None:
        if redis_or_url is None:
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
        self.remember_bitop_keys = remember_bitop_keys
        self.iter_chunk_bytes = iter_chunk_bytes
        self._local = threading.local()
        self.track_first_time = track_first_time
        self._planner = planning.MarkPlanner(
            self._keys_with_universe,
            self.now,
            self.tz,
            self.first_time_keys_of if track_first_time else None,
        )

    def __repr__(self) -> str:
        return f"<BitCore {self.redis!r} prefix={self.keys.prefix!r}>"

    # --- time

    @property
    def tz_or_utc(self) -> tzinfo:
        return self.tz or UTC

    def now(self) -> datetime:
        return datetime.now(self.tz_or_utc)

    # --- bound classes: b.MonthEvents("active") runs on this client

    # bitmapist's classes, bound to this client (bitmapist's names, hence N815)
    UniqueEvents = _BoundClass(events.UniqueEvents)  # noqa: N815
    HourEvents = _BoundClass(events.HourEvents)  # noqa: N815
    DayEvents = _BoundClass(events.DayEvents)  # noqa: N815
    WeekEvents = _BoundClass(events.WeekEvents)  # noqa: N815
    MonthEvents = _BoundClass(events.MonthEvents)  # noqa: N815
    YearEvents = _BoundClass(events.YearEvents)  # noqa: N815
    BitOpAnd = _BoundClass(bitops.BitOpAnd)  # noqa: N815
    BitOpOr = _BoundClass(bitops.BitOpOr)  # noqa: N815
    BitOpXor = _BoundClass(bitops.BitOpXor)  # noqa: N815
    BitOpNot = _BoundClass(bitops.BitOpNot)  # noqa: N815

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
        """The events of ``event_name`` in ``period``: ``b.event("a", periods.week(2025, 1))``."""
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
        """The keys one mark sets: month, ISO week, day; hour and unique ones when tracked."""
        check_event_name(event_name)
        if now is not None and not isinstance(now, date):
            raise TypeError(f"now must be a date or datetime, got {type(now).__name__} {now!r}")
        moment = self.now() if now is None else periods.to_local(now, self.tz)
        kinds: list[periods.Kind] = ["month", "week", "day"]
        if self.track_hourly if track_hourly is None else track_hourly:
            kinds.append("hour")
        keys = [self.keys.event_key(event_name, periods.period_of(k, moment)) for k in kinds]
        if self.track_unique if track_unique is None else track_unique:
            keys.append(self.keys.unique_key(event_name))
        return keys

    def first_time_keys_of(
        self, event_name: str, moment: date | datetime, hourly: bool
    ) -> tuple[str, tuple[str, ...]]:
        """The ever key of ``event_name`` and its first-time keys for the periods of ``moment``
        (month, ISO week, day; hour when tracked): what a mark's first time sets."""
        kinds: list[periods.Kind] = ["month", "week", "day"]
        if hourly:
            kinds.append("hour")
        firsts = (self.keys.first_time_key(event_name, periods.period_of(k, moment)) for k in kinds)
        return self.keys.ever_key(event_name), tuple(firsts)

    def _keys_with_universe(
        self, event_name: str, moment: date | datetime, hourly: bool, unique: bool
    ) -> list[str]:
        """``mark_keys``, plus the universe key every mark also sets."""
        universe = self.keys.unique_key(self.universe)
        return [*self.mark_keys(event_name, moment, hourly, unique), universe]

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
        """Undo ``mark_event`` for the same periods (the user stays in the universe: was seen)."""
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
        with self._target(use_pipeline) as target:
            if value:  # marking adds the user to the universe; unmarking leaves them there
                keys.append(self.keys.unique_key(self.universe))
                plan = planning.Plan({k: {offset} for k in keys}, 1, {event_name})
                if self.track_first_time:
                    moment = self.now() if now is None else periods.to_local(now, self.tz)
                    hourly = self.track_hourly if track_hourly is None else track_hourly
                    ever, firsts = self.first_time_keys_of(event_name, moment, hourly)
                    plan = plan._replace(firsts={ever: {firsts: {offset}}})
                self._write(target, plan)
            else:  # an unmark leaves first-time bits: the first time did happen
                bulk.clear_bits(target, keys, offset)

    @contextlib.contextmanager
    def _target(self, use_pipeline: bool) -> Iterator[redis.Redis]:
        """Where a single mark is written: this client's redis (on a client made from a caller's
        pipeline, queued there: bitmapist's ``use_pipeline=False``), except that
        ``use_pipeline=True`` on such a client writes at once, on a pipeline of its own."""
        if use_pipeline and isinstance(self.redis, Pipeline):
            with self.redis.pipeline() as pipe:
                yield pipe
                pipe.execute()
        else:
            yield self.redis

    def mark_unique(self, event_name: str, uuid: int) -> None:
        """Flag ``uuid`` with a dateless event (``trackist_<event>_u``).

        On a client made from a caller's pipeline the bits are queued there, not executed (bitmapist
        does the same), so the caller's ``execute()`` writes them.
        """
        self.mark_unique_many([(event_name, uuid)])

    def mark_unique_many(
        self, marks: Iterable[tuple[str, int]], budget: bulk.Budget | None = None
    ) -> int:
        """Flag many ``(event, uuid)`` with dateless events in one atomic write, as ``mark_many``
        does for dated ones (the users join the universe, the names the registry). Returns the
        number of marks."""
        plan = self._planner.plan_unique(marks, self.keys.unique_key, self.universe)
        if plan.marks:
            self._write(self.redis, plan, budget=budget)
        return plan.marks

    def unmark_unique(self, event_name: str, uuid: int) -> None:
        """Clear ``uuid``'s dateless flag (the user stays in the universe: they were seen)."""
        offset = check_uuid(uuid)
        bulk.clear_bits(self.redis, [self.keys.unique_key(check_event_name(event_name))], offset)

    def mark_many(
        self,
        marks: Iterable[Mark],
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
        budget: bulk.Budget | None = None,
    ) -> int:
        """Mark many ``(event, uuid[, when])`` in one atomic write: all are written, or none.

        Every mark is checked before anything is sent, so one bad uuid, name or time writes nothing.
        The bits are grouped per key (``plan_marks``) and set by ``bitcore.bulk``: one Lua script
        call for a few bits, a type check and one ``MULTI``/``EXEC`` of ``BITFIELD`` commands for
        more. A batch of more than ``bulk.MAX_BITS_PER_CALL`` bits (about 50,000 marks) is sent
        in several transactions so Redis is never blocked for long; then a connection lost midway
        can leave earlier ones written, and sending the batch again is safe. Returns the number
        of marks. The marks' event names join the registry of names in the same step.

        ``budget`` (none by default) bounds what the write may cost Redis: bytes allocated, and
        names added to the registry (``bulk.Budget``); a write over it raises
        ``bulk.WriteRefused``, nothing written. The tracking endpoint gives each request one.

        >>> b.mark_many([("active", 1), ("signup", 2, datetime(2024, 5, 7))])  # doctest: +SKIP
        2
        """
        plan = self.plan_marks(marks, track_hourly, track_unique)
        if plan.marks:
            self.write_plan(plan, budget=budget)
        return plan.marks

    def write_plan(
        self,
        plan: planning.Plan,
        quota: bulk.Quota | None = None,
        budget: bulk.Budget | None = None,
    ) -> bool:
        """Write what ``plan_marks`` planned (``bulk.set_bits_atomically``), names registered;
        False when over ``quota``, ``bulk.WriteRefused`` when over ``budget``: nothing written."""
        return self._write(self.redis, plan, quota, budget)

    def _write(
        self,
        target: redis.Redis,
        plan: planning.Plan,
        quota: bulk.Quota | None = None,
        budget: bulk.Budget | None = None,
    ) -> bool:
        """The one door every mark goes through (``mark_event``, ``mark_unique``, ``mark_many``,
        beacons, the demo data): ``bulk.set_bits_atomically`` sets the planned bits (the universe
        key is in every plan) and registers the event names, within ``quota`` and ``budget``."""
        return bulk.set_bits_atomically(
            target,
            plan.writes,
            quota,
            budget=budget,
            names=plan.names - {self.universe},
            registry_key=self.keys.event_names_key(),
            firsts=plan.firsts if self.track_first_time else None,
        )

    def plan_marks(
        self,
        marks: Iterable[Mark],
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> planning.Plan:
        """The bits ``marks`` set, per key, how many marks there were and their event names
        (``bitcore.planning``); raises on the first bad mark, before anything is written."""
        hourly = self.track_hourly if track_hourly is None else track_hourly
        unique = self.track_unique if track_unique is None else track_unique
        return self._planner.plan(marks, hourly, unique)

    # --- reads, on behalf of Bitmap objects

    def read(self, bitmap: Bitmap, command: str, *args: Any) -> Any:
        """Run ``command`` on the bitmap's key; a derived key that is gone (expired, deleted) is
        computed again first, the read riding in the same transaction as the last step."""
        key = bitmap.redis_key
        if not bitmap.derived:
            return self.redis.execute_command(command, key, *args)
        with self.redis.pipeline() as pipe:
            pipe.exists(key)
            pipe.execute_command(command, key, *args)
            exists, result = pipe.execute()
        if exists:
            return result
        return self._compute(bitmap, lambda pipe: pipe.execute_command(command, key, *args))[-1]

    def count_once(self, bitmap: Bitmap) -> int:
        """``len(bitmap)`` for a one-shot answer: a derived bitmap is computed afresh, counted and
        its key deleted in the same transaction, so nothing is left behind (a dashboard preview)."""
        if not bitmap.derived:
            return int(self.redis.bitcount(bitmap.redis_key))
        key = bitmap.redis_key
        replies = self._compute(bitmap, lambda pipe: (pipe.bitcount(key), pipe.unlink(key)))
        return int(replies[-2])

    def iter_members(self, bitmap: Bitmap) -> Iterator[int]:
        """Ids in ``bitmap``, ascending, fetched in ``iter_chunk_bytes`` slices decoded by numpy.

        A derived bitmap is computed afresh first. Memory stays bounded by one slice, however
        high the ids go. A derived key is a temporary one: each slice's read renews its TTL, and
        should it vanish anyway (a cleanup, a consumer that paused past the TTL) it is computed
        again and the iteration goes on from the same slice, never ending early.
        """
        if bitmap.derived:
            self.materialize(bitmap)
        size = self.iter_chunk_bytes
        start = 0
        while True:
            chunk = self._read_slice(bitmap, start, start + size - 1)
            if not chunk:
                return
            yield from set_bits(chunk, start * 8)
            if len(chunk) < size:
                return
            start += size

    def _read_slice(self, bitmap: Bitmap, first: int, last: int) -> bytes:
        """Bytes ``first..last`` of the bitmap's key; for a derived one, renewing its TTL in the
        same round trip and computing it again if it is gone."""
        key = bitmap.redis_key
        if not bitmap.derived:
            return cast(bytes, self.redis.getrange(key, first, last))
        ttl = self.bitop_ttl(bitmap)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(key, ttl)
            pipe.getrange(key, first, last)
            present, chunk = pipe.execute()
        if not present:
            chunk = self._compute(bitmap, lambda pipe: pipe.getrange(key, first, last))[-1]
        return cast(bytes, chunk)

    # --- temporary bit-op keys

    def materialize(self, bitmap: Bitmap) -> None:
        """Compute a derived bitmap's key (and its inner ones): one MULTI/EXEC round trip for a bit
        operation, as in bitmapist; a few bounded ones for a segment."""
        self._compute(bitmap)

    def _compute(self, bitmap: Bitmap, then: Callable[[Pipeline], Any] | None = None) -> list[Any]:
        """Run ``bitmap.steps``: every round trip but the last as a plain pipeline, the last in
        MULTI/EXEC followed by ``then`` (a read of the fresh key); returns the last one's
        replies."""
        *early, last = bitmap.steps(self.bitop_ttl(bitmap))
        try:
            for step in early:
                with self.redis.pipeline(transaction=False) as pipe:
                    step(pipe)
                    pipe.execute()
            with self.redis.pipeline() as pipe:
                last(pipe)
                if then is not None:
                    then(pipe)
                return cast(list[Any], pipe.execute())
        except redis.RedisError:
            with contextlib.suppress(redis.RedisError):  # UNLINK works even at maxmemory
                self._delete(bitmap.scratch_keys())
            raise

    def bitop_ttl(self, bitmap: Bitmap) -> int:
        """Short TTL while any period under ``bitmap`` is still open (or dateless), long once all
        are over: a closed period's result can only change if someone marks the past."""
        now = self.now()
        for leaf in bitmap.leaves():
            period = getattr(leaf, "period", None)
            if period is None or self._ends_after(period, now):
                return self.bitop_ttl_open
        return self.bitop_ttl_closed

    def _ends_after(self, period: periods.Period, now: datetime) -> bool:
        """Whether ``period`` is still open at ``now``; one ending past year 9999 (whose end
        ``datetime`` cannot hold) is."""
        try:
            return periods.end(period, self.tz_or_utc) >= now
        except OverflowError:
            return True

    def register_bitop(self, bitmap: Bitmap) -> None:
        """Remember a bit-op key made in this thread, for ``delete_runtime_bitop_keys``: at most
        ``remember_bitop_keys`` of them, the most recent (older ones expire by their TTL)."""
        if self.remember_bitop_keys <= 0:
            return
        keys = self._runtime_keys()
        keys.pop(bitmap.redis_key, None)
        keys[bitmap.redis_key] = None
        while len(keys) > self.remember_bitop_keys:
            del keys[next(iter(keys))]

    def _runtime_keys(self) -> dict[str, None]:
        """This thread's remembered keys, oldest first (a dict keeps insertion order)."""
        keys: dict[str, None] | None = getattr(self._local, "bitop_keys", None)
        if keys is None:
            keys = self._local.bitop_keys = {}
        return keys

    def delete_runtime_bitop_keys(self) -> int:
        """Delete the bit-op keys this thread made through this client and still remembers;
        returns how many."""
        keys = sorted(self._runtime_keys())
        self._delete(keys)
        self._runtime_keys().clear()
        return len(keys)

    def delete_temporary_bitop_keys(self) -> int:
        """Delete every temporary bit-op key (``KeyLayout.is_temporary_key``: bit-op, segment and
        report results, never an event's data), walking the keyspace with SCAN (never KEYS)."""
        return self._delete_matching(self.keys.bitop_keys_pattern(), self.keys.is_temporary_key)

    def delete_all_events(self) -> int:
        """Delete every key under the prefix: events, unique events and bit-op results; returns
        how many. The registry of event names goes too, as no event is left to list, and so do
        the events' first-time bitmaps and ever sets (``KeyLayout.first_time_key``), which
        describe the events deleted (they are not counted in the answer)."""
        for pattern in self.keys.first_time_keys_patterns():
            self._delete_matching(pattern)
        deleted = self._delete_matching(self.keys.all_keys_pattern())
        self._delete([self.keys.event_names_key()])
        return deleted

    def _delete_matching(
        self, pattern: str, keep_only: Callable[[bytes], bool] | None = None
    ) -> int:
        """Delete the keys matching ``pattern`` (those ``keep_only`` accepts, when given)."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=pattern, count=DELETE_BATCH):
            if keep_only is not None and not keep_only(key):
                continue
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
        """OR every event key into the universe, for data written by plain bitmapist (which keeps
        no universe). Returns the universe's size."""
        universe_key = self.keys.unique_key(self.universe)
        sources = [
            key
            for key in self.redis.scan_iter(match=self.keys.all_keys_pattern(), count=DELETE_BATCH)
            if self.keys.parse_event_key(key)
        ]
        for start in range(0, len(sources), DELETE_BATCH):
            self.redis.bitop(
                "OR", universe_key, universe_key, *sources[start : start + DELETE_BATCH]
            )
        return int(self.redis.bitcount(universe_key))

    def ping(self) -> bool:
        return bool(self.redis.ping())
