"""First-time bitmaps: kept by the one writer (script and transaction paths), invisible as events,
untouched by cleanup, and rebuilt from history for data written without them."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import bulk, event_names, first_time, periods

START = datetime(2024, 12, 23, 10)  # weeks and months across a new ISO year
KINDS: tuple[periods.Kind, ...] = ("hour", "day", "week", "month")

#: A batch: marks (event, uid, hours after START); batches are written one after the other.
marks = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 300), st.integers(0, 24 * 40))
batches = st.lists(
    st.one_of(
        st.lists(marks, min_size=1, max_size=5),  # the script path
        st.lists(marks, min_size=40, max_size=120),  # over SCRIPT_MAX_BITS: the transaction path
    ),
    min_size=1,
    max_size=4,
)


def oracle(written: list[list[tuple[str, int, int]]]) -> dict[str, dict[periods.Period, set[int]]]:
    """First time = the user's first batch with the event, at that batch's earliest hour."""
    seen: set[tuple[str, int]] = set()
    firsts: dict[str, dict[periods.Period, set[int]]] = {}
    for batch in written:
        earliest: dict[tuple[str, int], int] = {}
        for event, uid, hours in batch:
            if (event, uid) not in seen:
                earliest[(event, uid)] = min(hours, earliest.get((event, uid), hours))
        for (event, uid), hours in earliest.items():
            seen.add((event, uid))
            for kind in KINDS:
                period = periods.period_of(kind, START + timedelta(hours=hours))
                firsts.setdefault(event, {}).setdefault(period, set()).add(uid)
    return firsts


def stored(b: bitcore.BitCore, event: str) -> dict[periods.Period, set[int]]:
    found: dict[periods.Period, set[int]] = {}
    for key in b.redis.scan_iter(match=b.keys.first_time_keys_patterns(event)[0]):
        parsed = b.keys.parse_first_time_key(key)
        assert parsed is not None and parsed[0] == event
        period = b.keys.parse_period_suffix(parsed[1])
        found[period] = set(b.iter_members(first_time.first_time_bitmap(b, event, period)))
    return {period: users for period, users in found.items() if users}


def write(b: bitcore.BitCore, batch: list[tuple[str, int, int]]) -> None:
    b.mark_many([(e, uid, START + timedelta(hours=h)) for e, uid, h in batch], track_hourly=True)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches)
def test_the_writer_keeps_first_times_like_the_set_oracle(
    redis_client: redis.Redis, written: list[list[tuple[str, int, int]]]
) -> None:
    redis_client.flushall()
    b = bitcore.BitCore(redis_client)
    for batch in written:
        write(b, batch)
    expected = oracle(written)
    for event in ("a", "b"):
        assert stored(b, event) == expected.get(event, {})
        ever = {uid for e, uid, _ in (m for batch in written for m in batch) if e == event}
        assert set(b.iter_members(first_time.ever_bitmap(b, event))) == ever


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(marks, min_size=1, max_size=150))
def test_rebuild_from_history_matches_the_earliest_marks(
    redis_client: redis.Redis, history: list[tuple[str, int, int]]
) -> None:
    """Data written without first-time keys (plain bitmapist, or ``track_first_time=False``),
    in any order: the rebuild makes each user's earliest period per kind their first time."""
    redis_client.flushall()
    plain = bitcore.BitCore(redis_client, track_first_time=False)
    write(plain, history)
    assert not list(redis_client.scan_iter(match="bitcore:first:*"))
    b = bitcore.BitCore(redis_client)
    done = first_time.rebuild_first_time(b)
    assert done.events == 2 if {e for e, _, _ in history} == {"a", "b"} else done.events == 1
    for event in ("a", "b"):
        assert stored(b, event) == oracle([sorted(history, key=lambda m: m[2])]).get(event, {})
    # idempotent, and it finds nothing left to do until restarted
    assert first_time.rebuild_first_time(b).events == 0
    assert first_time.rebuild_first_time(b, restart=True).events == done.events


