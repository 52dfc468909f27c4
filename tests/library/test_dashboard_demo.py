"""The demo data generator (``bitcore.demo``): deterministic, realistic shapes, quick."""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import pytest

from bitcore import BitCore, demo

LAST = date(2025, 3, 31)


def snapshot(bc: BitCore) -> dict[bytes, bytes]:
    return {key: bc.redis.get(key) for key in sorted(bc.redis.scan_iter(match="trackist_*"))}


def test_same_seed_same_data_other_seed_other_data(bc: BitCore) -> None:
    demo.load_demo(bc, users=800, days=21, seed=1, last_day=LAST)
    first = snapshot(bc)
    demo.load_demo(bc, users=800, days=21, seed=1, last_day=LAST)
    assert snapshot(bc) == first, "loading again changes nothing"
    bc.redis.flushall()
    demo.load_demo(bc, users=800, days=21, seed=1, last_day=LAST)
    assert snapshot(bc) == first
    bc.redis.flushall()
    demo.load_demo(bc, users=800, days=21, seed=2, last_day=LAST)
    assert snapshot(bc) != first


def test_every_user_signs_up_once_and_is_active_that_day(bc: BitCore) -> None:
    summary = demo.load_demo(bc, users=1000, days=30, seed=5, last_day=LAST)
    assert (summary.first_day, summary.last_day) == (LAST - timedelta(days=29), LAST)
    days = [summary.first_day + timedelta(days=i) for i in range(30)]
    signups = [set(bc.DayEvents.from_date("signup", d)) for d in days]
    assert sum(len(s) for s in signups) == 1000
    assert set().union(*signups) == set(range(1, 1001))
    for day, users in zip(days, signups, strict=True):
        assert users <= set(bc.DayEvents.from_date("active", day))
    assert len(signups[-1]) > len(signups[0]), "a growing product: more signups lately"
    assert set(bc.UniqueEvents("ios")) | set(bc.UniqueEvents("android")) | set(
        bc.UniqueEvents("web")
    ) <= set(range(1, 1001))
    assert set(bc.universe_bitmap()) == set(range(1, 1001))


def test_retention_decays(bc: BitCore) -> None:
    demo.load_demo(bc, users=4000, days=60, seed=9, last_day=LAST)
    first = LAST - timedelta(days=59)
    cohort = set().union(
        *(set(bc.DayEvents.from_date("signup", first + timedelta(days=i))) for i in range(7))
    )

    def share_active(age: int) -> float:
        days = [first + timedelta(days=i + age) for i in range(7)]
        back = 0
        for i, day in enumerate(days):
            signed = set(bc.DayEvents.from_date("signup", first + timedelta(days=i)))
            back += len(signed & set(bc.DayEvents.from_date("active", day)))
        return back / len(cohort)

    day1, day7, day30 = share_active(1), share_active(7), share_active(30)
    assert 0.15 < day1 < 0.45
    assert day1 > day7 > day30 > 0.01


def test_retention_curve_formula() -> None:
    curve = demo.retention(np.array([0, 1, 7, 30, 90]))
    assert curve[0] == 1.0
    assert list(curve) == sorted(curve, reverse=True)


def test_refuses_empty_shapes(bc: BitCore) -> None:
    with pytest.raises(ValueError, match="at least one user"):
        demo.load_demo(bc, users=0)


def test_a_tenth_of_the_default_loads_quickly(bc: BitCore) -> None:
    started = time.perf_counter()
    summary = demo.load_demo(
        bc, users=demo.DEFAULT_USERS // 10, days=demo.DEFAULT_DAYS, last_day=LAST
    )
    assert summary.marks > 40_000
    assert time.perf_counter() - started < 5, (
        "the full default data set must load in well under 20 s"
    )


def test_the_demo_ships_segments_and_a_churn_event(bc: BitCore) -> None:
    from bitcore import event_names, periods
    from bitcore.segments import SegmentStore

    summary = demo.load_demo(bc, users=2000, days=60, seed=3, last_day=LAST)
    assert summary.segments == tuple(demo.SEGMENTS)
    segments = SegmentStore(bc)
    assert segments.names() == sorted(demo.SEGMENTS)
    assert segments.used_by("mobile") == ["mobile churn"], "one segment builds on another"
    month = periods.period_of("month", LAST)
    churned = set(bc.MonthEvents.from_date("churned", LAST))
    assert churned and len(segments.bitmap("mobile churn", month)) <= len(churned)
    assert len(segments.bitmap("creators", month)) > 0
    # a churned user was away for CHURN_AFTER_DAYS days before the mark, and not active that day
    day = LAST - timedelta(days=3)
    for uid in set(bc.DayEvents.from_date("churned", day)):
        assert uid not in set(bc.DayEvents.from_date("active", day))
        assert uid in set(
            bc.DayEvents.from_date("active", day - timedelta(days=demo.CHURN_AFTER_DAYS))
        )
    assert (
        event_names.kind_of(bc, "ios") == "flag" and event_names.kind_of(bc, "churned") == "event"
    )
    assert demo.load_demo(bc, users=2000, days=60, seed=3, last_day=LAST).segments == (), (
        "loading again keeps the saved segments as they are"
    )


def test_the_demo_ships_saved_reports_on_the_overview(bc: BitCore) -> None:
    from bitcore.saved_reports import ReportStore

    summary = demo.load_demo(bc, users=500, days=30, seed=3, last_day=LAST)
    assert summary.reports == tuple(demo.REPORTS)
    reports = ReportStore(bc)
    shown = reports.on_overview()
    assert [r.name for r in shown] == sorted(demo.REPORTS)
    assert all(r.dates == "rolling" and r.created_by == demo.DEMO_AUTHOR for r in shown)
    reports.save(
        "Weekly retention", "cohort", "select1=active&select2=active", original="Weekly retention"
    )
    assert demo.load_demo(bc, users=500, days=30, seed=3, last_day=LAST).reports == ()
    assert reports.get("Weekly retention").query == "select1=active&select2=active", (
        "loading again keeps a report edited by hand as it is"
    )
