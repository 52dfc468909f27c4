"""The cleanup job (bitcore.cleanup) on the real test Redis: what it deletes, the lock, the timing.

Idle times are set exactly with ``RESTORE ... IDLETIME`` instead of sleeping, so the idle threshold
is tested at its edge without slowing the suite down. Idle times only grow while a test runs, so
"kept" cases sit well below their threshold (a slow machine must not turn them into "deleted").
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitcore import BitCore
from bitcore import cleanup as job
from bitcore.keys import KeyLayout, ShardedKeyLayout

pytestmark = pytest.mark.all_layouts

LAYOUT = KeyLayout()
EVENT_A = "trackist_active_2024-5"
EVENT_B = "trackist_song:played_2024-5-7"
UNIQUE = "trackist_premium_u"
SEGMENT = "bitcore:segment:big-spenders"


def bitop(*operands: str, op: str = "AND") -> str:
    return LAYOUT.bitop_key(op, list(operands))


def put(
    r: redis.Redis, key: str, *, idle: int = 0, ttl_ms: int = 0, value: bytes = b"\xff"
) -> None:
    """A string key with an exact idle time (RESTORE IDLETIME) and optionally a TTL."""
    r.set("tmp:source", value)
    payload = r.dump("tmp:source")
    r.delete("tmp:source")
    r.execute_command("RESTORE", key, ttl_ms, payload, "REPLACE", "IDLETIME", idle)


def keyspace(r: redis.Redis, untouched: Collection[str] = ()) -> dict[bytes, bytes | None]:
    """Every key with its serialized value, to compare before and after.

    ``DUMP`` resets a key's idle time, so keys in ``untouched`` are listed without their value.
    """
    skip = {key.encode() for key in untouched}
    return {key: None if key in skip else r.dump(key) for key in r.scan_iter(count=1000)}


@pytest.fixture
def r(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    yield redis_client


@pytest.fixture
def lay(layout: str) -> KeyLayout:
    """The key layout of the test's layout (the cluster's is the sharded one)."""
    return LAYOUT if layout == "flat" else ShardedKeyLayout()


@pytest.fixture
def at(lay: KeyLayout) -> Callable[[str], str]:
    """Where ``lay`` keeps the flat-named key: the name itself, or on the sharded layout that
    name in a shard picked by the name (so a cluster's keys spread over its primaries)."""
    if not isinstance(lay, ShardedKeyLayout):
        return lambda key: key
    return lambda key: lay.shard_key(key, zlib.crc32(key.encode()) % 8)


def seed(r: redis.Redis, at: Callable[[str], str]) -> dict[str, str]:
    """Data that must survive, and bit-op keys of every kind (stored where ``at`` says). Returns
    {key: what it is}."""
    kinds = {
        at(EVENT_A): "event",
        at(EVENT_B): "event",
        at(UNIQUE): "unique",
        at("trackist_bitop_2024-5"): "event",  # an event someone named "bitop": data
        SEGMENT: "segment",
        "foreign:thing": "foreign",
        at(bitop(EVENT_A, EVENT_B)): "idle, no ttl",  # plain bitmapist: no TTL, idle long
        at(bitop(EVENT_A, UNIQUE, op="OR")): "fresh, no ttl",  # no TTL, recently used
        at(bitop(EVENT_B, op="XOR")): "ttl",  # bitcore's: has a TTL
    }
    for key, kind in kinds.items():
        if kind in ("event", "unique"):
            r.setbit(key, 7, 1)
    r.hset(SEGMENT, mapping={"expression": "active & premium"})
    r.set("foreign:thing", "x")
    put(r, at(bitop(EVENT_A, EVENT_B)), idle=5000)
    put(r, at(bitop(EVENT_A, UNIQUE, op="OR")), idle=10)
    put(r, at(bitop(EVENT_B, op="XOR")), idle=5000, ttl_ms=600_000)
    return kinds


# --- which keys are bit-op results


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("trackist_bitop_AND_trackist_a_2024-5-trackist_b_2024-5", True),
        ("trackist_bitop_OR_trackist_a_u", True),
        ("trackist_bitop_XOR_trackist_bitop_AND_trackist_a_1-trackist_b_1", True),
        ("trackist_bitop_NOT_trackist_a_2024-5", True),
        (b"trackist_bitop_AND_trackist_a_2024-5", True),
        ("trackist_bitop_2024-5", False),  # event "bitop"
        ("trackist_bitop_AND_2024-5", False),  # event "bitop_AND"
        ("trackist_bitop_MAX_trackist_a_1", False),
        ("trackist_active_2024-5", False),
        ("bitcore:segment:trackist_bitop_AND_trackist_a", False),
        ("bitcore:cleanup:lock", False),
        ("", False),
        ("trackist_bitop_SEGMENT_" + "ab12" * 10, True),  # a segment's result
        ("trackist_bitop_SEGMENT_" + "0f" * 16 + "-r3", True),  # its scratch register
        ("trackist_bitop_REPORT_" + "0f" * 16 + "-0", True),  # a report's private copy
        ("trackist_bitop_SEGMENT_2024-5", False),  # event "bitop_SEGMENT"
        ("trackist_bitop_REPORT_x_u", False),  # event "bitop_REPORT_x"
        ("trackist_bitop_OR_x_2024-5", False),  # event "bitop_OR_x"
        ("trackist_bitop_AND_made-by-someone-else-1", True),  # a foreign result, no data shape
    ],
)
def test_is_temporary_bitop_key(key: str | bytes, expected: bool) -> None:
    assert job.is_temporary_bitop_key(LAYOUT, key) is expected


