"""Reports read in byte slices (``bitcore.reading``) give the numbers of plain Python sets, refuse
what costs more than their limit before reading, and keep their segment results to themselves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cohort import expected_rows, mark, marks_strategy
from test_funnel import START, moment, oracle, write

import bitcore
import bitcore.cohort as cohort
import bitcore.cohort.engine
from bitcore import funnel, periods, reading
from bitcore.segments import SegmentStore

pytestmark = pytest.mark.all_layouts

#: Ids up to this make keys of up to 100 bytes: 13 slices of 8 bytes, several keys per slice.
TOP_ID = 799
#: Ids on the edges of bytes and words, the last byte included, so every slice boundary is crossed.
EDGE_IDS = [0, 7, 8, 63, 64, 65, 127, 128, 511, 512, TOP_ID - 8, TOP_ID - 1, TOP_ID]
users = st.sets(st.one_of(st.sampled_from(EDGE_IDS), st.integers(0, TOP_ID)), max_size=30)


@pytest.fixture
def narrow_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 8 bytes at least (instead of 4 KiB), so small test bitmaps span many slices."""
    monkeypatch.setattr(reading, "MIN_SLICE_BYTES", 8)


def test_slice_bounds_cover_the_longest_key_in_fair_shares() -> None:
    bounds = list(reading.slice_bounds([100, 40, 0, 24], round_trip_bytes=48, min_slice=8))
    # three keys alive: 16 bytes each; past 24 two: 24; past 40 one: 48 bytes, up to its end
    assert bounds == [(0, 16), (16, 32), (32, 56), (56, 100)]
    assert list(reading.slice_bounds([0, 0])) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=st.integers(2, 4).flatmap(
        lambda steps: st.integers(1, 3).flatmap(
            lambda window: st.lists(
                st.lists(users, min_size=window + 2, max_size=window + 2),
                min_size=steps,
                max_size=steps,
            ).map(lambda did: (window, did))
        )
    ),
    round_trip=st.sampled_from([0, 24, 100, 1 << 20]),
)
def test_sliced_funnels_match_the_set_oracle(
    bc: bitcore.BitCore,
    redis_client: redis.Redis,
    narrow_slices: None,
    case: tuple[int, list[list[set[int]]]],
    round_trip: int,
) -> None:
    """Keys of different lengths (whatever ids each holds), read in slices of 8 bytes and more,
    or in one MGET: the counts are the oracle's, and no key is left behind."""
    window, did = case
    redis_client.flushall()
    names = [f"step{k}" for k in range(len(did))]
    write(bc, names, did, shift=1)
    before = set(redis_client.keys())
    trend = funnel.funnel_trend(bc, names, START, window, 1, round_trip_bytes=round_trip)
    inside = [per_period[1 : window + 1] for per_period in did]
    assert [s.count for s in trend.funnels[0].steps] == oracle(inside, window)
    assert set(redis_client.keys()) == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marks=marks_strategy(st.one_of(st.sampled_from(EDGE_IDS), st.integers(0, TOP_ID)), 12, 150),
    extra=st.sampled_from([None, "c"]),
)
def test_sliced_cohorts_match_the_set_oracle(
    bc: bitcore.BitCore,
    redis_client: redis.Redis,
    narrow_slices: None,
    marks: list[tuple[str, int, datetime]],
    extra: str | None,
) -> None:
    redis_client.flushall()
    sets = mark(bc, marks)
    table = cohort.cohort_table(
        "a", "b", extra, None, "days", bc, 8, 3, "2024-12-15", max_fetch_bytes=0, where="client"
    )
    expected = expected_rows(sets, table.starts, "days", ("a", extra, "b", None), 3, False)
    assert table.bitmapist_rows(as_percent=False) == expected


