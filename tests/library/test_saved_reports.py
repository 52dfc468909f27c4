"""ReportStore on a real Redis: storage, renames, limits, overview pins; the pure query rules."""

from __future__ import annotations

import threading

import pytest

import bitcore
from bitcore.saved_reports import (
    MAX_NAME_LENGTH,
    MAX_ON_OVERVIEW,
    MAX_QUERY_LENGTH,
    InvalidReport,
    ReportExists,
    ReportNotFound,
    ReportStore,
    TooManyReports,
    check_report_name,
    dates_of,
    parse_query,
    rolled,
)

COHORT = "select1=event%3Aactive&select2=event%3Aactive&time_group=weeks&rolling=1"


@pytest.fixture
def reports(bc: bitcore.BitCore) -> ReportStore:
    return ReportStore(bc, max_reports=8)


def test_save_get_and_list(reports: ReportStore, bc: bitcore.BitCore) -> None:
    saved = reports.save("Weekly retention", "cohort", COHORT, by="ana")
    assert saved.created_by == saved.updated_by == "ana"
    assert saved.created_at and saved.updated_at
    assert reports.get("Weekly retention") == saved
    assert saved.pairs[0] == ("select1", "event:active")
    assert saved.dates == "rolling"
    assert not saved.on_overview
    reports.save("Active lifecycle", "lifecycle", "event=active&end=2026-W40", by="bo")
    assert [r.name for r in reports.all()] == ["Active lifecycle", "Weekly retention"]
    assert reports.get("Active lifecycle").dates == "pinned"
    # outside the event prefix: never an event, never touched by cleanup
    keys = {k.decode() for k in bc.redis.keys("*")}
    assert keys == {
        "bitcore:reports",
        "bitcore:report:Weekly retention",
        "bitcore:report:Active lifecycle",
    }
    assert not any(k.startswith(bc.keys.prefix) for k in keys)


def test_unknown_keys_and_parameters_are_kept(reports: ReportStore) -> None:
    """A parameter a page learns later (``retention``, repeated ``by``) is saved as it is."""
    query = f"{COHORT}&retention=on_or_after&by=segment%3Aios&by=unique%3Apremium"
    saved = reports.save("compare", "cohort", query)
    assert [v for k, v in saved.pairs if k == "by"] == ["segment:ios", "unique:premium"]
    assert ("retention", "on_or_after") in reports.get("compare").pairs


def test_edit_renames_and_keeps_who_created(reports: ReportStore) -> None:
    first = reports.save("a", "stickiness", "event=active", by="ana")
    edited = reports.save("b", "stickiness", "event=active&start=2026-W40", by="bo", original="a")
    assert edited.created_by == "ana" and edited.updated_by == "bo"
    assert edited.created_at == first.created_at
    assert reports.names() == ["b"]
    with pytest.raises(ReportNotFound):
        reports.get("a")
    with pytest.raises(ReportNotFound):
        reports.save("c", "stickiness", "event=active", original="a")


def test_names_are_unique(reports: ReportStore) -> None:
    reports.save("a", "funnel", "steps-0=x&steps-1=y")
    reports.save("b", "funnel", "steps-0=x&steps-1=y")
    with pytest.raises(ReportExists):
        reports.save("a", "funnel", "steps-0=x&steps-1=z")
    with pytest.raises(ReportExists):
        reports.save("a", "funnel", "steps-0=x", original="b")
    assert reports.get("a").query == "steps-0=x&steps-1=y"


def test_delete(reports: ReportStore) -> None:
    reports.save("a", "segment", "expression=active")
    assert reports.delete("a").name == "a"
    assert reports.all() == []
    with pytest.raises(ReportNotFound):
        reports.delete("a")


def test_at_most_max_reports(reports: ReportStore) -> None:
    for i in range(8):
        reports.save(f"r{i}", "lifecycle", "event=active")
    with pytest.raises(TooManyReports, match="at most 8"):
        reports.save("one more", "lifecycle", "event=active")
    reports.save("r0 renamed", "lifecycle", "event=x", original="r0")  # an edit is no new report
    assert len(reports.names()) == 8


