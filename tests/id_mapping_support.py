"""Clients with the id map off, and on once ``BitCore`` takes ``id_mapping`` (issue 16's id map).

Tests of drill-down and erasure take the ``mapped_bc`` fixture (tests/conftest.py), which runs
them once per entry of ``FORMS``: the map off and on on the flat layout, and on on the sharded
layout and the cluster. ``external(i, mapping)`` is the external id a test gives user
``i``: the integer itself without a map, a string id with one, so the oracles (Python sets of
external ids) hold either way.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import redis
from cluster_support import layout_client
from redis.cluster import RedisCluster

from bitcore import BitCore

#: ``False``, and ``True`` when this ``BitCore`` can map ids.
MAPPINGS: list[bool] = [False] + (
    [True] if "id_mapping" in inspect.signature(BitCore.__init__).parameters else []
)


def external(i: int, mapping: bool) -> int | str:
    """User ``i``'s external id: ``i`` without a map, ``"usr_<i in hex>"`` with one."""
    return f"usr_{i:x}" if mapping else i


#: The forms the ``mapped_bc`` fixture comes in: ``(layout, mapping)``; the map on the sharded
#: layout and on the session's Redis Cluster too (issue 17).
FORMS: list[tuple[str, bool]] = [("flat", m) for m in MAPPINGS] + [
    ("sharded", True),
    ("cluster", True),
]


def form_id(form: tuple[str, bool]) -> str:
    layout, mapping = form
    return f"{layout}-mapped" if mapping else layout


@dataclass(frozen=True)
class MappedClient:
    """A client on the emptied test Redis (or cluster), and whether it maps ids."""

    bc: BitCore
    mapping: bool

    def ext(self, i: int) -> int | str:
        return external(i, self.mapping)


#: ``(layout, mapping)``: what a test of every layout (``all_layouts``) runs with; the id map on
#: every layout, with and without the map.
LAYOUT_MAPPINGS: list[tuple[str, bool]] = [
    (layout, m) for layout in ("flat", "sharded", "cluster") for m in MAPPINGS
]


def layout_mapping_id(pair: tuple[str, bool]) -> str:
    """``flat``, ``flat-mapped``, ``sharded``, ``cluster``: a test id of ``LAYOUT_MAPPINGS``."""
    layout, mapping = pair
    return f"{layout}-mapped" if mapping else layout


#: The test ids of ``LAYOUT_MAPPINGS``, in order.
LAYOUT_MAPPING_IDS = [layout_mapping_id(pair) for pair in LAYOUT_MAPPINGS]


def make_client(
    redis_client: redis.Redis | RedisCluster, mapping: bool, layout: str = "flat", **kwargs: object
) -> MappedClient:
    """A client on ``redis_client`` in ``layout`` (``cluster_support.layout_client``; a cluster
    client is always the cluster's sharded layout)."""
    if isinstance(redis_client, RedisCluster):
        layout = "cluster"
    if mapping:
        kwargs["id_mapping"] = True
    return MappedClient(layout_client(redis_client, layout, **kwargs), mapping)
