"""Interop with the real bitmapist 3.119: each library reads what the other wrote, in one Redis.

bitmapist runs in its own throwaway environment (``uv run --isolated --with bitmapist==3.119``)
through ``bitmapist_driver.py``, pointed at the test Redis. The same write script and the same
query expressions run in both libraries (their APIs are the same), and every answer is checked
against Python sets as well as against the other library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

import bitcore

DRIVER = Path(__file__).parent.parent / "bitmapist_driver.py"
BITMAPIST = "bitmapist==3.119"

pytestmark = pytest.mark.skipif(
    shutil.which("uv") is None,
    reason="the bitmapist interop tests run bitmapist 3.119 via `uv run --isolated`; install uv",
)

WRITES = """
D1 = datetime(2024, 12, 30, 13, 5)  # ISO week 2025-W1, still December 2024
D2 = datetime(2025, 1, 2, 8)
D3 = datetime(2024, 2, 29, 23)
for uid in (0, 1, 7, 8, 123, 4095, 2**20 + 5):
    mark_event('active', uid, now=D1, track_hourly=True, track_unique=True)
for uid in (1, 8, 999):
    mark_event('active', uid, now=D2)
for uid in (7, 8, 5000):
    mark_event('song:played', uid, now=D1)
mark_event('song:skipped', 3, now=D3)
mark_unique('premium', 8)
mark_unique('premium', 999)
mark_unique('premium', 4)
unmark_unique('premium', 4)
unmark_event('active', 0, now=D1)  # month, week and day only: 0 stays in the hour and unique keys
"""

HIGH = 2**20 + 5
DEC = {1, 7, 8, 123, 4095, HIGH}
JAN = {1, 8, 999}
HOUR = DEC | {0}
PREMIUM = {8, 999}
SONG = {7, 8, 5000}
EVERYONE = HOUR | JAN | SONG | PREMIUM | {3, 4}
NAMES = ["active", "premium", "song:played", "song:skipped"]
ACTIVE_2024_12, ACTIVE_2025_1 = "MonthEvents('active', 2024, 12)", "MonthEvents('active', 2025, 1)"

#: (expression valid in both libraries, expected answer)
QUERIES: list[tuple[str, Any]] = [
    (f"sorted({ACTIVE_2024_12})", sorted(DEC)),
    (f"len({ACTIVE_2024_12})", len(DEC)),
    (f"{ACTIVE_2024_12}.get_count()", len(DEC)),
    (f"{ACTIVE_2024_12}.has_events_marked()", True),
    (f"123 in {ACTIVE_2024_12}", True),
    (f"{HIGH} in {ACTIVE_2024_12}", True),
    (f"0 in {ACTIVE_2024_12}", False),
    (f"sorted({ACTIVE_2025_1})", sorted(JAN)),
    ("sorted(WeekEvents('active', 2025, 1))", sorted(DEC | JAN)),
    ("sorted(DayEvents('active', 2024, 12, 30))", sorted(DEC)),
    ("sorted(HourEvents('active', 2024, 12, 30, 13))", sorted(HOUR)),
    ("sorted(UniqueEvents('active'))", sorted(HOUR)),
    ("list(UniqueEvents('premium').get_uuids())", sorted(PREMIUM)),
    ("sorted(DayEvents('song:skipped', 2024, 2, 29))", [3]),
    ("sorted(WeekEvents('song:skipped', 2024, 9))", [3]),
    ("sorted(YearEvents('active', 2024))", sorted(DEC)),
    ("len(YearEvents('active', 2025))", len(JAN)),
    (
        "YearEvents('active', 2024).redis_key",
        "trackist_bitop_OR_" + "-".join(f"trackist_active_2024-{m}" for m in range(1, 13)),
    ),
    (f"sorted(BitOpAnd({ACTIVE_2024_12}, {ACTIVE_2025_1}))", sorted(DEC & JAN)),
    (f"sorted(BitOpOr({ACTIVE_2024_12}, {ACTIVE_2025_1}))", sorted(DEC | JAN)),
    (f"sorted(BitOpXor({ACTIVE_2024_12}, {ACTIVE_2025_1}))", sorted(DEC ^ JAN)),
    (f"sorted({ACTIVE_2024_12} & UniqueEvents('premium'))", sorted(DEC & PREMIUM)),
    (
        f"sorted(BitOpAnd(BitOpOr({ACTIVE_2024_12}, {ACTIVE_2025_1}), UniqueEvents('premium')))",
        sorted((DEC | JAN) & PREMIUM),
    ),
    (
        f"sorted(BitOpXor(MonthEvents('song:played', 2024, 12), {ACTIVE_2024_12}, "
        "UniqueEvents('premium')))",
        sorted(SONG ^ DEC ^ PREMIUM),
    ),
    (
        f"BitOpAnd({ACTIVE_2024_12}, {ACTIVE_2025_1}).redis_key",
        "trackist_bitop_AND_trackist_active_2024-12-trackist_active_2025-1",
    ),
    ("sorted(get_event_names(prefix='song'))", ["song:played", "song:skipped"]),
    ("sorted(get_event_names())", NAMES),
]


def run_bitmapist(redis_url: str, code: str, queries: list[str]) -> list[Any]:
    """Run ``code`` then evaluate ``queries`` in the real bitmapist, against the test Redis."""
    parts = urlsplit(redis_url)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    job = {"host": parts.hostname, "port": parts.port, "code": code, "queries": queries}
    command = ["uv", "run", "--isolated", "--no-project", "--quiet", "--with", BITMAPIST]
    command += ["--python", f"{sys.version_info.major}.{sys.version_info.minor}"]
    done = subprocess.run(
        [*command, "python", str(DRIVER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=DRIVER.parent,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"bitmapist driver failed:\n{done.stderr}"
    result = json.loads(done.stdout)
    assert result["bitmapist"]["version"] == "3.119"
    assert "bitcore" not in result["bitmapist"]["file"]  # the real one, not us in disguise
    return list(result["answers"])


def run_bitcore(code: str, queries: list[str]) -> list[Any]:
    """The same in bitcore, through its bitmapist-compatible module API."""
    namespace: dict[str, Any] = {name: getattr(bitcore, name) for name in bitcore.__all__}
    namespace.update(date=date, datetime=datetime, timedelta=timedelta, timezone=timezone)
    exec(code, namespace)
    return [eval(query, namespace) for query in queries]


def check(answers: list[Any], expected: list[Any], who: str) -> None:
    for (query, _), got, want in zip(QUERIES, answers, expected, strict=True):
        assert got == want, f"{who}: {query}"


def test_bitcore_reads_what_bitmapist_wrote(default_system: redis.Redis, redis_url: str) -> None:
    queries = [q for q, _ in QUERIES]
    expected = [answer for _, answer in QUERIES]
    check(run_bitmapist(redis_url, WRITES, queries), expected, "bitmapist")
    leftovers = {k.decode() for k in default_system.scan_iter(match="trackist_bitop_*")}
    assert leftovers and all(default_system.ttl(k) == -1 for k in leftovers)  # bitmapist's keys

    check(run_bitcore("", queries), expected, "bitcore")

    # bitmapist keeps no universe; once rebuilt, bitcore's NOT works on its data too
    assert not default_system.exists("trackist__seen_u")
    # (user 4's only mark was undone, so no key remembers them: the rebuilt universe cannot)
    assert bitcore.client_for("default").rebuild_universe() == len(EVERYONE - {4})
    assert sorted(~bitcore.MonthEvents("active", 2024, 12)) == sorted(EVERYONE - DEC - {4})
    # and bitcore's cleanup removes bitmapist's never-expiring bit-op keys
    bitcore.delete_temporary_bitop_keys()
    assert not list(default_system.scan_iter(match="trackist_bitop_*"))
    assert sorted(bitcore.MonthEvents("active", 2024, 12)) == sorted(DEC)


def test_bitmapist_reads_what_bitcore_wrote(default_system: redis.Redis, redis_url: str) -> None:
    queries = [q for q, _ in QUERIES]
    expected = [answer for _, answer in QUERIES]
    check(run_bitcore(WRITES, queries), expected, "bitcore")
    bitcore.delete_runtime_bitop_keys()

    # bitcore's universe is one more unique event, which bitmapist lists like any other
    seen_by_bitmapist = [
        sorted([*NAMES, "_seen"]) if query == "sorted(get_event_names())" else answer
        for query, answer in QUERIES
    ]
    check(run_bitmapist(redis_url, "", queries), seen_by_bitmapist, "bitmapist")
    assert sorted(bitcore.UniqueEvents("_seen")) == sorted(EVERYONE)


def test_bitmapist_reads_mapped_data_as_internal_ids(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """With the id map on, bitmapist sharing the Redis still reads every bitmap: its counts and
    bit operations are right, and its members are the internal ids ``external_ids`` turns back."""
    b = bitcore.BitCore(redis_client, id_mapping=True)
    dec = ["0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "usr_8f3a", 2**62 + 1]
    for uid in dec:
        b.mark_event("active", uid, now=datetime(2024, 12, 30, 13))
    b.mark_event("active", "usr_8f3a", now=datetime(2025, 1, 2))
    count, both, members = run_bitmapist(
        redis_url,
        "",
        [
            f"len({ACTIVE_2024_12})",
            f"sorted(BitOpAnd({ACTIVE_2024_12}, {ACTIVE_2025_1}))",
            f"sorted({ACTIVE_2024_12})",
        ],
    )
    assert count == len(dec)
    assert list(b.external_ids(both)) == ["usr_8f3a"]
    assert sorted(map(str, b.external_ids(members))) == sorted(map(str, dec))
