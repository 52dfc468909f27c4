"""The id map on all three layouts (issue 17): single-flat, single-sharded and the cluster give
the same external ids back; on the sharded layout the map is split into map groups, each in a
slot of its own (``bitcore.idmap_groups``)."""

from __future__ import annotations

from datetime import datetime

import pytest
import redis

from bitcore import BitCore

WHEN = datetime(2024, 5, 7, 13)


@pytest.fixture(params=("flat", "sharded", "cluster"))
def mapped(request: pytest.FixtureRequest, redis_client: redis.Redis) -> BitCore:
    """A mapped client on an empty Redis, once per layout."""
    if request.param == "cluster":
        return BitCore(request.getfixturevalue("cluster_client"), id_mapping=True)
    return BitCore(redis_client, layout=request.param, id_mapping=True)


def test_marks_come_back_as_external_ids(mapped: BitCore) -> None:
    ids = [f"u{i}" for i in range(1000)] + [2**62, "0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b"]
    mapped.mark_many([("active", x, WHEN) for x in ids])
    mapped.mark_event("active", "alice", WHEN)
    month = mapped.MonthEvents("active", 2024, 5)
    assert set(month) == {*ids, "alice"}
    assert len(month) == len(ids) + 1
    assert "alice" in month and "bob" not in month