def test_a_funnel_over_its_limit_is_refused_before_anything_is_built(
    bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    """Two steps over 3 days: 1 + 3 keys of 126 bytes (ids up to 1000) = 504 bytes to read; a
    saved segment is measured by the keys it is built from, before it is built."""
    bc.mark_many([(name, 1000, moment(0)) for name in ("signup", "buy", "ios")])
    bc.mark_many([("buy", 1000, moment(d)) for d in (1, 2)])
    SegmentStore(bc).save("apple", "ios | signup")
    before = set(redis_client.keys())
    steps = ["signup", "segment:apple"]
    with pytest.raises(reading.ReportTooCostly) as refused:
        funnel.funnel(bc, ["signup", "buy"], START, 3, max_bytes=503)
    assert isinstance(refused.value, ValueError)
    assert (refused.value.needed, refused.value.limit) == (504, 503)
    assert "503 bytes (max_bytes)" in str(refused.value)
    with pytest.raises(reading.ReportTooCostly) as refused:
        funnel.funnel(bc, steps, START, 3, max_bytes=251)
    assert refused.value.needed == 252  # signup, and the segment as long as its ios key on day 0
    assert set(redis_client.keys()) == before  # nothing built, nothing left
    assert [s.count for s in funnel.funnel(bc, ["signup", "buy"], START, 3, 504).steps] == [1, 1]


def test_a_cohort_over_its_limit_is_refused(bc: bitcore.BitCore) -> None:
    """2 rows x 2 columns of days: 2 cohort keys and 3 return keys (2 missing, 0 bytes)."""
    day = datetime(2024, 5, 6, 12)
    bc.mark_many([("active", 800, day), ("active", 800, day + timedelta(days=1))])
    bc.mark_many([("play", 800, day)])
    for where in ("server", "client"):  # the server's one script call refuses it too
        ask: dict[str, Any] = {
            "num_results": 2, "num_of_rows": 1, "start_date": "2024-05-06", "where": where
        }  # fmt: skip
        with pytest.raises(reading.ReportTooCostly, match="limit of 300 bytes"):
            cohort.cohort_table("active", "play", system=bc, max_bytes=300, **ask)
        table = cohort.cohort_table("active", "play", system=bc, max_bytes=303, **ask)
        assert table.sizes == [1, 1]


def test_segment_steps_read_keys_no_other_report_can_delete(
    bc: bitcore.BitCore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another report (or a preview) computing the same segment and deleting its shared result
    while ours is being read changes nothing: ours was built straight into a key private to the
    read (``reading.run_builds``), and no key is left."""
    bc.mark_many([("signup", u, moment(0)) for u in range(5)])
    bc.mark_many([("ios", u, moment(1)) for u in range(3)] + [("mac", 4, moment(2))])
    store = SegmentStore(bc)
    store.save("apple", "ios | mac")
    real_run = reading.run_builds
    lost: list[str] = []

    def run_then_another_report_deletes_the_shared_results(*args: Any) -> list[int]:
        walked = real_run(*args)
        for day in funnel.window_periods(START, 3):
            shared = store.bitmap("apple", day)  # computed by the other report
            lost.append(shared.redis_key)
            shared.delete()  # and deleted when it is done
        return walked

    monkeypatch.setattr(reading, "run_builds", run_then_another_report_deletes_the_shared_results)
    result = funnel.funnel(bc, ["signup", "segment:apple"], START, 3)
    assert [s.count for s in result.steps] == [5, 4]
    assert len(set(lost)) == 3
    assert not list(redis_client.scan_iter(match="*trackist_bitop_*"))


@pytest.mark.flat_only("custom handlers (resolve=) are refused on the sharded layout")
def test_a_handlers_bitmap_lost_before_it_is_taken_is_computed_again(
    bc: bitcore.BitCore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A custom handler's bitmap (computed when made, as bitmapist's bit operations are) whose
    shared result another report deletes before we rename it is computed again, then read from
    a private copy, and counts right."""
    bc.mark_many([("signup", u, moment(0)) for u in range(5)])
    bc.mark_many([("ios", u, moment(0)) for u in range(3)] + [("mac", 4, moment(0))])
    real_materialize = bc.materialize
    lost: list[str] = []

    def apple(token: str, period: Any) -> Any:
        if token not in ("apple", "event:apple"):
            return None
        return bitcore.BitOpOr(bc.event("ios", period), bc.event("mac", period))

    def materialize_then_lose_it_once(bitmap: Any) -> None:
        real_materialize(bitmap)
        if bitmap.redis_key not in lost:
            lost.append(bitmap.redis_key)
            redis_client.delete(bitmap.redis_key)

    monkeypatch.setattr(bc, "materialize", materialize_then_lose_it_once)
    table = cohort.engine.cohort_table(
        bc,
        "signup",
        "signup",
        "apple",
        None,
        "days",
        1,
        0,
        str(periods.start(START).date()),
        resolve=apple,
    )
    assert table.sizes == [4] and table.cells == [[4]]
    assert len(lost) == 1  # lost once when made, computed again when taken
    assert not list(redis_client.scan_iter(match="*trackist_bitop_*"))
