"""bitcore.tracking.write against oracles: the keys each beacon gets, and the bits a batch
leaves in Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcore import BitCore
from bitcore.bulk import SCRIPT_MAX_BITS
from bitcore.tracking.schema import Beacon
from bitcore.tracking.write import plan_beacons, write_beacons

NOW = datetime(2024, 3, 31, 0, 40, tzinfo=UTC)  # a month, week and (in some zones) DST edge
START = NOW.timestamp()

beacons_strategy = st.lists(
    st.builds(
        Beacon,
        event=st.sampled_from(["play", "buy", "page:view"]),
        uid=st.integers(0, 5000),
        ts=st.one_of(st.none(), st.floats(START - 3 * 86400, START + 3 * 86400)),
        track_hourly=st.booleans(),
        unique=st.booleans(),
    ),
    max_size=60,
)


def expected_bits(client: BitCore, beacons: list[Beacon]) -> dict[str, set[int]]:
    """The oracle: each beacon's keys straight from ``mark_keys`` at its own moment."""
    universe = client.keys.unique_key(client.universe)
    writes: dict[str, set[int]] = {}
    for b in beacons:
        when = NOW if b.ts is None else datetime.fromtimestamp(b.ts, UTC)
        for key in [*client.mark_keys(b.event, when, b.track_hourly, b.unique), universe]:
            writes.setdefault(key, set()).add(b.uid)
    return writes


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kathmandu", "Europe/Berlin", "America/St_Johns"])
@settings(max_examples=60, deadline=None)
@given(beacons=beacons_strategy)
def test_plan_beacons_matches_mark_keys_per_beacon(timezone: str, beacons: list[Beacon]) -> None:
    client = BitCore("redis://127.0.0.1:1", timezone=timezone)  # never connects: keys only
    assert plan_beacons(client, beacons, NOW).writes == expected_bits(client, beacons)


def stored_bits(r: redis.Redis) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for key in r.keys("trackist_*"):
        value = r.get(key) or b""
        assert isinstance(value, bytes)
        bits = {i * 8 + j for i, byte in enumerate(value) for j in range(8) if byte & (0x80 >> j)}
        found[key.decode() if isinstance(key, bytes) else key] = bits
    return found


@pytest.mark.parametrize("size", [1, 10, 600])  # the script below SCRIPT_MAX_BITS, MULTI above
def test_written_bits_are_exactly_the_oracles(
    size: int, redis_url: str, redis_client: redis.Redis
) -> None:
    client = BitCore(redis_url)
    beacons = [
        Beacon(f"ev{i % 3}", (i * 7919) % 100_000, START - (i % 5) * 3600, i % 2 == 0, i % 4 == 0)
        for i in range(size)
    ]
    assert (size * 4 > SCRIPT_MAX_BITS) == (size == 600)
    result = write_beacons(client, beacons, now=NOW)
    assert (result.written, result.allowed) == (size, True)
    expected = {key: uids for key, uids in expected_bits(client, beacons).items() if uids}
    assert stored_bits(redis_client) == expected


@pytest.mark.parametrize("size", [1, 100])  # the script, and the check before MULTI/EXEC
def test_a_key_of_another_type_writes_nothing_and_the_connection_is_reused(
    size: int, redis_url: str, redis_client: redis.Redis
) -> None:
    """All or nothing: MULTI/EXEC alone would write every other key and fail only that one."""
    client = BitCore(redis_url)
    beacons = [Beacon("play", uid, None, False, False) for uid in range(size)]
    universe = client.keys.unique_key(client.universe)
    redis_client.lpush(universe, "not a bitmap")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        write_beacons(client, beacons, now=NOW)
    assert redis_client.keys("*") == [universe.encode()]
    redis_client.delete(universe)
    assert write_beacons(client, beacons, now=NOW).written == size  # the pool is still usable
    assert client.redis.bitcount(universe) == size
