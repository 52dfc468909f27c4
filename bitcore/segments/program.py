"""A segment expression as a short program of BITOPs over a few scratch keys ("registers").

Computing every node of an expression into a key of its own (as nested ``BitOpAnd``/``BitOpNot``
objects do) costs one universe-sized key per node: 20 NOTs over a 16 MiB universe were 820 MiB.
Here the expanded expression is compiled, Sethi-Ullman style, into commands that reuse registers:
the children needing most registers are computed first, so ``~a & ~b & ... & ~t`` needs 2
registers and any expression of ``n`` events at most about ``log2(n) + 1``. Before anything is
computed, the key lengths (``STRLEN``) give the scratch memory the program will take; over the
caller's limit, it is refused with ``SegmentTooCostly`` before a single byte is written.

The commands are sent in steps of bounded work (``STEP_BYTES`` of bitmap bytes walked by BITOP), so
no single round trip holds Redis for long; the registers are private to one run (a random name),
have a TTL from their first write, and are deleted by the last step, which renames register 0 to the
result key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bitcore.segments.errors import SegmentTooCostly

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bitcore.bitmaps import Bitmap

#: Bitmap bytes the BITOPs of one round trip may walk (BITOP walks sources x longest source):
#: Redis walks them at about 1 GB/s (``bench/README.md``, "Numbers behind the constants"), so a
#: step holds Redis for a few tens of milliseconds. One BITOP over two keys longer than half of
#: this is sent alone (it cannot be split).
STEP_BYTES = 32 << 20

Step = Callable[["Pipeline"], None]


@dataclass(frozen=True, eq=False)
class Negation:
    """Users in the universe and not in ``operand``."""

    operand: Term


@dataclass(frozen=True, eq=False)
class Combination:
    """``op`` (AND, OR, XOR) over two or more operands."""

    op: str
    operands: tuple[Term, ...]


#: An expanded expression: stored bitmaps (events, unique events) at the leaves.
Term = Any  # Bitmap | Negation | Combination (a recursive alias mypy cannot check at runtime)


def leaves(term: Term) -> Iterator[Bitmap]:
    """The bitmaps ``term`` reads, in order (repeats included)."""
    if isinstance(term, Negation):
        yield from leaves(term.operand)
    elif isinstance(term, Combination):
        for operand in term.operands:
            yield from leaves(operand)
    else:
        yield term


def has_negation(term: Term) -> bool:
    if isinstance(term, Negation):
        return True
    if isinstance(term, Combination):
        return any(has_negation(operand) for operand in term.operands)
    return False


def canonical(term: Term) -> str:
    """Text naming ``term`` by its keys: equal text, equal result (for a result key's name)."""
    if isinstance(term, Negation):
        return f"~({canonical(term.operand)})"
    if isinstance(term, Combination):
        return f"{term.op}(" + ",".join(canonical(o) for o in term.operands) + ")"
    return repr(term.redis_key)


def digest(term: Term, universe_key: str) -> str:
    """A short stable name for ``term`` over ``universe_key`` (key names stay short however long
    the expression is)."""
    text = f"{universe_key}\n{canonical(term)}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass
class Program:
    """BITOP commands (``args`` after ``BITOP``) with the bytes each walks, and the registers."""

    registers: list[str]
    commands: list[tuple[tuple[str, ...], int]] = field(default_factory=list)
    #: the longest value each register holds
    sizes: list[int] = field(default_factory=list)

    @property
    def scratch_bytes(self) -> int:
        """Peak scratch memory: every register at its longest, plus one BITOP's result buffer."""
        return sum(self.sizes) + max(self.sizes, default=0)


class _Compiler:
    def __init__(self, lengths: Mapping[str, int], universe_key: str, run: str) -> None:
        self.lengths = lengths
        self.universe_key = universe_key
        self.run = run
        self.program = Program(registers=[])
        self.needs: dict[int, int] = {}

    def register(self, index: int) -> str:
        while len(self.program.registers) <= index:
            self.program.registers.append(f"{self.run}-r{len(self.program.registers)}")
            self.program.sizes.append(0)
        return self.program.registers[index]

    def need(self, term: Term) -> int:
        """Registers ``term`` needs (1 for a leaf or a NOT of one)."""
        known = self.needs.get(id(term))
        if known is not None:
            return known
        if isinstance(term, Negation):
            needed = self.need(term.operand)
        elif isinstance(term, Combination):
            subs = sorted((self.need(o) for o in term.operands if _is_compound(o)), reverse=True)
            needed = max([1, *(n + i for i, n in enumerate(subs[:2]))])
        else:
            needed = 1
        self.needs[id(term)] = needed
        return needed

    def into(self, term: Term, index: int) -> None:
        """Emit commands leaving ``term``'s users in register ``index`` (using those above it)."""
        dest = self.register(index)
        if isinstance(term, Negation):
            operand = term.operand
            source = operand.redis_key if not _is_compound(operand) else None
            if source is None:
                self.into(operand, index)
                source = dest
            self.bitop("AND", index, [self.universe_key, source])
            self.bitop("XOR", index, [self.universe_key, dest])
        elif isinstance(term, Combination):
            subs = sorted(
                (o for o in term.operands if _is_compound(o)), key=self.need, reverse=True
            )
            keys = [o.redis_key for o in term.operands if not _is_compound(o)]
            if subs:
                self.into(subs[0], index)
                for sub in subs[1:]:
                    self.into(sub, index + 1)
                    self.bitop(term.op, index, [dest, self.register(index + 1)])
                keys = [dest, *keys] if keys else []
            self.bitop(term.op, index, keys)
        else:
            self.bitop("OR", index, [term.redis_key])

    def bitop(self, op: str, index: int, sources: list[str]) -> None:
        """``BITOP op`` into register ``index``, split so each command walks at most
        ``STEP_BYTES`` (always at least two sources, or the one there is)."""
        if not sources:
            return
        dest = self.register(index)
        length = max(self.length(s) for s in sources)
        per_command = max(2, STEP_BYTES // max(length, 1))
        first, rest = sources[:per_command], sources[per_command:]
        self.emit(op, index, first)
        while rest:
            chunk, rest = rest[: per_command - 1], rest[per_command - 1 :]
            self.emit(op, index, [dest, *chunk])

    def emit(self, op: str, index: int, sources: list[str]) -> None:
        length = max(self.length(s) for s in sources)
        self.program.commands.append(((op, self.register(index), *sources), length * len(sources)))
        self.program.sizes[index] = max(self.program.sizes[index], length)

    def length(self, key: str) -> int:
        if key in self.program.registers:
            return self.program.sizes[self.program.registers.index(key)]
        return self.lengths.get(key, 0)


def _is_compound(term: Term) -> bool:
    return isinstance(term, Negation | Combination)


def compile_term(
    term: Term, lengths: Mapping[str, int], universe_key: str, scratch_prefix: str
) -> Program:
    """The program computing ``term`` into its first register (``<scratch_prefix><run>-r0``);
    ``lengths`` are the byte lengths of the keys it reads (missing: empty)."""
    compiler = _Compiler(lengths, universe_key, f"{scratch_prefix}{uuid.uuid4().hex}")
    compiler.into(term, 0)
    return compiler.program


def check_cost(program: Program, max_bytes: int | None) -> None:
    """Refuse ``program`` if its scratch memory is over ``max_bytes`` (``None``: no limit)."""
    if max_bytes is not None and program.scratch_bytes > max_bytes:
        raise SegmentTooCostly(program.scratch_bytes, max_bytes)


def steps(program: Program, result_key: str, ttl: int) -> list[Step]:
    """Round trips running ``program``: bounded BITOP batches (each register written gets a TTL, so
    a crash leaks nothing for long), then one that renames register 0 to
    ``result_key`` with ``ttl`` and deletes the other registers (``_finish``)."""
    batches: list[list[tuple[str, ...]]] = [[]]
    walked = 0
    for args, cost in program.commands:
        if batches[-1] and walked + cost > STEP_BYTES:
            batches.append([])
            walked = 0
        batches[-1].append(args)
        walked += cost

    def batch_step(batch: list[tuple[str, ...]]) -> Step:
        def run(pipe: Pipeline) -> None:
            for op, dest, *sources in batch:
                pipe.bitop(op, dest, *sources)
            for key in sorted({args[1] for args in batch}):
                pipe.expire(key, ttl)

        return run

    return [*(batch_step(b) for b in batches if b), _finish(program, result_key, ttl)]


def commands_into(program: Program, result_key: str, ttl: int) -> list[tuple[Step, int]]:
    """``program`` as commands for a caller that queues many programs in a few pipelines of its
    own (a report comparing segments over many periods), each with the bitmap bytes it walks so
    the caller can cut its pipelines: every BITOP with a TTL on its register at once (a pipeline
    cut short leaks nothing for long), then the rename of register 0 to ``result_key`` (walking
    nothing), as ``steps`` ends."""

    def bitop(args: tuple[str, ...]) -> Step:
        op, dest, *sources = args

        def run(pipe: Pipeline) -> None:
            pipe.bitop(op, dest, *sources)
            pipe.expire(dest, ttl)

        return run

    commands = [(bitop(args), cost) for args, cost in program.commands]
    return [*commands, (_finish(program, result_key, ttl), 0)]


def _finish(program: Program, result_key: str, ttl: int) -> Step:
    """The last step: register 0 renamed to ``result_key`` with ``ttl``, the others deleted (an
    empty result is an empty string: the key exists, so a read does not take it for an expired
    one)."""

    def finish(pipe: Pipeline) -> None:
        first, *others = program.registers
        pipe.append(first, "")  # a BITOP whose result is empty deletes its key: RENAME needs one
        pipe.rename(first, result_key)
        pipe.expire(result_key, ttl)
        if others:
            pipe.unlink(*others)

    return finish
