"""The id map (issue 16): external ids in, external ids out, dense internal ids in between."""

from __future__ import annotations

import re
import threading
import uuid as uuid_module
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitcore import BitCore, bulk, idmap, periods, wire
from bitcore.idmap import IdMapFull, IdMappingMismatch, external_of, token_of
from bitcore.keys import KeyLayout
from bitcore.validation import MAX_EXTERNAL_INT, check_external_id

WHEN = datetime(2024, 5, 7, 13)
LAYOUT = KeyLayout()

printable_ids = st.text(
    st.characters(codec="utf-8").filter(str.isprintable), min_size=1, max_size=128
)
int_ids = st.integers(0, MAX_EXTERNAL_INT)
external_ids = st.one_of(int_ids, printable_ids, st.uuids().map(str))
fixture_ok = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def mapped(redis_client: redis.Redis) -> BitCore:
    return BitCore(redis_client, id_mapping=True, id_map_buckets=256)


def fresh(redis_client: redis.Redis) -> BitCore:
    """A mapped client on an emptied Redis, for each Hypothesis example (few buckets: shared)."""
    redis_client.flushall()
    return BitCore(redis_client, id_mapping=True, id_map_buckets=16)


@pytest.fixture(params=("flat", "sharded", "cluster"))
def fresh_on(request: pytest.FixtureRequest, redis_client: redis.Redis) -> Callable[[], BitCore]:
    """``fresh`` on each layout: the map in groups on the sharded layout and the cluster."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")

        def on_cluster() -> BitCore:
            cluster.flushall()
            return BitCore(request.getfixturevalue("cluster_client"), id_mapping=True)

        return on_cluster
    if request.param == "flat":
        return lambda: fresh(redis_client)

    def sharded() -> BitCore:
        redis_client.flushall()
        return BitCore(redis_client, id_mapping=True, id_map_buckets=16, layout="sharded")

    return sharded


def canonical(ids: list[Any]) -> set[int | str]:
    return {check_external_id(x) for x in ids}


def counter(redis_client: redis.Redis) -> int:
    return int(redis_client.get(LAYOUT.id_map_counter_key()) or 0)


# --- what an external id is


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (0, 0),
        (2**63 - 1, 2**63 - 1),
        ("123", 123),
        ("0", 0),
        ("0123", "0123"),
        ("+1", "+1"),
        (" 1", " 1"),
        ("9223372036854775808", "9223372036854775808"),  # 2**63 spelled: a string id
        ("usr_8f3a", "usr_8f3a"),
        ("é" * 128, "é" * 128),
    ],
)
def test_external_ids_have_one_canonical_form(given: Any, canonical: Any) -> None:
    assert check_external_id(given) == canonical
    assert type(check_external_id(given)) is type(canonical)


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (-1, ValueError),
        (2**63, ValueError),
        ("", ValueError),
        ("x" * 129, ValueError),
        ("a\nb", ValueError),
        ("\x00", ValueError),
        (True, TypeError),
        (1.0, TypeError),
        (None, TypeError),
        (b"abc", TypeError),
    ],
)
def test_bad_external_ids_are_refused(given: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_external_id(given)
    with pytest.raises(error):
        idmap.check_token(given)


@given(external_ids)
def test_tokens_come_back_as_the_canonical_id(external: Any) -> None:
    canonical = check_external_id(external)
    token = idmap.check_token(external)
    assert token == token_of(canonical)
    assert external_of(token) == canonical


def test_uuids_are_packed_only_in_their_lowercase_spelling() -> None:
    lower = str(uuid_module.UUID(int=0xABCDEF << 64, version=4))
    assert len(token_of(lower)) == 17
    assert token_of(lower.upper()) == lower.upper().encode()
    assert external_of(token_of(lower.upper())) == lower.upper()


LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Strings of a UUID's length whose characters are mostly a UUID's (and what bytes.fromhex skips).
near_uuids = st.text(st.sampled_from("0123456789abcdefABCDEF- \t\u0665"), min_size=36, max_size=36)


@given(st.one_of(near_uuids, st.uuids().map(str)))
def test_only_a_lowercase_dashed_uuid_is_packed(external: str) -> None:
    """The packing's check (no regular expression: ``idmap._uuid_token``) against one."""
    try:
        token = idmap.check_token(external)
    except ValueError:  # a tab: not printable, refused as any id would be
        assert not external.isprintable()
        return
    if LOWER_UUID.fullmatch(external):
        assert token == b"\x00" + uuid_module.UUID(external).bytes
    else:
        assert token == external.encode()


