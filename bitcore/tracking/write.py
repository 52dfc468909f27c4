"""Writing checked beacons: all of a request's bits at once, or none, counted against the rate
limit first; nothing of a refused request is written.

A beacon is a mark like any other: its bits are planned by ``BitCore.plan_marks`` (the keys
``mark_event`` sets, plus the universe bit) and written by ``bitcore.bulk``, the library's one
bulk writer, with the client's rate-limit window as the write's quota. A single event is one
script call (count, check, write: one round trip); a batch is a check-and-count call, then one
``MULTI``/``EXEC``. Either way Redis applies a request as one unit, and a key of the wrong type
or a rate limit reached writes nothing.

``accept`` is a request's whole way in, after its write key is known: check, count, write.

A request may carry an id (``"request_id"``): a client that retries a request it got no answer
to sends the same id, and the repeat, within one rate window, is answered as the first was but
neither counted (rate limit, write budget) nor written again. The id's key
(``KeyLayout.request_id_key``) is checked and set by the same script call that counts the quota
(``bulk.Once``), so two copies racing each other are one write too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bitcore import bulk
from bitcore.client import BitCore
from bitcore.planning import Plan
from bitcore.tracking import ratelimit
from bitcore.tracking.budget import Limits, OverBudget, budget_for
from bitcore.tracking.ratelimit import Window
from bitcore.tracking.schema import Beacon, BeaconError, BeaconRules, check_request_id


@dataclass(frozen=True)
class WriteResult:
    written: int  # beacons written; 0 when refused
    allowed: bool  # False: over the rate limit, nothing written
    clamped: int = 0  # of those written, how many had their ts moved into the window


def plan_beacons(client: BitCore, beacons: Iterable[Beacon], now: datetime) -> Plan:
    """What ``beacons`` write: ``plan_marks`` for each set of flags the beacons use (usually
    one), merged. A beacon without ``ts`` happened ``now``."""
    by_flags: dict[tuple[bool, bool], list[tuple[str, int | str, datetime]]] = {}
    for beacon in beacons:
        when = now if beacon.ts is None else datetime.fromtimestamp(beacon.ts, UTC)
        marks = by_flags.setdefault((beacon.track_hourly, beacon.unique), [])
        marks.append((beacon.event, beacon.uid, when))
    plans = [client.plan_marks(marks, *flags) for flags, marks in by_flags.items()]
    if len(plans) == 1:
        return plans[0]
    writes: dict[str, set[Any]] = {}
    for planned in plans:
        for key, offsets in planned.writes.items():
            writes.setdefault(key, set()).update(offsets)
    firsts: dict[str, dict[tuple[str, ...], set[Any]]] = {}
    for planned in plans:  # a user's first time in two plans: the gate keeps the first group's
        for ever, groups in planned.firsts.items():
            for targets, group in groups.items():
                firsts.setdefault(ever, {}).setdefault(targets, set()).update(group)
    names = set().union(*(p.names for p in plans))
    return Plan(writes, sum(p.marks for p in plans), names, client.id_mapping, firsts=firsts)


def write_beacons(
    client: BitCore,
    beacons: list[Beacon],
    counter: Window | None = None,
    now: datetime | None = None,
    budget: bulk.Budget | None = None,
    once: bulk.Once | None = None,
) -> WriteResult:
    """Count the request against ``counter`` (if any) and, unless over it or over ``budget``
    (``bulk.WriteRefused``), set every bit of ``beacons`` atomically and register their names.
    ``once`` (a request id's key): a repeat of a request already written is answered the same,
    nothing counted or written.

    Raises redis-py errors unchanged (the caller turns them into a 503, or a 507 for Redis at
    its ``maxmemory``).
    """
    moment = client.now() if now is None else now
    plan = plan_beacons(client, beacons, moment) if beacons else Plan({}, 0, set(), False)
    quota = bulk.Quota(counter.key, counter.limit, counter.ttl) if counter else None
    if not client.write_plan(plan, quota, budget, once):
        return WriteResult(0, False)
    return WriteResult(len(beacons), True, sum(beacon.clamped for beacon in beacons))


class RateLimited(Exception):
    """The client is over its rate limit: 429, retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited, retry after {retry_after} s")
        self.retry_after = retry_after


#: Checks a request's payload against the rules, as of a moment (unix seconds): its beacons.
Parse = Callable[[BeaconRules, float], list[Beacon]]


def accept(
    client: BitCore,
    rules: BeaconRules,
    parse: Parse,
    key: str,
    address: str | None,
    limits: Limits,
    request_id: Any = None,
) -> WriteResult:
    """Check a request with ``parse(rules, now)``, then count it against the rate limit of
    ``key`` + ``address`` and write it within ``key``'s budget, in one round trip. Returns what
    was written. A request refused as invalid (``BeaconError``) is counted too, so a flood of bad
    ones is slowed (``RateLimited`` once over the limit); one over its budget raises
    ``OverBudget`` and writes nothing. ``request_id`` (as sent, checked here): a repeat of a
    request written in this rate window is answered the same, not counted nor written again."""
    counter = (
        ratelimit.window_for(f"{key}|{address}", limits.rate_limit, limits.window)
        if limits.rate_limit > 0
        else None
    )
    try:
        beacons = parse(rules, time.time())
        checked_id = check_request_id(request_id)
    except BeaconError:
        if counter is not None:
            verdict = ratelimit.hit(client.redis_for_key(counter.key), counter)
            if not verdict.allowed:
                raise RateLimited(verdict.retry_after) from None
        raise
    try:
        once = None
        if checked_id is not None:
            once = bulk.Once(client.keys.request_id_key(key, checked_id), limits.window + 1)
        result = write_beacons(client, beacons, counter, budget=budget_for(key, limits), once=once)
    except bulk.WriteRefused as refused:
        raise OverBudget(refused, limits.window) from None
    if not result.allowed:
        raise RateLimited(counter.retry_after if counter else 1)
    return result
