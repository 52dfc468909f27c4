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
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Generic, TypeVar, cast
from zoneinfo import ZoneInfo

import redis
from redis.client import Pipeline
from redis.cluster import RedisCluster

from bitcore import (
    bitmaps,
    bitops,
    bulk,
    erasure,
    events,
    idmap,
    idmap_groups,
    periods,
    planning,
    shards,
    wire,
)
from bitcore.bitmaps import Bitmap, set_bits
from bitcore.connection import DEFAULT_SOCKET_TIMEOUT, cluster_wanted, connect, connect_cluster
from bitcore.embedded import default_redis
from bitcore.idmap import IdMap, IdMappingMismatch
from bitcore.idmap_groups import GroupedIdMap
from bitcore.keys import (
    DEFAULT_PREFIX,
    DEFAULT_SHARD_BITS,
    FLAT,
    SHARDED,
    KeyLayout,
    ShardedKeyLayout,
    layout_named,
)
from bitcore.limits import DEFAULT_SEGMENT_MAX_BYTES
from bitcore.shards import ShardedLayoutUnsupported, ShardPipe
from bitcore.validation import check_event_name, check_uuid

#: The unique event that holds every user bitcore has marked: the universe ``~x`` is taken in.
DEFAULT_UNIVERSE = "_seen"
DELETE_BATCH = 1000
#: Bit-op keys a thread remembers for ``delete_runtime_bitop_keys``, the most recent: enough for a
#: script's worth of bit operations, a bounded few hundred KiB in a process that runs for months.
DEFAULT_REMEMBER_BITOP_KEYS = 1000

T = TypeVar("T", bound=type)
R = TypeVar("R")

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


