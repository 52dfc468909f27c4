"""``BitCore``, the client object: connection, prefix, bound classes, universe, defaults."""

from __future__ import annotations

from datetime import datetime

import pytest
import redis

import bitcore
from bitcore import BitCore, bulk, systems

WHEN = datetime(2024, 5, 7, 13)


def test_a_client_from_a_url(redis_url: str, redis_client: redis.Redis) -> None:
    b = BitCore(redis_url)
    assert b.ping()
    b.mark_event("active", 1, now=WHEN)
    assert redis_client.getbit("trackist_active_2024-5", 1) == 1
    kwargs = b.redis.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 5.0
    assert "prefix='trackist_'" in repr(b)


def test_no_argument_means_redis_url(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    BitCore().mark_unique("premium", 2)
    assert redis_client.getbit("trackist_premium_u", 2) == 1


def test_the_default_system_is_made_lazily_from_redis_url(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    saved = dict(systems.SYSTEMS)
    systems.SYSTEMS.clear()
    try:
        bitcore.mark_unique("premium", 3)
        assert redis_client.getbit("trackist_premium_u", 3) == 1
        assert bitcore.get_redis().connection_pool.connection_kwargs["port"] == int(
            redis_url.rsplit(":", 1)[1].split("/")[0]
        )
    finally:
        systems.SYSTEMS.clear()
        systems.SYSTEMS.update(saved)


def test_bound_classes_use_their_client(redis_client: redis.Redis) -> None:
    b = BitCore(redis_client, key_prefix="b:")
    ev = b.MonthEvents("active", 2024, 5)
    assert isinstance(ev, bitcore.MonthEvents)
    assert ev.client is b and ev.system is b
    assert ev.redis_key == "b:active_2024-5"
    assert ev.next().client is b
    assert b.MonthEvents.from_date("active", WHEN).client is b
    assert b.MonthEvents.__name__ == "MonthEvents"
    assert b.MonthEvents is b.MonthEvents  # made once
    for kind, cls in [
        ("hour", b.HourEvents),
        ("day", b.DayEvents),
        ("week", b.WeekEvents),
        ("month", b.MonthEvents),
        ("year", b.YearEvents),
    ]:
        assert b.events_of(kind) is cls
    # bit operations follow their operands' client, whichever class makes them
    assert (ev & b.MonthEvents("active", 2024, 6)).redis_key.startswith("b:bitop_AND_b:active")
    assert bitcore.BitOpOr(ev, ev).client is b
    assert b.BitOpNot(ev).universe.redis_key == "b:_seen_u"


def test_event_for_a_period(bc: BitCore) -> None:
    from bitcore import periods

    assert bc.event("a", periods.week(2025, 1)).redis_key == "trackist_a_W2025-1"
    assert bc.event("a", periods.hour(2024, 5, 7, 13)).redis_key == "trackist_a_2024-5-7-13"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"trackist_a_2024-5", "trackist_a_W2024-19", "trackist_a_2024-5-7"}),
        (
            {"track_hourly": True},
            {
                "trackist_a_2024-5",
                "trackist_a_W2024-19",
                "trackist_a_2024-5-7",
                "trackist_a_2024-5-7-13",
            },
        ),
        (
            {"track_unique": True},
            {"trackist_a_2024-5", "trackist_a_W2024-19", "trackist_a_2024-5-7", "trackist_a_u"},
        ),
    ],
)
def test_mark_keys(bc: BitCore, kwargs: dict[str, bool], expected: set[str]) -> None:
    assert set(bc.mark_keys("a", WHEN, **kwargs)) == expected


def test_client_defaults_for_tracking(redis_client: redis.Redis) -> None:
    b = BitCore(redis_client, track_hourly=True, track_unique=True)
    b.mark_event("a", 1, now=WHEN)
    assert 1 in b.HourEvents("a", 2024, 5, 7, 13)
    assert 1 in b.UniqueEvents("a")
    b.mark_event("a", 2, now=WHEN, track_hourly=False, track_unique=False)
    assert 2 not in b.HourEvents("a", 2024, 5, 7, 13)
    assert 2 not in b.UniqueEvents("a")


def test_the_universe_is_everyone_ever_marked(bc: BitCore) -> None:
    bc.mark_event("a", 1, now=WHEN)
    bc.mark_unique("b", 2)
    bc.mark_many([("c", 3, WHEN)])
    bc.unmark_event("a", 1, now=WHEN)  # unmarked, but was seen
    bc.unmark_unique("b", 2)
    assert list(bc.universe_bitmap()) == [1, 2, 3]
    assert sorted(bc.get_event_names()) == ["a", "b", "c"]  # the universe is not an event


