"""The overview and event reports as plain data, so the HTML page, its JSON twin and library users
share one implementation.

Counting is the cheap part on Redis and round trips are the cost, so every number on an overview
page (today, this week, this month and a 30-day trend, for each event shown) comes from ONE
pipelined round trip of ``BITCOUNT``s. The names come from the registry (:mod:`bitcore.event_names`)
a page at a time, so 100,000 event names cost no more than 50.

>>> rows = overview(b, date(2024, 5, 7), query="song", page=1).events  # doctest: +SKIP
>>> rows[0].name, rows[0].today, rows[0].trend[-1] == rows[0].today  # doctest: +SKIP
('song:played', 1234, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from bitcore import event_names, periods, reading
from bitcore.periods import Kind, Period
from bitcore.validation import check_event_name

if TYPE_CHECKING:
    from bitcore.client import BitCore

TREND_DAYS = 30


@dataclass(frozen=True)
class EventSummary:
    """One overview row: distinct users of ``name`` per period, ending on the report's day."""

    name: str
    today: int
    this_week: int
    this_month: int
    trend: list[int]  # daily actives, oldest first; the last one is ``today``
    unique: (
        int  # users flagged by the dateless (unique) event of the same name; 0 when there is none
    )


@dataclass(frozen=True)
class PeriodCount:
    """Distinct users in one period; ``start`` is the ISO date the period begins."""

    label: str
    start: str
    count: int


@dataclass(frozen=True)
class EventActivity:
    """Daily, weekly and monthly actives of one event, and how sticky it is."""

    name: str
    daily: list[PeriodCount]
    weekly: list[PeriodCount]
    monthly: list[PeriodCount]
    users_last_30_days: int  # distinct users over the last 30 days: the rolling "MAU"
    average_daily_users: float  # mean of the last 30 daily counts
    stickiness: float | None  # average DAU / rolling MAU, in [0, 1]; None when nobody was active


def today_of(client: BitCore) -> date:
    """Today in the client's time zone (UTC unless configured)."""
    return client.now().date()


def walk_back(kind: Kind, last: date, count: int) -> list[Period]:
    """The ``count`` periods of ``kind`` ending with the one containing ``last``, oldest first."""
    newest = periods.period_of(kind, last)
    return [periods.shift(newest, -steps) for steps in range(count - 1, -1, -1)]


@dataclass(frozen=True)
class FlagSummary:
    """A flag (a dateless event such as a platform or a plan) and how many users carry it."""

    name: str
    users: int


@dataclass(frozen=True)
class OverviewPage:
    """One page of overview rows, and where it sits among every event matching the search."""

    events: list[EventSummary]
    query: str
    page: int  # 1-based
    per_page: int
    total: int  # events matching ``query`` (a lower bound when ``complete`` is False)
    complete: bool  # False when the search stopped at its budget of names looked at
    flags: list[FlagSummary] = field(default_factory=list)  # dateless events matching ``query``
    flags_complete: bool = True  # False when there are more flags than one listing reads

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total


def overview(
    client: BitCore,
    day: date | None = None,
    query: str = "",
    page: int = 1,
    per_page: int = event_names.DEFAULT_LIMIT,
    trend_days: int = TREND_DAYS,
) -> OverviewPage:
    """Page ``page`` of the events whose name contains ``query`` (case-insensitive), sorted
    by name, with their counts.

    The names come from the registry (:mod:`bitcore.event_names`, rebuilt first if it never was),
    never from a walk of the keyspace, and only the shown page is counted: one pipelined round
    trip of ``BITCOUNT``s, however many events there are.
    """
    if page < 1:
        raise ValueError(f"page must be 1 or more, got {page}")
    day = day or today_of(client)
    event_names.ensure(client)
    needle = query.strip()
    found = event_names.search(client, needle, (page - 1) * per_page, per_page)
    rows = summaries(client, found.names, day, trend_days)
    listed, flags_complete = _flags(client)
    matching = [flag for flag in listed if needle.casefold() in flag.name.casefold()]
    return OverviewPage(
        rows, needle, page, per_page, found.total, found.complete, matching, flags_complete
    )


def summaries(
    client: BitCore, names: list[str], day: date, trend_days: int = TREND_DAYS
) -> list[EventSummary]:
    """A row per name, in the order given: every count in one pipelined round trip (on the
    sharded layout, one per node, each count the sum of its shards': ``BitCore.bitcounts``)."""
    days = walk_back("day", day, trend_days)
    week, month = periods.period_of("week", day), periods.period_of("month", day)
    per_name = [week, month, *days]
    keys: list[str] = []
    for name in names:
        keys.extend(client.keys.event_key(name, period) for period in per_name)
        keys.append(client.keys.unique_key(name))
    counts = client.bitcounts(keys)
    rows = []
    width = len(per_name) + 1
    for index, name in enumerate(names):
        this_week, this_month, *trend, unique = counts[index * width : (index + 1) * width]
        rows.append(EventSummary(name, trend[-1], this_week, this_month, trend, unique))
    return rows


