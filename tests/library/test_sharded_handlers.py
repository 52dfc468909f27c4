"""Cohorts of custom handlers' bitmaps (``resolve=``, bitmapist's ``set_custom_handler``) on the
sharded layout (issue 17): a handler's bit operation is computed in every shard when it is made;
each shard's share is taken into a key private to the read, counted, and the shards' counts
added up: the flat layout's table, with no key left behind, on single-sharded and the cluster."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import redis

import bitcore
from bitcore import periods
from bitcore.cohort import engine
from bitcore.shards import primaries_of

SHARD = 1 << 20
USERS = [2, 9, SHARD + 1, SHARD + 4, 5 * SHARD, 5 * SHARD + 3]
DAY = datetime(2024, 5, 6)


def _mark(client: bitcore.BitCore) -> None:
    marks = [("signup", u, DAY + timedelta(days=k % 2)) for k, u in enumerate(USERS)]
    marks += [("ios", u, DAY + timedelta(days=d)) for u in USERS[::2] for d in (0, 1, 2)]
    marks += [("mac", u, DAY + timedelta(days=d)) for u in USERS[1::2] for d in (1, 2)]
    client.mark_many(marks)


def _apple(client: bitcore.BitCore, lose: list[str] | None = None) -> engine.Resolver:
    """``apple`` is ``ios OR mac`` of the period; with ``lose``, each result's share in shard 1
    is deleted once right after it is made (as a concurrent cleanup would)."""

    def apple(token: str, period: periods.Period) -> Any:
        if token not in ("apple", "event:apple"):
            return None
        made = client.BitOpOr(client.event("ios", period), client.event("mac", period))
        if lose is not None and client.layout == "sharded" and made.redis_key not in lose:
            lose.append(made.redis_key)
            client.node_of_shard(1).delete(client.shard_key(made.redis_key, 1))
        return made

    return apple


def _keys(client: bitcore.BitCore) -> set[bytes]:
    return {key for node in primaries_of(client.redis) for key in node.keys("*")}


@pytest.mark.parametrize("where", ["client", "server"])
def test_a_handlers_table_is_the_flat_table(
    layout_bc: bitcore.BitCore, redis_client: redis.Redis, where: str
) -> None:
    reference = bitcore.BitCore(redis_client, key_prefix="flat_")
    tables = []
    for client in (reference, layout_bc):
        _mark(client)
        before = _keys(client)
        lost: list[str] = []
        table = engine.cohort_table(
            client, "signup", "apple", "apple", None, "days", 3, 2, "2024-05-06",
            resolve=_apple(client, lost), where=where,  # type: ignore[arg-type]
        )  # fmt: skip
        assert _keys(client) == before, "no key left behind"
        assert len(lost) == (5 if client.layout == "sharded" else 0), "a share lost per period"
        tables.append((table.sizes, table.cells, sorted(table.cell_users(0, 2))))
    assert tables[1] == tables[0]
    assert tables[0] == ([3, 3, 0], [[3, 3, 3], [3, 3, None], [None] * 3], USERS[::2])
