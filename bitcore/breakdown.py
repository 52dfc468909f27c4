"""Compare and break down: a report restricted to each of a few groups of users, side by side.

A group is a saved segment (``segment:ios``: its users in each period the report reads) or a
dateless flag (``flag:premium``, also written ``unique:premium``: the same users in every period).
The cohort, funnel, lifecycle and stickiness reports take up to ``MAX_GROUPS`` of them and answer
one result for all users and one per group, all read in the same round trips: each group is one
more bitmap per period (or one for a flag) among the keys the report reads, ANDed in numpy (or in
the cohort engine's plan of sets). A segment's bitmaps (every period's, every segment's) are
built by the report's read in a few pipelines, not one period at a time (``prepare``).

>>> [g.token for g in parse_groups(["segment:ios", "unique:premium", "flag:premium"])]
['segment:ios', 'flag:premium']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bitcore import reading
from bitcore.segments import SegmentStore
from bitcore.selections import Selection

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.client import BitCore
    from bitcore.periods import Period

#: The most groups one report compares.
MAX_GROUPS = 5
#: How a group is written: ``unique:`` is another name for ``flag:`` (bitmapist's unique events).
PREFIXES = ("segment", "flag", "unique")


class GroupError(ValueError):
    """A breakdown that cannot be made: too many groups, or one that is not a segment or flag."""


@dataclass(frozen=True)
class Group:
    """One group: ``by`` as it was asked for (``unique:premium``), ``selection`` what it is."""

    by: str
    selection: Selection

    @property
    def token(self) -> str:
        return self.selection.token

    @property
    def label(self) -> str:
        return self.selection.label

    def bitmap(self, client: BitCore, period: Period) -> Bitmap:
        """The group's users in ``period`` (a flag's, whatever the period)."""
        return self.selection.bitmap(client, period)


@dataclass(frozen=True)
class Prepared:
    """A group with its bitmaps in the periods a report reads made up front (``prepare``): a
    step source (``token``, ``label``, ``bitmap``) answering those periods from them."""

    group: Group
    made: Mapping[Period, Bitmap]

    @property
    def token(self) -> str:
        return self.group.token

    @property
    def label(self) -> str:
        return self.group.label

    def bitmap(self, client: BitCore, period: Period) -> Bitmap:
        found = self.made.get(period)
        return found if found is not None else self.group.bitmap(client, period)


def prepare(client: BitCore, groups: Sequence[Group], many: Sequence[Period]) -> list[Prepared]:
    """Each of ``groups`` with its bitmap in each of ``many``: every segment's definition read in
    one round trip, and its results left to the report's read (``bitcore.reading.opened``), which
    builds all of them, every period's, in a few pipelines of bounded work."""
    names = [g.selection.name for g in groups if g.selection.kind == "segment"]
    rows = iter(SegmentStore(client).bitmaps_of(names, many, compute=False) if names else [])
    prepared = []
    for group in groups:
        if group.selection.kind == "segment":
            bitmaps = next(rows)
        else:
            bitmaps = [group.bitmap(client, period) for period in many]
        prepared.append(Prepared(group, dict(zip(many, bitmaps, strict=True))))
    return prepared


def prepare_sources(client: BitCore, sources: Sequence[Any], many: Sequence[Period]) -> list[Any]:
    """``sources`` (a report's steps or groups) with each group and each saved segment among them
    (a ``Group``, a ``Selection`` of kind ``segment``) ``prepare``-d in each of ``many``: every
    definition read in one round trip, every result built by the report's read. Other sources
    are kept as they are."""

    def group_of(source: Any) -> Group | None:
        if isinstance(source, Group):
            return source
        if isinstance(source, Selection) and source.kind == "segment":
            return Group(source.token, source)
        return None

    groups = [group_of(source) for source in sources]
    prepared = iter(prepare(client, [g for g in groups if g is not None], many))
    return [s if g is None else next(prepared) for s, g in zip(sources, groups, strict=True)]


def readers(client: BitCore, sources: Sequence[Any] = ()) -> list[BitCore]:
    """Who computes a report over ``sources`` (its steps and groups): the client itself on the
    flat layout; on the sharded layout each shard's view (``BitCore.shard_view``), which reads
    that shard's keys and builds its segments in that shard's slot, so a report is each view's
    added up (a user is in one shard). With no shard in use there is nothing to add, but a
    source naming no saved segment is refused all the same (``SegmentNotFound``, one round
    trip), as on the flat layout."""
    if client.layout == "flat":
        return [client]
    views = client.shard_views()
    if not views:
        prepare_sources(client, sources, [])
    return views


Plan = TypeVar("Plan")
Counted = TypeVar("Counted")


def each_reader(
    client: BitCore,
    sources: Sequence[Any],
    prepare: Callable[[BitCore, int], Plan],
    reads: Callable[[Plan], tuple[Sequence[str], Mapping[str, Bitmap]]],
    count: Callable[[BitCore, Plan, reading.Measured | None, int | None], Counted],
    max_bytes: int | None,
) -> list[Counted]:
    """A report's counts from each of ``readers``, for the caller to add up: on the flat layout
    ``count(client, prepare(client, 0), None, max_bytes)``; on the sharded layout every shard in
    use, shards of different nodes at once, ``max_bytes`` checked on all shards' bytes before
    any is read (``reading.across_shards``, which ``reads`` names the keys for); no shard in
    use: nothing (a source naming no saved segment refused all the same)."""
    if client.layout == "flat":
        return [count(client, prepare(client, 0), None, max_bytes)]
    if not readers(client, sources):
        return []
    return reading.across_shards(
        client, prepare, reads, lambda view, made, measured: count(view, made, measured, None),
        max_bytes,
    )  # fmt: skip


def prefetched(
    client: BitCore,
    tokens: Sequence[str],
    many: Sequence[Period],
    resolve: Callable[[str, Period], Bitmap | None] | None = None,
) -> Callable[[str, Period], Bitmap | None]:
    """A resolver (the cohort engine's) that answers each group token of ``tokens`` in each
    of ``many`` from bitmaps made up front (``prepare``), and anything else as ``resolve``
    does (``None``: the default)."""
    prepared = prepare(client, [parse_group(token) for token in tokens], many)
    known = {
        (token, period): bitmap
        for token, group in zip(tokens, prepared, strict=True)
        for period, bitmap in group.made.items()
    }

    def answer(token: str, period: Period) -> Bitmap | None:
        found = known.get((token, period))
        if found is None and resolve is not None:
            return resolve(token, period)
        return found

    return answer


def parse_group(text: str) -> Group:
    """``segment:<name>``, ``flag:<name>`` or ``unique:<name>`` as a ``Group``; anything else is
    a ``GroupError`` saying what a group is."""
    by = text.strip()
    head, sep, name = by.partition(":")
    if not sep or head not in PREFIXES or not name:
        raise GroupError(
            f"{by[:60]!r} is not a group: write segment:<name> or flag:<name> (unique:<name>)"
        )
    return Group(by, Selection("segment" if head == "segment" else "flag", name))


def parse_groups(values: Iterable[str]) -> list[Group]:
    """The groups of ``values`` in order, blanks skipped and repeats (the same segment or flag)
    once; more than ``MAX_GROUPS`` is a ``GroupError``."""
    groups: dict[str, Group] = {}
    for value in values:
        if value and value.strip():
            group = parse_group(value)
            groups.setdefault(group.token, group)
    if len(groups) > MAX_GROUPS:
        raise GroupError(f"a report compares at most {MAX_GROUPS} groups, got {len(groups)}")
    return list(groups.values())