def test_single_marks_keep_first_times_and_the_keys_are_not_events(bc: bitcore.BitCore) -> None:
    day1, day2 = datetime(2024, 5, 6), datetime(2024, 5, 7)
    bc.mark_event("active", 1, now=day1)
    bc.mark_event("active", 1, now=day2)
    bc.mark_event("active", 2, now=day2)
    first_day2 = first_time.first_time_bitmap(bc, "active", periods.day(2024, 5, 7))
    assert set(bc.iter_members(first_day2)) == {2}
    week = first_time.first_time_bitmap(bc, "active", periods.period_of("week", day1))
    assert set(bc.iter_members(week)) == {1, 2}
    # never events: not by name, not in the registry's rebuild, not for the cleanup
    assert sorted(bc.get_event_names()) == ["active"]
    event_names.rebuild(bc)
    assert event_names.page(bc).names == ["active"]
    for key in redis_client_keys(bc, "bitcore:*"):
        assert bc.keys.parse_event_key(key) is None
        assert not bc.keys.is_temporary_key(key)
    assert bc.delete_temporary_bitop_keys() == 0
    assert len(redis_client_keys(bc, "bitcore:first:*")) == 4  # two days, a week, a month
    # deleting every event deletes what describes them
    bc.delete_all_events()
    assert redis_client_keys(bc, "bitcore:first:*") == redis_client_keys(bc, "bitcore:ever:*") == []


def test_the_budget_counts_first_time_keys_on_both_paths(bc: bitcore.BitCore) -> None:
    """A high uid makes eight new keys of the same size: month, week, day, universe, the ever
    set and three first-time keys; refused whole, nothing written."""
    uid = 8 * 4096 - 1
    for batch in ([("e", uid)], [("e", u) for u in range(bulk.SCRIPT_MAX_BITS)] + [("e", uid)]):
        try:
            bc.mark_many(batch, budget=bulk.Budget(max_bytes=8 * 4096 - 1))
        except bulk.WriteRefused as refused:
            assert refused.amount == 8 * 4096
        else:
            raise AssertionError("not refused")
        assert bc.redis.dbsize() == 0


def redis_client_keys(b: bitcore.BitCore, pattern: str) -> list[bytes]:
    return sorted(b.redis.scan_iter(match=pattern))


def test_the_first_time_section_counts_the_gates_head_keys() -> None:
    """The first-time section addresses KEYS by index past the gate's head keys: both modules
    must agree on how many there are (the id map's epoch made it five)."""
    from bitcore import bulk, first_time_writes

    assert first_time_writes.HEAD_KEYS == bulk._HEAD_KEYS


def test_first_times_of_mapped_ids_are_kept_under_their_internal_ids(
    redis_client: redis.Redis,
) -> None:
    """With the id map on, the writer maps the first-time candidates with the rest of the plan:
    the first-time bitmaps hold the same internal ids as the event's own keys, one round trip
    or many (single marks, a batch, a batch past the script path)."""
    mapped = bitcore.BitCore(redis_client, id_mapping=True)
    day1, day2 = datetime(2024, 5, 6), datetime(2024, 5, 7)
    mapped.mark_event("active", "usr_a", now=day1)
    mapped.mark_event("active", "usr_a", now=day2)
    mapped.mark_many([("active", "usr_b", day2)] + [("active", f"u{n}", day2) for n in range(80)])
    first_day2 = first_time.first_time_bitmap(mapped, "active", periods.day(2024, 5, 7))
    expected = {"usr_b", *(f"u{n}" for n in range(80))}
    assert set(mapped.external_ids(mapped.iter_members(first_day2))) == expected
    first_day1 = first_time.first_time_bitmap(mapped, "active", periods.day(2024, 5, 6))
    assert list(mapped.external_ids(mapped.iter_members(first_day1))) == ["usr_a"]
