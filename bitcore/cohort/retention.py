"""Retention "on or after" (Amplitude's and Mixpanel's default, also called unbounded): column k of
cohort t counts its members who did the return selections in period t + k or in any later period
up to the current one, where bitmapist's "on" counts period t + k alone.

A cell's return set is then a union of every later period's, so a table needs only one union per
period, each the previous (later) one ORed with one more period: suffix ORs, one bitwise OR of two
rows per period over the fetched words (``suffix_words``) or one ``BITOP OR`` per period on the
server (``bitcore.cohort.server``), never a union rebuilt per cell. The plan (``Plan.suffix``) lists
the per-period return sets in period order, from the table's first period to the current one;
set number ``len(plan.sets) + j`` stands for the union of ``plan.suffix[j:]``. Periods after the
current one keep their own return set (nobody has done anything in them yet).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from bitcore import periods

if TYPE_CHECKING:
    from bitcore.cohort.engine import Plan

Retention = Literal["on", "on_or_after"]
RETENTIONS: tuple[Retention, ...] = ("on", "on_or_after")
#: Periods an on-or-after table may read beyond its own columns, up to the current period (a
#: table of days that starts years ago reads every day since: ten years at most), more is a
#: ``ValueError``.
MAX_PERIODS_AFTER = 3660


def check_retention(retention: str) -> Retention:
    if retention not in RETENTIONS:
        raise ValueError(f"retention must be one of {RETENTIONS}, got {retention!r}")
    return retention  # type: ignore[return-value]


def reach(first: periods.Period, covered: int, current: periods.Period) -> int:
    """How many periods from ``first`` to ``current`` an on-or-after table unites (0 when
    ``current`` is before ``first``), of which ``covered`` are its own; ``ValueError`` when the
    rest is more than ``MAX_PERIODS_AFTER``."""
    count = periods.count_between(first, current)
    if count - covered > MAX_PERIODS_AFTER:
        raise ValueError(
            f"on-or-after retention reads every {first.kind} up to the current one, and this "
            f"table ends {count - covered:,} {first.kind}s before it: at most "
            f"{MAX_PERIODS_AFTER:,}. Ask for later cohorts."
        )
    return count


def suffix_key(j: int) -> str:
    """The name of union ``j`` among a table's sources: a row of the words array, never a key in
    Redis (a NUL byte is in no key the library writes)."""
    return f"\x00suffix:{j}"


def flattened(plan: Plan) -> tuple[Plan, list[str]]:
    """``plan`` with each union one more set of one source (``suffix_key``), as counting reads it,
    and those sources."""
    extra = [suffix_key(j) for j in range(len(plan.suffix))]
    sets = [*plan.sets, *(((key,),) for key in extra)]
    return dataclasses.replace(plan, sets=sets, set_index={}, suffix=[]), extra


def suffix_words(
    plan: Plan, sources: Sequence[str], words: np.ndarray, lengths: Sequence[int]
) -> list[int]:
    """Fill the rows of ``words`` after its sources' (one row per source, this slice of each;
    ``reading.read_words`` with ``extra_rows``) with the unions of ``plan.suffix``, from the last
    period back, each its own set ORed with the next (later) union; returns every row's length.

    Each union is one pass over its row and a set of one key (the usual) is read where it lies:
    building every set first, a copy of each key row and of the whole array made this the
    largest part of an on-or-after table at 10M users (8 of 26 ms)."""
    row = {key: k for k, key in enumerate(sources)}
    base = len(sources)
    width = words.shape[1]
    operand = np.empty(width, dtype=np.uint64)
    union_lengths = [0] * len(plan.suffix)
    later: np.ndarray | None = None
    for j in range(len(plan.suffix) - 1, -1, -1):
        target = words[base + j]
        longest = []
        for o, keys in enumerate(plan.sets[plan.suffix[j]]):
            rows = [row[key] for key in keys]
            into = target if o == 0 else operand
            if len(rows) == 1:
                np.copyto(into, words[rows[0]])
            else:
                np.bitwise_or(words[rows[0]], words[rows[1]], out=into)
                for k in rows[2:]:
                    np.bitwise_or(into, words[k], out=into)
            if o:
                np.bitwise_and(target, operand, out=target)
            longest.append(max(lengths[k] for k in rows))
        union_lengths[j] = min(longest)
        if later is not None:
            np.bitwise_or(target, later, out=target)
            union_lengths[j] = max(union_lengths[j], union_lengths[j + 1])
        later = target
    return [*lengths, *union_lengths]


def server_unions(
    plan: Plan, set_keys: list[str], scratch: Callable[[], str]
) -> list[tuple[str, ...]]:
    """The ``BITOP OR`` commands that build the unions on Redis from the built sets'
    ``set_keys`` (from the last period back, each one OR of two keys), appending each union's key
    to ``set_keys``; ``scratch()`` names a new temporary key."""
    commands: list[tuple[str, ...]] = []
    keys: list[str] = []
    for s in reversed(plan.suffix):
        if not keys:
            keys.append(set_keys[s])
            continue
        keys.append(scratch())
        commands.append(("BITOP", "OR", keys[-1], set_keys[s], keys[-2]))
    set_keys += reversed(keys)
    return commands