def test_bitop_shape_follows_the_prefix() -> None:
    layout = KeyLayout("app1_")
    assert job.is_temporary_bitop_key(layout, "app1_bitop_AND_app1_a_1")
    assert not job.is_temporary_bitop_key(layout, "trackist_bitop_AND_trackist_a_1")


def test_own_keys_are_outside_the_event_prefix() -> None:
    for key in (job.LOCK_KEY, job.LAST_RUN_KEY, job.LAST_DRY_RUN_KEY):
        assert not key.startswith(LAYOUT.prefix)
        assert LAYOUT.parse_event_key(key) is None


# --- what a run deletes


def test_idle_mode_deletes_only_idle_keys_without_ttl(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis
) -> None:
    kinds = seed(r, at)
    size = r.memory_usage(at(bitop(EVENT_A, EVENT_B)))  # MEMORY USAGE does not touch the key
    bitops = [k for k, kind in kinds.items() if "ttl" in kind]
    before = keyspace(r, untouched=bitops)
    result = job.cleanup(r, lay, max_idle=3600)
    after = keyspace(r, untouched=bitops)
    gone = {key.decode() for key in before.keys() - after.keys()}
    assert gone == {k for k, kind in kinds.items() if kind == "idle, no ttl"}
    assert all(after[key] == before[key] for key in after)
    assert (result.keys, result.bytes, result.scanned) == (1, size, 3)
    assert (result.dry_run, result.all_keys, result.max_idle) == (False, False, 3600)


@pytest.mark.parametrize(
    ("max_idle", "deleted"),
    [
        (0, {"idle, no ttl", "fresh, no ttl"}),  # every TTL-less key has been idle >= 0 s
        (10, {"idle, no ttl", "fresh, no ttl"}),  # the edge: idle exactly max_idle goes
        (60, {"idle, no ttl"}),
        (5000, {"idle, no ttl"}),
        (5060, set()),
        (10**9, set()),
    ],
)
def test_idle_threshold(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis, max_idle: int, deleted: set[str]
) -> None:
    kinds = seed(r, at)
    result = job.cleanup(r, lay, max_idle=max_idle)
    remaining = {key.decode() for key in r.scan_iter(count=1000)}
    assert {kind for key, kind in kinds.items() if key not in remaining} == deleted
    assert result.keys == len(deleted)


def test_all_deletes_every_bitop_key_with_or_without_ttl(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis
) -> None:
    kinds = seed(r, at)
    sizes = sum(r.memory_usage(k) for k, kind in kinds.items() if "ttl" in kind)
    result = job.cleanup(r, lay, all_keys=True)
    remaining = {key.decode() for key in r.scan_iter(count=1000)}
    assert remaining == {k for k, kind in kinds.items() if "ttl" not in kind}
    assert (result.keys, result.bytes, result.max_idle) == (3, sizes, None)


@pytest.mark.parametrize("all_keys", [False, True])
def test_dry_run_deletes_nothing_and_counts_what_a_real_run_frees(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis, all_keys: bool
) -> None:
    bitops = [k for k, kind in seed(r, at).items() if "ttl" in kind]
    before = keyspace(r, untouched=bitops)
    dry = job.cleanup(r, lay, max_idle=3600, all_keys=all_keys, dry_run=True)
    assert keyspace(r, untouched=bitops) == before
    real = job.cleanup(r, lay, max_idle=3600, all_keys=all_keys)
    assert dry.dry_run and not real.dry_run
    assert (dry.keys, dry.bytes, dry.scanned) == (real.keys, real.bytes, real.scanned)
    assert len(before) - len(keyspace(r)) == real.keys == (3 if all_keys else 1)