def test_a_custom_universe(redis_client: redis.Redis) -> None:
    b = BitCore(redis_client, universe="everyone")
    b.mark_event("a", 1, now=WHEN)
    b.mark_event("b", 2, now=WHEN)
    assert redis_client.exists("trackist_everyone_u")
    assert list(~b.MonthEvents("a", 2024, 5)) == [2]


def test_rebuild_universe_for_data_bitmapist_wrote(bc: BitCore) -> None:
    # keys as bitmapist writes them: no universe
    bc.redis.setbit("trackist_a_2024-5", 4, 1)
    bc.redis.setbit("trackist_b_W2024-19", 9, 1)
    bc.redis.setbit("trackist_premium_u", 12, 1)
    bc.redis.setbit("trackist_bitop_NOT_trackist_a_2024-5", 100, 1)  # a bit-op result: no user
    assert list(~bc.MonthEvents("a", 2024, 5)) == []
    assert bc.rebuild_universe() == 3
    assert list(~bc.MonthEvents("a", 2024, 5)) == [9, 12]


def test_delete_runtime_bitop_keys_returns_how_many(bc: BitCore) -> None:
    bc.mark_event("a", 1, now=WHEN)
    a = bc.MonthEvents("a", 2024, 5)
    _ = a & a, a | a
    assert bc.delete_runtime_bitop_keys() == 2
    assert bc.delete_runtime_bitop_keys() == 0


def test_client_for_reuses_one_client_per_system(
    default_system: redis.Redis, redis_url: str
) -> None:
    assert systems.client_for("default") is systems.client_for("default")
    assert systems.client_for(default_system) is systems.client_for(default_system)
    b = BitCore(default_system)
    assert systems.client_for(b) is b
    before = systems.client_for("default")
    systems.SYSTEMS["default"] = redis.Redis.from_url(redis_url)  # a new connection: a new client
    assert systems.client_for("default") is not before
    with pytest.raises(TypeError, match="system must be"):
        systems.client_for(42)


def test_pipelines_passed_as_system_are_not_kept_alive(default_system: redis.Redis) -> None:
    import gc

    before = len(systems.known_clients())
    for uid in range(50):
        pipe = default_system.pipeline()
        bitcore.mark_event("a", uid, system=pipe, now=WHEN, use_pipeline=False)
        assert systems.client_for(pipe) is systems.client_for(pipe)  # one client per pipeline
        pipe.execute()
    del pipe
    gc.collect()
    assert len(systems.known_clients()) <= before
    assert len(bitcore.MonthEvents("a", 2024, 5)) == 50


# --- the one writer


def test_every_write_goes_through_the_one_writer(
    bc: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mark_event, mark_unique, mark_unique_many and mark_many all reach ``bulk``'s gate."""

    writes: list[dict[str, set[int]]] = []
    real = bulk.set_bits_atomically
    monkeypatch.setattr(
        bulk,
        "set_bits_atomically",
        lambda target, w, *a, **k: (
            writes.append({key: set(o) for key, o in w.items()}) or real(target, w, *a, **k)
        ),
    )
    when = datetime(2024, 5, 7)
    bc.mark_event("a", 1, when)
    bc.mark_unique("premium", 2)
    bc.mark_unique_many([("ios", 3), ("web", 3), ("ios", 4)])
    bc.mark_many([("b", 5, when)])
    universe = bc.keys.unique_key(bc.universe)
    assert len(writes) == 4 and all(universe in w for w in writes)
    assert writes[2] == {universe: {3, 4}, "trackist_ios_u": {3, 4}, "trackist_web_u": {3}}
    assert set(bc.UniqueEvents(bc.universe)) == {1, 2, 3, 4, 5}
    assert set(bc.UniqueEvents("ios")) == {3, 4}


def test_mark_unique_many_checks_every_mark_first(bc: BitCore) -> None:
    with pytest.raises(ValueError):
        bc.mark_unique_many([("ios", 1), ("web", -1)])
    with pytest.raises(TypeError):
        bc.mark_unique_many([("ios", 1), (["web"], 2)])  # type: ignore[list-item]
    assert bc.redis.dbsize() == 0