def _check_now(now: object) -> None:
    """A mark's ``now``: ``None`` or a date or datetime (a string or a timestamp is refused)."""
    if now is not None and not isinstance(now, date):
        raise TypeError(f"now must be a date or datetime, got {type(now).__name__} {now!r}")


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
    ``id_mapping``: user ids are external ids (strings of 1 to 128 printable characters, ints in
    ``[0, 2**63)``; an int and the string of its digits are one user), mapped to dense internal
    ids by ``bitcore.idmap`` at the one writer and back when members are read. Chosen when a
    dataset starts: a client whose choice differs from the dataset's raises
    ``IdMappingMismatch`` on its first write or read of members. ``id_map_buckets``: the forward
    map's bucket count of a dataset this client starts (an existing one keeps its own).
    ``id_map_cache``: how many mappings the writer remembers (``bitcore.idmap.IdMap``; 0: none).
    ``segment_max_bytes``: scratch memory (bytes) one segment evaluation may take in Redis,
    wherever the client evaluates one (``SegmentStore``, a report's segment step); more is refused
    with ``SegmentTooCostly`` (``None``: no limit).
    ``track_first_time``: also keep, per event, who did it for the first time ever in each
    period (``KeyLayout.first_time_key``, read by first-time cohorts and the lifecycle report),
    in the same write; ``rebuild_first_time`` makes them for data written without.
    ``layout``: where keys live (``bitcore.keys``): ``"flat"`` (bitmapist's, the default on a
    single Redis) or ``"sharded"`` (bitmaps split by user-id range, each shard in one cluster
    slot: the default, and the only layout, on a ``redis.cluster.RedisCluster``; on a single Redis
    when asked for). ``shard_bits``: the sharded layout's ids per shard, ``2 ** shard_bits``.
    A URL (or ``REDIS_URL``) with ``BITCORE_REDIS_CLUSTER=1`` in the environment connects to a
    Redis Cluster.
    """

    def __init__(
        self,
        redis_or_url: str | redis.Redis | RedisCluster | None = None,
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
        id_mapping: bool = False,
        id_map_buckets: int = idmap.DEFAULT_BUCKETS,
        id_map_cache: int = idmap.DEFAULT_CACHE_SIZE,
        track_first_time: bool = True,
        segment_max_bytes: int | None = DEFAULT_SEGMENT_MAX_BYTES,
        layout: str | None = None,
        shard_bits: int = DEFAULT_SHARD_BITS,
    ) -> None:
        if redis_or_url is None:
            self.redis = default_redis()
        elif isinstance(redis_or_url, str):
            if cluster_wanted():
                self.redis = connect_cluster(redis_or_url, socket_timeout)  # type: ignore[assignment]
            else:
                self.redis = connect(redis_or_url, socket_timeout)
        else:  # a RedisCluster is used through the commands both clients share
            self.redis = cast(redis.Redis, redis_or_url)
        on_cluster = shards.is_cluster(self.redis)
        name = layout or (SHARDED if on_cluster else FLAT)
        if on_cluster and name == FLAT:
            raise ValueError(
                "the flat layout cannot run on a Redis Cluster (its bit operations span slots): "
                "use layout='sharded', the default there"
            )
        self.keys = layout_named(name, key_prefix, shard_bits)
        #: The sharded layout's router and layout (``None`` on the flat layout).
        self._router: shards.Router | None = None
        self._sharded: ShardedKeyLayout | None = None
        #: A shard's view keeps its dataset's saved segments where that client does.
        self._segments_owner: BitCore | None = None
        #: Names registries this client found to be sorted sets (or absent) before a sharded
        #: write (``_check_registry``).
        self._registries_checked: set[str] = set()
        if isinstance(self.keys, ShardedKeyLayout):
            self._sharded = self.keys
            self._router = shards.Router(self.redis, self.keys)
        self.track_hourly = track_hourly
        self.track_unique = track_unique
        self.tz: tzinfo | None = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.universe = check_event_name(universe)
        self.bitop_ttl_open = bitop_ttl_open
        self.bitop_ttl_closed = bitop_ttl_closed
        self.remember_bitop_keys = remember_bitop_keys
        self.iter_chunk_bytes = iter_chunk_bytes
        self._local = threading.local()
        self.id_mapping = bool(id_mapping)
        if id_map_buckets < 1:
            raise ValueError(f"id_map_buckets must be at least 1, got {id_map_buckets}")
        self.id_map_buckets = id_map_buckets
        self.id_map_cache = id_map_cache
        self._id_map: tuple[IdMap | None] | None = None  # set once the dataset is checked
        self._id_map_lock = threading.Lock()
        self.track_first_time = track_first_time
        self.segment_max_bytes = segment_max_bytes
        check_id = _external_token if self.id_mapping else check_uuid
        self._planner = planning.MarkPlanner(
            self._keys_with_universe,
            self.now,
            self.tz,
            check_id,
            self.id_mapping,
            self.first_time_keys_of if track_first_time else None,
        )

    def __repr__(self) -> str:
        return f"<BitCore {self.redis!r} prefix={self.keys.prefix!r} layout={self.keys.name}>"

    @property
    def layout(self) -> str:
        """The key layout's name: ``"flat"`` or ``"sharded"``."""
        return self.keys.name

    def require_flat(self, what: str) -> None:
        """Refuse ``what`` (a report, a job) on the sharded layout, where it is not built yet:
        ``ShardedLayoutUnsupported`` before anything is read, never a wrong answer."""
        if self._router is not None:
            raise ShardedLayoutUnsupported(
                f"{what} is not built for the sharded layout (Redis Cluster) yet: "
                "use a client with the flat layout on a single Redis"
            )

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
        _check_now(now)
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
        uuid: int | str,
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
        uuid: int | str,
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
        uuid: int | str,
        now: date | datetime | None,
        track_hourly: bool | None,
        track_unique: bool | None,
        use_pipeline: bool,
        value: int,
    ) -> None:
        if value:  # marking adds the user to the universe; unmarking leaves them there
            # The planner remembers each (event, hour)'s keys, universe and first-time ones
            # included: a single mark builds no periods (a third of its client time, profiled).
            _check_now(now)
            plan = self.plan_marks([(event_name, uuid, now)], track_hourly, track_unique)
            with self._target(use_pipeline) as target:
                self._write(target, plan)
            return
        offset = self._existing_offset(uuid)  # an unmark never allocates an id never seen
        keys = self.mark_keys(event_name, now, track_hourly, track_unique)
        if offset is None:
            return
        with self._target(use_pipeline) as target:  # an unmark leaves first-time bits
            self._clear_bits(target, keys, offset)

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

    def mark_unique(self, event_name: str, uuid: int | str) -> None:
        """Flag ``uuid`` with a dateless event (``trackist_<event>_u``).

        On a client made from a caller's pipeline the bits are queued there, not executed (bitmapist
        does the same), so the caller's ``execute()`` writes them.
        """
        self.mark_unique_many([(event_name, uuid)])

    def mark_unique_many(
        self, marks: Iterable[tuple[str, int | str]], budget: bulk.Budget | None = None
    ) -> int:
        """Flag many ``(event, uuid)`` with dateless events in one atomic write, as ``mark_many``
        does for dated ones (the users join the universe, the names the registry). Returns the
        number of marks."""
        plan = self._planner.plan_unique(marks, self.keys.unique_key, self.universe)
        if plan.marks:
            self._write(self.redis, plan, budget=budget)
        return plan.marks

    def unmark_unique(self, event_name: str, uuid: int | str) -> None:
        """Clear ``uuid``'s dateless flag (the user stays in the universe: they were seen)."""
        key = self.keys.unique_key(check_event_name(event_name))
        offset = self._existing_offset(uuid)
        if offset is not None:
            self._clear_bits(self.redis, [key], offset)

    def _clear_bits(self, target: redis.Redis, keys: list[str], offset: int) -> None:
        """``bulk.clear_bits``, in the shard of ``offset`` on the sharded layout."""
        if self._sharded is None or self._router is None:
            bulk.clear_bits(target, keys, offset)
            return
        shard = self._sharded.shard_of(offset)
        local = self._sharded.local_offset(offset)
        shard_keys = [self._sharded.shard_key(key, shard) for key in keys]
        bulk.clear_bits(self._router.node(shard), shard_keys, local)

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
        once: bulk.Once | None = None,
    ) -> bool:
        """Write what ``plan_marks`` planned (``bulk.set_bits_atomically``), names registered;
        False when over ``quota``, ``bulk.WriteRefused`` when over ``budget``: nothing written.
        ``once``: a repeat of a write already done under that key is True, nothing counted or
        written (a retried beacon request)."""
        return self._write(self.redis, plan, quota, budget, once)

    def _write(
        self,
        target: redis.Redis,
        plan: planning.Plan,
        quota: bulk.Quota | None = None,
        budget: bulk.Budget | None = None,
        once: bulk.Once | None = None,
    ) -> bool:
        """The one door every mark goes through (``mark_event``, ``mark_unique``, ``mark_many``,
        beacons, the demo data): ``bulk.set_bits_atomically`` sets the planned bits (the universe
        key is in every plan) and registers the event names, within ``quota`` and ``budget``: the
        names of dated marks in the registry of events, those of dateless ones in that of flags.

        With the id map on, the plan's external ids are mapped to internal ones first (new ones
        allocated: one script call), so the budget counts the bytes of the dense internal ids.
        Ids this client remembers cost no round trip. The write itself checks that no mapping was
        removed since they were mapped (the map's epoch): on ``bulk.EpochChanged`` they are
        mapped afresh and written once more (without the check that second time: a second
        removal in those few milliseconds is a race any order of the two steps has)."""
        id_map = self._dataset_id_map()
        if not plan.external and id_map is None:
            return self._set_bits(target, plan, quota, budget, None, once)
        checked = not isinstance(target, Pipeline)  # a pipeline's script answers too late
        written, epoch = self._internal_plan(plan, id_map, budget)
        try:
            return self._set_bits(target, written, quota, budget, epoch if checked else None, once)
        except bulk.EpochChanged:
            assert id_map is not None
            id_map.forget_remembered()
            written, _ = self._internal_plan(plan, id_map, budget)
            return self._set_bits(target, written, quota, budget, None, once)

    def _set_bits(
        self,
        target: redis.Redis,
        plan: planning.Plan,
        quota: bulk.Quota | None,
        budget: bulk.Budget | None,
        epoch: bytes | None,
        once: bulk.Once | None = None,
    ) -> bool:
        if self._router is not None:
            if epoch is not None and (self.redis.get(self.keys.id_map_epoch_key()) or b"") != epoch:
                raise bulk.EpochChanged()  # checked just before: the epoch is in another slot
            return self._set_bits_sharded(plan, quota, budget, once)
        return bulk.set_bits_atomically(
            target,
            plan.writes,
            quota,
            budget=budget,
            names=plan.names - {self.universe},
            registry_key=(
                self.keys.flag_names_key() if plan.dateless else self.keys.event_names_key()
            ),
            epoch=None if epoch is None else (self.keys.id_map_epoch_key(), epoch),
            firsts=plan.firsts if self.track_first_time else None,
            once=once,
        )

    def _set_bits_sharded(
        self,
        plan: planning.Plan,
        quota: bulk.Quota | None,
        budget: bulk.Budget | None,
        once: bulk.Once | None = None,
    ) -> bool:
        """The one writer on the sharded layout: its limits checked first (``shards.admit``),
        then the plan split per shard (``shards.split_writes``),
        each shard's bits (and first times) set by the gate script on the Redis holding it, all
        of one shard atomically (the small shards of one node in one round trip, a big shard as
        ``bulk.set_bits_atomically`` writes a big batch); the shards joined to the registry of
        shards first (a reader never misses a written shard), the names to the registry of names
        after. ``once`` (a request id) as on one Redis (``shards.claim_once``): a repeat of a
        write done is answered as allowed, nothing counted or written."""
        assert self._sharded is not None and self._router is not None
        per_shard = shards.split_writes(self._sharded, plan.writes)
        firsts = shards.split_firsts(self._sharded, plan.firsts) if self.track_first_time else {}
        names = plan.names - {self.universe}
        registry = self.keys.flag_names_key() if plan.dateless else self.keys.event_names_key()
        with self._router.refreshed_on_failure():
            seen = shards.claim_once(self.redis, once)
            if seen == shards.ONCE_DONE:
                return True
            if seen is None and (quota is not None or budget is not None):
                grow = shards.growth(self._router, _with_firsts(per_shard, firsts))
                if not shards.admit_once(self.redis, once, grow, quota, budget, names, registry):
                    return False
            if names:
                self._check_registry(registry)
            self._write_shards(per_shard, firsts)
        if names:
            self.redis.zadd(registry, dict.fromkeys(sorted(names), 0), nx=True)
        if once is not None:  # done: a retry from here on is a repeat
            self.redis.set(once.key, shards.ONCE_DONE, ex=once.ttl)
        return True

    def _check_registry(self, registry: str) -> None:
        """Refuse a sharded write whose names registry is a key of another type, before any bit
        is set (on one Redis the gate script checks it with the bits; here the registry is in
        another slot and is written after them). Checked once per client and registry: one
        round trip on the first write, none after (a registry replaced by another type later
        still fails its ``ZADD``, after the bits)."""
        if registry in self._registries_checked:
            return
        kind = self.redis.type(registry)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind not in ("zset", "none"):
            raise redis.ResponseError(
                f"WRONGTYPE {registry} holds a {kind}, not a sorted set: nothing was marked"
            )
        self._registries_checked.add(registry)

    def _write_shards(
        self, per_shard: dict[int, dict[str, Collection[int]]], firsts: dict[int, dict[str, Any]]
    ) -> None:
        """Each shard's share of a write, on the Redis holding it (``_set_bits_sharded``): each
        node's shards in two round trips at most (``bulk.set_bits_per_shard``), the nodes at the
        same time (``Router.each_node``). The shards are joined to the registry of shards before
        their bits are set, by every write (a process cannot know that someone deleted the
        registry since): in the first round trip when the write is all on the registry's node,
        else in one of its own before any node writes."""
        assert self._router is not None and self._sharded is not None
        router, used = self._router, sorted({*per_shard, *firsts})
        registry = router.node_of_key(self._sharded.shards_key())
        join = [wire.encode("SADD", self._sharded.shards_key(), *used)]
        groups = router.by_node(used)
        if len(groups) > 1 or groups[0][0] is not registry:  # joined before any node writes
            wire.round_trip(registry, join)
            join = []

        def write(node: redis.Redis, group: list[int]) -> None:
            shares = [(per_shard.get(s, {}), firsts.get(s), router.placeholder(s)) for s in group]
            bulk.set_bits_per_shard(node, shares, join)

        router.each_node(groups, write)

    def redis_for_key(self, key: str) -> redis.Redis:
        """A ``redis.Redis`` that holds ``key``: this client's, or on a cluster the primary of
        the key's slot (for bitcore's hand-encoded round trips, which need one connection)."""
        if self._router is None:
            return self.redis
        return self._router.node_of_key(key)

    def _internal_plan(
        self,
        plan: planning.Plan,
        id_map: IdMap | None,
        budget: bulk.Budget | None,
    ) -> tuple[planning.Plan, bytes]:
        """``plan`` with its external ids' tokens replaced by their internal ids (allocated if
        new, counted on the budget's ``new_ids_quota``), and the map's epoch they hold under;
        refused when the plan's kind of ids is not the dataset's."""
        if id_map is None or not plan.external:
            raise IdMappingMismatch(
                "a plan of plain ids cannot be written to an id-mapped dataset"
                if id_map is not None
                else "a plan of external ids needs a client with id_mapping=True"
            )
        universe = plan.writes.get(self.keys.unique_key(self.universe))
        everyone = universe if universe is not None else set().union(*plan.writes.values())
        quota = budget.new_ids_quota if budget is not None else None
        internal_of, epoch = id_map.resolve_for_write(everyone, quota)
        rewrite = _Rewrite(internal_of, everyone)
        writes = {key: rewrite(tokens) for key, tokens in plan.writes.items()}
        firsts = {
            ever: {targets: rewrite(tokens) for targets, tokens in groups.items()}
            for ever, groups in plan.firsts.items()
        }
        mapped = planning.Plan(
            writes, plan.marks, plan.names, dateless=plan.dateless, firsts=firsts
        )
        return mapped, epoch

    # --- the id map: external ids (strings, sparse 64-bit ints) <-> dense internal ids

    def _direct_redis(self) -> redis.Redis:
        """A client that answers at once, also when this one was made from a pipeline."""
        if isinstance(self.redis, Pipeline):
            return redis.Redis(connection_pool=self.redis.connection_pool)
        return self.redis

    def _dataset_id_map(self) -> IdMap | None:
        """The dataset's id map (``None`` for plain ids), after checking once per client that
        the dataset is of this client's kind (its marker, ``KeyLayout.id_map_marker_key``): a
        mapped client starting a dataset claims it, unless plain data is already there."""
        checked = self._id_map
        if checked is not None:
            return checked[0]
        # Checked outside the lock, which guards only the assignment: the check's round trip may
        # be awaited on an event loop (``bitcore.aio``), where another beacon's greenlet of the
        # same thread would wait on a held lock forever. Two checks at once agree (a marker is
        # claimed atomically), so the first one kept is as good as the other.
        found = (self._check_dataset(self._direct_redis()),)
        with self._id_map_lock:
            if self._id_map is None:
                self._id_map = found
            return self._id_map[0]

    def _check_dataset(self, direct: redis.Redis) -> IdMap | None:
        # The one read every client makes goes through the wire, so a plain client's first
        # write also works where it is awaited on an event loop (``bitcore.aio``).
        if self._router is not None:  # no own connection on a cluster: an ordinary GET
            marker = _decoded(self.redis.get(self.keys.id_map_marker_key()))
        else:
            marker = _decoded(
                wire.round_trip(direct, [wire.encode("GET", self.keys.id_map_marker_key())])[0]
            )
        where = f"the dataset under prefix {self.keys.prefix!r}"
        if not self.id_mapping:
            if marker is not None:
                raise IdMappingMismatch(
                    f"{where} has mapped user ids ({marker}): open it with id_mapping=True"
                )
            return None
        if marker is None and self._holds_plain_data(direct):
            marker = _decoded(direct.get(self.keys.id_map_marker_key()))  # claimed meanwhile?
            if marker is None:
                raise IdMappingMismatch(
                    f"{where} already holds data with plain integer ids: id_mapping=True would "
                    "mix two kinds of ids (use another key_prefix for mapped ids)"
                )
        if marker is None:
            fresh = self._id_map_of(direct, None)
            marker = fresh.claim(self.keys.unique_key(self.universe), self.keys.event_names_key())
            if marker is None:
                raise IdMappingMismatch(f"{where} got plain data while being claimed for ids")
        return self._id_map_of(direct, marker)

    def _id_map_of(self, direct: redis.Redis, marker: str | None) -> IdMap:
        """The id map its marker describes (a new dataset's, to claim it, when ``None``): the
        flat map, or on the sharded layout the map in groups (``bitcore.idmap_groups``)."""
        sharded = self._sharded
        if marker is None and sharded is not None and self._router is not None:
            return GroupedIdMap(self.redis, sharded, self._router, self.id_map_buckets)
        if marker is None:
            return IdMap(direct, self.keys, self.id_map_buckets)
        where = f"the dataset under prefix {self.keys.prefix!r}"
        buckets, groups = idmap_groups.read_marker(marker, sharded is not None, where)
        if sharded is None or self._router is None:
            return IdMap(direct, self.keys, buckets, self.id_map_cache)
        grouped = GroupedIdMap(
            self.redis, sharded, self._router, buckets, groups, cache_size=self.id_map_cache
        )
        grouped.open_groups()
        return grouped

    def _holds_plain_data(self, direct: redis.Redis) -> bool:
        """Whether any event data lies under the prefix (a SCAN that stops at the first key):
        the universe and the registry of names first, as bitcore always writes them. On the
        sharded layout, the registries of shards and of names (one key each, so one slot)."""
        if self._sharded is not None:
            names = (self._sharded.shards_key(), self.keys.event_names_key())
            return any(self.redis.exists(name) for name in names)
        if direct.exists(self.keys.unique_key(self.universe), self.keys.event_names_key()):
            return True
        pattern = self.keys.all_keys_pattern()
        return any(
            self.keys.parse_event_key(key)
            for key in direct.scan_iter(match=pattern, count=DELETE_BATCH)
        )

    def internal_id(self, external: int | str, create: bool = False) -> int | None:
        """The internal id (bitmap offset) of an external id: ``None`` if never seen, unless
        ``create`` allocates it. Without the id map, the validated id itself.

        >>> b.internal_id("usr_8f3a", create=True)  # doctest: +SKIP
        0
        """
        if not self.id_mapping:
            return check_uuid(external)
        token = _external_token(external)
        id_map = self._dataset_id_map()
        assert id_map is not None  # a mapped client's dataset is mapped, or it raised
        if create:
            return id_map.resolve([token], create=True)[0]
        return id_map.lookup([token])[0]

    def _existing_offset(self, external: Any) -> int | None:
        """``internal_id(external)``, checked against the dataset's kind first."""
        self._dataset_id_map()
        return self.internal_id(external)

    def external_ids(self, internal: Iterable[int]) -> Iterator[int | str]:
        """The external ids of internal ids, in the same order, looked up 10,000 at a time (one
        pipelined round trip each); an internal id without a mapping (a user being forgotten)
        is left out. Without the id map, the ids themselves."""
        id_map = self._dataset_id_map()
        if id_map is None:
            return iter(internal)
        return id_map.externals(internal)

    def forget_id(self, external: int | str) -> int | None:
        """Remove one user's mapping, both directions (their bits are ``forget``'s business):
        the internal id it had, ``None`` if none. Without the id map, the validated id, and
        nothing is removed."""
        if not self.id_mapping:
            return check_uuid(external)
        token = _external_token(external)
        id_map = self._dataset_id_map()
        assert id_map is not None
        return id_map.forget(token)

    def member_offset(self, uuid: object) -> int | None:
        """The bit of ``uuid`` in any bitmap, for ``in``: ``None`` when it cannot be a member
        (not a valid id, or never seen by the id map)."""
        try:
            return self._existing_offset(uuid)
        except (TypeError, ValueError):
            return None

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
        if self._router is not None:
            return self._read_sharded(bitmap, command, args)
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

    def iter_external(self, bitmap: Bitmap) -> Iterator[int | str]:
        """The members of ``bitmap`` as the ids they were marked with: ``iter_members`` through
        ``external_ids`` (the same ints without the id map)."""
        if self._dataset_id_map() is None:
            return self.iter_members(bitmap)
        return self.external_ids(self.iter_members(bitmap))

    def count_once(self, bitmap: Bitmap) -> int:
        """``len(bitmap)`` for a one-shot answer: a derived bitmap is computed afresh, counted and
        its key deleted in the same transaction, so nothing is left behind (a dashboard preview)."""
        if self._router is not None:
            return self._count_once_sharded(bitmap)
        if not bitmap.derived:
            return int(self.redis.bitcount(bitmap.redis_key))
        key = bitmap.redis_key
        replies = self._compute(bitmap, lambda pipe: (pipe.bitcount(key), pipe.unlink(key)))
        return int(replies[-2])

    def bitcounts(self, keys: Sequence[str]) -> list[int]:
        """``BITCOUNT`` of each stored (flat-named) key, in order: one pipelined round trip on
        the flat layout; on the sharded layout the shards' counts summed, one pipeline per node
        (``shards.sums_per_key``). What the overview and the flag pages count with."""
        return self._sums_per_key(keys, "BITCOUNT")

    def keys_present(self, keys: Sequence[str]) -> list[bool]:
        """Whether each stored (flat-named) key exists, in any shard on the sharded layout: one
        round trip per node, as ``bitcounts``."""
        return [count > 0 for count in self._sums_per_key(keys, "EXISTS")]

    def getbits(self, keys: Sequence[str], offset: int) -> list[bool]:
        """Bit ``offset`` (an internal id) of each stored (flat-named) key, in one round trip: on
        the sharded layout in the id's one shard, on the node holding it."""
        target, names, bit = self.redis, list(keys), offset
        if self._sharded is not None and self._router is not None:
            shard = self._sharded.shard_of(offset)
            target, bit = self._router.node(shard), self._sharded.local_offset(offset)
            names = [self._sharded.shard_key(key, shard) for key in keys]
        with target.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.getbit(name, bit)
            return [bool(reply) for reply in pipe.execute()]

    def _sums_per_key(self, keys: Sequence[str], command: str) -> list[int]:
        if self._router is not None:
            return shards.sums_per_key(self._router, keys, command)
        if not keys:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.execute_command(command, key)
            return [int(reply) for reply in pipe.execute()]

    def iter_members(self, bitmap: Bitmap, chunk_bytes: int | None = None) -> Iterator[int]:
        """Ids in ``bitmap``, ascending, fetched in ``iter_chunk_bytes`` (or ``chunk_bytes``)
        slices decoded by numpy.

        A derived bitmap is computed afresh first. Memory stays bounded by one slice, however
        high the ids go. A derived key is a temporary one: each slice's read renews its TTL, and
        should it vanish anyway (a cleanup, a consumer that paused past the TTL) it is computed
        again and the iteration goes on from the same slice, never ending early.
        """
        if self._router is not None:
            yield from self._iter_sharded(bitmap, chunk_bytes or self.iter_chunk_bytes)
            return
        if bitmap.derived:
            self.materialize(bitmap)
        size = chunk_bytes or self.iter_chunk_bytes
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
        if self._router is not None:
            return self._compute_sharded(bitmap, then)
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
        report results, never an event's data), walking the keyspace with SCAN (never KEYS): on
        the sharded layout every shard's, on every primary of a cluster."""
        if self._sharded is not None:
            return self._delete_matching(
                self._sharded.shard_pattern(self.keys.bitop_keys_pattern()),
                self._is_temporary_shard_key,
            )
        return self._delete_matching(self.keys.bitop_keys_pattern(), self.keys.is_temporary_key)

    def delete_all_events(self) -> int:
        """Delete every key under the prefix: events, unique events and bit-op results; returns
        how many. The registries of event and flag names go too, as no event is left to list, and
        so do the events' first-time bitmaps and ever sets (``KeyLayout.first_time_key``), which
        describe the events deleted (they are not counted in the answer)."""
        if self._sharded is not None and self._router is not None:
            for pattern in self.keys.first_time_keys_patterns():
                self._delete_matching(self._sharded.shard_pattern(pattern))
            deleted = self._delete_matching(
                self._sharded.shard_pattern(self.keys.all_keys_pattern())
            )
            registries = [self.keys.event_names_key(), self.keys.flag_names_key()]
            self.redis.unlink(*registries, self._sharded.shards_key())
            self._router.forget_registered()
            return deleted
        for pattern in self.keys.first_time_keys_patterns():
            self._delete_matching(pattern)
        deleted = self._delete_matching(self.keys.all_keys_pattern())
        self._delete([self.keys.event_names_key(), self.keys.flag_names_key()])
        return deleted

    def _delete_matching(
        self, pattern: str, keep_only: Callable[[bytes], bool] | None = None
    ) -> int:
        """Delete the keys matching ``pattern`` (those ``keep_only`` accepts, when given)."""
        deleted = 0
        batch: list[bytes] = []
        unlink = self._unlink_stored if self._router is not None else self._delete
        for key in self._scan(pattern):
            if keep_only is not None and not keep_only(key):
                continue
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += unlink(batch)
                batch = []
        return deleted + unlink(batch)

    def _scan(self, pattern: str, count: int = DELETE_BATCH) -> Iterator[bytes]:
        """Every key matching ``pattern``, by SCAN: on a cluster, on every primary."""
        if self._router is None:
            yield from self.redis.scan_iter(match=pattern, count=count)
            return
        for node in self._router.primaries():
            yield from node.scan_iter(match=pattern, count=count)

    def _is_temporary_shard_key(self, key: bytes) -> bool:
        assert self._sharded is not None
        parsed = self._sharded.parse_shard_key(key)
        return parsed is not None and self.keys.is_temporary_key(parsed[1])

    def _unlink_stored(self, keys: Sequence[str | bytes]) -> int:
        """UNLINK keys as stored (shard keys on the sharded layout): on a cluster, redis-py
        sends each slot's keys to their node."""
        return int(self.redis.unlink(*keys)) if keys else 0

    def _delete(self, keys: Sequence[str | bytes]) -> int:
        """UNLINK flat-named keys: on the sharded layout, their keys in every shard in use."""
        if not keys:
            return 0
        if self._sharded is None or self._router is None:
            return int(self.redis.unlink(*keys))
        names = [k.decode() if isinstance(k, bytes) else k for k in keys]
        deleted = 0
        for node, group in self._router.by_node(self._router.shards()):
            with node.pipeline(transaction=False) as pipe:
                for shard in group:
                    pipe.unlink(*(self._sharded.shard_key(name, shard) for name in names))
                deleted += sum(int(n) for n in pipe.execute())
        return deleted

    def delete_bitmap(self, bitmap: Bitmap) -> None:
        """Delete ``bitmap``'s key (every shard's, on the sharded layout)."""
        if self._router is None:
            self.redis.delete(bitmap.redis_key)
        else:
            self._delete([bitmap.redis_key])

    # --- erasure

    def forget(
        self,
        user_id: int | str,
        dry_run: bool = False,
        *,
        batch: int = erasure.DEFAULT_BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> erasure.ErasureReport:
        """Forget a user: clear their bit in every key under the prefix (events, periods, unique
        flags, the universe, cached bit-op results), walking it with SCAN in bounded batches,
        then remove their id mapping. ``dry_run`` reports the same and writes nothing. Safe to
        run again after a stop (``bitcore.erasure``).

        >>> b.forget(123).keys_changed  # doctest: +SKIP
        7
        """
        return erasure.forget(self, user_id, dry_run=dry_run, batch=batch, progress=progress)

    # --- the catalogue of events

    def get_event_names(self, prefix: str = "", batch: int = 10000) -> list[str]:
        """Every event name with at least one key, in no particular order (bit-op keys left out)."""
        names: set[str] = set()
        pattern = self.keys.event_keys_pattern(prefix)
        if self._sharded is not None:
            pattern = self._sharded.shard_pattern(pattern)
        for key in self._scan(pattern, batch):
            parsed = self.keys.parse_event_key(self._flat_name(key))
            if parsed and parsed[0] != self.universe:
                names.add(parsed[0])
        return list(names)

    def rebuild_universe(self) -> int:
        """OR every event key into the universe, for data written by plain bitmapist (which keeps
        no universe). Returns the universe's size."""
        universe_key = self.keys.unique_key(self.universe)
        if self._router is not None:
            return self._rebuild_universe_sharded(universe_key)
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

    # --- the sharded layout: every read and computation runs per shard, then adds up

    def shard_view(self, shard: int) -> BitCore:
        """A flat-layout client on the Redis holding ``shard``, under the prefix
        ``<tag><prefix>``: it names the shard's keys exactly as this client stores them (events,
        flags, the universe, first-time bitmaps) and its ids are the shard's local offsets. A
        report computed on every shard's view and added up is the report of the whole dataset
        (the cohort engine and funnels do so). Made on first use, again after a failover moved
        the shard to another node."""
        if self._sharded is None or self._router is None:
            raise ValueError("only a client of the sharded layout has shard views")
        node = self._router.node(shard)
        views: dict[int, BitCore] = self.__dict__.setdefault("_views", {})
        view = views.get(shard)
        if view is None or view.redis is not node:
            view = views[shard] = BitCore(
                node,
                key_prefix=self._sharded.shard_tag(shard) + self.keys.prefix,
                track_hourly=self.track_hourly,
                track_unique=self.track_unique,
                timezone=self.tz,
                universe=self.universe,
                bitop_ttl_open=self.bitop_ttl_open,
                bitop_ttl_closed=self.bitop_ttl_closed,
                remember_bitop_keys=0,
                iter_chunk_bytes=self.iter_chunk_bytes,
                track_first_time=self.track_first_time,
                layout=FLAT,
            )
            # the shard's names, but saved segments are the dataset's, kept where this client
            # keeps them
            view.keys = KeyLayout(view.keys.prefix, segments_tag=self.keys.segments_tag)
            view._segments_owner = self
        return view

    def segments_redis(self) -> redis.Redis:
        """Where saved segments live (``bitcore.segments.store``): this client's Redis; on a
        cluster the node of their one slot (``KeyLayout.segments_tag``), so a save's WATCH and
        MULTI/EXEC run there; a shard's view uses its dataset's."""
        if self._segments_owner is not None:
            return self._segments_owner.segments_redis()
        if self._router is not None:
            return self._router.node_of_key(self.keys.segments_index_key())
        return self.redis

    def shards_in_use(self) -> list[int]:
        """The shards in use, ascending (the sharded layout only)."""
        if self._router is None:
            raise ValueError("only a client of the sharded layout has shards")
        return self._router.shards()

    @property
    def shard_bits(self) -> int:
        """Ids per shard are ``2 ** shard_bits`` (the sharded layout only)."""
        if self._sharded is None:
            raise ValueError("only a client of the sharded layout has shards")
        return self._sharded.shard_bits

    def node_of_shard(self, shard: int) -> redis.Redis:
        """The ``redis.Redis`` holding ``shard``'s keys (the sharded layout only)."""
        if self._router is None:
            raise ValueError("only a client of the sharded layout has shards")
        return self._router.node(shard)

    def register_shards(self, shards_in_use: Iterable[int]) -> None:
        """Add shards to the registry of shards in use (what a copy into them must do first)."""
        if self._router is None:
            raise ValueError("only a client of the sharded layout has shards")
        self._router.register(list(shards_in_use))

    def shard_of(self, internal: int) -> tuple[int, int]:
        """``(shard, bit within the shard)`` of an internal id (the sharded layout only)."""
        if self._sharded is None:
            raise ValueError("only a client of the sharded layout has shards")
        return self._sharded.shard_of(internal), self._sharded.local_offset(internal)

    def shard_key(self, key: str, shard: int) -> str:
        """Where shard ``shard`` of the flat-named ``key`` lives (``ShardedKeyLayout``)."""
        if self._sharded is None:
            raise ValueError("only a client of the sharded layout has shard keys")
        return self._sharded.shard_key(key, shard)

    def each_shard(
        self, work: Callable[[BitCore, int], R], shards_in_use: Sequence[int] | None = None
    ) -> list[R]:
        """``work(view, shard)`` for each shard in use (or of ``shards_in_use``) on its view
        (``shard_view``), in ascending shard order: shards of different nodes at the same time
        (``shards.Router.each``), so a report costs about its slowest node, not the sum of all.
        ``work`` must touch only its shard (its view and what it reads): it runs on other
        threads."""
        if self._router is None:
            raise ValueError("only a client of the sharded layout has shard views")
        ordered = self._router.shards() if shards_in_use is None else sorted(shards_in_use)
        views = {shard: self.shard_view(shard) for shard in ordered}  # made here, not in threads
        done = self._router.each(ordered, lambda shard: work(views[shard], shard))
        return [done[shard] for shard in ordered]

    def shard_views(self) -> list[BitCore]:
        """``shard_view`` of every shard in use, ascending."""
        if self._router is None:
            raise ValueError("only a client of the sharded layout has shard views")
        return [self.shard_view(shard) for shard in self._router.shards()]

    def _flat_name(self, key: bytes | str) -> bytes | str:
        """A stored key's flat name (the shard's tag taken off, on the sharded layout)."""
        if self._sharded is None:
            return key
        parsed = self._sharded.parse_shard_key(key)
        return parsed[1] if parsed is not None else ""

    def _shard_context(self) -> int | None:
        """The shard a computation of this thread is running in, if any."""
        return getattr(self._local, "shard", None)

    def key_lengths(self, keys: list[str]) -> dict[str, int]:
        """``STRLEN`` of each flat-named key (0: missing), in one round trip: on the sharded
        layout, of the keys of the shard being computed."""
        if not keys:
            return {}
        shard = self._shard_context()
        if self._sharded is None or self._router is None:
            target, names = self.redis, keys
        elif shard is None:
            raise ShardedLayoutUnsupported("key lengths on the sharded layout are per shard")
        else:
            target = self._router.node(shard)
            names = [self._sharded.shard_key(key, shard) for key in keys]
        with target.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.strlen(name)
            return dict(zip(keys, (int(n) for n in pipe.execute()), strict=True))

    def _compute_sharded(self, bitmap: Bitmap, then: Callable[[Pipeline], Any] | None) -> list[Any]:
        """``_compute`` in every shard in use (only the current one inside a shard's computation:
        a segment that recomputes a leaf), the last shard's replies returned."""
        assert self._router is not None
        if then is not None:
            raise ShardedLayoutUnsupported("a read after a computation is per shard")
        current = self._shard_context()
        replies: list[Any] = []
        for shard in [current] if current is not None else self._router.shards():
            replies = self._compute_shard(bitmap, shard)
        return replies

    def _compute_shard(
        self, bitmap: Bitmap, shard: int, then: Callable[[Pipeline], Any] | None = None
    ) -> list[Any]:
        """``bitmap.steps`` inside ``shard``: each step's commands on the shard's keys
        (``ShardPipe``) on the Redis holding it, the last in MULTI/EXEC followed by ``then``
        (given the plain pipeline: it names shard keys itself)."""
        assert self._sharded is not None and self._router is not None
        node = self._router.node(shard)
        outer = self._shard_context()
        self._local.shard = shard
        try:
            *early, last = bitmap.steps(self.bitop_ttl(bitmap))
            for step in early:
                with node.pipeline(transaction=False) as pipe:
                    step(ShardPipe(pipe, self._sharded, shard))  # type: ignore[arg-type]
                    pipe.execute()
            with node.pipeline() as pipe:
                last(ShardPipe(pipe, self._sharded, shard))  # type: ignore[arg-type]
                if then is not None:
                    then(pipe)
                return cast(list[Any], pipe.execute())
        except redis.RedisError:
            with contextlib.suppress(redis.RedisError):
                scratch = [self._sharded.shard_key(k, shard) for k in bitmap.scratch_keys()]
                if scratch:
                    node.unlink(*scratch)
            raise
        finally:
            self._local.shard = outer

    def _shard_read(self, bitmap: Bitmap, shard: int, read: Callable[[Pipeline], Any]) -> Any:
        """``read`` (queued on a pipeline, naming shard keys) on ``shard``'s Redis; a derived
        bitmap whose shard key is gone is computed in that shard first, the read riding in the
        same transaction."""
        assert self._sharded is not None and self._router is not None
        with self._router.refreshed_on_failure():
            return self._shard_read_once(bitmap, shard, read)

    def _shard_read_once(self, bitmap: Bitmap, shard: int, read: Callable[[Pipeline], Any]) -> Any:
        assert self._sharded is not None and self._router is not None
        node = self._router.node(shard)
        with node.pipeline(transaction=False) as pipe:
            if bitmap.derived:
                pipe.exists(self._sharded.shard_key(bitmap.redis_key, shard))
            read(pipe)
            replies = pipe.execute()
        if not bitmap.derived or replies[0]:
            return replies[-1]
        return self._compute_shard(bitmap, shard, read)[-1]

    def _read_sharded(self, bitmap: Bitmap, command: str, args: tuple[Any, ...]) -> Any:
        """``read`` on the sharded layout: GETBIT in the id's shard, BITCOUNT summed."""
        layout = self._sharded
        assert layout is not None and self._router is not None
        key = bitmap.redis_key
        if command == "GETBIT" and len(args) == 1:
            shard, local = layout.shard_of(args[0]), layout.local_offset(args[0])
            name = layout.shard_key(key, shard)
            return self._shard_read(bitmap, shard, lambda pipe: pipe.getbit(name, local))
        if command == "BITCOUNT" and not args:  # shards of different nodes at once
            counted = self._router.each(
                self._router.shards(),
                lambda shard: int(
                    self._shard_read(bitmap, shard, _bitcount_of(layout.shard_key(key, shard)))
                ),
            )
            return sum(counted.values())
        raise ShardedLayoutUnsupported(f"{command} {args!r} has no sharded form")

    def _count_once_sharded(self, bitmap: Bitmap) -> int:
        """``count_once`` per shard, summed: a derived bitmap computed, counted and deleted in
        one transaction per shard."""
        layout = self._sharded
        assert layout is not None and self._router is not None
        if not bitmap.derived:
            return int(self._read_sharded(bitmap, "BITCOUNT", ()))

        def count(shard: int) -> int:
            name = layout.shard_key(bitmap.redis_key, shard)
            return int(self._compute_shard(bitmap, shard, _count_and_unlink(name))[-2])

        return sum(self._router.each(self._router.shards(), count).values())  # nodes at once

    def _iter_sharded(self, bitmap: Bitmap, size: int) -> Iterator[int]:
        """Members shard after shard (ascending shards: ascending ids), each shard read in
        slices of at most ``size`` bytes; a derived shard key that vanishes midway is computed
        again and the slice read once more."""
        layout = self._sharded
        assert layout is not None and self._router is not None
        shard_bytes = 1 << (layout.shard_bits - 3)
        for shard in self._router.shards():
            name = layout.shard_key(bitmap.redis_key, shard)
            if bitmap.derived:
                self._compute_shard(bitmap, shard)
            base = layout.shard_base(shard)
            for start in range(0, shard_bytes, size):
                last = min(start + size, shard_bytes) - 1
                chunk = cast(bytes, self._shard_slice(bitmap, shard, name, start, last))
                if not chunk:
                    break
                yield from set_bits(chunk, base + start * 8)
                if len(chunk) < last - start + 1:
                    break

    def _shard_slice(self, bitmap: Bitmap, shard: int, name: str, first: int, last: int) -> Any:
        if bitmap.derived:  # each slice renews the key's TTL, as the flat layout's does
            assert self._router is not None
            self._router.node(shard).expire(name, self.bitop_ttl(bitmap))
        return self._shard_read(bitmap, shard, lambda pipe: pipe.getrange(name, first, last))

    def _rebuild_universe_sharded(self, universe_key: str) -> int:
        """``rebuild_universe`` per shard: each shard's event keys ORed into its universe."""
        layout = self._sharded
        assert layout is not None and self._router is not None
        found: dict[int, list[bytes]] = {}
        for key in self._scan(layout.shard_pattern(self.keys.all_keys_pattern())):
            parsed = layout.parse_shard_key(key)
            if parsed is not None and self.keys.parse_event_key(parsed[1]):
                found.setdefault(parsed[0], []).append(key)
        self._router.register(found)
        for shard, sources in found.items():
            target = layout.shard_key(universe_key, shard)
            node = self._router.node(shard)
            for start in range(0, len(sources), DELETE_BATCH):
                node.bitop("OR", target, target, *sources[start : start + DELETE_BATCH])
        return int(self._read_sharded(self.universe_bitmap(), "BITCOUNT", ()))


_external_token = idmap.check_token


class _Rewrite:
    """A mapped plan's tokens as internal ids: lists, not sets (distinct tokens have distinct
    internal ids: one is never handed out twice); the universe's are the answer's own values,
    and a key planned with the same tokens as the key before it (a mark's day, week and month)
    shares that key's list (nothing downstream changes one)."""

    def __init__(self, internal_of: dict[Any, int], everyone: Collection[Any]) -> None:
        self.internal_of, self.everyone = internal_of, everyone
        self.last: tuple[Collection[Any], list[int]] = (set(), [])

    def __call__(self, tokens: Collection[Any]) -> list[int]:
        if tokens is self.everyone:
            return list(self.internal_of.values())
        last_tokens, last_ids = self.last
        if len(tokens) == len(last_tokens) and tokens == last_tokens:
            return last_ids
        ids = list(map(self.internal_of.__getitem__, tokens))
        self.last = (tokens, ids)
        return ids


def _decoded(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _bitcount_of(key: str) -> Callable[[Pipeline], Any]:
    """A read that queues ``BITCOUNT key``."""
    return lambda pipe: pipe.bitcount(key)


def _count_and_unlink(key: str) -> Callable[[Pipeline], Any]:
    """A read that queues ``BITCOUNT key`` then ``UNLINK key``."""
    return lambda pipe: (pipe.bitcount(key), pipe.unlink(key))


def _with_firsts(
    per_shard: dict[int, dict[str, Collection[int]]], firsts: dict[int, dict[str, dict[Any, Any]]]
) -> dict[int, dict[str, Collection[int]]]:
    """A sharded plan's bitmaps and its first-time keys (each counted as if every candidate
    were a first time, as the gate script counts them), per shard: for each key its highest
    offset alone, which is all ``shards.growth`` reads."""
    merged: dict[int, dict[str, Collection[int]]] = {
        shard: {key: (max(ids),) for key, ids in writes.items() if ids}
        for shard, writes in per_shard.items()
    }
    for shard, groups in firsts.items():
        keys = merged.setdefault(shard, {})
        for ever, targets in groups.items():
            for named, ids in targets.items():
                if not ids:
                    continue
                high = max(ids)
                for key in (ever, *named):
                    keys[key] = (max((high, *keys.get(key, ()))),)
    return merged
