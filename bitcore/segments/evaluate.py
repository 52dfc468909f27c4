"""Turn a segment AST into the users it selects for one period: a ``SegmentBitmap``.

The result is an ordinary ``Bitmap`` (an event when the expression is one event, else a
``SegmentBitmap``), so it has MonthEvents' API: ``len``, ``in``, iteration, ``&``, ``|``, ``^``,
``~``.

NOT is taken against the client's universe (the unique event ``_seen``, every user bitcore ever
marked), as ``BitOpNot`` does: ``NOT active`` for a week is "every known user who was not active
that week", never the phantom ids a bare ``BITOP NOT`` would count.

The expression is not computed as nested ``BitOp*`` objects (one universe-sized key per node): it
is compiled into a few reused scratch keys and run in bounded steps (``bitcore.segments.program``),
its scratch memory checked against ``max_bytes`` first. The result lives under
``<prefix>bitop_SEGMENT_<digest of the expanded expression>`` with a bit-op TTL, so evaluating the
same segment again reuses one key; ``client.count_once`` counts it and leaves no key at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from bitcore.bitmaps import Bitmap, Build
from bitcore.limits import DEFAULT_SEGMENT_MAX_BYTES
from bitcore.segments import program
from bitcore.segments.errors import SegmentCycle, SegmentTooLarge
from bitcore.segments.parser import Event, Node, Not, SegmentRef, Unique

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.periods import Period

#: Most leaves (event operands) one evaluation may expand to, segment references included: a segment
#: that uses another twice, nested a few times, would otherwise grow exponentially.
MAX_LEAVES = 512
#: Deepest chain of segment references followed in one evaluation.
MAX_REFERENCE_DEPTH = 16
#: Scratch memory (bytes) one evaluation may take in Redis unless the caller says otherwise: four
#: keys of a 16 MiB universe (ids up to 2**27), e.g. ``a & ~b & ~c`` and its result buffer.
DEFAULT_MAX_BYTES = DEFAULT_SEGMENT_MAX_BYTES

Resolver = Callable[[str], Node]


class SegmentBitmap(Bitmap):
    """The users of an expanded expression (``program.Term``) in one period.

    Computed when read and its key is gone, in bounded steps, like every derived bitmap; ``build``
    (used when it is an operand of a ``BitOp*``) queues the whole program into the caller's
    pipeline; ``build_into`` gives a report its commands, to queue with other segments' and
    periods' in a few pipelines.
    """

    derived = True

    def __init__(self, client: BitCore, term: program.Term, max_bytes: int | None) -> None:
        self.client = client
        self.system = client
        self.term = term
        self.max_bytes = max_bytes
        self.universe = client.universe_bitmap() if program.has_negation(term) else None
        self.universe_key = client.keys.unique_key(client.universe)
        self.scratch_prefix = client.keys.segment_scratch_prefix()
        self.redis_key = self.scratch_prefix + program.digest(term, self.universe_key)
        self._registers: list[str] = []
        client.register_bitop(self)

    def leaves(self) -> Iterator[Bitmap]:
        yield from program.leaves(self.term)
        if self.universe is not None:
            yield self.universe

    def steps(self, ttl: int) -> list[program.Step]:
        """Measure the keys read (one round trip; a derived leaf, a year, that is gone is
        computed again first), refuse the program if its scratch memory is over ``max_bytes``,
        else its bounded steps."""
        leaves = {leaf.redis_key: leaf for leaf in self.leaves()}
        lengths = self._lengths(list(leaves))
        gone = [
            leaves[key] for key, length in lengths.items() if not length and leaves[key].derived
        ]
        for leaf in gone:
            self.client.materialize(leaf)
        lengths.update(self._lengths([leaf.redis_key for leaf in gone]))
        compiled = program.compile_term(self.term, lengths, self.universe_key, self.scratch_prefix)
        program.check_cost(compiled, self.max_bytes)
        self._registers = compiled.registers
        return program.steps(compiled, self.redis_key, ttl)

    def build_into(self, lengths: Mapping[str, int], into: str, ttl: int) -> Build | None:
        """The program's commands into ``into``, from the caller's ``lengths`` of the keys read
        (one measure for every segment of a report), after refusing it if its scratch memory is
        over ``max_bytes``; ``None`` when a leaf is derived (a year: it may be gone by then, so
        ``steps`` computes it again first)."""
        if any(leaf.derived for leaf in self.leaves()):
            return None
        known = {leaf.redis_key: lengths.get(leaf.redis_key, 0) for leaf in self.leaves()}
        compiled = program.compile_term(self.term, known, self.universe_key, self.scratch_prefix)
        program.check_cost(compiled, self.max_bytes)
        return Build(program.commands_into(compiled, into, ttl), list(compiled.registers))

    def _lengths(self, keys: list[str]) -> dict[str, int]:
        """``STRLEN`` of each key (0: missing), in one round trip."""
        return self.client.key_lengths(keys)

    def scratch_keys(self) -> list[str]:
        return list(self._registers)

    def build(self, pipe: program.Pipeline, ttl: int) -> None:
        for step in self.steps(ttl):
            step(pipe)


class _Builder:
    def __init__(self, client: BitCore, period: Period, resolve: Resolver) -> None:
        self.client = client
        self.period = period
        self.resolve = resolve
        self.leaves = 0
        self.stack: list[str] = []

    def leaf(self) -> None:
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            raise SegmentTooLarge(_too_many_leaves())

    def build(self, node: Node) -> program.Term:
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
            return program.Negation(self.build(node.operand))
        return program.Combination(node.op, tuple(self.build(child) for child in node.operands))


def evaluate(
    node: Node,
    client: BitCore,
    period: Period,
    resolve: Resolver,
    *,
    name: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    compute: bool = True,
) -> Bitmap:
    """The users matching ``node`` in ``period``; ``resolve`` turns a segment name into its AST.

    ``name`` is the segment being evaluated, if any, so a reference back to it is reported as a
    cycle. ``max_bytes`` bounds the scratch memory (``SegmentTooCostly`` above it; ``None``: no
    bound). The result is computed before it is returned, as bitmapist's bit operations are,
    unless ``compute`` is false (nothing is written then: for ``client.count_once``, which counts
    and deletes in one go).
    """
    builder = _Builder(client, period, resolve)
    if name is not None:
        builder.stack.append(name)
    term = builder.build(node)
    if isinstance(term, Bitmap):
        return term
    bitmap = SegmentBitmap(client, term, max_bytes)
    if compute:
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
