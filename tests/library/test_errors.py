"""Bad input fails loudly before anything is written; a dead Redis fails fast, never hangs."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import redis

import bitcore
from bitcore import BitCore, embedded

WHEN = datetime(2024, 5, 7, 13)

BAD_UUIDS: list[tuple[Any, type[Exception]]] = [
    (-1, ValueError),
    (2**32, ValueError),
    (2**64, ValueError),
    (1.0, TypeError),
    (1.5, TypeError),
    (float("nan"), TypeError),
    (Decimal(3), TypeError),
    ("1", TypeError),
    (b"1", TypeError),
    (True, TypeError),
    (False, TypeError),
    (None, TypeError),
]

WRITERS: dict[str, Callable[[Any], None]] = {
    "mark_event": lambda uid: bitcore.mark_event("active", uid, now=WHEN),
    "mark_event hourly+unique": lambda uid: bitcore.mark_event(
        "active", uid, now=WHEN, track_hourly=True, track_unique=True
    ),
    "unmark_event": lambda uid: bitcore.unmark_event("active", uid, now=WHEN),
    "mark_unique": lambda uid: bitcore.mark_unique("premium", uid),
    "unmark_unique": lambda uid: bitcore.unmark_unique("premium", uid),
    "mark_many": lambda uid: bitcore.client_for("default").mark_many(
        [("active", 1), ("active", 2), ("active", uid), ("active", 3)]
    ),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize(("uuid", "error"), BAD_UUIDS, ids=repr)
def test_bad_uuids_are_refused_before_anything_is_written(
    default_system: redis.Redis, writer: str, uuid: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=re.escape(repr(uuid))):
        WRITERS[writer](uuid)
    assert default_system.dbsize() == 0


BAD_NAMES: list[tuple[Any, type[Exception]]] = [
    ("", ValueError),
    (None, TypeError),
    (1, TypeError),
    (b"active", TypeError),
    (["active"], TypeError),
    ("bitop", ValueError),  # would be taken for (and deleted as) a temporary bit-op result
    ("bitop_AND_x", ValueError),
]

NAME_USERS: dict[str, Callable[[Any], object]] = {
    "mark_event": lambda name: bitcore.mark_event(name, 1, now=WHEN),
    "unmark_event": lambda name: bitcore.unmark_event(name, 1, now=WHEN),
    "mark_unique": lambda name: bitcore.mark_unique(name, 1),
    "unmark_unique": lambda name: bitcore.unmark_unique(name, 1),
    "mark_many": lambda name: bitcore.client_for("default").mark_many([("a", 1), (name, 2)]),
    "MonthEvents": lambda name: bitcore.MonthEvents(name, 2024, 5),
    "YearEvents": lambda name: bitcore.YearEvents(name, 2024),
    "UniqueEvents": lambda name: bitcore.UniqueEvents(name),
}


@pytest.mark.parametrize("user", sorted(NAME_USERS))
@pytest.mark.parametrize(("name", "error"), BAD_NAMES, ids=repr)
def test_bad_event_names_are_refused_before_anything_is_written(
    default_system: redis.Redis, user: str, name: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=re.escape(repr(name))):
        NAME_USERS[user](name)
    assert default_system.dbsize() == 0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: bitcore.MonthEvents("a", 2024, 13), ValueError, "month=13"),
        (lambda: bitcore.DayEvents("a", 2023, 2, 29), ValueError, "day=29"),
        (lambda: bitcore.WeekEvents("a", 2024, 53), ValueError, "no week 53"),
        (lambda: bitcore.HourEvents("a", 2024, 1, 1, 24), ValueError, "hour 24"),
        (lambda: bitcore.YearEvents("a", 0), ValueError, "year 0"),
        (lambda: bitcore.MonthEvents("a", "2024", 5), TypeError, "'2024'"),
        (lambda: bitcore.MonthEvents("a", 2024, 5.0), TypeError, "5.0"),
        (lambda: bitcore.mark_event("a", 1, now="2024-05-07"), TypeError, "'2024-05-07'"),
        (lambda: bitcore.mark_event("a", 1, now=1715000000), TypeError, "1715000000"),
        (lambda: bitcore.client_for("default").mark_many([("a", 1, "today")]), TypeError, "str"),
    ],
)
def test_impossible_periods_and_times_are_refused(
    default_system: redis.Redis, call: Callable[[], object], error: type, message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()
    assert default_system.dbsize() == 0


def test_non_ids_are_simply_not_members(default_system: redis.Redis) -> None:
    bitcore.mark_event("a", 1, now=WHEN)
    month = bitcore.MonthEvents("a", 2024, 5)
    for not_an_id in (-1, 2**32, 1.0, "1", True, None):
        assert not_an_id not in month


# --- a dead Redis


def bounded(call: Callable[[], object], seconds: float = 10.0) -> BaseException:
    """Run ``call`` in a thread, give it ``seconds``, and return what it raised.

    A hang fails the test after ``seconds`` instead of hanging the suite.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        future = pool.submit(call)
        try:
            future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"no answer within {seconds}s: the call hangs")
        except BaseException as exc:  # handed back for the test to inspect
            return exc
        pytest.fail("the call succeeded against a dead Redis")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


DEAD_CALLS: dict[str, Callable[[BitCore], object]] = {
    "mark_event": lambda b: b.mark_event("a", 1),
    "mark_unique": lambda b: b.mark_unique("a", 1),
    "mark_many": lambda b: b.mark_many([("a", 1)]),
    "len": lambda b: len(b.MonthEvents("a")),
    "in": lambda b: 1 in b.DayEvents("a"),
    "iterate": lambda b: list(b.WeekEvents("a")),
    "bit op": lambda b: b.MonthEvents("a") & b.MonthEvents("b"),
    "event names": lambda b: b.get_event_names(),
    "cleanup": lambda b: b.delete_temporary_bitop_keys(),
}


@pytest.mark.parametrize("what", sorted(DEAD_CALLS))
def test_nothing_listening_raises_connection_error_at_once(what: str) -> None:
    b = BitCore(f"redis://127.0.0.1:{embedded.free_port()}/0")
    started = time.monotonic()
    error = bounded(lambda: DEAD_CALLS[what](b))
    assert isinstance(error, redis.ConnectionError), error
    assert time.monotonic() - started < 2.0


def test_a_named_system_with_nothing_listening(default_system: redis.Redis) -> None:
    bitcore.setup_redis("dead", "127.0.0.1", embedded.free_port())
    try:
        started = time.monotonic()
        error = bounded(lambda: bitcore.mark_event("a", 1, system="dead"))
        assert isinstance(error, redis.ConnectionError)
        error = bounded(lambda: len(bitcore.MonthEvents("a", system="dead")))
        assert isinstance(error, redis.ConnectionError)
        assert time.monotonic() - started < 3.0
    finally:
        bitcore.SYSTEMS.pop("dead", None)


def test_a_server_stopped_mid_test_raises_connection_error(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = embedded.start(tmp_path_factory.mktemp("doomed"), port=0, persist=False)
    b = BitCore(server.url)
    try:
        b.mark_event("a", 1, now=WHEN)
        month = b.MonthEvents("a", 2024, 5)
        assert list(month) == [1]
    finally:
        server.stop()
    started = time.monotonic()
    for call in (lambda: b.mark_event("a", 2, now=WHEN), lambda: len(month), lambda: list(month)):
        error = bounded(call)
        assert isinstance(error, redis.ConnectionError), error
    assert time.monotonic() - started < 3.0