@given(st.sets(st.integers(0, 2**32 - 1), max_size=300), st.binary(max_size=30))
def test_bucket_keys_packed_by_numpy_are_those_formatted_one_by_one(
    numbers: set[int], prefix: bytes
) -> None:
    by_numpy = idmap._numbered_keys(prefix, np.array(sorted(numbers), dtype=np.uint64))  # noqa: SLF001
    one_by_one = [b"%s%d" % (prefix, n) for n in sorted(numbers)]
    assert by_numpy == b"".join(b"$%d\r\n%s\r\n" % (len(key), key) for key in one_by_one)


# --- marking and reading


@fixture_ok
@given(st.lists(external_ids, max_size=60), st.lists(external_ids, max_size=10))
def test_membership_and_iteration_equal_a_set_of_the_ids(
    fresh_on: Callable[[], BitCore], marked: list[Any], others: list[Any]
) -> None:
    b = fresh_on()
    b.mark_many([("active", x, WHEN) for x in marked])
    expected = canonical(marked)
    month = b.MonthEvents("active", 2024, 5)
    assert set(month) == expected
    assert len(list(month)) == len(month) == len(expected)
    for x in marked:
        assert x in month
    for x in others:
        assert (x in month) == (check_external_id(x) in expected)


@fixture_ok
@given(st.lists(external_ids, max_size=30), st.lists(external_ids, max_size=30))
def test_bit_operations_yield_external_ids(
    fresh_on: Callable[[], BitCore], left: list[Any], right: list[Any]
) -> None:
    b = fresh_on()
    for x in left:
        b.mark_event("a", x, WHEN)
    b.mark_unique_many([("b", x) for x in right])
    a_ids, b_ids = canonical(left), canonical(right)
    a, u = b.DayEvents("a", 2024, 5, 7), b.UniqueEvents("b")
    assert set(a & u) == a_ids & b_ids
    assert set(a | u) == a_ids | b_ids
    assert set(a ^ u) == a_ids ^ b_ids
    assert set(~a) == (a_ids | b_ids) - a_ids  # NOT against the universe: everyone marked


def test_an_int_and_its_digits_are_one_user(mapped: BitCore) -> None:
    mapped.mark_event("active", 123, WHEN)
    mapped.mark_event("active", "123", WHEN)
    mapped.mark_event("active", "0123", WHEN)
    month = mapped.MonthEvents("active", 2024, 5)
    assert len(month) == 2
    assert set(month) == {123, "0123"}
    assert "123" in month and 123 in month


def test_sparse_64_bit_ids_cost_dense_bits(mapped: BitCore, redis_client: redis.Redis) -> None:
    ids = [2**62 + 7, 2**63 - 1, 4_000_000_000]
    mapped.mark_many([("active", x, WHEN) for x in ids])
    assert set(mapped.MonthEvents("active", 2024, 5)) == set(ids)
    assert redis_client.strlen(LAYOUT.event_key("active", periods.period_of("month", WHEN))) == 1


def test_the_budget_counts_the_dense_internal_id(mapped: BitCore) -> None:
    mapped.mark_many([("active", 2**62, WHEN)], budget=bulk.Budget(max_bytes=64))
    assert 2**62 in mapped.DayEvents("active", 2024, 5, 7)


