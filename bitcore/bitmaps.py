"""What every set of users has in common: one Redis string whose bit N says whether user N is in it.

``Bitmap`` gives events and bit-operation results one read API (``len``, ``in``, iteration,
``&``, ``|``, ``^``, ``~``, equality by key). Redis I/O goes through the owning ``BitCore`` client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bitcore.bitops import BitOpAnd, BitOpNot, BitOpOr, BitOpXor
    from bitcore.client import BitCore

#: Bytes fetched per GETRANGE while iterating: 1 MiB holds 8,388,608 ids, so a full 2**32 bitmap
#: (512 MiB) streams through bounded memory instead of one giant GET.
ITER_CHUNK_BYTES = 1 << 20


def set_bits(chunk: bytes, first_id: int = 0) -> list[int]:
    """Ids of the set bits in ``chunk``, ascending (Redis bit order: byte 0's high bit is id 0).

    numpy unpacks the bytes in C, so a million members cost milliseconds, not a Python loop per bit.
    An all-zero chunk (the empty stretch below the lowest id) is skipped without unpacking, and the
    bits are searched as booleans, which numpy scans several times faster than bytes.

    >>> set_bits(bytes([0b1000_0001, 0, 0b0100_0000]), first_id=8)
    [8, 15, 25]
    """
    packed = np.frombuffer(chunk, dtype=np.uint8)
    if not packed.any():
        return []
    ids = np.flatnonzero(np.unpackbits(packed).view(np.bool_))
    if first_id:
        ids += first_id
    return ids.tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Build:
    """How a report computes a derived bitmap into a key of its own alongside others', in a few
    shared pipelines (``bitcore.reading.opened``): ``commands`` to queue in order, each with the
    bitmap bytes it walks (so the pipelines can be cut where their work would hold Redis too
    long), and the ``scratch`` keys they write along the way (deleted if anything fails)."""

    commands: list[tuple[Callable[[Pipeline], None], int]]
    scratch: list[str]


class Bitmap:
    """A set of user ids stored as one Redis bitmap under ``redis_key``.

    Subclasses set ``client``, ``system`` and ``redis_key``; derived bitmaps (bit-op results, years)
    also override ``derived``, ``build`` and ``leaves``.
    """

    client: BitCore
    system: Any
    redis_key: str
    derived = False
    #: The client a class is bound to (``b.MonthEvents``, made by ``BitCore``); None when unbound.
    _bound_client: ClassVar[BitCore | None] = None
    #: How the unbound classes (``bitcore.MonthEvents``) find the client of ``system=`` (a name, a
    #: redis client or pipeline, a ``BitCore``): the facade's registry, which ``bitcore.systems``
    #: installs here when ``bitcore`` is imported. Set from above, so nothing here imports it.
    system_resolver: ClassVar[Callable[[Any], BitCore] | None] = None

    # --- how the key comes to exist (only derived bitmaps build anything)

    def build(self, pipe: Pipeline, ttl: int) -> None:
        """Queue the commands that (re)compute this key, expiring in ``ttl`` s; events need none."""

    def steps(self, ttl: int) -> list[Callable[[Pipeline], None]]:
        """The round trips that (re)compute this key, in order: ``build`` in one, unless a subclass
        splits a long computation (a segment) so no round trip holds Redis for long. The client
        runs them; the last one is a MULTI/EXEC that also carries the read that needs the key."""
        return [lambda pipe: self.build(pipe, ttl)]

    def build_into(self, lengths: Mapping[str, int], into: str, ttl: int) -> Build | None:
        """The commands computing this bitmap into the key ``into`` (expiring in ``ttl`` s), given
        the byte ``lengths`` of its ``leaves`` measured by the caller, or ``None`` when this kind
        is computed when made instead (then the caller renames its key): a segment answers, after
        refusing itself if it is too costly, so nothing is written before every one is checked."""
        return None

    def scratch_keys(self) -> list[str]:
        """Keys the last ``steps`` write only along the way: deleted by the client if a step fails
        (Redis out of memory, say), so a failure gives back what it took at once."""
        return []

    def leaves(self) -> Iterator[Bitmap]:
        """The stored (non-derived) bitmaps this one is computed from; itself when it is stored."""
        yield self

    # --- reads

    def get_count(self) -> int:
        """Number of members (``BITCOUNT``)."""
        return int(self.client.read(self, "BITCOUNT"))

    def __len__(self) -> int:
        return self.get_count()

    def __contains__(self, uuid: object) -> bool:
        """Whether ``uuid`` is a member. Something that cannot be a user id (a negative number, a
        string, ``2**32``; with the id map an id never seen) is simply not a member, where
        bitmapist would let Redis raise."""
        offset = self.client.member_offset(uuid)
        if offset is None:
            return False
        return bool(self.client.read(self, "GETBIT", offset))

    def has_events_marked(self) -> bool:
        return self.get_count() > 0

    def get_uuids(self) -> Iterator[int | str]:
        """Member ids, streamed from Redis in ``ITER_CHUNK_BYTES`` slices: ascending ints, or
        with the id map the external ids (in the order of their internal ids)."""
        return self.client.iter_external(self)

    def __iter__(self) -> Iterator[int | str]:
        return self.get_uuids()

    def delete(self) -> None:
        """Delete this bitmap's key (for events: forget every mark of this period)."""
        self.client.delete_bitmap(self)

    # --- identity: two bitmaps are equal when they name the same key, as in bitmapist

    def __eq__(self, other: object) -> bool:
        other_key = getattr(other, "redis_key", None)
        if other_key is None:
            return NotImplemented
        return self.redis_key == other_key

    def __hash__(self) -> int:
        return hash(self.redis_key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.redis_key}>"

    # --- set algebra

    def __and__(self, other: Bitmap) -> BitOpAnd:
        return self.client.BitOpAnd(self, other)

    def __or__(self, other: Bitmap) -> BitOpOr:
        return self.client.BitOpOr(self, other)

    def __xor__(self, other: Bitmap) -> BitOpXor:
        return self.client.BitOpXor(self, other)

    def __invert__(self) -> BitOpNot:
        return self.client.BitOpNot(self)
