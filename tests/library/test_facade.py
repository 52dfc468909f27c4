"""The module-level API: bitmapist's names, arguments, defaults and semantics, so
``import bitcore as bitmapist`` runs bitmapist code unchanged."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

import bitcore
import bitcore as bitmapist
from bitcore import systems

WHEN = datetime(2024, 5, 7, 13)
D = "default"

#: bitmapist 3.119's public signatures: (parameter, default) pairs, ``inspect.Parameter.empty``
#: where there is none. Keyword-only parameters are marked with a leading ``*``.
NO = inspect.Parameter.empty
BITMAPIST_SIGNATURES: dict[str, list[tuple[str, Any]]] = {
    "setup_redis": [("name", NO), ("host", NO), ("port", NO), ("**kw", NO)],
    "get_redis": [("system", D)],
    "mark_event": [
        ("event_name", NO),
        ("uuid", NO),
        ("system", D),
        ("now", None),
        ("track_hourly", None),
        ("track_unique", None),
        ("use_pipeline", True),
    ],
    "unmark_event": [
        ("event_name", NO),
        ("uuid", NO),
        ("system", D),
        ("now", None),
        ("track_hourly", None),
        ("track_unique", None),
        ("use_pipeline", True),
    ],
    "mark_unique": [("event_name", NO), ("uuid", NO), ("system", D)],
    "unmark_unique": [("event_name", NO), ("uuid", NO), ("system", D)],
    "get_event_names": [("system", D), ("prefix", ""), ("batch", 10000)],
    "delete_all_events": [("system", D)],
    "delete_temporary_bitop_keys": [("system", D)],
    "delete_runtime_bitop_keys": [],
    "UniqueEvents": [("event_name", NO), ("system", "*")],
    "YearEvents": [("event_name", NO), ("year", None), ("system", "*")],
    "MonthEvents": [("event_name", NO), ("year", None), ("month", None), ("system", "*")],
    "WeekEvents": [("event_name", NO), ("year", None), ("week", None), ("system", "*")],
    "DayEvents": [
        ("event_name", NO),
        ("year", None),
        ("month", None),
        ("day", None),
        ("system", "*"),
    ],
    "HourEvents": [
        ("event_name", NO),
        ("year", None),
        ("month", None),
        ("day", None),
        ("hour", None),
        ("system", "*"),
    ],
    "BitOpAnd": [("system_or_event", NO), ("*events", NO)],
    "BitOpOr": [("system_or_event", NO), ("*events", NO)],
    "BitOpXor": [("system_or_event", NO), ("*events", NO)],
}


def _params(obj: Any) -> list[tuple[str, Any]]:
    sig = inspect.signature(obj)
    out = []
    for p in sig.parameters.values():
        star = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        out.append((star + p.name, p.default))
    return out


@pytest.mark.parametrize("name", sorted(BITMAPIST_SIGNATURES))
def test_signatures_match_bitmapist(name: str) -> None:
    expected = BITMAPIST_SIGNATURES[name]
    actual = _params(getattr(bitmapist, name))
    assert [p for p, _ in actual[: len(expected)]] == [p for p, _ in expected]
    for (param, default), (_, ours) in zip(expected, actual, strict=False):
        if default == "*":  # bitmapist defaults system to "default"; bitcore to None = the same
            assert ours in (None, D), param
        else:
            assert ours == default, param
    # anything bitcore adds comes after, and is optional (keyword-only for BitOpNot's universe)
    assert all(default is not NO for _, default in actual[len(expected) :])


def test_bitmapist_module_attributes() -> None:
    for name in ("SYSTEMS", "TRACK_HOURLY", "TRACK_UNIQUE", "BitOpNot", "DailyEvents"):
        assert hasattr(bitmapist, name)
    assert bitmapist.TRACK_HOURLY is False
    assert bitmapist.TRACK_UNIQUE is False


@pytest.fixture
def server_address(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


@pytest.fixture
def stats_system(
    default_system: redis.Redis, server_address: tuple[str, int]
) -> Iterator[redis.Redis]:
    """A second named system: database 1 of the test server."""
    host, port = server_address
    bitmapist.setup_redis("stats", host, port, db=1)
    yield systems.SYSTEMS["stats"]
    bitcore.delete_runtime_bitop_keys()
    systems.SYSTEMS.pop("stats", None)


def test_setup_redis_and_get_redis(
    stats_system: redis.Redis, default_system: redis.Redis, server_address: tuple[str, int]
) -> None:
    assert bitmapist.get_redis("stats") is stats_system
    assert bitmapist.get_redis() is default_system
    assert bitmapist.get_redis(stats_system) is stats_system
    pipe = stats_system.pipeline()
    assert bitmapist.get_redis(pipe) is pipe
    kw = stats_system.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"]) == (*server_address, 1)
    assert kw["socket_timeout"] == 5.0  # bitcore's default: no hang on a dead server
    with pytest.raises(KeyError, match="setup_redis"):
        bitmapist.get_redis("nowhere")
    with pytest.raises(KeyError):
        bitmapist.mark_event("active", 1, system="nowhere")


def test_setup_redis_can_pick_the_client_class(server_address: tuple[str, int]) -> None:
    class Custom(redis.StrictRedis):
        pass

    try:
        bitmapist.setup_redis("custom", *server_address, redis_client=Custom, db=2)
        assert type(bitmapist.get_redis("custom")) is Custom
    finally:
        systems.SYSTEMS.pop("custom", None)


def test_named_systems_are_separate(stats_system: redis.Redis, default_system: redis.Redis) -> None:
    bitmapist.mark_event("active", 1, system="stats", now=WHEN)
    bitmapist.mark_event("active", 2, now=WHEN)
    assert list(bitmapist.MonthEvents("active", 2024, 5, system="stats")) == [1]
    assert list(bitmapist.MonthEvents("active", 2024, 5)) == [2]
    assert stats_system.exists("trackist_active_2024-5")
    a = bitmapist.MonthEvents("active", 2024, 5, system="stats")
    both = bitmapist.BitOpAnd("stats", a, bitmapist.UniqueEvents("_seen", system="stats"))
    assert list(both) == [1]
    assert stats_system.exists(both.redis_key) and not default_system.exists(both.redis_key)
    assert bitmapist.get_event_names(system="stats") == ["active"]
    bitmapist.delete_all_events(system="stats")
    assert stats_system.dbsize() == 0
    assert list(bitmapist.MonthEvents("active", 2024, 5)) == [2]


def test_system_may_be_a_redis_client(
    default_system: redis.Redis, server_address: tuple[str, int]
) -> None:
    host, port = server_address
    other = redis.Redis(host=host, port=port, db=3)
    try:
        bitmapist.mark_event("active", 4, system=other, now=WHEN)
        bitmapist.mark_unique("premium", 4, system=other)
        month = bitmapist.MonthEvents("active", 2024, 5, system=other)
        assert list(month) == [4]
        assert list(bitmapist.BitOpAnd(other, month, bitmapist.UniqueEvents("premium", other))) == [
            4
        ]
        assert sorted(bitmapist.get_event_names(system=other)) == ["active", "premium"]
        assert default_system.dbsize() == 0
    finally:
        other.flushdb()
        other.close()


def test_a_pipeline_without_use_pipeline_queues_and_does_not_execute(
    default_system: redis.Redis,
) -> None:
    pipe = default_system.pipeline()
    bitmapist.mark_event("active", 9, system=pipe, now=WHEN, use_pipeline=False)
    bitmapist.mark_unique("premium", 9, system=pipe)
    bitmapist.unmark_unique("former", 9, system=pipe)
    assert default_system.dbsize() == 0  # nothing is written until the caller executes
    assert len(pipe) > 0
    pipe.execute()
    assert 9 in bitmapist.DayEvents("active", 2024, 5, 7)
    assert 9 in bitmapist.UniqueEvents("premium")
    pipe = default_system.pipeline()
    bitmapist.unmark_event("active", 9, system=pipe, now=WHEN, use_pipeline=False)
    assert 9 in bitmapist.DayEvents("active", 2024, 5, 7)
    pipe.execute()
    assert 9 not in bitmapist.DayEvents("active", 2024, 5, 7)


def test_a_pipeline_with_use_pipeline_writes_at_once_as_in_bitmapist(
    default_system: redis.Redis,
) -> None:
    pipe = default_system.pipeline()
    bitmapist.mark_event("active", 9, system=pipe, now=WHEN)
    assert 9 in bitmapist.DayEvents("active", 2024, 5, 7)
    assert len(pipe) == 0


def test_track_hourly_and_unique_are_read_at_call_time(default_system: redis.Redis) -> None:
    hour = bitmapist.HourEvents("active", 2024, 5, 7, 13)
    unique = bitmapist.UniqueEvents("active")
    bitmapist.mark_event("active", 1, now=WHEN)
    assert 1 not in hour and 1 not in unique
    bitmapist.TRACK_HOURLY = True  # the module attribute, as bitmapist's README sets it
    bitmapist.mark_event("active", 2, now=WHEN)
    assert 2 in hour and 2 not in unique
    bitmapist.mark_event("active", 3, now=WHEN, track_hourly=False)  # an argument wins
    assert 3 not in hour
    bitmapist.TRACK_UNIQUE = True
    bitmapist.mark_event("active", 4, now=WHEN)
    assert 4 in hour and 4 in unique
    bitmapist.unmark_event("active", 4, now=WHEN)
    assert 4 not in hour and 4 not in unique
    bitmapist.TRACK_HOURLY = bitmapist.TRACK_UNIQUE = False
    bitmapist.mark_event("active", 5, now=WHEN, track_unique=True)
    assert 5 in unique and 5 not in hour


def test_mark_event_defaults_to_now_in_utc(default_system: redis.Redis) -> None:
    bitmapist.mark_event("active", 11)
    assert 11 in bitmapist.DayEvents("active")
    assert 11 in bitmapist.WeekEvents("active")
    assert 11 in bitmapist.MonthEvents("active")
    assert 11 in bitmapist.YearEvents("active")


def test_mark_and_unmark_unique(default_system: redis.Redis) -> None:
    bitmapist.mark_unique("premium", 42)
    bitmapist.mark_unique("premium", 43)
    bitmapist.unmark_unique("premium", 42)
    assert list(bitmapist.UniqueEvents("premium")) == [43]


def test_get_event_names(default_system: redis.Redis) -> None:
    for name in ("song:played", "song:skipped", "active", "a_b_c"):
        bitmapist.mark_event(name, 1, now=WHEN)
    bitmapist.mark_unique("premium", 1)
    default_system.set("unrelated", 1)
    (bitmapist.MonthEvents("active", 2024, 5) & bitmapist.MonthEvents("a_b_c", 2024, 5)).delete()
    _ = bitmapist.YearEvents("active", 2024)  # leaves a trackist_bitop_ key behind
    assert sorted(bitmapist.get_event_names()) == [
        "a_b_c",
        "active",
        "premium",
        "song:played",
        "song:skipped",
    ]
    assert sorted(bitmapist.get_event_names(prefix="song:")) == ["song:played", "song:skipped"]
    assert bitmapist.get_event_names(prefix="song*") == []  # glob characters are literal
    assert bitmapist.get_event_names(prefix="nothing") == []
    assert sorted(bitmapist.get_event_names(batch=1)) == sorted(bitmapist.get_event_names())


def test_delete_all_events(default_system: redis.Redis) -> None:
    bitmapist.mark_event("active", 1, now=WHEN, track_unique=True)
    _ = bitmapist.MonthEvents("active", 2024, 5) | bitmapist.MonthEvents("active", 2024, 4)
    default_system.set("unrelated", 1)
    bitmapist.delete_all_events()
    assert default_system.keys("*") == [b"unrelated"]


def test_bitmapist_style_script_runs_unchanged(default_system: redis.Redis) -> None:
    """A typical bitmapist caller, written against bitmapist's API only."""
    from bitcore import BitOpAnd, DayEvents, MonthEvents, mark_event

    for uid, day in [(1, 1), (2, 1), (1, 20), (3, 20)]:
        mark_event("login", uid, now=datetime(2024, 4, day))
        mark_event("login", uid, now=datetime(2024, 5, day))
    april, may = MonthEvents("login", 2024, 4), MonthEvents("login", 2024, 5)
    retained = BitOpAnd(april, may)
    assert len(retained) == 3
    assert sorted(retained) == [1, 2, 3]
    assert [len(d) for d in (DayEvents("login", 2024, 5, 1), DayEvents("login", 2024, 5, 20))] == [
        2,
        2,
    ]
    assert len(april & DayEvents("login", 2024, 5, 20)) == 2
    assert retained.system == "default"
    bitmapist.delete_runtime_bitop_keys()
    assert not default_system.exists(retained.redis_key)
