"""First-time bitmaps in the one writer's script: what its first-time section carries.

The writer keeps, per event, an "ever" set (``KeyLayout.ever_key``) and first-time bitmaps per
period (``KeyLayout.first_time_key``). A mark sets the user's bit in the ever set; ``SETBIT``
answers the old bit, and where it was 0 this is the user's first time, so the script sets the
same bit in the mark's first-time keys (hour when tracked, day, week, month). The check and the
conditional write happen in one script call, so they are one atomic step and one round trip.

This module turns planned first-time writes into the script's arguments: the extra KEYS (checked
for type and counted in the write's allocation estimate like every bitmap, as if every candidate
were a first time) and groups of ``(indexes of ever key and first-time keys, packed offsets)``.

>>> writes = FirstTimeWrites.of({"e": {("f1", "f2"): {3, 1}}}, plain_keys=2)
>>> writes.keys, writes.bits, writes.tail()
(['e', 'f1', 'f2'], 6, [b'3', b'9 10 11', b'\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x01'])
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: ``{ever key: {first-time keys: offsets}}``: each offset's bit is set in the ever key and, where
#: that bit was 0 (the user's first time), in the first-time keys.
Firsts = Mapping[str, Mapping[tuple[str, ...], Collection[Any]]]
#: Candidate offsets one script call takes at most (each costs up to five ``SETBIT`` calls in
#: Lua): Redis is held for a few milliseconds, not more.
MAX_FIRST_TIMES_PER_CALL = 20_000
#: KEYS before a call's bitmaps (the gate's quota, bytes, names counters, the registry, the id
#: map's epoch and the request's once key): ``bulk._HEAD_KEYS``, which
#: ``tests/library/test_first_time.py`` checks it equals.
HEAD_KEYS = 6


def packed(offsets: Collection[int]) -> bytes:
    """Offsets as 4-byte big-endian integers, highest first (the gate's format)."""
    ordered = sorted(offsets, reverse=True)
    return struct.pack(f">{len(ordered)}I", *ordered)


@dataclass(frozen=True)
class FirstTimeWrites:
    """One write's first-time groups, laid out after its ``plain_keys`` plain bitmaps."""

    groups: list[tuple[tuple[str, ...], Collection[int]]]  # (ever key, *first-time keys), offsets
    keys: list[str]  # every ever and first-time key, once
    plain_keys: int

    @classmethod
    def of(cls, firsts: Firsts, plain_keys: int) -> FirstTimeWrites:
        groups = [
            ((ever, *targets), offsets)
            for ever, by_targets in firsts.items()
            for targets, offsets in by_targets.items()
            if offsets
        ]
        keys = list(dict.fromkeys(key for group, _ in groups for key in group))
        return cls(groups, keys, plain_keys)

    @property
    def bits(self) -> int:
        """Bits the groups may set: every candidate in the ever key and its first-time keys."""
        return sum(len(group) * len(offsets) for group, offsets in self.groups)

    def candidates(self) -> dict[str, set[int]]:
        """Per key, the offsets that may be set in it (for the allocation estimate)."""
        found: dict[str, set[int]] = {key: set() for key in self.keys}
        for group, offsets in self.groups:
            for key in group:
                found[key].update(offsets)
        return found

    def packed_candidates(self) -> list[bytes]:
        return [packed(offsets) for offsets in self.candidates().values()]

    def packed_highest(self) -> list[bytes]:
        return [packed((max(offsets),)) for offsets in self.candidates().values()]

    def tail(self) -> list[bytes]:
        """The script's first-time section (empty when there is nothing to write)."""
        if not self.groups:
            return []
        return self._section(self.groups, {key: i for i, key in enumerate(self.keys)})

    def _section(
        self, groups: list[tuple[tuple[str, ...], Collection[int]]], index: Mapping[str, int]
    ) -> list[bytes]:
        base = HEAD_KEYS + self.plain_keys + 1  # Lua's index of the first first-time key
        section = [str(len(index)).encode()]
        for group, offsets in groups:
            section.append(" ".join(str(base + index[key]) for key in group).encode())
            section.append(packed(offsets))
        return section

    def chunk_calls(self, limit: int) -> Iterator[tuple[list[str], list[bytes]]]:
        """``(keys, args after the gate's head)`` of calls that only set first-time bits, at most
        ``limit`` candidate offsets each (a group may span calls): the bitmaps' offsets are
        empty (already checked and counted), then the first-time section."""
        chunk: list[tuple[tuple[str, ...], Collection[int]]] = []
        room = limit
        for group, offsets in self.groups:
            rest = sorted(offsets)
            while rest:
                part, rest = rest[:room], rest[room:]
                chunk.append((group, part))
                room -= len(part)
                if room == 0:
                    yield self._call(chunk)
                    chunk, room = [], limit
        if chunk:
            yield self._call(chunk)

    def _call(
        self, chunk: list[tuple[tuple[str, ...], Collection[int]]]
    ) -> tuple[list[str], list[bytes]]:
        keys = list(dict.fromkeys(key for group, _ in chunk for key in group))
        alone = FirstTimeWrites(chunk, keys, 0)
        return keys, [b""] * len(keys) + alone._section(chunk, {k: i for i, k in enumerate(keys)})
