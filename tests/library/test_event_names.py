"""The registry of event names (bitcore.event_names): paging, searching, rebuilding, on real Redis.

Writes maintain the registry themselves (``bitcore.bulk``); here the tests put names in it
directly (``ZADD``), or write as plain bitmapist does (bits, no registry entry) and let
:func:`event_names.rebuild` find them in the keyspace.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.exceptions import OutOfMemoryError

from bitcore import BitCore, event_names


def register(bc: BitCore, *names: str) -> None:
    bc.redis.zadd(bc.keys.event_names_key(), dict.fromkeys(names, 0))


def as_bitmapist(bc: BitCore, marks: list[tuple[str, int]], unique: tuple[str, ...] = ()) -> None:
    """Bits as plain bitmapist writes them: the same keys, and no registry entry."""
    bc.mark_many(marks)
    for name in unique:
        bc.mark_unique(name, 0)
    bc.redis.zrem(bc.keys.event_names_key(), *{name for name, _ in marks}, *unique)
    if unique:
        bc.redis.zrem(bc.keys.flag_names_key(), *unique)


def registered(bc: BitCore) -> list[str]:
    return [n.decode() for n in bc.redis.zrange(bc.keys.event_names_key(), 0, -1)]


def test_page_walks_the_names_in_order_with_the_total(bc: BitCore) -> None:
    register(bc, *(f"e{i:03d}" for i in range(120)))
    first = event_names.page(bc, 0, 50)
    assert first.names == [f"e{i:03d}" for i in range(50)] and first.total == 120
    assert first.has_next and first.complete
    last = event_names.page(bc, 100, 50)
    assert last.names == [f"e{i:03d}" for i in range(100, 120)] and not last.has_next
    assert event_names.page(bc, 500, 50).names == [] and event_names.count(bc) == 120


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0)])
def test_page_bounds_are_checked(bc: BitCore, offset: int, limit: int) -> None:
    with pytest.raises(ValueError, match="offset"):
        event_names.page(bc, offset, limit)


def test_prefix_is_a_range_of_the_sorted_set(bc: BitCore) -> None:
    register(bc, "song", "song:played", "song:skipped", "songbird", "son", "sonz", "play", "sõng")
    found = event_names.with_prefix(bc, "song", 0, 2)
    assert found.names == ["song", "song:played"] and found.total == 4 and found.has_next
    assert event_names.with_prefix(bc, "song", 2, 10).names == ["song:skipped", "songbird"]
    assert event_names.with_prefix(bc, "sõ").names == ["sõng"]
    assert event_names.with_prefix(bc, "zzz").names == []
    assert event_names.with_prefix(bc, "").total == 8


def test_search_is_a_case_insensitive_substring(bc: BitCore) -> None:
    register(bc, "song:played", "SONG", "Playlist:songs", "active", "müsic", "MÜSIC")
    found = event_names.search(bc, "song")
    assert found.names == ["Playlist:songs", "SONG", "song:played"] and found.complete
    assert event_names.search(bc, "üs").names == ["MÜSIC", "müsic"]
    assert event_names.search(bc, "SoNg", 1, 1).names == ["SONG"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*", ["a*b"]),
        ("?", ["a?c"]),
        ("[b]", ["a[b]"]),
        ("\\", ["back\\slash"]),
        ("^", ["x^y"]),
        ("a", ["a*b", "a?c", "a[b]", "abc", "back\\slash"]),
    ],
)
def test_search_takes_glob_characters_literally(
    bc: BitCore, text: str, expected: list[str]
) -> None:
    register(bc, "a*b", "a?c", "a[b]", "abc", "back\\slash", "x^y")
    assert event_names.search(bc, text).names == expected


def test_search_is_bounded_and_says_so(bc: BitCore) -> None:
    register(bc, *(f"name{i:05d}" for i in range(12_000)))
    bounded = event_names.search(bc, "NAME", max_scanned=event_names.BATCH)
    assert not bounded.complete and bounded.total == event_names.BATCH
    full = event_names.search(bc, "name", offset=11_990)
    assert full.complete and full.total == 12_000
    assert full.names == [f"name{i:05d}" for i in range(11_990, 12_000)]
    exact = event_names.search(bc, "name", max_scanned=12_000)
    assert exact.complete, "every name was read, though the budget ran out with the last one"


def test_rebuild_finds_every_event_name_and_nothing_else(bc: BitCore) -> None:
    as_bitmapist(bc, [("song:played", 1), ("signup", 2), ("weird name", 3)], unique=("premium",))
    bc.redis.set(bc.keys.bitop_key("AND", ["trackist_a_2024-5"]), b"\x01")
    bc.redis.set("trackist_bitop_2024-5", b"\x01")  # an event named "bitop": refused, left out
    bc.redis.set("trackist_notakey", b"\x01")
    bc.redis.set("other_app:song_2024-5", b"\x01")
    assert event_names.rebuild(bc, batch=2) == 4
    assert registered(bc) == ["signup", "song:played", "weird name"]
    assert event_names.flag_page(bc).names == ["premium"], "a unique-only name is a flag"
    assert "_seen" not in registered(bc), "the universe is not an event"
    assert event_names.rebuild(bc) == 0, "already there"


def test_ensure_rebuilds_once_then_reads_the_registry(bc: BitCore) -> None:
    as_bitmapist(bc, [("a", 1), ("b", 2)])
    assert event_names.ensure(bc) == 2
    as_bitmapist(bc, [("c", 3)])
    assert event_names.ensure(bc) == 0 and registered(bc) == ["a", "b"]
    assert event_names.rebuild(bc) == 1, "the next cleanup run's rebuild finds it"
    bc.redis.delete(bc.keys.event_names_key())
    assert event_names.ensure(bc) == 3, "a registry that went away is rebuilt"


def test_a_registry_made_by_writes_alone_is_completed_once(bc: BitCore) -> None:
    """A Redis upgraded in place: old keys, and a registry begun by the first new write."""
    as_bitmapist(bc, [("old", 1)])
    register(bc, "new")
    assert event_names.ensure(bc) == 1 and registered(bc) == ["new", "old"]


def test_ensure_on_a_full_redis_answers_with_what_there_is(
    bc: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_bitmapist(bc, [("a", 1)])

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(bc.redis, "zadd", full)
    assert event_names.ensure(bc) == 0
    assert event_names.page(bc).names == []
    monkeypatch.undo()
    assert event_names.ensure(bc) == 1, "the next call tries again"


def test_is_registered_is_exact(bc: BitCore) -> None:
    register(bc, "song:played")
    assert event_names.is_registered(bc, "song:played")
    assert not event_names.is_registered(bc, "song")
    assert not event_names.is_registered(bc, "song:played\x00")


def test_get_event_names_keeps_scanning_the_keyspace(bc: BitCore) -> None:
    """bitmapist compatibility: ``get_event_names`` lists keys, registered or not."""
    bc.mark_many([("song", 1)])
    register(bc, "registered:only")
    assert bc.get_event_names() == ["song"]


def test_registry_of_another_prefix_is_its_own(redis_client: redis.Redis) -> None:
    ours, theirs = BitCore(redis_client), BitCore(redis_client, key_prefix="other_")
    ours.mark_many([("a", 1)])
    theirs.mark_many([("b", 1)])
    event_names.ensure(ours)
    event_names.ensure(theirs)
    assert event_names.page(ours).names == ["a"] and event_names.page(theirs).names == ["b"]


def test_dateless_marks_make_flags_and_dated_marks_events(bc: BitCore) -> None:
    bc.mark_unique_many([("ios", 1), ("web", 2)])
    bc.mark_event("active", 1, track_unique=True)
    bc.mark_unique("active", 3)  # marked both ways: an event that also has a flag count
    assert registered(bc) == ["active"]
    assert event_names.kind_of(bc, "ios") == "flag"
    assert event_names.kind_of(bc, "active") == "event"
    assert event_names.kind_of(bc, "never") is None
    found = event_names.flag_page(bc)
    assert found.names == ["ios", "web"] and found.total == 2 and found.complete


def test_flag_page_is_bounded_and_says_when_it_is_not_all(bc: BitCore) -> None:
    bc.mark_unique_many([(f"plan{i:02d}", 1) for i in range(12)])
    found = event_names.flag_page(bc, limit=5)
    assert found.names == [f"plan{i:02d}" for i in range(5)]
    assert found.total == 12 and not found.complete


def test_a_registry_of_an_older_version_moves_its_flags_out(bc: BitCore) -> None:
    """Older versions listed unique-only names as events: the next ensure() rebuilds once and
    moves them to the flags' registry."""
    bc.mark_event("active", 1)
    bc.mark_unique("android", 1)
    bc.redis.zadd(bc.keys.event_names_key(), {"android": 0})
    bc.redis.delete(bc.keys.flag_names_key())
    bc.redis.set(bc.keys.event_names_rebuilt_key(), "1700000000")  # an old marker: no version
    event_names.ensure(bc)
    assert registered(bc) == ["active"]
    assert event_names.kind_of(bc, "android") == "flag"
    assert event_names.ensure(bc) == 0, "rebuilt once"
