"""Bitmap bytes received straight into numpy (``bitcore.transfer`` via ``reading.read_words``) are
exactly what GETRANGE returns, and a read that fails or is abandoned never leaves a half-read reply
on the connection the next report uses."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import reading, transfer, wire

KEYS = [f"trackist_t{k}_u" for k in range(4)]


def received(bc: bitcore.BitCore, round_trip_bytes: int) -> list[bytes]:
    """Each key's bytes as ``read_words`` hands them over, slice after slice, joined again."""
    read = reading.Reading(KEYS, reading.measure(bc, KEYS, {}))
    joined = [bytearray() for _ in KEYS]
    for part in reading.read_words(bc.redis, read, round_trip_bytes):
        # as wide as the slice (the longest key has bytes in every one), no wider: the last slice
        # once took the others' width and was counted over zeros
        assert part.words.shape[1] == -(-max(part.lengths) // 8)
        for k, length in enumerate(part.lengths):
            joined[k] += part.words[k].view(np.uint8)[:length].tobytes()
            assert not part.words[k].view(np.uint8)[length:].any()  # zero past its end
    return [bytes(b) for b in joined]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.binary(max_size=300), min_size=len(KEYS), max_size=len(KEYS)),
    round_trip=st.sampled_from([0, 16, 100, 1 << 20]),
)
def test_received_bytes_are_the_stored_ones(
    bc: bitcore.BitCore,
    monkeypatch: pytest.MonkeyPatch,
    values: list[bytes],
    round_trip: int,
) -> None:
    monkeypatch.setattr(reading, "MIN_SLICE_BYTES", 8)
    monkeypatch.setattr(transfer, "CHUNK_BYTES", 64)  # headers split across reads too
    for key, value in zip(KEYS, values, strict=True):
        bc.redis.set(key, value) if value else bc.redis.delete(key)
    assert received(bc, round_trip) == values


def test_an_error_reply_raises_and_the_next_read_works(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In slices a key of another type is GETRANGE's WRONGTYPE error; read whole (MGET) it has no
    bytes, as in redis-py's MGET."""
    monkeypatch.setattr(reading, "MIN_SLICE_BYTES", 8)
    bc.redis.set(KEYS[0], b"\x01" * 20)
    bc.redis.delete(*KEYS[1:])
    bc.redis.rpush(KEYS[1], "not a string")
    read = reading.Reading(KEYS[:2], [20, 20])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        list(reading.read_words(bc.redis, read, round_trip_bytes=16))
    assert [p.lengths for p in reading.read_words(bc.redis, read)] == [[20, 0]]
    bc.redis.delete(KEYS[1])
    assert received(bc, 1 << 20)[0] == b"\x01" * 20


def test_an_abandoned_read_leaves_no_reply_behind(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping after the first of several slices (the next one already asked for) disconnects
    the connection: the next report reads its own reply, not the rest of this one."""
    monkeypatch.setattr(reading, "MIN_SLICE_BYTES", 8)
    for k, key in enumerate(KEYS):
        bc.redis.set(key, bytes([k + 1]) * 64)
    read = reading.Reading(KEYS, [64] * len(KEYS))
    slices = reading.read_words(bc.redis, read, round_trip_bytes=0)
    next(slices)
    slices.close()
    assert received(bc, 1 << 20) == [bytes([k + 1]) * 64 for k in range(len(KEYS))]


def test_a_connection_the_server_closed_is_replaced(bc: bitcore.BitCore) -> None:
    for key in KEYS:
        bc.redis.set(key, b"\xff" * 10)
    received(bc, 1 << 20)  # the thread's own connection is open now
    mine = wire.own_connection(bc.redis)
    mine.send_command("CLIENT", "ID")
    bc.redis.client_kill_filter(_id=mine.read_response())
    assert received(bc, 1 << 20) == [b"\xff" * 10] * len(KEYS)


def test_a_key_that_grew_since_it_was_measured_is_read_as_measured(bc: bitcore.BitCore) -> None:
    """GETRANGE asks for the measured bytes only: a concurrent write cannot overflow a row."""
    bc.redis.set(KEYS[0], b"\x0f" * 8)
    read = reading.Reading(KEYS[:1], [8])
    bc.redis.set(KEYS[0], b"\x0f" * 4096)
    parts = list(reading.read_words(bc.redis, read))
    assert [p.lengths for p in parts] == [[8]]
    assert parts[0].words.shape == (1, 1)
