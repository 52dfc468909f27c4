"""Clients with the id map off, and on once ``BitCore`` takes ``id_mapping`` (issue 16's id map).

Tests of drill-down and erasure take the ``mapped_bc`` fixture (tests/conftest.py), which runs
them once per entry of ``MAPPINGS``: the map off always; on as well as soon as the client offers
it, with no edit to the tests. ``external(i, mapping)`` is the external id a test gives user
``i``: the integer itself without a map, a string id with one, so the oracles (Python sets of
external ids) hold either way.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import redis
from cluster_support import layout_client

from bitcore import BitCore

#: ``False``, and ``True`` when this ``BitCore`` can map ids.
MAPPINGS: list[bool] = [False] + (
    [True] if "id_mapping" in inspect.signature(BitCore.__init__).parameters else []
)


def external(i: int, mapping: bool) -> int | str:
    """User ``i``'s external id: ``i`` without a map, ``"usr_<i in hex>"`` with one."""
    return f"usr_{i:x}" if mapping else i


@dataclass(frozen=True)
class MappedClient:
    """A client on the emptied test Redis, and whether it maps ids."""

    bc: BitCore
    mapping: bool

    def ext(self, i: int) -> int | str:
        return external(i, self.mapping)


#: ``(layout, mapping)``: what a test of every layout (``all_layouts``) runs with; the id map on
#: the flat layout only (flat until by=/first-time/id map land on sharded).
LAYOUT_MAPPINGS: list[tuple[str, bool]] = [("flat", m) for m in MAPPINGS] + [
    ("sharded", False),
    ("cluster", False),
]


def layout_mapping_id(pair: tuple[str, bool]) -> str:
    """``flat``, ``flat-mapped``, ``sharded``, ``cluster``: a test id of ``LAYOUT_MAPPINGS``."""
    layout, mapping = pair
    return f"{layout}-mapped" if mapping else layout


#: The test ids of ``LAYOUT_MAPPINGS``, in order.
LAYOUT_MAPPING_IDS = [layout_mapping_id(pair) for pair in LAYOUT_MAPPINGS]


def make_client(
    redis_client: redis.Redis, mapping: bool, layout: str = "flat", **kwargs: object
) -> MappedClient:
    """A client on ``redis_client`` in ``layout`` (``cluster_support.layout_client``)."""
    if mapping:
        kwargs["id_mapping"] = True
    return MappedClient(layout_client(redis_client, layout, **kwargs), mapping)
