"""SegmentStore on a real Redis: evaluation vs a Python-set oracle, storage, references, cycles."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import periods
from bitcore.bitmaps import Bitmap
from bitcore.segments import (
    MAX_LEAVES,
    InvalidSegmentName,
    SegmentCycle,
    SegmentError,
    SegmentExists,
    SegmentInUse,
    SegmentNotFound,
    SegmentStore,
    SegmentSyntaxError,
    SegmentTooLarge,
    UnknownSegments,
    format_expression,
)
from bitcore.segments.parser import BinOp, Event, Node, Not, SegmentRef, Unique

pytestmark = pytest.mark.all_layouts

WEEK = periods.week(2025, 2)
WHEN = datetime(2025, 1, 8, 12)  # inside ISO week 2025-W02
OTHER_WEEK = datetime(2025, 3, 5)  # another week and month, same year
EVENTS = ["a", "b", "song:played", "x y"]
UNIQUES = ["premium"]


# --- the oracle: the same expression over Python sets


def oracle(
    node: Node, members: dict[str, set[int]], universe: set[int], saved: dict[str, Node]
) -> set[int]:
    if isinstance(node, Event):
        return members.get(node.name, set())
    if isinstance(node, Unique):
        return members.get(f"unique:{node.name}", set())
    if isinstance(node, SegmentRef):
        return oracle(saved[node.name], members, universe, saved)
    if isinstance(node, Not):
        return universe - oracle(node.operand, members, universe, saved)
    results = [oracle(child, members, universe, saved) for child in node.operands]
    out = set(results[0])
    for other in results[1:]:
        if node.op == "AND":
            out &= other
        elif node.op == "OR":
            out |= other
        else:
            out ^= other
    return out


def trees(refs: list[str]) -> st.SearchStrategy[Node]:
    leaf_choices = [
        st.builds(Event, st.sampled_from(EVENTS)),
        st.builds(Unique, st.sampled_from(UNIQUES)),
    ]
    if refs:
        leaf_choices.append(st.builds(SegmentRef, st.sampled_from(refs)))

    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        return st.one_of(
            st.builds(Not, children),
            st.builds(
                BinOp,
                st.sampled_from(["AND", "OR", "XOR"]),
                st.lists(children, min_size=2, max_size=3).map(tuple),
            ),
        )

    return st.recursive(st.one_of(*leaf_choices), extend, max_leaves=6)


user_sets = st.sets(st.integers(0, 40), max_size=15)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    members=st.fixed_dictionaries({name: user_sets for name in [*EVENTS, "unique:premium"]}),
    elsewhere=user_sets,
    base=trees([]),
    data=st.data(),
)
def test_evaluation_equals_the_expression_on_python_sets(
    redis_client: redis.Redis,
    make_bc: Callable[..., bitcore.BitCore],
    members: dict[str, set[int]],
    elsewhere: set[int],
    base: Node,
    data: st.DataObject,
) -> None:
    redis_client.flushall()
    bc = make_bc()
    marks: list[bitcore.Mark] = [(e, u, WHEN) for e in EVENTS for u in members[e]]
    marks += [("a", u, OTHER_WEEK) for u in elsewhere]  # seen (so in the universe), not this week
    bc.mark_many(marks)
    for uid in members["unique:premium"]:
        bc.mark_unique("premium", uid)
    universe = set().union(*members.values(), elsewhere)

    store = SegmentStore(bc)
    store.save("base", format_expression(base))
    top = data.draw(trees(["base"]), label="top")
    store.save("top", format_expression(top))
    saved = {"base": base, "top": top}

    for name in ("base", "top"):
        expected = oracle(saved[name], members, universe, saved)
        bitmap = store.bitmap(name, WEEK)
        assert isinstance(bitmap, Bitmap)
        assert set(bitmap) == expected
        assert len(bitmap) == len(expected)
        for uid in [*sorted(expected)[:2], 0, 13, 40]:  # a few ids: each test is a round trip
            assert (uid in bitmap) == (uid in expected)
    bc.delete_runtime_bitop_keys()


# --- the Bitmap API, periods and the convenience method


@pytest.fixture
def store(bc: bitcore.BitCore) -> SegmentStore:
    bc.mark_many(
        [
            ("active", 1, WHEN),
            ("active", 2, WHEN),
            ("commented", 2, WHEN),
            ("active", 3, OTHER_WEEK),
        ]
    )
    return SegmentStore(bc)


def test_segment_bitmap_has_the_month_events_api(bc: bitcore.BitCore, store: SegmentStore) -> None:
    store.save("engaged", "active AND commented")
    engaged = store.bitmap("engaged", WEEK)
    assert len(engaged) == 1 and 2 in engaged and 1 not in engaged
    assert list(engaged) == [2]
    assert set(engaged | bc.WeekEvents("active", 2025, 2)) == {1, 2}
    assert set(~engaged) == {1, 3}  # NOT against the universe: every user ever marked
    assert set(bc.WeekEvents("active", 2025, 2) & engaged) == {2}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("hour", {1, 2}), ("day", {1, 2}), ("week", {1, 2}), ("month", {1, 2}), ("year", {1, 2, 3})],
)
def test_evaluate_takes_any_period_kind(
    store: SegmentStore, kind: periods.Kind, expected: set[int]
) -> None:
    store.client.track_hourly = True
    store.client.mark_many([("active", 1, WHEN), ("active", 2, WHEN)])
    store.save("actives", "active")
    assert set(store.evaluate("actives", kind, when=WHEN)) == expected


def test_a_single_event_segment_is_the_event_itself(
    bc: bitcore.BitCore, store: SegmentStore
) -> None:
    store.save("actives", "active")
    assert store.bitmap("actives", WEEK) == bc.WeekEvents("active", 2025, 2)


@pytest.mark.flat_only("reads the flat layout's trackist_bitop_ key name and TTL")
def test_segment_results_are_temporary_bitop_keys_with_a_ttl(
    bc: bitcore.BitCore, store: SegmentStore
) -> None:
    store.save("lurkers", "active & ~commented")
    key = store.bitmap("lurkers", WEEK).redis_key
    assert key.startswith("trackist_bitop_")
    assert bc.redis.ttl(key) > 0
    assert bc.delete_temporary_bitop_keys() >= 1
    assert set(store.bitmap("lurkers", WEEK)) == {1}
    assert store.names() == ["lurkers"]  # the clean-up did not touch the segment


def test_preview_evaluates_an_unsaved_expression(store: SegmentStore) -> None:
    assert len(store.preview("active | commented", WEEK)) == 2
    with pytest.raises(UnknownSegments, match="'nope'"):
        store.preview("active & @nope", WEEK)


# --- storage


@pytest.mark.flat_only("reads the flat layout's name of a segment's hash")
def test_round_trip_keeps_every_field(bc: bitcore.BitCore, store: SegmentStore) -> None:
    saved = store.save("ios users", 'unique(ios) & "signed up"', "People on <iOS>", by="ana")
    loaded = store.get("ios users")
    assert loaded == saved
    assert loaded.expression == 'unique(ios) & "signed up"'
    assert loaded.description == "People on <iOS>"
    assert (loaded.created_by, loaded.updated_by) == ("ana", "ana")
    assert loaded.created_at == loaded.updated_at != ""
    assert store.names() == ["ios users"]
    assert store.all() == [loaded]
    assert bc.redis.type("bitcore:segment:ios users") == b"hash"
    assert bc.redis.smembers("bitcore:segments") == {b"ios users"}


def test_segment_keys_never_look_like_events(bc: bitcore.BitCore, store: SegmentStore) -> None:
    store.save("s", "active")
    assert "s" not in bc.get_event_names()
    assert not any(k.startswith(b"trackist_") for k in bc.redis.keys("bitcore:*"))
    bc.delete_all_events()
    assert store.names() == ["s"]


def test_update_keeps_creation_and_records_the_editor(store: SegmentStore) -> None:
    first = store.save("s", "active", by="ana")
    second = store.save("s", "commented", "now commenters", by="bo", original="s")
    assert (second.created_by, second.created_at, second.updated_by) == (
        "ana",
        first.created_at,
        "bo",
    )
    assert store.get("s").expression == "commented"


def test_create_refuses_a_taken_name_and_update_a_missing_one(store: SegmentStore) -> None:
    store.save("s", "active")
    with pytest.raises(SegmentExists):
        store.save("s", "commented")
    with pytest.raises(SegmentNotFound):
        store.save("t", "active", original="missing")
    assert store.get("s").expression == "active"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("x" * 65, "at most 64 characters"),
        ("a/b", "not '/'"),
        ("<script>", "not '<'"),
        (" padded", "start or end with a space"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_saved(
    store: SegmentStore, name: str, message: str
) -> None:
    with pytest.raises(InvalidSegmentName, match=message):
        store.save(name, "active")
    assert store.names() == []


def test_good_names_are_accepted(store: SegmentStore) -> None:
    for name in ["a", "x" * 64, "iOS users: v1.2_beta-3", "Ünïcode 42"]:
        store.save(name, "active")
    assert len(store.names()) == 4


def test_bad_expression_saves_nothing(store: SegmentStore) -> None:
    with pytest.raises(SegmentSyntaxError):
        store.save("s", "active &")
    assert store.names() == []


def test_get_missing_segment(store: SegmentStore) -> None:
    with pytest.raises(SegmentNotFound, match="'nope'"):
        store.get("nope")
    with pytest.raises(SegmentNotFound):
        store.bitmap("nope", WEEK)


# --- references, cycles, deletes, renames


def test_unknown_references_are_refused(store: SegmentStore) -> None:
    with pytest.raises(UnknownSegments, match="unknown segments: 'x', 'y'"):
        store.save("s", "@x | @y | active")
    assert store.names() == []


@pytest.mark.parametrize(
    ("setup", "name", "expression", "cycle"),
    [
        ([], "s", "active & @s", "s -> s"),
        ([("a", "active")], "a", "@a", "a -> a"),
        ([("a", "active"), ("b", "@a")], "a", "@b", "a -> b -> a"),
        ([("a", "active"), ("b", "@a"), ("c", "@b & commented")], "a", "~@c", "a -> c -> b -> a"),
    ],
)
def test_cycles_are_refused_when_saving(
    store: SegmentStore, setup: list[tuple[str, str]], name: str, expression: str, cycle: str
) -> None:
    for seg, expr in setup:
        store.save(seg, expr)
    before = {s.name: s.expression for s in store.all()}
    original = name if name in before else None
    with pytest.raises(SegmentCycle, match=cycle):
        store.save(name, expression, original=original)
    assert {s.name: s.expression for s in store.all()} == before


def test_exponential_expansion_is_refused(store: SegmentStore) -> None:
    store.save("s0", "active | commented")
    level = 0
    with pytest.raises(SegmentTooLarge, match=str(MAX_LEAVES)):
        while level < 20:
            store.save(f"s{level + 1}", f"@s{level} & @s{level} | @s{level}")
            level += 1
    assert level < 20


def test_a_used_segment_cannot_be_deleted_and_the_error_names_its_users(
    store: SegmentStore,
) -> None:
    store.save("base", "active")
    store.save("u1", "@base & commented")
    store.save("u2", "~@base")
    with pytest.raises(SegmentInUse, match="used by 'u1', 'u2'") as caught:
        store.delete("base")
    assert caught.value.users == ["u1", "u2"]
    assert store.used_by("base") == ["u1", "u2"]
    store.delete("u1")
    store.delete("u2")
    store.delete("base")
    assert store.names() == []
    assert not store.client.redis.keys("bitcore:*segment*")  # "bitcore:{segments}..." if sharded


def test_delete_missing_segment(store: SegmentStore) -> None:
    with pytest.raises(SegmentNotFound):
        store.delete("nope")


def test_rename_moves_the_segment_unless_others_use_it(store: SegmentStore) -> None:
    store.save("old", "active", by="ana")
    renamed = store.save("new", "active", by="bo", original="old")
    assert store.names() == ["new"]
    assert renamed.created_by == "ana"
    store.save("user", "@new")
    with pytest.raises(SegmentInUse, match="cannot rename segment 'new': it is used by 'user'"):
        store.save("newer", "active", original="new")
    assert store.names() == ["new", "user"]
    store.save("user2", "active")
    with pytest.raises(SegmentExists):
        store.save("user2", "active", original="new")


def test_oversized_description_is_refused(store: SegmentStore) -> None:
    with pytest.raises(SegmentError, match="at most 1000"):
        store.save("s", "active", "x" * 1001)
    assert store.names() == []


def test_concurrent_saves_lose_nothing(
    bc: bitcore.BitCore, make_bc: Callable[..., bitcore.BitCore]
) -> None:
    """Many threads creating segments at once (each save WATCHes the index), each with a client
    of its own: every one is stored."""
    errors: list[Exception] = []

    def worker(i: int) -> None:
        try:
            SegmentStore(make_bc()).save(f"s{i}", "active")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert SegmentStore(bc).names() == sorted(f"s{i}" for i in range(12))


def test_a_prefix_under_the_segment_namespace_is_refused(
    make_bc: Callable[..., bitcore.BitCore],
) -> None:
    with pytest.raises(ValueError, match="look like events"):
        SegmentStore(make_bc(key_prefix="bitcore:"))
