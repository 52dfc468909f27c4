"""``bitcore.validation.check_event_name``: one rule for the library, the tracking schema and the
segment parser; the public one (beacons) is stricter than the library's."""

from __future__ import annotations

from typing import Any

import pytest

from bitcore.validation import EventNameError, check_event_name

ANYWHERE_REFUSED: list[tuple[Any, type[Exception]]] = [
    ("", ValueError),
    ("bitop", ValueError),
    ("bitop_x", ValueError),
    ("bitop_AND_trackist_a_2024-5", ValueError),
    (None, TypeError),
    (5, TypeError),
    (b"active", TypeError),
    (["active"], TypeError),
]
PUBLIC_REFUSED = [
    "a" * 121,
    "song played",
    "a/b",
    "a*",
    "caf\u00e9",
    "a\n",
    "a\x00",
    "\ud800",
    "_seen",
]


@pytest.mark.parametrize(("name", "error"), ANYWHERE_REFUSED)
@pytest.mark.parametrize("public", [False, True])
def test_refused_everywhere(name: Any, error: type[Exception], public: bool) -> None:
    with pytest.raises(error) as raised:
        check_event_name(name, public=public, reserved=("_seen",))
    assert isinstance(raised.value, EventNameError) and raised.value.detail


@pytest.mark.parametrize("name", PUBLIC_REFUSED)
def test_public_names_are_stricter(name: str) -> None:
    with pytest.raises(EventNameError):
        check_event_name(name, public=True, reserved=("_seen",))
    if name != "_seen":
        assert check_event_name(name) == name  # the library takes what bitmapist takes


@pytest.mark.parametrize("name", ["a", "song:played", "a.b-c_d", "bitops", "x" * 120, "_seen2"])
def test_public_names_that_pass(name: str) -> None:
    assert check_event_name(name, public=True, reserved=("_seen",)) == name


def test_the_length_limit_is_a_parameter() -> None:
    assert check_event_name("abcd", public=True, max_length=4) == "abcd"
    with pytest.raises(EventNameError, match="longer than 3"):
        check_event_name("abcd", public=True, max_length=3)