def test_overview_pins_are_bounded(bc: bitcore.BitCore) -> None:
    reports = ReportStore(bc)
    for i in range(MAX_ON_OVERVIEW + 1):
        reports.save(f"r{i}", "lifecycle", "event=active")
    for i in range(MAX_ON_OVERVIEW):
        assert reports.pin(f"r{i}", True).on_overview
    with pytest.raises(TooManyReports, match="overview"):
        reports.pin(f"r{MAX_ON_OVERVIEW}", True)
    assert reports.pin("r0", True).on_overview  # pinning again is no new card
    reports.pin("r0", False)
    reports.pin(f"r{MAX_ON_OVERVIEW}", True)
    # an edit keeps the pin unless told otherwise
    kept = reports.save("r1", "lifecycle", "event=other", original="r1")
    assert kept.on_overview
    assert [r.name for r in reports.on_overview()] == [
        f"r{i}" for i in range(1, MAX_ON_OVERVIEW + 1)
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("   ", "needs a name"),
        (" a", "start or end"),
        ("a/b", "not '/'"),
        ("..", "only dots"),
        (".", "only dots"),
        ("a?b", "not '?'"),
        ("x" * (MAX_NAME_LENGTH + 1), "at most"),
        (3, "needs a name"),
    ],
)
def test_bad_names(name: object, message: str) -> None:
    with pytest.raises(InvalidReport, match=message):
        check_report_name(name)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "needs a query"),
        ("?", "needs a query"),
        ("a=b c", "no spaces"),
        ("a=\x00", "no spaces"),
        ("x" * (MAX_QUERY_LENGTH + 1), "at most"),
        ("&".join(f"a{i}=1" for i in range(101)), "not a query string"),
        ("a=1&&b", "not a query string"),
        (None, "must be text"),
    ],
)
def test_bad_queries(query: object, message: str) -> None:
    with pytest.raises(InvalidReport, match=message):
        parse_query(query)


def test_bad_input_writes_nothing(reports: ReportStore) -> None:
    with pytest.raises(InvalidReport, match="one of"):
        reports.save("a", "users", "of=cohort")
    with pytest.raises(InvalidReport):
        reports.save("a", "cohort", "a=b c")
    with pytest.raises(InvalidReport, match="author"):
        reports.save("a", "cohort", COHORT, by="x" * 201)
    assert reports.all() == []


@pytest.mark.parametrize(
    ("page", "pairs", "dates"),
    [
        ("cohort", [("end_date", "2026-10-01")], "pinned"),
        ("cohort", [("start_date", "2026-10-01"), ("rolling", "1")], "rolling"),
        ("cohort", [("start_date", "2026-10-01"), ("rolling", "0")], "pinned"),
        ("cohort", [("num_results", "8")], "rolling"),
        ("funnel", [("start", "2026-W40")], "pinned"),
        ("funnel", [("start", "2026-W40"), ("rolling", "on")], "rolling"),
        ("lifecycle", [("end", "")], "rolling"),
        ("lifecycle", [("end", "2026-W40")], "pinned"),
        ("stickiness", [("start", "2026-10")], "pinned"),
        ("segment", [("expression", "a"), ("when", "2026-10-01")], "pinned"),
        ("segment", [("expression", "a")], "rolling"),
        ("lifecycle", [("rolling", "1"), ("end", "2026-W40")], "pinned"),  # no such box there
    ],
)
def test_dates_of(page: str, pairs: list[tuple[str, str]], dates: str) -> None:
    assert dates_of(page, pairs) == dates


@pytest.mark.parametrize("page", ["cohort", "funnel", "lifecycle", "stickiness", "segment"])
def test_rolled_reports_roll(page: str) -> None:
    pairs = [("x", "1"), ("start_date", "2026-10-01"), ("end_date", "2026-10-08")]
    pairs += [("start", "2026-W40"), ("end", "2026-W41"), ("when", "2026-10-01"), ("rolling", "0")]
    rolling = rolled(page, pairs)
    assert dates_of(page, rolling) == "rolling"
    assert ("x", "1") in rolling


def test_concurrent_saves_never_pass_the_limit(bc: bitcore.BitCore) -> None:
    """Saves racing from threads: WATCH keeps the count at the limit, never above."""
    reports = ReportStore(bc, max_reports=5)
    errors: list[Exception] = []

    def save(i: int) -> None:
        try:
            ReportStore(bc, max_reports=5).save(f"r{i}", "lifecycle", "event=a")
        except TooManyReports as error:
            errors.append(error)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(reports.names()) == 5
    assert len(errors) == 7


def test_reports_are_kept_in_one_slot_on_every_layout(layout_bc: bitcore.BitCore) -> None:
    """On a cluster a save, rename, pin and delete are each one transaction, so a report's hash and
    the index share one slot (saved segments' hash tag on the sharded layout)."""
    store = ReportStore(layout_bc)
    store.save("a", "lifecycle", "event=active", by="ana")
    store.save("b", "cohort", COHORT, original="a")
    assert store.pin("b", True).on_overview
    assert [r.name for r in store.on_overview()] == ["b"]
    assert store.delete("b").name == "b" and store.names() == []
