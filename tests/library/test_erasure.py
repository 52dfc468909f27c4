"""Erasure: ``BitCore.forget`` clears one user's bit everywhere and touches nothing else."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
import redis
from id_mapping_support import MappedClient

from bitcore import BitCore
from bitcore.bitmaps import set_bits
from bitcore.erasure import CLEAR_SCRIPT

pytestmark = pytest.mark.all_layouts

EVENTS = ("active", "signup", "song:played", "pay")


def load_random(mc: MappedClient, seed: int, users: int = 80) -> None:
    """Marks of ``users`` users over ~70 days (hourly and unique keys too), a sparse high id,
    and some cached bit-op results that hold users."""
    rng = random.Random(seed)
    first = datetime(2024, 12, 20)
    marks = [
        (
            rng.choice(EVENTS),
            mc.ext(rng.randrange(users)),
            first + timedelta(hours=rng.randrange(1700)),
        )
        for _ in range(600)
    ]
    marks.append(("pay", mc.ext(5000), first))  # one long key: every other key ends before 5000
    mc.bc.mark_many(marks, track_hourly=True, track_unique=True)
    b = mc.bc
    _ = b.MonthEvents("active", 2025, 1) & b.MonthEvents("signup", 2025, 1)
    _ = b.MonthEvents("active", 2025, 2) | b.WeekEvents("pay", 2025, 5)
    _ = ~b.MonthEvents("pay", 2025, 1)


def snapshot(bc: BitCore) -> dict[bytes, tuple[int, set[int]]]:
    """Every key under the prefix: its length and its members (internal ids); on the sharded
    layout every shard's keys, their members as the dataset's internal ids."""
    if bc.layout == "flat":
        views = [(bc, 0)]
    else:
        views = [(bc.shard_view(s), bc.keys.shard_base(s)) for s in bc.shards_in_use()]  # type: ignore[attr-defined]
    shot = {}
    for view, base in views:
        for key in view.redis.scan_iter(match=view.keys.all_keys_pattern(), count=1000):
            value = view.redis.get(key) or b""
            shot[key] = (len(value), {base + bit for bit in set_bits(value)})
    return shot


def is_temporary(bc: BitCore, key: bytes) -> bool:
    """Whether a key of ``snapshot`` is a temporary result (its flat name's, when sharded)."""
    if bc.layout != "flat":
        parsed = bc.keys.parse_shard_key(key)  # type: ignore[attr-defined]
        assert parsed is not None
        return bc.keys.is_temporary_key(parsed[1])
    return bc.keys.is_temporary_key(key)


def without(
    shot: dict[bytes, tuple[int, set[int]]], user: int
) -> dict[bytes, tuple[int, set[int]]]:
    return {key: (length, members - {user}) for key, (length, members) in shot.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forget_clears_the_user_everywhere_and_nothing_else(
    mapped_bc: MappedClient, seed: int
) -> None:
    load_random(mapped_bc, seed)
    bc = mapped_bc.bc
    target_ext = mapped_bc.ext(random.Random(seed).randrange(80))
    target = bc.internal_id(target_ext)
    assert target is not None
    before = snapshot(bc)
    holding = {key for key, (_, members) in before.items() if target in members}
    temporary = {key for key in holding if is_temporary(bc, key)}
    assert temporary and holding - temporary, "the data set must put the user in both kinds"

    report = bc.forget(target_ext, batch=7)  # small batches: many SCAN steps

    after = snapshot(bc)
    assert after == without(before, target)  # same keys, same lengths, others' bits unchanged
    assert not any(target in members for _, members in after.values())
    assert report.keys_changed == len(holding)
    assert report.temporary_keys_changed == len(temporary)
    assert report.keys_scanned == len(before)
    assert report.internal_id == target and not report.dry_run
    assert report.mapping_removed is mapped_bc.mapping
    assert target_ext not in bc.MonthEvents("active", 2025, 1)


def test_dry_run_writes_nothing_and_counts_the_same(mapped_bc: MappedClient) -> None:
    load_random(mapped_bc, 4)
    bc = mapped_bc.bc
    target_ext = mapped_bc.ext(11)
    raw = {key: bc.redis.dump(key) for key in bc.redis.scan_iter(count=1000)}
    dry = bc.forget(target_ext, dry_run=True)
    assert {key: bc.redis.dump(key) for key in bc.redis.scan_iter(count=1000)} == raw
    assert dry.dry_run and not dry.mapping_removed and dry.keys_changed > 0
    real = bc.forget(target_ext)
    assert (real.data_keys_changed, real.temporary_keys_changed) == (
        dry.data_keys_changed,
        dry.temporary_keys_changed,
    )


def test_a_stopped_erasure_run_again_ends_the_same_and_counts_once(mapped_bc: MappedClient) -> None:
    load_random(mapped_bc, 5)
    bc = mapped_bc.bc
    target_ext = mapped_bc.ext(3)
    target = bc.internal_id(target_ext)
    assert target is not None
    before = snapshot(bc)
    full = bc.forget(target_ext, dry_run=True).keys_changed

    class Stop(Exception):
        pass

    scanned = []

    def stop_halfway(keys: int) -> None:
        scanned.append(keys)
        if sum(scanned) >= len(before) // 2:
            raise Stop

    with pytest.raises(Stop):
        bc.forget(target_ext, batch=10, progress=stop_halfway)
    first = full - bc.forget(target_ext, dry_run=True).keys_changed
    assert 0 < first < full  # stopped midway: some keys cleared, some not
    assert bc.internal_id(target_ext) == target  # the mapping is removed last: still there
    second = bc.forget(target_ext)
    assert first + second.keys_changed == full
    assert snapshot(bc) == without(before, target)
    assert bc.forget(target_ext).keys_changed == 0  # nothing left, nothing counted twice


def test_a_bit_past_a_keys_end_is_never_written(bc: BitCore) -> None:
    bc.mark_event("active", 3, now=datetime(2025, 1, 1))
    report = bc.forget(4_000_000_000)  # far past every key's end
    assert report.keys_changed == 0
    assert report.keys_scanned > 0 or bc.layout == "sharded"  # sharded: its shard has no keys
    assert {length for length, _ in snapshot(bc).values()} == {1}


def test_other_types_under_the_prefix_are_left_alone(bc: BitCore) -> None:
    bc.mark_event("active", 3, now=datetime(2025, 1, 1))
    bc.redis.hset(bc.keys.prefix + "someones_hash", "a", "b")
    assert bc.forget(3).data_keys_changed == 4  # month, week, day, universe
    assert bc.redis.hgetall(bc.keys.prefix + "someones_hash") == {b"a": b"b"}


@pytest.mark.flat_only("the script on two keys of different slots: one Redis")
def test_the_script_skips_a_key_of_another_type(redis_client: redis.Redis) -> None:
    redis_client.hset("h", "a", "b")
    redis_client.setbit("s", 9, 1)
    script = redis_client.register_script(CLEAR_SCRIPT)
    assert script(keys=["h", "s"], args=[9, "dry"]) == [0, 1] and redis_client.getbit("s", 9)
    assert script(keys=["h", "s"], args=[9, "write"]) == [0, 1] and not redis_client.getbit("s", 9)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "x", None])
def test_nonsense_ids_are_refused_before_anything_is_read(bc: BitCore, bad: object) -> None:
    bc.mark_event("active", 3)
    with pytest.raises((TypeError, ValueError)):
        bc.forget(bad)  # type: ignore[arg-type]


def test_batch_must_be_positive(bc: BitCore) -> None:
    with pytest.raises(ValueError, match="batch"):
        bc.forget(1, batch=0)