def test_unmark_never_allocates(mapped: BitCore, redis_client: redis.Redis) -> None:
    mapped.mark_event("active", "alice", WHEN)
    mapped.unmark_event("active", "bob", WHEN)
    mapped.unmark_unique("premium", "carol")
    assert counter(redis_client) == 1
    mapped.mark_unique("premium", "alice")
    mapped.unmark_unique("premium", "alice")
    mapped.unmark_event("active", "alice", WHEN)
    assert "alice" not in mapped.DayEvents("active", 2024, 5, 7)
    assert "alice" not in mapped.UniqueEvents("premium")
    assert "alice" in mapped.universe_bitmap()


def test_bad_ids_write_nothing(mapped: BitCore, redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError):
        mapped.mark_many([("active", "fine", WHEN), ("active", "x" * 129, WHEN)])
    with pytest.raises(TypeError):
        mapped.mark_event("active", 1.5, WHEN)  # type: ignore[arg-type]
    assert counter(redis_client) == 0
    assert 1.5 not in mapped.universe_bitmap()


def test_long_ids_are_stored_whole_behind_a_digest(mapped: BitCore) -> None:
    long_ids = ["a" * 128, "a" * 127 + "b", "ü" * 100]
    mapped.mark_many([("active", x, WHEN) for x in long_ids])
    assert set(mapped.MonthEvents("active", 2024, 5)) == set(long_ids)


def test_a_batch_mixing_long_and_short_ids_maps_each(mapped: BitCore) -> None:
    first: list[int | str] = ["a" * 128, "short", 12345, str(uuid_module.UUID(int=7)), "ü" * 100]
    then: list[int | str] = ["b" * 41, *first[1:3], "z" * 40, first[0], "new"]
    mapped.mark_many([("active", x, WHEN) for x in first])
    mapped.mark_many([("active", x, WHEN) for x in then])
    assert set(mapped.MonthEvents("active", 2024, 5)) == set(first) | set(then)
    internals = [mapped.internal_id(x) for x in first + then]
    assert sorted(set(internals)) == list(range(len(set(first) | set(then))))


def test_a_batch_past_resolve_batch_is_several_script_calls(
    mapped: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idmap, "RESOLVE_BATCH", 100)
    calls = []
    real = idmap.IdMap._resolve

    def counted(self: Any, tokens: Any, *args: Any) -> Any:
        calls.append(len(tokens))
        return real(self, tokens, *args)

    monkeypatch.setattr(idmap.IdMap, "_resolve", counted)
    ids = [f"user-{n}" for n in range(250)]
    mapped.mark_many([("active", x, WHEN) for x in ids])
    assert calls == [100, 100, 50]
    assert set(mapped.MonthEvents("active", 2024, 5)) == set(ids)


def test_a_big_batch_over_many_buckets_maps_each(redis_client: redis.Redis) -> None:
    """Past the script's 2,000 ids per step and 256 buckets (a second byte of bucket index)."""
    b = BitCore(redis_client, id_mapping=True, id_map_buckets=4096)
    id_map = b._dataset_id_map()  # noqa: SLF001 - the map alone
    assert id_map is not None
    tokens = [idmap.token_of(f"user-{n}") for n in range(5_000)]
    known = id_map.resolve(tokens[::2], create=True)
    looked_up = id_map.resolve(tokens, create=False)
    assert looked_up[::2] == known and set(looked_up[1::2]) == {-1}
    every = id_map.resolve(tokens, create=True)
    assert every[::2] == known and sorted(every) == list(range(5_000))
    assert list(b.external_ids(every)) == [f"user-{n}" for n in range(5_000)]


# --- the interface: internal_id, external_ids, forget_id


def test_internal_and_external_ids(mapped: BitCore) -> None:
    assert mapped.internal_id("nobody") is None
    assert mapped.internal_id("alice", create=True) == 0
    assert mapped.internal_id("bob", create=True) == 1
    assert mapped.internal_id("alice") == 0
    assert mapped.internal_id("alice", create=True) == 0
    assert list(mapped.external_ids([1, 0, 1, 99])) == ["bob", "alice", "bob"]  # 99: unmapped


