"""Drill-down: the users behind cohort cells, funnel steps and drop-offs, against set oracles."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
import redis
from drill_support import reached_sets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from id_mapping_support import FORMS, MappedClient, form_id, make_client

from bitcore import drilldown, funnel, periods, reading
from bitcore.cohort import engine
from bitcore.segments import SegmentStore

START = periods.day(2024, 12, 30)  # windows cross a calendar year and an ISO week


def moment(offset: int) -> datetime:
    return periods.start(periods.shift(START, offset)).replace(tzinfo=None, hour=12)


def members(mc: MappedClient, bitmap: drilldown.Bitmap) -> list[int | str]:
    return list(drilldown.external_members(mc.bc, bitmap))


funnels = st.integers(2, 4).flatmap(
    lambda steps: st.integers(1, 4).flatmap(
        lambda window: st.tuples(
            st.just(window),
            st.lists(
                st.lists(
                    st.sets(st.integers(0, 60), max_size=15), min_size=window, max_size=window
                ),
                min_size=steps,
                max_size=steps,
            ),
        )
    )
)


#: The id map off and on, flat and sharded, on the test's one Redis.
SINGLE_FORMS = [form for form in FORMS if form[0] != "cluster"]


@pytest.mark.parametrize("form", SINGLE_FORMS, ids=form_id)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=funnels)
def test_funnel_step_and_dropoff_users_equal_the_oracle(
    redis_client: redis.Redis, form: tuple[str, bool], case: tuple[int, list[list[set[int]]]]
) -> None:
    window, did = case
    redis_client.flushall()
    layout, mapping = form
    mc = make_client(redis_client, mapping, iter_chunk_bytes=2, layout=layout)  # many slices
    names = [f"s{k}" for k in range(len(did))]
    marks = [
        (names[k], mc.ext(u), moment(p))
        for k, per in enumerate(did)
        for p, us in enumerate(per)
        for u in us
    ]
    marks.append(("other", mc.ext(0), moment(0)))  # at least one mark, so the data set exists
    mc.bc.mark_many(marks)
    report = funnel.funnel(mc.bc, names, START, window)
    expected = reached_sets([[did[0][0]], *did[1:]], window)
    for k, step in enumerate(report.steps, start=1):
        users = report.step_users(k)
        got = members(mc, users)
        assert got == sorted(got, key=lambda e: mc.bc.internal_id(e))  # ascending, no repeats
        assert set(got) == {mc.ext(u) for u in expected[k - 1]}
        assert len(got) == len(users) == step.count
        if k > 1:
            lost = report.dropoff_users(k)
            assert set(members(mc, lost)) == {mc.ext(u) for u in expected[k - 2] - expected[k - 1]}
            assert len(lost) == step.drop_off


@pytest.mark.parametrize("form", SINGLE_FORMS, ids=form_id)
def test_cohort_cells_users_equal_the_oracle(
    redis_client: redis.Redis, form: tuple[str, bool]
) -> None:
    layout, mapping = form
    mc = make_client(redis_client, mapping, layout=layout)
    rng = random.Random(7)
    did: dict[tuple[str, int], set[int]] = {}
    marks = []
    for _ in range(900):
        event, user, day = (
            rng.choice(("signup", "ios", "active", "pay")),
            rng.randrange(120),
            rng.randrange(20),
        )
        did.setdefault((event, day), set()).add(user)
        marks.append((event, mc.ext(user), moment(day)))
    mc.bc.mark_many(marks)
    now = periods.start(periods.shift(START, 9)).replace(hour=12)
    table = engine.cohort_table(
        mc.bc, "signup", "active", "ios", "pay", "days", num_results=10, num_of_rows=6, now=now
    )
    assert table.period(0) == START
    for i in range(10):
        cohort = did.get(("signup", i), set()) & did.get(("ios", i), set())
        assert set(members(mc, table.cohort_users(i))) == {mc.ext(u) for u in cohort}
        assert len(table.cohort_users(i)) == table.sizes[i]
        for t in range(7):
            back = did.get(("active", i + t), set()) & did.get(("pay", i + t), set())
            users = table.cell_users(i, t)
            assert set(members(mc, users)) == {mc.ext(u) for u in cohort & back}
            assert len(users) == (table.cells[i][t] or 0)
    with pytest.raises(IndexError):
        table.cell_users(10, 0)
    with pytest.raises(IndexError):
        table.cell_users(0, 7)


def test_weekly_and_yearly_cells_match_the_table(redis_client: redis.Redis) -> None:
    mc = make_client(redis_client, False)
    rng = random.Random(3)
    first = datetime(2022, 12, 20)
    mc.bc.mark_many(
        (rng.choice(("a", "b")), rng.randrange(300), first + timedelta(days=rng.randrange(800)))
        for _ in range(3000)
    )
    for group in ("weeks", "years", "months"):
        table = engine.cohort_table(
            mc.bc,
            "a",
            "b",
            time_group=group,
            num_results=5,
            num_of_rows=3,
            now=datetime(2024, 12, 1),
        )
        for i in range(len(table.starts)):
            assert len(table.cohort_users(i)) == table.sizes[i]
            for t in range(4):
                assert len(table.cell_users(i, t)) == (table.cells[i][t] or 0), (group, i, t)


def test_saved_segment_steps_and_their_keys(redis_client: redis.Redis) -> None:
    mc = make_client(redis_client, False)
    bc = mc.bc
    SegmentStore(bc).save("mobile", "ios or android")
    bc.mark_many(
        [("signup", u, moment(0)) for u in range(6)]
        + [("ios", 1, moment(0)), ("android", 2, moment(1)), ("android", 9, moment(1))]
        + [("buy", 2, moment(2)), ("buy", 1, moment(0)), ("buy", 4, moment(1))]
    )
    report = funnel.funnel(bc, ["signup", "segment:mobile", "buy"], START, 3)
    assert set(report.step_users(2)) == {1, 2}
    assert set(report.step_users(3)) == {1, 2}
    assert set(report.dropoff_users(2)) == {0, 3, 4, 5}
    assert not list(report.dropoff_users(3))
    temporary = [k for k in redis_client.scan_iter(count=1000) if bc.keys.is_temporary_key(k)]
    assert all(redis_client.ttl(k) > 0 for k in temporary)  # results and leftovers expire
    assert not [k for k in temporary if b"-r" in k]  # no scratch register is left behind


def test_step_one_has_no_dropoff_and_positions_are_checked(redis_client: redis.Redis) -> None:
    mc = make_client(redis_client, False)
    mc.bc.mark_event("a", 1, now=moment(0))
    report = funnel.funnel(mc.bc, ["a", "b"], START, 2)
    assert list(report.step_users(1)) == [1]
    for bad in (0, 3):
        with pytest.raises(ValueError):
            report.step_users(bad)
    with pytest.raises(ValueError, match="no drop-off"):
        report.dropoff_users(1)
    with pytest.raises(funnel.FunnelError):
        funnel.Funnel("day", START, 1, START, ()).step_users(1)


def test_check_cost_refuses_before_computing(redis_client: redis.Redis) -> None:
    mc = make_client(redis_client, False)
    mc.bc.mark_many([("a", 80_000, moment(0)), ("b", 80_000, moment(1))])
    report = funnel.funnel(mc.bc, ["a", "b"], START, 2)
    users = report.step_users(2)
    assert drilldown.cost(mc.bc, users) == 2 * 10_001  # a on day 0, b on day 1 (day 0: none)
    with pytest.raises(reading.ReportTooCostly):
        drilldown.check_cost(mc.bc, users, 20_000)
    assert not redis_client.exists(users.redis_key)
    drilldown.check_cost(mc.bc, users, None)
    assert drilldown.first_members(mc.bc, users, 5) == [80_000]


@pytest.mark.parametrize(
    "kind,text",
    [("hour", "2024-05-07 13h"), ("day", "2024-05-07"), ("week", "2025-W01"), ("month", "2024-05"),
     ("year", "2024")],
)  # fmt: skip
def test_parse_label_inverts_label(kind: periods.Kind, text: str) -> None:
    assert periods.label(drilldown.parse_label(kind, text)) == text


@pytest.mark.parametrize(
    "kind,text",
    [("day", "2024-5-7"), ("day", "2024-02-30"), ("week", "2025-W54"), ("month", "2024-13"),
     ("year", "0000"), ("day", "x" * 10_000), ("day", "2024-05-07\n"), ("decade", "2020")],
)  # fmt: skip
def test_parse_label_refuses_nonsense(kind: periods.Kind, text: str) -> None:
    with pytest.raises(ValueError):
        drilldown.parse_label(kind, text)


def test_members_are_read_in_bounded_slices(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    mc = make_client(redis_client, False)
    users = list(range(0, 200_000, 3))
    mc.bc.mark_many(("a", u, moment(0)) for u in users)
    reads: list[tuple[int, int]] = []
    real = mc.bc._read_slice

    def spy(bitmap: drilldown.Bitmap, first: int, last: int) -> bytes:
        reads.append((first, last))
        return real(bitmap, first, last)

    monkeypatch.setattr(mc.bc, "_read_slice", spy)
    bitmap = mc.bc.DayEvents("a", 2024, 12, 30)
    assert list(drilldown.external_members(mc.bc, bitmap, chunk_bytes=4096)) == users
    assert reads[:2] == [(0, 4095), (4096, 8191)] and len(reads) == -(-25_000 // 4096)
    reads.clear()
    list(drilldown.external_members(mc.bc, bitmap))  # the default: 64 KiB at most
    assert all(last - first < drilldown.MEMBER_CHUNK_BYTES for first, last in reads)
