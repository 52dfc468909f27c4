"""Turn a segment AST into bitcore bit operations for one period.

The result is an ordinary ``Bitmap`` (an event, or a ``BitOpAnd``/``BitOpOr``/``BitOpXor``/
``BitOpNot``), so it has MonthEvents' API: ``len``, ``in``, iteration, ``&``, ``|``, ``^``, ``~``.

NOT is bitcore's ``BitOpNot``: ``~x`` is the users in the client's universe (the unique event
``_seen``, every user bitcore ever marked) and not in ``x``. So ``NOT active`` for a week is "every
known user who was not active that week", never the phantom ids a bare ``BITOP NOT`` would count.

The whole tree is built without touching Redis, then computed in one MULTI/EXEC round trip; result
keys are bitmapist's ``trackist_bitop_*`` names with TTLs, like every other bit operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bitcore.segments.errors import SegmentCycle, SegmentTooLarge
from bitcore.segments.parser import Event, Node, Not, SegmentRef, Unique

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.client import BitCore
    from bitcore.periods import Period

#: Most leaves (event operands) one evaluation may expand to, segment references included: a segment
#: that uses another twice, nested a few times, would otherwise grow exponentially.
MAX_LEAVES = 512
#: Deepest chain of segment references followed in one evaluation.
MAX_REFERENCE_DEPTH = 16

Resolver = Callable[[str], Node]


class _Builder:
    def __init__(self, client: BitCore, period: Period, resolve: Resolver) -> None:
        self.client = client
        self.period = period
        self.resolve = resolve
        self.leaves = 0
        self.stack: list[str] = []
        self.lazy: dict[str, Callable[..., Bitmap]] = {}

    def lazy_class(self, op: str) -> Callable[..., Bitmap]:
        """The client's bit-op class for ``op``, made to wait: the root computes the whole tree."""
        if op not in self.lazy:
            bound = {
                "AND": self.client.BitOpAnd,
                "OR": self.client.BitOpOr,
                "XOR": self.client.BitOpXor,
                "NOT": self.client.BitOpNot,
            }[op]
            self.lazy[op] = type(
                bound.__name__, (bound,), {"eager": False, "__doc__": bound.__doc__}
            )
        return self.lazy[op]

    def leaf(self) -> None:
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            raise SegmentTooLarge(_too_many_leaves())

    def build(self, node: Node) -> Bitmap:
        if isinstance(node, Event):
            self.leaf()
            return self.client.event(node.name, self.period)
        if isinstance(node, Unique):
            self.leaf()
            return self.client.UniqueEvents(node.name)
        if isinstance(node, SegmentRef):
            _enter(self.stack, node.name)
            try:
                return self.build(self.resolve(node.name))
            finally:
                self.stack.pop()
        if isinstance(node, Not):
            operand = self.build(node.operand)
            return self.lazy_class("NOT")(operand)
        return self.lazy_class(node.op)(*[self.build(child) for child in node.operands])


def evaluate(
    node: Node,
    client: BitCore,
    period: Period,
    resolve: Resolver,
    *,
    name: str | None = None,
) -> Bitmap:
    """The users matching ``node`` in ``period``; ``resolve`` turns a segment name into its AST.

    ``name`` is the segment being evaluated, if any, so a reference back to it is reported as a
    cycle.
    """
    builder = _Builder(client, period, resolve)
    if name is not None:
        builder.stack.append(name)
    bitmap = builder.build(node)
    if bitmap.derived:
        client.materialize(bitmap)
    return bitmap


def check_expansion(node: Node, resolve: Resolver, *, name: str | None = None) -> int:
    """Walk ``node`` with its references expanded, as ``evaluate`` would, without touching Redis.

    Returns the number of leaves; raises ``SegmentCycle`` or ``SegmentTooLarge`` exactly when
    ``evaluate`` would, and whatever ``resolve`` raises for an unknown name. Saving runs it so a
    stored segment can always be evaluated.
    """
    stack = [] if name is None else [name]
    leaves = 0

    def walk(node: Node) -> None:
        nonlocal leaves
        if isinstance(node, Event | Unique):
            leaves += 1
            if leaves > MAX_LEAVES:
                raise SegmentTooLarge(_too_many_leaves())
        elif isinstance(node, SegmentRef):
            _enter(stack, node.name)
            try:
                walk(resolve(node.name))
            finally:
                stack.pop()
        elif isinstance(node, Not):
            walk(node.operand)
        else:
            for child in node.operands:
                walk(child)

    walk(node)
    return leaves


def _too_many_leaves() -> str:
    return f"the expression expands to more than {MAX_LEAVES} events (segment references included)"


def _enter(stack: list[str], name: str) -> None:
    """Push ``name`` on the reference path, refusing cycles and over-deep chains."""
    if name in stack:
        raise SegmentCycle([*stack[stack.index(name) :], name])
    if len(stack) >= MAX_REFERENCE_DEPTH:
        raise SegmentTooLarge(f"segment references nest deeper than {MAX_REFERENCE_DEPTH} levels")
    stack.append(name)
