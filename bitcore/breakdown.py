"""Compare and break down: a report restricted to each of a few groups of users, side by side.

A group is a saved segment (``segment:ios``: its users in each period the report reads) or a
dateless flag (``flag:premium``, also written ``unique:premium``: the same users in every period).
The cohort, funnel, lifecycle and stickiness reports take up to ``MAX_GROUPS`` of them and answer
one result for all users and one per group, all read in the same round trips: each group is one
more bitmap per period (or one for a flag) among the keys the report reads, ANDed in numpy (or in
the cohort engine's plan of sets).

>>> [g.token for g in parse_groups(["segment:ios", "unique:premium", "flag:premium"])]
['segment:ios', 'flag:premium']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    def bitmaps(self, client: BitCore, many: Sequence[Period]) -> list[Bitmap]:
        """The group's users in each of ``many``: a segment's definition read once and each
        distinct result computed once (``SegmentStore.bitmaps``)."""
        if self.selection.kind == "segment":
            return SegmentStore(client).bitmaps(self.selection.name, many)
        return [self.selection.bitmap(client, period) for period in many]


def prefetched(
    client: BitCore,
    tokens: Sequence[str],
    many: Sequence[Period],
    resolve: Callable[[str, Period], Bitmap | None] | None = None,
) -> Callable[[str, Period], Bitmap | None]:
    """A resolver (the cohort engine's) that answers each group token of ``tokens`` in each
    of ``many`` from bitmaps made up front (``Group.bitmaps``), and anything else as
    ``resolve`` does (``None``: the default)."""
    known: dict[tuple[str, Period], Bitmap] = {}
    for token in tokens:
        group = parse_group(token)
        known.update(zip(((token, p) for p in many), group.bitmaps(client, many), strict=True))

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