def test_external_ids_are_batched(mapped: BitCore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idmap, "EXTERNALS_BATCH", 100)
    ids = [f"u{n}" for n in range(1050)]
    mapped.mark_many([("active", x, WHEN) for x in ids])
    pipelines = []
    real = redis.client.Pipeline.execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        pipelines.append(len(self.command_stack))
        return real(self, *args, **kwargs)

    internals = [mapped.internal_id(x) for x in ids]  # a batch allocates in bucket order
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    assert list(mapped.external_ids(internals)) == ids  # type: ignore[arg-type]
    assert len(pipelines) == 11  # 1,050 ids, 100 per round trip


def test_forget_id_removes_both_directions(mapped: BitCore, redis_client: redis.Redis) -> None:
    mapped.mark_event("active", "alice", WHEN)
    mapped.mark_event("active", "bob", WHEN)
    assert mapped.forget_id("alice") == 0
    assert mapped.forget_id("alice") is None
    assert mapped.internal_id("alice") is None
    assert list(mapped.external_ids([0, 1])) == ["bob"]
    other = BitCore(redis_client, id_mapping=True)
    assert other.forget_id("nobody") is None
    mapped.mark_event("active", "alice", WHEN)  # seen again: a new user
    assert mapped.internal_id("alice") == 2


def test_a_forgotten_id_is_not_remembered_by_another_writer(redis_client: redis.Redis) -> None:
    writer = BitCore(redis_client, id_mapping=True)
    eraser = BitCore(redis_client, id_mapping=True)
    writer.mark_event("active", "alice", WHEN)  # the writer remembers alice -> 0
    assert eraser.forget_id("alice") == 0
    writer.mark_event("active", "alice", WHEN)
    assert writer.internal_id("alice") == 1
    assert list(writer.external_ids([0, 1])) == ["alice"]


def test_without_the_map_the_interface_is_the_identity(bc: BitCore) -> None:
    assert bc.id_mapping is False
    assert bc.internal_id(5) == 5 and bc.internal_id(5, create=True) == 5
    assert list(bc.external_ids([3, 1, 2])) == [3, 1, 2]
    assert bc.forget_id(7) == 7
    with pytest.raises(TypeError):
        bc.internal_id("alice")
    with pytest.raises(ValueError):
        bc.forget_id(2**32)


# --- round trips and atomicity