@pytest.mark.flat_only("reads INFO commandstats and DBSIZE of one Redis")
def test_many_keys_in_batches_with_scan_never_keys(lay: KeyLayout, r: redis.Redis) -> None:
    with r.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.setbit(f"trackist_e{i}_2024-5", i, 1)
            pipe.set(bitop(f"trackist_e{i}_2024-5", "trackist_x_u"), b"\x01" * 8)
        pipe.execute()
    r.config_resetstat()
    batches: list[int] = []
    result = job.cleanup(r, lay, max_idle=0, after_batch=lambda: batches.append(1))
    stats = r.info("commandstats")
    assert result.keys == result.scanned == 2500
    assert len(batches) == 3  # batches of at most SCAN_COUNT keys
    assert "cmdstat_keys" not in stats and stats["cmdstat_scan"]["calls"] >= 1
    assert r.dbsize() == 2500
    assert not any(job.is_temporary_bitop_key(LAYOUT, k) for k in r.scan_iter(count=1000))


@pytest.mark.flat_only("sets one Redis's maxmemory-policy")
def test_keys_under_lfu_policy_are_kept_unless_all(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis
) -> None:
    seed(r, at)
    policy = r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory-policy", "allkeys-lfu")
    try:
        idle = job.cleanup(r, lay, max_idle=0)
        assert (idle.keys, idle.untracked) == (0, 2)
        assert job.cleanup(r, lay, all_keys=True).keys == 3
    finally:
        r.config_set("maxmemory-policy", policy)


def test_negative_max_idle_is_refused(lay: KeyLayout, r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="max_idle"):
        job.cleanup(r, lay, max_idle=-1)


# --- property: nothing but bit-op results is ever deleted

names = st.one_of(
    st.text(alphabet="abcxyz:-.", min_size=1, max_size=6),
    st.sampled_from(["bitop", "bitop_AND", "bitop_OR_x", "bitop_2024", "u", "a_u"]),
)
suffixes = st.sampled_from(["2024-5", "W2025-1", "2024-5-7", "2024-5-7-13", "u"])


@st.composite
def keyspaces(draw: st.DrawFn) -> dict[str, tuple[str, Any]]:
    """{key: (kind, detail)} mixing events, uniques, segments, foreign keys and bit-op results."""
    spaces: dict[str, tuple[str, Any]] = {}
    events = [
        f"trackist_{name}_{suffix}"
        for name, suffix in draw(st.lists(st.tuples(names, suffixes), min_size=1, max_size=8))
    ]
    for key in events:
        spaces[key] = ("event", draw(st.lists(st.integers(0, 2000), min_size=1, max_size=5)))
    for name in draw(st.lists(names, max_size=3)):
        spaces[f"bitcore:segment:{name}"] = ("segment", name)
    for name in draw(st.lists(names, max_size=3)):
        spaces[draw(st.sampled_from(["foreign:", "trackist", "bitop_", "x"])) + name] = (
            "foreign",
            name,
        )
    for _ in range(draw(st.integers(0, 8))):
        operands = draw(st.lists(st.sampled_from(events), min_size=1, max_size=3))
        op = draw(st.sampled_from(job.BITOP_NAMES))
        ttl = draw(st.sampled_from([0, 0, 600_000]))
        idle = draw(st.sampled_from([0, 30, 1000, 100_000]))
        spaces[bitop(*operands, op=op)] = ("bitop", (ttl, idle))
    return spaces


def build(r: redis.Redis, spaces: dict[str, tuple[str, Any]]) -> None:
    r.flushall()
    for key, (kind, detail) in spaces.items():
        if kind == "event":
            for offset in detail:
                r.setbit(key, offset, 1)
        elif kind == "segment":
            r.hset(key, mapping={"expression": detail, "name": detail})
        elif kind == "foreign":
            r.rpush(key, detail)
        else:
            ttl, idle = detail
            put(r, key, idle=idle, ttl_ms=ttl)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spaces=keyspaces(), max_idle=st.sampled_from([None, 0, 30, 500, 1000, 50_000, 10**9]))
