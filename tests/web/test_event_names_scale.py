"""100,000 event names (200 public beacon batches of 500 make them): pages stay small and fast.

Before the registry, ``GET /`` took 39 s and 63 MiB and the funnel page carried 2 MiB of
``<option>``s. Here the names and their keys (one small bitmap per name for today's day, week and
month) live in a private redis-server with a ``maxmemory`` of its own, so the test can never take
more than that. The response size is the main assertion; the time bound is generous, since timing
on a shared machine is noisy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dashboard_support import make_app
from flask import Flask

from bitcore import BitCore, embedded, event_names, periods

NAMES = 100_000
MAX_BYTES = 300_000
MAX_SECONDS = 2.0
PAGES = [
    ("/", 200),
    ("/index.json", 200),
    ("/?q=song&page=3", 200),
    ("/index.json?q=played:0999", 200),
    ("/?page=2000", 200),
    ("/event/song:played:00042", 200),
    ("/cohort", 200),
    ("/cohort?select1=song:played:0999&select2=active", 400),  # not names: the datalist helps
    ("/cohort.json?select1=song:played:09999&select2=song:played:00001", 200),
    ("/funnel", 200),
    ("/funnel.json?steps-0=song:played:99999&steps-1=song:played:00001", 200),
    ("/segments", 200),
    ("/segments/new", 200),
]


def name(i: int) -> str:
    return f"song:played:{i:05d}"


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, BitCore, float]]:
    """An app on a private Redis (256 MB at most) holding 100,000 events' keys; the registry is
    rebuilt from them, and the seconds that took are handed over too."""
    server = embedded.start(tmp_path_factory.mktemp("crowded-redis"), port=0, persist=False)
    try:
        r = server.client()
        r.config_set("maxmemory", str(256 << 20))
        r.config_set("maxmemory-policy", "noeviction")
        app = make_app(server.url, tmp_path_factory.mktemp("crowded-app"))
        client: BitCore = app.extensions["bitcore"]
        today = client.now()
        current = [periods.period_of(kind, today) for kind in ("day", "week", "month")]
        for start in range(0, NAMES, 5000):
            r.mset(  # user 7 in each: one byte per key
                {
                    client.keys.event_key(name(i), period): b"\x01"
                    for i in range(start, start + 5000)
                    for period in current
                }
            )
        began = time.monotonic()
        event_names.ensure(client)
        yield app, client, time.monotonic() - began
    finally:
        server.stop()


def test_the_registry_is_rebuilt_from_300000_keys(
    crowded: tuple[Flask, BitCore, float],
) -> None:
    _, client, seconds = crowded
    assert event_names.count(client) == NAMES
    assert seconds < 30, f"rebuilding took {seconds:.1f}s"


@pytest.mark.parametrize(("url", "status"), PAGES)
def test_every_page_stays_small_and_fast(
    crowded: tuple[Flask, BitCore, float], url: str, status: int
) -> None:
    app, _, _ = crowded
    client = app.test_client()
    began = time.monotonic()
    response = client.get(url)
    seconds = time.monotonic() - began
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert len(response.data) < MAX_BYTES, f"{url}: {len(response.data):,} bytes"
    assert seconds < MAX_SECONDS, f"{url}: {seconds:.2f}s"


def test_the_overview_shows_one_page_of_the_100000(
    crowded: tuple[Flask, BitCore, float],
) -> None:
    app, _, _ = crowded
    data = app.test_client().get("/index.json?page=2000").get_json()
    assert data["total"] == NAMES and data["pages"] == 2000 and data["next"] is None
    assert [row["name"] for row in data["events"]][-1] == name(NAMES - 1)
    assert all(row["today"] == 1 and row["this_month"] == 1 for row in data["events"])
    search = app.test_client().get("/index.json?q=played:0999").get_json()
    assert search["total"] == 10 and search["complete"]
    assert [row["name"] for row in search["events"]] == [name(i) for i in range(9990, 10000)]
