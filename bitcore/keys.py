"""The Redis key layout: the one place that names and parses keys.

bitmapist's layout, so both libraries share one Redis::

    trackist_<event>_<year>-<month>            month        trackist_active_2024-5
    trackist_<event>_W<iso_year>-<iso_week>    ISO week     trackist_active_W2025-1
    trackist_<event>_<y>-<m>-<d>               day          trackist_active_2024-5-7
    trackist_<event>_<y>-<m>-<d>-<h>           hour         trackist_active_2024-5-7-13
    trackist_<event>_u                         unique       trackist_premium_u
    trackist_bitop_<OP>_<key>-<key>-...        bit-op result (temporary)
    trackist_bitop_SEGMENT_<digest>            segment result (temporary)
    trackist_bitop_SEGMENT_<run>-r<n>          segment scratch register (temporary)
    trackist_bitop_REPORT_<run>-<n>            a report's private copy (temporary)
    trackist_bitop_FUNNEL_<digest>             a funnel step's users (temporary)
    trackist_bitop_FUNNEL_<run>-r<n>           a funnel step's scratch register (temporary)
    bitcore:first:trackist_<event>_<period>    who did <event> for the first time ever in a
                                               period (hour, day, week or month suffix)
    bitcore:ever:trackist_<event>              who ever did <event> (the writer's memory)

No zero padding anywhere. Years have no key of their own: a year is the OR of its twelve months.

That is the *flat* layout (``KeyLayout``), the default on a single Redis. The *sharded* layout
(``ShardedKeyLayout``, for Redis Cluster) names the same keys, then splits every bitmap by user-id
range: shard ``s = id >> shard_bits`` holds the bits of ids ``[s << shard_bits, (s + 1) <<
shard_bits)`` at offsets ``id - (s << shard_bits)``, under the flat key with the tag
``{<prefix>s<s>}`` put before its prefix (``ShardedKeyLayout.shard_key``). The hash tag puts
every key of one shard (events, periods, flags, the universe, first-time bitmaps, bit-op results
and scratch registers) in one cluster slot, so a BITOP, script or transaction over them
never spans slots; a shard's keys exist only for ranges that have users. The shards in use are
listed in ``bitcore:shards:<prefix>`` (a set). Keys that are not per user (registries, segments,
locks, rate limits) keep their flat names: each is one key, in one slot.

>>> sharded = ShardedKeyLayout()
>>> sharded.shard_key("trackist_active_2024-5", sharded.shard_of(3 << 20))
'{trackist_s3}trackist_active_2024-5'
>>> sharded.parse_shard_key("bitcore:first:{trackist_s3}trackist_active_2024-5")
(3, 'bitcore:first:trackist_active_2024-5')

>>> layout = KeyLayout()
>>> from bitcore import periods
>>> layout.event_key("active", periods.week(2025, 1))
'trackist_active_W2025-1'
>>> layout.parse_event_key("trackist_song:played_2024-5-7")
('song:played', '2024-5-7')
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar

from redis.crc import key_slot

from bitcore.periods import Period

DEFAULT_PREFIX = "trackist_"
#: Bit-op results live under ``<prefix>bitop_``, so no event may be named ``bitop`` or ``bitop_…``:
#: its keys would be taken for temporary results (and deleted by the cleanup).
BITOP_NAMESPACE = "bitop"
UNIQUE_SUFFIX = "u"
#: The operations whose results are temporary keys ``<prefix>bitop_<OP>_<operand keys>``
#: (bitmapist's and bitcore's ``BitOp*``).
BITOP_NAMES = ("AND", "OR", "XOR", "NOT")
#: The operation name in the keys of segment results and scratch registers.
SEGMENT_OP = "SEGMENT"
#: The operation name in the keys of a report's private copies of derived bitmaps.
REPORT_OP = "REPORT"
#: The operation name in the keys of a funnel step's (or drop-off's) users and their registers.
FUNNEL_OP = "FUNNEL"
#: What follows ``<prefix>bitop_<OP>_`` in bitcore's own temporary keys: a segment's or funnel
#: step's result (a 40-digit digest) or scratch register (``<run>-r<n>``), a report's copy
#: (``<run>-<n>``).
_OWN_TEMPORARY = {
    SEGMENT_OP: re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{32}-r\d+)$"),
    REPORT_OP: re.compile(r"^[0-9a-f]{32}-\d+$"),
    FUNNEL_OP: re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{32}-r\d+)$"),
}
_SUFFIX = re.compile(r"^(?:u|W\d+-\d+|\d+-\d+(?:-\d+(?:-\d+)?)?)$")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
#: bitcore's own keys live outside the event prefix, so they never look like events and no
#: cleanup of ``trackist_bitop_*`` (or ``delete_all_events``) ever touches them. Saved segments:
#: ``bitcore:segment:<name>`` (a hash) and the index ``bitcore:segments`` (a set of names); saved
#: reports: ``bitcore:report:<name>`` (a hash) and the index ``bitcore:reports``.
SEGMENT_NAMESPACE = "bitcore:"
#: The cleanup job's lock, and hashes describing its last real and last dry run.
CLEANUP_LOCK_KEY = f"{SEGMENT_NAMESPACE}cleanup:lock"
CLEANUP_LAST_RUN_KEY = f"{SEGMENT_NAMESPACE}cleanup:last"
CLEANUP_LAST_DRY_RUN_KEY = f"{SEGMENT_NAMESPACE}cleanup:last_dry_run"
#: The tracking endpoint's rate-limit counters:
#: ``bitcore:ratelimit:<window index>:<client hash>``.
RATELIMIT_PREFIX = f"{SEGMENT_NAMESPACE}ratelimit:"
#: Request ids of beacon requests already written (``bitcore.tracking``), one key per id and
#: write key, living one rate window: ``bitcore:request:<hash of write key and id>``.
REQUEST_ID_PREFIX = f"{SEGMENT_NAMESPACE}request:"
#: Dashboard login sessions (one key per live session, expiring with it): logout deletes its key.
SESSION_PREFIX = f"{SEGMENT_NAMESPACE}session:"
#: First-time bitmaps (``bitcore:first:<prefix><event>_<period suffix>``) and each event's "ever"
#: set (``bitcore:ever:<prefix><event>``), kept by the writer. Outside the event prefix like the
#: registry, so they are never taken for events, no bit-op cleanup touches them, and bitmapist
#: (which scans ``trackist_*``) never sees them; ``delete_all_events`` deletes them with the events.
FIRST_TIME_NAMESPACE = f"{SEGMENT_NAMESPACE}first:"
EVER_NAMESPACE = f"{SEGMENT_NAMESPACE}ever:"
#: Named in the bulk writer's script call when a write has no quota; the script never touches it.
QUOTA_PLACEHOLDER_KEY = f"{SEGMENT_NAMESPACE}quota:none"
#: The id map of a key prefix (``bitcore.idmap``), outside the event prefix like every key of
#: bitcore's own: ``bitcore:idmap:<prefix>:`` then ``mode`` (the marker: is the dataset
#: mapped?), ``next`` (the next internal id), ``epoch`` (renewed when a mapping is removed),
#: ``f:<bucket>`` (external -> internal, bucket from a hash of the external id) and
#: ``r:<bucket>`` (internal -> external, bucket = internal >> 7). The bucket is always the last
#: part of the key. On the sharded layout only ``mode`` and ``epoch`` keep these names: the
#: rest is split into map groups, each behind a hash tag of its own
#: (``ShardedKeyLayout.id_map_group_key``: ``bitcore:idmap:{trackist_m3}trackist_:f:17``).
ID_MAP_NAMESPACE = f"{SEGMENT_NAMESPACE}idmap:"
#: The set of shards in use under a prefix (sharded layout): ``bitcore:shards:<prefix>``.
SHARDS_NAMESPACE = f"{SEGMENT_NAMESPACE}shards:"
#: The layouts a client can be given by name (``BitCore(..., layout=...)``).
FLAT = "flat"
SHARDED = "sharded"
LAYOUTS = (FLAT, SHARDED)
#: Ids per shard are ``2 ** DEFAULT_SHARD_BITS`` (1,048,576). Smaller shards spread a dataset over
#: more slots (100M users are 96 shards, within a few percent of even over 10 nodes) and waste
#: less on a sparse range (a full key of a shard is 128 KiB); larger ones mean fewer round trips
#: per report. Measured in ``bench/cluster.py`` (``bench/README.md``, "Redis Cluster").
DEFAULT_SHARD_BITS = 20
#: The range ``shard_bits`` may take: 2**20 to 2**23 ids per shard.
SHARD_BITS_RANGE = range(20, 24)
#: Hash slots of a Redis Cluster (a key's slot: CRC16 of its hash tag, modulo this).
CLUSTER_SLOTS = 16384
#: Most id map groups a sharded dataset may have (``ShardedKeyLayout.id_map_group_tags``).
MAX_ID_MAP_GROUPS = 1024
#: The sharded layout's hash tag of saved segments: ``bitcore:{segments}segment:<name>``.
SEGMENTS_TAG = "{segments}"


def period_suffix(period: Period) -> str:
    """The part of an event key that names the period (bitmapist's spelling, unpadded)."""
    if period.kind == "hour":
        return f"{period.year}-{period.month}-{period.day}-{period.hour}"
    if period.kind == "day":
        return f"{period.year}-{period.month}-{period.day}"
    if period.kind == "week":
        return f"W{period.year}-{period.week}"
    if period.kind == "month":
        return f"{period.year}-{period.month}"
    raise ValueError("years have no key of their own: a year is the OR of its months")


def period_of_suffix(suffix: str) -> Period:
    """The period a key's suffix names (``period_suffix`` read back); ``ValueError`` for ``u`` and
    anything else that names no period.

    >>> period_of_suffix("W2025-1"), period_of_suffix("2024-5-7-13").hour
    (Period(kind='week', year=2025, month=1, day=1, hour=0, week=1), 13)
    """
    if not _SUFFIX.match(suffix) or suffix == UNIQUE_SUFFIX:
        raise ValueError(f"{suffix!r} names no period")
    if suffix.startswith("W"):
        year, week = suffix[1:].split("-")
        return Period("week", int(year), week=int(week))
    parts = [int(part) for part in suffix.split("-")]
    kind = ("month", "day", "hour")[len(parts) - 2]
    return Period(kind, *parts)  # type: ignore[arg-type]


def _is_data_shape(tail: str) -> bool:
    """Whether ``tail`` ends the way an event's data key does: ``_<period suffix>``."""
    _name, sep, suffix = tail.rpartition("_")
    return (bool(sep) and _SUFFIX.match(suffix) is not None) or _SUFFIX.match(tail) is not None


def glob_escape(text: str) -> str:
    """Escape Redis glob characters so an event name matches only itself in SCAN MATCH."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True)
class KeyLayout:
    """Names every key bitcore reads or writes, under one prefix (``trackist_`` by default)."""

    prefix: str = DEFAULT_PREFIX
    #: A hash tag before the names of saved segments and their index (the sharded layout's
    #: ``SEGMENTS_TAG``), so a cluster keeps them in one slot and a save stays one transaction;
    #: none in bitmapist's flat layout.
    segments_tag: str = ""
    #: The layout's name (``LAYOUTS``) and whether bitmaps are split into shards.
    name: ClassVar[str] = FLAT
    sharded: ClassVar[bool] = False

    @property
    def bitop_prefix(self) -> str:
        return f"{self.prefix}{BITOP_NAMESPACE}_"

    def event_key(self, event_name: str, period: Period) -> str:
        return f"{self.prefix}{event_name}_{period_suffix(period)}"

    def unique_key(self, event_name: str) -> str:
        return f"{self.prefix}{event_name}_{UNIQUE_SUFFIX}"

    def bitop_key(self, op_name: str, operand_keys: list[str]) -> str:
        """bitmapist's name for the result of ``BITOP op`` over ``operand_keys``."""
        return f"{self.bitop_prefix}{op_name}_{'-'.join(operand_keys)}"

    def is_bitop_key(self, key: str) -> bool:
        """Whether ``key`` is in the bit-op namespace (a data key of an event bitmapist let
        someone name ``bitop...`` is too: see ``is_temporary_key``)."""
        return key.startswith(self.bitop_prefix)

    def segment_scratch_prefix(self) -> str:
        """What the keys of segment results and scratch registers start with."""
        return f"{self.bitop_prefix}{SEGMENT_OP}_"

    def report_key(self, run: str, index: int) -> str:
        """A report's private copy number ``index`` of run ``run`` (a random hex id)."""
        return self.bitop_key(REPORT_OP, [run, str(index)])

    def funnel_key(self, digest: str) -> str:
        """The users of one funnel step or drop-off, named by a 40-digit ``digest`` of what they
        are computed from (so the same question shares one cached result)."""
        return self.bitop_key(FUNNEL_OP, [digest])

    def funnel_register(self, run: str, index: int) -> str:
        """Scratch register ``index`` of one computation ``run`` (a random hex id) of a funnel
        step's users."""
        return f"{self.bitop_key(FUNNEL_OP, [run])}-r{index}"

    def is_temporary_key(self, key: str | bytes) -> bool:
        """The one rule for what a sweeper may delete: a temporary bit-op key, never data.

        ``<prefix>bitop_<AND|OR|XOR|NOT>_<operands>`` whose operands are keys under the prefix
        (bitmapist's and bitcore's results), or anything else after ``<OP>_`` that is not the
        shape of an event's data key (an event someone named ``bitop_AND`` in plain bitmapist has
        keys like ``trackist_bitop_AND_2024-5``: data); and bitcore's own segment, report and
        funnel-step keys (``<prefix>bitop_SEGMENT_<digest>``, ``..._SEGMENT_<run>-r<n>``,
        ``..._REPORT_<run>-<n>``, ``..._FUNNEL_<digest>``, ``..._FUNNEL_<run>-r<n>``).
        ``BitCore.delete_temporary_bitop_keys`` and the cleanup job both use it.

        >>> layout = KeyLayout()
        >>> layout.is_temporary_key("trackist_bitop_AND_trackist_a_2024-5-trackist_b_2024-5")
        True
        >>> layout.is_temporary_key("trackist_bitop_2024-5"), layout.is_temporary_key("x")
        (False, False)
        """
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if not self.is_bitop_key(key):
            return False
        op, sep, operands = key[len(self.bitop_prefix) :].partition("_")
        if not sep or not operands:
            return False
        if op in BITOP_NAMES:
            return operands.startswith(self.prefix) or not _is_data_shape(operands)
        own = _OWN_TEMPORARY.get(op)
        return own is not None and own.match(operands) is not None

    def all_keys_pattern(self) -> str:
        """SCAN pattern for every key under the prefix: events and bit-op results."""
        return f"{glob_escape(self.prefix)}*"

    def event_keys_pattern(self, name_prefix: str = "") -> str:
        """SCAN pattern for keys whose event name starts with ``name_prefix`` (bit-op keys may match
        too: filter with ``parse_event_key``)."""
        return f"{glob_escape(self.prefix)}{glob_escape(name_prefix)}*"

    def bitop_keys_pattern(self) -> str:
        return f"{glob_escape(self.bitop_prefix)}*"

    def segment_key(self, segment_name: str) -> str:
        """The hash holding one saved segment (outside the event prefix: ``SEGMENT_NAMESPACE``)."""
        return f"{SEGMENT_NAMESPACE}{self.segments_tag}segment:{segment_name}"

    def segments_index_key(self) -> str:
        """The set of every saved segment's name."""
        return f"{SEGMENT_NAMESPACE}{self.segments_tag}segments"

    def saved_report_key(self, report_name: str) -> str:
        """The hash holding one saved report (outside the event prefix, and in the slot of saved
        segments on the sharded layout, so a save's transaction runs on one node)."""
        return f"{SEGMENT_NAMESPACE}{self.segments_tag}report:{report_name}"

    def saved_reports_index_key(self) -> str:
        """The set of every saved report's name."""
        return f"{SEGMENT_NAMESPACE}{self.segments_tag}reports"

    def event_names_key(self) -> str:
        """The registry of event names written under this prefix: a sorted set, every score 0 so
        names sort (and range) lexicographically. Outside the event prefix, so it is never taken
        for an event and no cleanup or ``delete_all_events`` touches it."""
        return f"{SEGMENT_NAMESPACE}event_names:{self.prefix}"

    def flag_names_key(self) -> str:
        """The registry of flag names: events marked only without a date (``mark_unique``, only a
        ``_u`` key), a sorted set like ``event_names_key``'s."""
        return f"{SEGMENT_NAMESPACE}flag_names:{self.prefix}"

    def event_names_rebuilt_key(self) -> str:
        """When the registry was last rebuilt from the keyspace (absent: never, so rebuild it)."""
        return f"{SEGMENT_NAMESPACE}event_names_rebuilt:{self.prefix}"

    def request_id_key(self, write_key: str, request_id: str) -> str:
        """The key saying a beacon request with ``request_id``, sent with ``write_key``, was
        written: hashed, so write keys are not readable in Redis, and per write key, so one site
        cannot mark another's ids as seen.

        >>> KeyLayout().request_id_key("key", "b1").startswith("bitcore:request:")
        True
        """
        digest = hashlib.sha256(f"{self.prefix}|{write_key}|{request_id}".encode()).hexdigest()
        return f"{REQUEST_ID_PREFIX}{digest[:32]}"

    def _id_map_key(self, part: str) -> str:
        return f"{ID_MAP_NAMESPACE}{self.prefix}:{part}"

    def id_map_marker_key(self) -> str:
        """The marker of the dataset under this prefix: ``mapped:<buckets>`` when its ids are
        mapped (absent for plain ids)."""
        return self._id_map_key("mode")

    def id_map_counter_key(self) -> str:
        """The number of internal ids handed out so far (the next one is this number)."""
        return self._id_map_key("next")

    def id_map_epoch_key(self) -> str:
        """A random value renewed whenever a mapping is removed: processes that remember
        mappings start afresh when it changes (``bitcore.idmap.IdMap``)."""
        return self._id_map_key("epoch")

    def id_map_bucket_key(self, direction: str, bucket: int) -> str:
        """Bucket ``bucket`` of the forward (``"f"``) or reverse (``"r"``) map: always
        ``id_map_bucket_prefix(direction)`` followed by the bucket's number."""
        return f"{self.id_map_bucket_prefix(direction)}{bucket}"

    def id_map_bucket_prefix(self, direction: str) -> str:
        """What every bucket key of ``direction`` is before its number: the id map appends the
        number itself (thousands of buckets per batch), its allocation script too."""
        if direction not in ("f", "r"):
            raise ValueError(f"an id map direction is 'f' or 'r', not {direction!r}")
        return self._id_map_key(f"{direction}:")

    def id_map_pattern(self) -> str:
        """SCAN pattern for every key of this prefix's id map."""
        return f"{glob_escape(self._id_map_key(''))}*"

    def first_time_key(self, event_name: str, period: Period) -> str:
        """Who did ``event_name`` for the first time ever during ``period`` (hour, day, week or
        month), written by the one writer beside the event's own key.

        >>> from bitcore import periods
        >>> KeyLayout().first_time_key("active", periods.week(2025, 1))
        'bitcore:first:trackist_active_W2025-1'
        """
        return f"{FIRST_TIME_NAMESPACE}{self.prefix}{event_name}_{period_suffix(period)}"

    def ever_key(self, event_name: str) -> str:
        """Everyone the writer ever marked with ``event_name`` (any period): the old bit of a mark
        here says whether the mark is the user's first time."""
        return f"{EVER_NAMESPACE}{self.prefix}{event_name}"

    def first_time_keys_patterns(self, event_name: str | None = None) -> tuple[str, str]:
        """SCAN patterns for the first-time and ever keys of this prefix (of one event, when
        named); the first pattern's matches also take in events whose names extend
        ``event_name``: filter them with ``parse_first_time_key``."""
        tail = f"{glob_escape(self.prefix)}{glob_escape(event_name) if event_name else ''}"
        return (
            f"{FIRST_TIME_NAMESPACE}{tail}*",
            f"{EVER_NAMESPACE}{tail}{'' if event_name else '*'}",
        )

    def parse_first_time_key(self, key: str | bytes) -> tuple[str, str] | None:
        """``(event_name, period_suffix)`` of a first-time key, else ``None``."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if not key.startswith(FIRST_TIME_NAMESPACE):
            return None
        return self.parse_event_key(key[len(FIRST_TIME_NAMESPACE) :])

    def first_time_rebuilt_key(self) -> str:
        """The set of events whose first-time bitmaps ``rebuild_first_time`` has rebuilt (so a
        stopped rebuild resumes where it was)."""
        return f"{SEGMENT_NAMESPACE}first_rebuilt:{self.prefix}"

    @staticmethod
    def parse_period_suffix(suffix: str) -> Period:
        """``period_of_suffix``, for callers holding a layout."""
        return period_of_suffix(suffix)

    def is_first_time_key(self, key: str) -> bool:
        """Whether ``key`` is a first-time or ever key (never an event's, whatever the prefix)."""
        return key.startswith((FIRST_TIME_NAMESPACE, EVER_NAMESPACE))

    def parse_event_key(self, key: str | bytes) -> tuple[str, str] | None:
        """``(event_name, period_suffix)`` of an event key; ``None`` for bit-op and foreign keys
        (first-time and ever keys among them, even under a prefix that would take them in)."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if not key.startswith(self.prefix) or self.is_bitop_key(key):
            return None
        if self.is_first_time_key(key):
            return None
        name, sep, suffix = key[len(self.prefix) :].rpartition("_")
        if not sep or not name or not _SUFFIX.match(suffix):
            return None
        return name, suffix


@dataclass(frozen=True)
class ShardedKeyLayout(KeyLayout):
    """The sharded layout (module docstring): the flat layout's names, split by user-id range,
    each shard's keys behind a hash tag of their own. ``shard_bits``: ids per shard are
    ``2 ** shard_bits`` (``SHARD_BITS_RANGE``).

    >>> layout = ShardedKeyLayout(shard_bits=20)
    >>> layout.shard_of(5_000_000), layout.local_offset(5_000_000), layout.shard_base(4)
    (4, 805696, 4194304)
    """

    segments_tag: str = SEGMENTS_TAG
    shard_bits: int = DEFAULT_SHARD_BITS
    name: ClassVar[str] = SHARDED
    sharded: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.shard_bits not in SHARD_BITS_RANGE:
            raise ValueError(
                f"shard_bits must be {SHARD_BITS_RANGE.start}..{SHARD_BITS_RANGE.stop - 1}, "
                f"got {self.shard_bits}"
            )
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"a sharded layout's prefix cannot hold braces: {self.prefix!r}")

    def shard_of(self, user_id: int) -> int:
        """The shard of an internal id (its bitmap offset in the flat layout)."""
        return user_id >> self.shard_bits

    def local_offset(self, user_id: int) -> int:
        """The id's bit within its shard's keys."""
        return user_id & ((1 << self.shard_bits) - 1)

    def shard_base(self, shard: int) -> int:
        """The first id of ``shard``: a shard key's bit N is user ``shard_base + N``."""
        return shard << self.shard_bits

    def shard_tag(self, shard: int) -> str:
        """The hash tag of every key of ``shard``: ``{<prefix>s<shard>}``."""
        return f"{{{self.prefix}s{shard}}}"

    def shard_key(self, key: str, shard: int) -> str:
        """Where shard ``shard`` of the flat-named ``key`` lives: the tag put just before the
        prefix (``bitcore:first:trackist_a_2024-5`` becomes
        ``bitcore:first:{trackist_s3}trackist_a_2024-5``), so a shard's keys are named as the
        flat layout names them under the prefix ``<tag><prefix>`` (``BitCore.shard_view``).

        >>> ShardedKeyLayout().shard_key("bitcore:ever:trackist_a", 3)
        'bitcore:ever:{trackist_s3}trackist_a'
        """
        at = key.find(self.prefix)
        at = 0 if at < 0 else at
        return f"{key[:at]}{self.shard_tag(shard)}{key[at:]}"

    def parse_shard_key(self, key: str | bytes) -> tuple[int, str] | None:
        """``(shard, flat-named key)`` of a shard key of this prefix (the shard of its first tag,
        every tag taken out), else ``None``."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        tags = self._tag_pattern().findall(key)
        if not tags:
            return None
        return int(tags[0]), self._tag_pattern().sub("", key)

    def _tag_pattern(self) -> re.Pattern[str]:
        return re.compile(r"\{" + re.escape(self.prefix) + r"s(\d+)\}")

    def shard_pattern(self, pattern: str) -> str:
        """SCAN pattern for the shard keys (any shard) of the flat keys ``pattern`` matches (a
        pattern that names the prefix, as every pattern of this layout's does)."""
        escaped = glob_escape(self.prefix)
        at = pattern.find(escaped)
        at = 0 if at < 0 else at
        return f"{pattern[:at]}{{{escaped}s*}}{pattern[at:]}"

    def shards_key(self) -> str:
        """The set of shards in use under this prefix (each shard's number)."""
        return f"{SHARDS_NAMESPACE}{self.prefix}"

    def id_map_group_tags(self, groups: int) -> list[str]:
        """The hash tag of every key of each of ``groups`` id map groups
        (``bitcore.idmap_groups``): group ``g``'s is ``{<prefix>m<g>.<n>}`` with the first ``n``
        whose slot lies in the ``g``-th of ``groups`` equal ranges of the cluster's slots. So the
        groups spread over the slots evenly, and over the nodes of a cluster as evenly as its
        slots do (plain names' CRC16 cluster: 16 ``{trackist_m<g>}`` fall 8, 5 and 3 on three
        nodes). Never a shard's tag (``{<prefix>s<shard>}``); the same for a prefix forever.

        >>> ShardedKeyLayout().id_map_group_tags(2)
        ['{trackist_m0.0}', '{trackist_m1.0}']
        """
        if not 1 <= groups <= MAX_ID_MAP_GROUPS:
            raise ValueError(f"id map groups are 1..{MAX_ID_MAP_GROUPS}, got {groups}")
        tags = []
        for group in range(groups):
            low, high = group * CLUSTER_SLOTS // groups, (group + 1) * CLUSTER_SLOTS // groups
            salt = 0
            while not low <= key_slot(f"{self.prefix}m{group}.{salt}".encode()) < high:
                salt += 1
            tags.append(f"{{{self.prefix}m{group}.{salt}}}")
        return tags

    def id_map_group_key(self, part: str, tag: str) -> str:
        """Key ``part`` of the id map group with hash tag ``tag`` (``id_map_group_tags``): the
        flat map's name of it, the tag before the prefix, so the group's marker (``mode``),
        counter (``next``) and buckets (``f:<bucket>``, ``r:<bucket>``) share one slot.

        >>> ShardedKeyLayout().id_map_group_key("next", "{trackist_m1.0}")
        'bitcore:idmap:{trackist_m1.0}trackist_:next'
        """
        return f"{ID_MAP_NAMESPACE}{tag}{self.prefix}:{part}"

    def id_map_group_bucket_prefix(self, direction: str, tag: str) -> str:
        """What every bucket key of ``direction`` (``"f"`` or ``"r"``) of the group with ``tag``
        is before its number (``id_map_bucket_prefix``, in the group's slot)."""
        self.id_map_bucket_prefix(direction)  # checks the direction
        return self.id_map_group_key(f"{direction}:", tag)

    def id_map_group_pattern(self) -> str:
        """SCAN pattern for every key of every id map group of this prefix (the dataset's
        marker and epoch are ``id_map_pattern``'s)."""
        escaped = glob_escape(self.prefix)
        return f"{ID_MAP_NAMESPACE}{{{escaped}m*}}{escaped}:*"


def layout_named(
    name: str, prefix: str = DEFAULT_PREFIX, shard_bits: int = DEFAULT_SHARD_BITS
) -> KeyLayout:
    """The layout called ``name`` (``"flat"`` or ``"sharded"``) under ``prefix``.

    >>> layout_named("sharded").name, layout_named("flat").sharded
    ('sharded', False)
    """
    if name == FLAT:
        return KeyLayout(prefix)
    if name == SHARDED:
        return ShardedKeyLayout(prefix, shard_bits=shard_bits)
    raise ValueError(f"a key layout is one of {', '.join(LAYOUTS)}, not {name!r}")
