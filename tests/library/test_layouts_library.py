"""The library's own tests of bit operations, events and saved segments that take a client
(``bc``) run again here on the three layouts (single-flat, single-sharded, the cluster), through
the ``layout_bc`` fixture: the same tests, the same answers. Those that look at the flat layout's
key names or at Redis internals are left to their own modules (``FLAT_ONLY``)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import test_bitops
import test_events
import test_segments_store

import bitcore

#: Tests that check the flat layout's key names, TTLs or round trips, not answers.
FLAT_ONLY = frozenset(
    {
        "test_every_temporary_key_has_a_ttl",
        "test_an_expired_result_is_recomputed_on_read",
        "test_a_nested_result_is_computed_in_one_round_trip",
        "test_segment_results_are_temporary_bitop_keys_with_a_ttl",
        "test_round_trip_keeps_every_field",  # reads the flat name of a segment's hash
        "test_concurrent_saves_lose_nothing",  # its threads open flat clients of their own
        "test_iteration_crosses_slice_boundaries",  # counts GETRANGE calls on the flat client
        "test_iterating_a_bit_op_survives_its_key_vanishing_midway",  # the flat key's TTL
    }
)


def _takes_a_client(function: Any) -> bool:
    parameters = inspect.signature(function).parameters
    return "bc" in parameters or "store" in parameters


for _module in (test_bitops, test_events, test_segments_store):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and _name not in FLAT_ONLY and _takes_a_client(_test):
            globals()[_name] = _test

store = test_segments_store.store


@pytest.fixture
def bc(layout_bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch) -> bitcore.BitCore:
    """This module's ``bc``: a client of each layout in turn. ``test_bitops`` marks through a
    flat client made from a pipeline (bitmapist's form); on the sharded layout its marks go
    through the client itself."""
    if layout_bc.layout == "sharded":

        def mark_all(
            bc: bitcore.BitCore, event: str, uids: Any, when: Any = test_bitops.WHEN
        ) -> None:
            bc.mark_many([(event, uid, when) for uid in uids])

        monkeypatch.setattr(test_bitops, "mark_all", mark_all)
    return layout_bc