def test_cleanup_never_deletes_anything_but_bitop_results(
    lay: KeyLayout,
    at: Callable[[str], str],
    r: redis.Redis,
    spaces: dict[str, tuple[str, Any]],
    max_idle: int | None,
) -> None:
    spaces = {at(k) if v[0] in ("event", "bitop") else k: v for k, v in spaces.items()}
    build(r, spaces)
    before = keyspace(r, untouched=[k for k, (kind, _) in spaces.items() if kind == "bitop"])
    result = job.cleanup(r, lay, all_keys=max_idle is None, max_idle=max_idle or 0)
    after = keyspace(r)
    for key, (kind, _) in spaces.items():
        if kind != "bitop":
            assert after[key.encode()] == before[key.encode()], (key, kind)
    expected_gone = {
        key
        for key, (kind, detail) in spaces.items()
        if kind == "bitop" and (max_idle is None or (detail[0] == 0 and detail[1] >= max_idle))
    }
    assert {key.decode() for key in before.keys() - after.keys()} == expected_gone
    assert result.keys == len(expected_gone)


# --- the lock


def test_lock_is_exclusive_and_released(r: redis.Redis) -> None:
    lock = job.try_lock(r, ttl=10)
    assert lock is not None
    assert job.try_lock(r, ttl=10) is None
    assert 0 < r.pttl(job.LOCK_KEY) <= 10_000
    lock.release()
    assert job.try_lock(r, ttl=10) is not None


def test_crashed_holders_lock_expires_and_its_late_release_frees_nothing(
    lay: KeyLayout, r: redis.Redis
) -> None:
    crashed = job.try_lock(r, ttl=0.2)  # never released: its process "died"
    assert crashed is not None
    assert job.try_lock(r, ttl=10) is None
    assert job.run_if_due(r, lay, interval=60) is None  # the schedule waits for the lock
    time.sleep(0.3)
    successor = job.try_lock(r, ttl=10)
    assert successor is not None
    job._release(crashed)  # a zombie waking up must not release the successor's lock
    assert r.get(job.LOCK_KEY) == successor.local.token
    successor.release()
    assert job.run_if_due(r, lay, interval=60) is not None


def test_a_run_that_lost_its_lock_stops(r: redis.Redis) -> None:
    lock = job.try_lock(r, ttl=0.05)
    assert lock is not None
    time.sleep(0.1)
    assert job.try_lock(r, ttl=10) is not None  # someone else has it now
    with pytest.raises(job.CleanupLockLost):
        job._renewer(lock)()