def event_exists(client: BitCore, name: str) -> bool:
    """Whether ``name`` is a registered event: one ``ZSCORE`` (after a first rebuild of the
    registry if it never had one), never a walk of the keyspace."""
    check_event_name(name)
    if name == client.universe:
        return False
    event_names.ensure(client)
    return event_names.is_registered(client, name)


def event_kind(client: BitCore, name: str) -> str | None:
    """``"event"``, ``"flag"`` (marked only without a date) or ``None`` (never tracked), from the
    registries (:func:`event_names.kind_of`), never a walk of the keyspace."""
    check_event_name(name)
    if name == client.universe:
        return None
    event_names.ensure(client)
    return event_names.kind_of(client, name)


def flags(client: BitCore, limit: int = event_names.MAX_FLAGS) -> tuple[list[FlagSummary], bool]:
    """The flags (at most ``limit``, by name) with their sizes, and whether that is all of them."""
    event_names.ensure(client)
    return _flags(client, limit)


def _flags(client: BitCore, limit: int = event_names.MAX_FLAGS) -> tuple[list[FlagSummary], bool]:
    """:func:`event_names.flag_page` and one pipeline of ``BITCOUNT``s (none when no flags)."""
    found = event_names.flag_page(client, limit)
    if not found.names:
        return [], found.complete
    sizes = client.bitcounts([client.keys.unique_key(name) for name in found.names])
    return [FlagSummary(n, int(c)) for n, c in zip(found.names, sizes, strict=True)], found.complete


def flag_size(client: BitCore, name: str) -> int:
    """How many users carry the flag ``name``: one ``BITCOUNT``."""
    check_event_name(name)
    return client.bitcounts([client.keys.unique_key(name)])[0]


def has_flag(client: BitCore, name: str, uuid: int | str) -> bool:
    """Whether user ``uuid`` carries the flag (dateless event) ``name``: one ``GETBIT`` (with
    the id map, one more round trip to find the user's internal id)."""
    check_event_name(name)
    offset = client.internal_id(uuid)
    if offset is None:  # an id the map has never seen carries nothing
        return False
    return client.getbits([client.keys.unique_key(name)], offset)[0]


def event_activity(
    client: BitCore,
    name: str,
    day: date | None = None,
    days: int = TREND_DAYS,
    weeks: int = 12,
    months: int = 6,
) -> EventActivity:
    """Actives of ``name`` per day, ISO week and month up to ``day``, and DAU/MAU stickiness.

    A pipeline of ``BITCOUNT``s, then the distinct users of the last ``days`` days counted from
    their day keys in slices (``reading.count_union``): nothing is written, so the page leaves no
    temporary key, never holds Redis for long, and still answers when Redis is full.
    """
    check_event_name(name)
    day = day or today_of(client)
    lengths: list[tuple[Kind, int]] = [("day", days), ("week", weeks), ("month", months)]
    series = {kind: walk_back(kind, day, n) for kind, n in lengths}
    keys = [client.keys.event_key(name, p) for ps in series.values() for p in ps]
    counts = iter(client.bitcounts(keys))
    tables = {
        kind: [
            PeriodCount(periods.label(p), periods.start(p).date().isoformat(), next(counts))
            for p in kind_periods
        ]
        for kind, kind_periods in series.items()
    }
    day_keys = [client.keys.event_key(name, p) for p in series["day"]]
    if client.layout == "flat":
        users = reading.count_union(client, day_keys)
    else:  # a user is in one shard: the shards' distinct users add up (nodes read at once)
        users = sum(
            client.each_shard(
                lambda view, shard: reading.count_union(
                    view, [client.shard_key(key, shard) for key in day_keys]
                )
            )
        )
    average = sum(row.count for row in tables["day"]) / days
    return EventActivity(
        name=name,
        daily=tables["day"],
        weekly=tables["week"],
        monthly=tables["month"],
        users_last_30_days=users,
        average_daily_users=round(average, 2),
        stickiness=round(average / users, 4) if users else None,
    )


def was_active(client: BitCore, name: str, uuid: int | str, day: date) -> dict[str, bool]:
    """Whether user ``uuid`` did ``name`` on ``day``, in its ISO week and in its month (one round
    trip; with the id map, one more to find the user's internal id)."""
    check_event_name(name)
    offset = client.internal_id(uuid)
    kinds: list[Kind] = ["day", "week", "month"]
    if offset is None:  # an id the map has never seen did nothing
        return dict.fromkeys(kinds, False)
    keys = [client.keys.event_key(name, periods.period_of(kind, day)) for kind in kinds]
    bits = client.getbits(keys, offset)
    return {kind: bool(bit) for kind, bit in zip(kinds, bits, strict=True)}