def test_mark_many_is_a_constant_few_round_trips(
    mapped: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    real_trip, real_command = wire.round_trip, redis.Redis.execute_command
    real_execute = redis.client.Pipeline.execute

    def round_trip(client: Any, commands: list[bytes]) -> Any:
        trips.append("wire")
        return real_trip(client, commands)

    def execute_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(str(args[0]))
        return real_command(self, *args, **kwargs)

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append("pipeline")
        return real_execute(self, *args, **kwargs)

    monkeypatch.setattr(wire, "round_trip", round_trip)
    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    mapped.mark_event("warm", "x", WHEN)  # the dataset is checked once per client
    for count, offset in ((100, 0), (10_000, 100)):
        trips.clear()
        mapped.mark_many([("active", f"user-{offset + n}", WHEN) for n in range(count)])
        assert len(trips) <= 3, trips  # resolve; check and transaction (or one script call)
    trips.clear()
    mapped.mark_many([("active", f"user-{n}", WHEN) for n in range(10_000)])  # all remembered
    assert len(trips) <= 2, trips  # the write's check (which checks the epoch too), transaction
    trips.clear()
    mapped.mark_event("active", "user-7", WHEN)  # a known user: one round trip, as plain ids
    assert trips == ["wire"]


def test_threads_that_see_new_ids_at_once_agree(redis_client: redis.Redis) -> None:
    ids = [f"user-{n}" for n in range(2000)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(seed: int) -> None:
        try:
            client = BitCore(redis_client, id_mapping=True, id_map_buckets=64)
            order = ids[seed * 250 :] + ids[: seed * 250]
            start.wait(timeout=10)
            for first in range(0, len(order), 100):
                client.mark_many([("active", x, WHEN) for x in order[first : first + 100]])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    b = BitCore(redis_client, id_mapping=True)
    assert counter(redis_client) == len(ids)
    internals = [b.internal_id(x) for x in ids]
    assert sorted(internals) == list(range(len(ids)))  # type: ignore[type-var]
    assert list(b.external_ids(internals)) == ids  # type: ignore[arg-type]
    assert set(b.MonthEvents("active", 2024, 5)) == set(ids)


def test_a_full_map_allocates_nothing(mapped: BitCore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idmap, "INTERNAL_LIMIT", 3)
    mapped.mark_many([("active", x, WHEN) for x in ("a", "b")])
    with pytest.raises(IdMapFull):
        mapped.mark_many([("active", x, WHEN) for x in ("c", "d")])
    assert mapped.internal_id("c") is None
    assert set(mapped.MonthEvents("active", 2024, 5)) == {"a", "b"}


# --- one kind of ids per dataset


def test_mapping_is_refused_on_plain_data(redis_client: redis.Redis) -> None:
    BitCore(redis_client).mark_event("active", 1, WHEN)
    with pytest.raises(IdMappingMismatch, match="plain integer ids"):
        BitCore(redis_client, id_mapping=True).mark_event("active", "alice", WHEN)
    assert not redis_client.exists(LAYOUT.id_map_marker_key())


def test_mapping_is_refused_on_data_bitmapist_wrote(redis_client: redis.Redis) -> None:
    redis_client.setbit(LAYOUT.event_key("active", periods.period_of("month", WHEN)), 5, 1)
    with pytest.raises(IdMappingMismatch):
        BitCore(redis_client, id_mapping=True).mark_event("active", "alice", WHEN)


def test_plain_ids_are_refused_on_mapped_data(mapped: BitCore, redis_client: redis.Redis) -> None:
    mapped.mark_event("active", "alice", WHEN)
    plain = BitCore(redis_client)
    with pytest.raises(IdMappingMismatch, match="id_mapping=True"):
        plain.mark_event("active", 1, WHEN)
    with pytest.raises(IdMappingMismatch):
        list(BitCore(redis_client).MonthEvents("active", 2024, 5))
    with pytest.raises(IdMappingMismatch):
        _ = 0 in BitCore(redis_client).MonthEvents("active", 2024, 5)
    assert set(mapped.MonthEvents("active", 2024, 5)) == {"alice"}


def test_another_prefix_is_another_dataset(mapped: BitCore, redis_client: redis.Redis) -> None:
    mapped.mark_event("active", "alice", WHEN)
    plain = BitCore(redis_client, key_prefix="plain_")
    plain.mark_event("active", 1, WHEN)
    assert set(plain.MonthEvents("active", 2024, 5)) == {1}


def test_an_existing_dataset_keeps_its_bucket_count(redis_client: redis.Redis) -> None:
    BitCore(redis_client, id_mapping=True, id_map_buckets=8).mark_event("a", "alice", WHEN)
    later = BitCore(redis_client, id_mapping=True, id_map_buckets=1024)
    assert later.internal_id("alice") == 0
    assert redis_client.get(LAYOUT.id_map_marker_key()) == b"mapped:8"


# --- where the map lives


def test_cleanup_and_delete_all_events_leave_the_map(
    mapped: BitCore, redis_client: redis.Redis
) -> None:
    mapped.mark_many([("active", f"u{n}", WHEN) for n in range(50)])
    seven = mapped.internal_id("u7")
    _ = list(mapped.MonthEvents("active", 2024, 5) & mapped.DayEvents("active", 2024, 5, 7))
    map_keys = set(redis_client.scan_iter(match=LAYOUT.id_map_pattern()))
    assert len(map_keys) > 3
    mapped.delete_temporary_bitop_keys()
    mapped.delete_all_events()
    assert set(redis_client.scan_iter(match=LAYOUT.id_map_pattern())) == map_keys
    assert mapped.internal_id("u7") == seven is not None


def test_buckets_stay_in_the_compact_encoding(mapped: BitCore, redis_client: redis.Redis) -> None:
    mapped.mark_many([("active", str(uuid_module.uuid4()), WHEN) for _ in range(5000)])
    mapped.mark_many([("active", 2**62 + n, WHEN) for n in range(5000)])
    for key in redis_client.scan_iter(match=LAYOUT.id_map_pattern(), count=1000):
        if redis_client.type(key) == b"hash":
            assert redis_client.object("encoding", key) in (b"listpack", b"ziplist"), key
            assert redis_client.hlen(key) <= 128


def test_bitmapist_reads_the_internal_ids(mapped: BitCore, redis_client: redis.Redis) -> None:
    for name in ("alice", "bob", "carol"):
        mapped.mark_event("active", name, WHEN)
    key = LAYOUT.event_key("active", periods.period_of("month", WHEN))
    assert [redis_client.getbit(key, n) for n in range(4)] == [1, 1, 1, 0]


def test_setup_redis_with_id_mapping(redis_client: redis.Redis, redis_url: str) -> None:
    import bitcore
    from bitcore import systems

    address = urlsplit(redis_url)
    bitcore.setup_redis("idmapped", address.hostname, address.port, id_mapping=True)
    try:
        bitcore.mark_event("active", "alice", system="idmapped")
        bitcore.mark_unique("premium", "alice", system="idmapped")
        assert "alice" in bitcore.MonthEvents("active", system="idmapped")
        assert list(bitcore.UniqueEvents("premium", system="idmapped")) == ["alice"]
        assert systems.client_for("idmapped").id_mapping
    finally:
        del systems.SYSTEMS["idmapped"]
        systems._mapped_systems.discard("idmapped")


def test_a_client_made_from_a_pipeline_maps_at_once_and_queues_the_bits(
    redis_client: redis.Redis,
) -> None:
    with redis_client.pipeline() as pipe:
        queued = BitCore(pipe, id_mapping=True)
        queued.mark_event("active", "alice", WHEN, use_pipeline=False)
        assert counter(redis_client) == 1  # the mapping could not wait: its id is in the bits
        assert not redis_client.exists(LAYOUT.event_key("active", periods.period_of("day", WHEN)))
        pipe.execute()
    assert list(BitCore(redis_client, id_mapping=True).DayEvents("active", 2024, 5, 7)) == ["alice"]


@pytest.mark.parametrize("bits", [1, bulk.SCRIPT_MAX_BITS + 1])
def test_a_write_under_an_old_epoch_writes_and_counts_nothing(
    redis_client: redis.Redis, bits: int
) -> None:
    redis_client.set("epoch", b"new")
    quota = bulk.Quota("requests", 10, 60)
    writes = {"trackist_a_2024-5": set(range(bits))}
    with pytest.raises(bulk.EpochChanged):
        bulk.set_bits_atomically(redis_client, writes, quota, epoch=("epoch", b"old"))
    assert not redis_client.exists("trackist_a_2024-5", "requests")
    assert bulk.set_bits_atomically(redis_client, writes, quota, epoch=("epoch", b"new"))
    assert redis_client.bitcount("trackist_a_2024-5") == bits


def test_a_removal_between_mapping_and_writing_is_caught_by_the_write(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = BitCore(redis_client, id_mapping=True)
    eraser = BitCore(redis_client, id_mapping=True)
    writer.mark_event("seen", "alice", WHEN)  # alice -> 0
    real = bulk.set_bits_atomically
    calls: list[Any] = []

    def forget_first(*args: Any, **kwargs: Any) -> Any:
        if not calls:
            eraser.forget_id("alice")  # between the writer's mapping and its write
        calls.append(kwargs.get("epoch"))
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk, "set_bits_atomically", forget_first)
    writer.mark_event("active", "alice", WHEN)
    assert len(calls) == 2 and calls[0] is not None and calls[1] is None  # refused, then again
    day = LAYOUT.event_key("active", periods.period_of("day", WHEN))
    assert redis_client.getbit(day, 0) == 0  # nothing for the forgotten internal id
    assert writer.internal_id("alice") == 1
    assert list(writer.DayEvents("active", 2024, 5, 7)) == ["alice"]
