"""Bit operations over event bitmaps: AND, OR, XOR and NOT, nestable, as in bitmapist.

A result lives under bitmapist's key name (``trackist_bitop_AND_<k1>-<k2>``) and is computed when
the object is made (one pipelined round trip for the whole tree), as bitmapist does.

Where they deliberately differ from bitmapist's (result keys with TTLs, computed again when gone;
NOT taken against a universe, never bare: see ``BitOpNot``) is listed once, in
``docs/library.md``: "Differences from bitmapist".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bitcore.bitmaps import Bitmap
from bitcore.events import resolve_client

if TYPE_CHECKING:
    from redis.client import Pipeline


class BitOperation(Bitmap):
    """``BITOP op`` over ``events``; the first argument may be a system or the first operand.

    ``BitOpAnd(MonthEvents("active", 2024, 4), MonthEvents("active", 2024, 5))`` is the users active
    in both April and May; ``BitOpAnd("stats", ev1, ev2)`` runs on the system named ``stats`` (a
    name, a redis client or a ``BitCore``).
    """

    derived = True
    #: compute the key as soon as the object exists (bitmapist does); inner helpers wait for the
    #: operation that contains them, which computes the whole tree in one round trip
    eager = True

    def __init__(self, op_name: str, system_or_event: Any, *events: Bitmap) -> None:
        if isinstance(system_or_event, Bitmap):
            events = (system_or_event, *events)
            self.system = events[0].system
            self.client = events[0].client
        else:
            self.system = system_or_event
            self.client = resolve_client(type(self), system_or_event)
        if not events:
            raise ValueError(f"BitOp{op_name.title()} needs at least one event")
        for ev in events:
            if not isinstance(ev, Bitmap):
                raise TypeError(
                    f"BitOp{op_name.title()} operands must be events or bit operations, got {ev!r}"
                )
        self.op_name = op_name
        self.events = events
        self.redis_key = self.client.keys.bitop_key(op_name, [ev.redis_key for ev in events])
        self.client.register_bitop(self)
        if self.eager:
            self.client.materialize(self)

    def build(self, pipe: Pipeline, ttl: int) -> None:
        for ev in self.events:
            ev.build(pipe, ttl)
        pipe.bitop(self.op_name, self.redis_key, *[ev.redis_key for ev in self.events])
        pipe.expire(self.redis_key, ttl)

    def leaves(self) -> Iterator[Bitmap]:
        for ev in self.events:
            yield from ev.leaves()


class BitOpAnd(BitOperation):
    """Users in every operand."""

    def __init__(self, system_or_event: Any, *events: Bitmap) -> None:
        super().__init__("AND", system_or_event, *events)


class BitOpOr(BitOperation):
    """Users in at least one operand."""

    def __init__(self, system_or_event: Any, *events: Bitmap) -> None:
        super().__init__("OR", system_or_event, *events)


class BitOpXor(BitOperation):
    """Users in an odd number of operands."""

    def __init__(self, system_or_event: Any, *events: Bitmap) -> None:
        super().__init__("XOR", system_or_event, *events)


class _InnerAnd(BitOperation):
    """An AND that is computed by the operation containing it, never on its own."""

    eager = False

    def __init__(self, *events: Bitmap) -> None:
        super().__init__("AND", *events)


class BitOpNot(BitOperation):
    """Users in the universe but not in the operand (bitmapist: every id not in the operand).

    The universe is ``universe`` when given (any bitmap, e.g. this month's actives), else the
    client's universe unique event. It is computed as ``universe XOR (universe AND event)``: a
    ``BITOP NOT`` would be only as long as the operand, so under an AND it would drop universe
    members past the operand's last byte, and the NOT of a missing key would be empty.

    >>> ~MonthEvents("active", 2024, 5)  # doctest: +SKIP
    <BitOpNot trackist_bitop_XOR_trackist__seen_u-trackist_bitop_AND_trackist__seen_u-...>
    """

    def __init__(
        self, system_or_event: Any, *events: Bitmap, universe: Bitmap | None = None
    ) -> None:
        operands = (system_or_event, *events) if isinstance(system_or_event, Bitmap) else events
        if len(operands) != 1:
            raise ValueError(f"BitOpNot takes exactly one event, got {len(operands)}")
        (operand,) = operands
        if not isinstance(operand, Bitmap):
            raise TypeError(f"BitOpNot operand must be an event or bit operation, got {operand!r}")
        if universe is None:
            base: Bitmap = operand.client.universe_bitmap()
            if not isinstance(system_or_event, Bitmap):
                base = resolve_client(type(self), system_or_event).universe_bitmap()
        else:
            base = universe
        if isinstance(system_or_event, Bitmap):
            super().__init__("XOR", base, _InnerAnd(base, operand))
        else:
            super().__init__("XOR", system_or_event, base, _InnerAnd(base, operand))
        self.operand = operand
        self.universe = base