def test_failed_run_releases_the_lock_and_records_nothing(
    lay: KeyLayout, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> job.CleanupResult:
        raise redis.ResponseError("boom")

    monkeypatch.setattr(job, "cleanup", explode)
    with pytest.raises(redis.ResponseError):
        job.run_if_due(r, lay, interval=60)
    assert not r.exists(job.LOCK_KEY)
    assert job.last_run(r) is None


def test_run_locked_refuses_while_another_run_holds_the_lock(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis
) -> None:
    seed(r, at)
    lock = job.try_lock(r)
    assert lock is not None
    assert job.run_locked(r, lay, all_keys=True) is None
    assert r.exists(at(bitop(EVENT_A, EVENT_B)))
    lock.release()
    assert job.run_locked(r, lay, all_keys=True) is not None


# --- the schedule: once per interval


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def run_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real cleanup runs (in any thread); each run is slow enough for others to pile up."""
    runs: list[int] = []
    real = job.cleanup

    def counted(*args: Any, **kwargs: Any) -> job.CleanupResult:
        runs.append(threading.get_ident())
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(job, "cleanup", counted)
    return runs


@pytest.fixture
def connect(layout: str, request: pytest.FixtureRequest) -> Callable[[], redis.Redis]:
    """Makes a new client of the test's Redis (the session's server, or its cluster)."""
    server = request.getfixturevalue("redis_cluster" if layout == "cluster" else "redis_server")
    return server.client  # type: ignore[no-any-return]


def race(
    connect: Callable[[], redis.Redis], calls: int, fn: Callable[[redis.Redis], object]
) -> list[object]:
    """``calls`` threads, each with its own connection, call ``fn`` together, 5 times each."""
    barrier = threading.Barrier(calls)
    results: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        client = connect()
        try:
            barrier.wait()
            for _ in range(5):
                results.append(fn(client))
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    return results


def test_eight_threads_run_exactly_once_per_interval(
    lay: KeyLayout,
    at: Callable[[str], str],
    r: redis.Redis,
    connect: Callable[[], redis.Redis],
    run_counter: list[int],
) -> None:
    seed(r, at)
    clock = FakeClock(job.server_time(r))

    def scheduled(client: redis.Redis) -> object:
        return job.run_if_due(client, lay, interval=3600, max_idle=3600, clock=clock)

    first = race(connect, 8, scheduled)
    assert len(run_counter) == 1 and sum(x is not None for x in first) == 1
    assert job.last_run(r) is not None and not r.exists(at(bitop(EVENT_A, EVENT_B)))

    clock.now += 3599  # not yet due
    assert race(connect, 8, scheduled).count(None) == 40
    assert len(run_counter) == 1

    clock.now += 1  # due again: one more run, not eight
    second = race(connect, 8, scheduled)
    assert len(run_counter) == 2 and sum(x is not None for x in second) == 1
    record = job.last_run(r)
    assert record is not None and record.time == clock.now


def test_a_process_that_was_late_to_the_lock_sees_the_run_it_missed(
    lay: KeyLayout, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, run_counter: list[int]
) -> None:
    """It found the interval over, then another process ran before it took the lock: no rerun."""
    real_try_lock = job.try_lock
    overtaken: list[object] = []

    def slow_try_lock(client: redis.Redis, ttl: float = job.DEFAULT_LOCK_TTL) -> Any:
        if not overtaken:
            overtaken.append("other process")
            monkeypatch.setattr(job, "try_lock", real_try_lock)
            overtaken.append(job.run_if_due(r, lay, interval=60))  # it runs meanwhile
        return real_try_lock(client, ttl)

    monkeypatch.setattr(job, "try_lock", slow_try_lock)
    assert job.run_if_due(r, lay, interval=60) is None
    assert overtaken[1] is not None and len(run_counter) == 1
    assert not r.exists(job.LOCK_KEY)


def test_dry_runs_do_not_delay_the_schedule(lay: KeyLayout, r: redis.Redis) -> None:
    dry = job.run_locked(r, lay, dry_run=True)
    assert dry is not None and job.last_run(r, dry_run=True) == dry
    assert job.last_run(r) is None
    assert job.run_if_due(r, lay, interval=3600) is not None
    assert job.run_if_due(r, lay, interval=3600) is None


def test_last_run_record_round_trips(
    lay: KeyLayout, at: Callable[[str], str], r: redis.Redis
) -> None:
    seed(r, at)
    result = job.run_locked(r, lay, max_idle=3600)
    assert result is not None
    assert job.last_run(r) == result
    fields = r.hgetall(job.LAST_RUN_KEY)
    assert fields[b"keys"] == b"1" and fields[b"dry_run"] == b"0" and b"time" in fields
    assert 0 < job.seconds_until_due(r, 60) <= 60


def test_a_damaged_record_reads_as_no_run(r: redis.Redis) -> None:
    r.hset(job.LAST_RUN_KEY, mapping={"keys": "many"})
    assert job.last_run(r) is None


def test_count_temporary_keys(lay: KeyLayout, at: Callable[[str], str], r: redis.Redis) -> None:
    seed(r, at)
    assert job.count_temporary_keys(r, lay) == job.TemporaryKeyCount(3, 2, complete=True)
    partial = job.count_temporary_keys(r, lay, max_scans=0)
    assert partial == job.TemporaryKeyCount(0, 0, complete=False)


# --- one rule for both sweepers


TEMPORARY_SHAPES = [
    bitop(EVENT_A, EVENT_B),
    "trackist_bitop_SEGMENT_" + "ab12" * 10,
    "trackist_bitop_SEGMENT_" + "0f" * 16 + "-r0",
    "trackist_bitop_REPORT_" + "0f" * 16 + "-1",
]
DATA_OF_BITOP_EVENTS = ["trackist_bitop_2024-5", "trackist_bitop_SEGMENT_u", "trackist_bitop_AND_u"]


@pytest.mark.parametrize("sweeper", ["cleanup --all", "delete_temporary_bitop_keys"])
def test_both_sweepers_take_every_temporary_shape_and_no_data(
    lay: KeyLayout,
    at: Callable[[str], str],
    r: redis.Redis,
    make_bc: Callable[..., BitCore],
    sweeper: str,
) -> None:
    r.flushall()
    for key in TEMPORARY_SHAPES:
        put(r, at(key), ttl_ms=600_000)  # with a TTL, as bitcore makes them: --all takes them
    data = [at(key) for key in [EVENT_A, UNIQUE, *DATA_OF_BITOP_EVENTS]]
    for key in data:
        r.setbit(key, 3, 1)
    if sweeper == "cleanup --all":
        assert job.cleanup(r, lay, all_keys=True).keys == len(TEMPORARY_SHAPES)
    else:
        assert make_bc().delete_temporary_bitop_keys() == len(TEMPORARY_SHAPES)
    left = {key.decode() for key in r.scan_iter(count=1000)}
    assert left == set(data)
