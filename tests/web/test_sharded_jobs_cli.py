"""The dashboard's keyspace commands on a sharded app (issue 17), on one Redis
(``BITCORE_LAYOUT=sharded``) and on a Redis Cluster (``BITCORE_REDIS_CLUSTER=1``):
``flask cleanup`` registers the names its registry lacks and ``flask rebuild-first-time``
rebuilds first times from history, saying what the flat app says over the same marks."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask

from bitcore import BitCore, event_names
from bitcore.cohort.engine import cohort_table

SHARD = 1 << 20
USERS = [4, SHARD + 2, 3 * SHARD + 1, 3 * SHARD + 8]
DAY = datetime(2024, 5, 6)


#: A run's output lines, the registered names, and the first-time cohort's sizes and cells.
Run = tuple[list[str], list[str], tuple[list[int], list[list[int | None]]]]


def _run(app: Flask) -> Run:
    """Marks written without first-time keys, the registry then emptied: both commands' output
    and the first-time cohort they make possible."""
    client: BitCore = app.extensions["bitcore"]
    plain = BitCore(
        client.redis,  # type: ignore[arg-type]
        key_prefix=client.keys.prefix,
        layout=client.layout,
        track_first_time=False,
    )
    plain.mark_many([("signup", u, DAY + timedelta(days=k % 2)) for k, u in enumerate(USERS)])
    plain.mark_many([("play", u, DAY + timedelta(days=1)) for u in USERS[::2]])
    plain.mark_unique("premium", USERS[1])
    client.redis.delete(client.keys.event_names_key())
    client.redis.delete(client.keys.flag_names_key())
    runner = app.test_cli_runner()
    cleanup = runner.invoke(args=["cleanup"])
    assert cleanup.exit_code == 0, cleanup.output
    names = event_names.page(client).names + event_names.flag_page(client).names
    rebuilt = runner.invoke(args=["rebuild-first-time"])
    assert rebuilt.exit_code == 0, rebuilt.output
    table = cohort_table(
        client, "signup", "play", None, None, "days", 2, 1, "2024-05-06", cohort_type="first_time"
    )
    lines = [line for line in cleanup.output.splitlines() if "event names" in line]
    return lines + rebuilt.output.splitlines()[-1:], names, (table.sizes, table.cells)


@pytest.fixture
def flat_run(
    flat_app: Flask,
) -> tuple[list[str], list[str], tuple[list[int], list[list[int | None]]]]:
    return _run(flat_app)


def test_the_sharded_app_says_what_the_flat_app_says(flat_run: Run, sharded_app: Flask) -> None:
    assert _run(sharded_app) == flat_run
    output, names, table = flat_run
    assert output == [
        "Registered 3 new event names.",
        "Rebuilt 2 events (7 first-time bitmaps); 0 were done already (--restart rebuilds them).",
    ]
    assert names == ["play", "signup", "premium"]
    assert table == ([2, 2], [[None, 2], [0, None]])  # day one's new users played on day two
