"""Planning a bulk write: which bits of which keys a batch of marks sets, before anything is sent.

Pure but for the two things it is handed: the client's ``mark_keys`` (the key layout and the
client's flags) and its clock. Every mark is checked here, so a bad one is found before Redis sees
any of the batch. Keys depend only on the event and the local hour of the mark, so they are
computed once per (event, hour, flags) and remembered across batches: a busy tracking endpoint
marks the same few events in the same hour thousands of times a second.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any, NamedTuple

from bitcore import periods
from bitcore.first_time_writes import Firsts
from bitcore.validation import check_event_name, check_uuid

#: One mark: ``(event, uuid)`` or ``(event, uuid, when)``; no ``when`` means now. With the id
#: map on, ``uuid`` is an external id (``int | str``).
Mark = tuple[str, Any] | tuple[str, Any, "date | datetime | None"]
#: What a mark's uuid becomes in a plan: ``check_uuid`` (the bitmap offset), or with the id map
#: on the external id's token (``bitcore.idmap.token_of``), mapped by the writer.
CheckId = Callable[[Any], Hashable]
#: What decides a mark's keys: event, local year, month, day and hour, hourly and unique flags.
Slot = tuple[str, int, int, int, int, bool, bool]
#: ``mark_keys(event, moment, track_hourly, track_unique)``: the keys one mark sets, the universe
#: key included.
KeysOf = Callable[[str, "date | datetime", bool, bool], list[str]]
#: ``firsts_of(event, moment, track_hourly)``: the event's ever key and its first-time keys for
#: the periods of ``moment`` (hour, when tracked, day, week, month).
FirstsOf = Callable[[str, "date | datetime", bool], tuple[str, tuple[str, ...]]]


class Plan(NamedTuple):
    """What a batch of marks writes: the offsets of each key, how many marks, and the event
    names they mark (for the registry of names; the universe is not one of them).

    ``dateless`` plans (``plan_unique``) set only unique keys: their names are flags, kept in a
    registry of their own (``KeyLayout.flag_names_key``) so a report never offers them as events.

    ``external``: the "offsets" are external ids' tokens, which the one writer
    (``BitCore._write``) maps to internal ids before anything is written."""

    writes: Mapping[str, Collection[Any]]  # sets, as planned; lists once the ids are mapped
    marks: int  # how many marks
    names: set[str]
    external: bool = False
    dateless: bool = False
    #: Per (event, user) only the batch's earliest hour, so a batch marking someone's first
    #: Monday and Tuesday makes Monday the first time.
    firsts: Firsts = {}  # noqa: RUF012  (never mutated: the planner builds a fresh one)


#: Slots remembered at most; past it the memory is cleared at once (a new hour fills it again).
MAX_REMEMBERED_SLOTS = 4096


class MarkPlanner:
    """Turns marks into ``{key: offsets}`` for one client's key layout, clock and time zone."""

    def __init__(
        self,
        keys_of: KeysOf,
        now: Callable[[], datetime],
        tz: tzinfo | None,
        check_id: CheckId = check_uuid,
        external: bool = False,
        firsts_of: FirstsOf | None = None,
    ) -> None:
        self._keys_of = keys_of
        self._now = now
        self._tz = tz
        self._check_id = check_id
        self._external = external
        self._firsts_of = firsts_of
        self._slot_keys: dict[Slot, tuple[str, ...]] = {}
        self._slot_firsts: dict[Slot, tuple[str, tuple[str, ...]]] = {}

    def plan(self, marks: Iterable[Mark], hourly: bool, unique: bool) -> Plan:
        """The offsets each key gets, how many marks there were and their event names; raises
        ``ValueError`` or ``TypeError`` on the first bad mark."""
        writes: dict[str, set[Any]] = {}
        names: set[str] = set()
        targets_at: dict[Slot, list[set[Any]]] = {}
        moments: dict[Slot, date | datetime] = {}
        earliest: dict[tuple[str, Any], Slot] = {}  # (event, user): the batch's first slot
        count = 0
        now: datetime | None = None  # taken once: one batch, one "now"
        check_id = self._check_id
        for mark in marks:
            event_name, uuid, *rest = mark
            offset = check_id(uuid)
            check_event_name(event_name)
            when = rest[0] if rest else None
            if when is None:
                moment: date | datetime = now or (now := self._now())
            elif isinstance(when, date):
                moment = periods.to_local(when, self._tz)
            else:
                raise TypeError(f"mark time must be a date or datetime, got {type(when).__name__}")
            hour = moment.hour if isinstance(moment, datetime) else 0
            slot = (event_name, moment.year, moment.month, moment.day, hour, hourly, unique)
            targets = targets_at.get(slot)
            if targets is None:
                keys = self._keys_of_slot(slot, moment)
                targets = targets_at[slot] = [writes.setdefault(key, set()) for key in keys]
                names.add(event_name)
                moments[slot] = moment
            for offsets in targets:
                offsets.add(offset)
            if self._firsts_of is not None:
                seen = earliest.setdefault((event_name, offset), slot)
                if slot[1:5] < seen[1:5]:
                    earliest[(event_name, offset)] = slot
            count += 1
        return Plan(writes, count, names, self._external, firsts=self._firsts(earliest, moments))

    def _firsts(
        self, earliest: dict[tuple[str, Any], Slot], moments: dict[Slot, date | datetime]
    ) -> dict[str, dict[tuple[str, ...], set[Any]]]:
        """Each (event, user)'s earliest slot, as ``{ever key: {first-time keys: offsets}}``."""
        firsts: dict[str, dict[tuple[str, ...], set[Any]]] = {}
        if self._firsts_of is None:
            return firsts
        for (_event, offset), slot in earliest.items():
            ever, targets = self._first_keys_of_slot(slot, moments[slot])
            firsts.setdefault(ever, {}).setdefault(targets, set()).add(offset)
        return firsts

    def _first_keys_of_slot(
        self, slot: Slot, moment: date | datetime
    ) -> tuple[str, tuple[str, ...]]:
        keys = self._slot_firsts.get(slot)
        if keys is None:
            assert self._firsts_of is not None
            if len(self._slot_firsts) >= MAX_REMEMBERED_SLOTS:
                self._slot_firsts.clear()
            event_name, *_, hourly, _unique = slot
            keys = self._slot_firsts[slot] = self._firsts_of(event_name, moment, hourly)
        return keys

    def plan_unique(
        self, marks: Iterable[tuple[str, Any]], unique_key: Callable[[str], str], universe: str
    ) -> Plan:
        """The offsets of dateless marks ``(event, uuid)``: each sets its event's unique key
        (``unique_key(event)``) and the universe's; raises on the first bad mark."""
        writes: dict[str, set[Any]] = {}
        names: set[str] = set()
        everyone = writes[unique_key(universe)] = set()
        count = 0
        for event_name, uuid in marks:
            offset = self._check_id(uuid)
            names.add(check_event_name(event_name))
            writes.setdefault(unique_key(event_name), set()).add(offset)
            everyone.add(offset)
            count += 1
        return Plan(writes, count, names, self._external, dateless=True)

    def _keys_of_slot(self, slot: Slot, moment: date | datetime) -> tuple[str, ...]:
        keys = self._slot_keys.get(slot)
        if keys is None:
            if len(self._slot_keys) >= MAX_REMEMBERED_SLOTS:
                self._slot_keys.clear()
            event_name, *_, hourly, unique = slot
            keys = self._slot_keys[slot] = tuple(self._keys_of(event_name, moment, hourly, unique))
        return keys
