"""Checks on what callers hand us, run before anything is written so bad input costs nothing."""

from __future__ import annotations

import operator
import re
from typing import Any

from bitcore.keys import BITOP_NAMESPACE

MAX_UUID = 2**32 - 1


def check_uuid(uuid: Any) -> int:
    """The uuid as an ``int`` in ``[0, 2**32)``, or a ``TypeError``/``ValueError`` that names it.

    Redis would accept any offset below 2**32 and allocate ``uuid / 8`` bytes for it; a float, a
    bool or a numeric string is almost always a caller's bug, so it is refused rather than coerced
    (bitmapist passes them to Redis, which rejects some and silently accepts others).

    >>> check_uuid(123)
    123
    """
    if isinstance(uuid, bool) or not hasattr(uuid, "__index__"):
        raise TypeError(f"uuid must be an integer, got {type(uuid).__name__} {uuid!r}")
    value = operator.index(uuid)
    if not 0 <= value <= MAX_UUID:
        raise ValueError(f"uuid {value} is out of range: ids must be in [0, 2**32)")
    return value


class EventNameError(ValueError):
    """An event name bitcore refuses; ``detail`` says why without naming the field, so the
    tracking endpoint can put the field (``events[3].event``) in front of it."""

    def __init__(self, event_name: object, detail: str) -> None:
        super().__init__(f"event name {event_name!r} {detail}")
        self.detail = detail


class EventNameTypeError(EventNameError, TypeError):
    """An event name that is not a string (a ``TypeError`` too, as callers have caught so far)."""


#: Letters, digits and ``:_.-``: safe in a Redis key, a SCAN pattern and a URL, and easy to read.
PUBLIC_EVENT_NAME = re.compile(r"[A-Za-z0-9:_.\-]+")
#: Longest event name the tracking endpoint accepts.
MAX_PUBLIC_NAME_LENGTH = 120
_BITOP_PREFIX = f"{BITOP_NAMESPACE}_"


def check_event_name(
    event_name: Any,
    *,
    public: bool = False,
    reserved: tuple[str, ...] = (),
    max_length: int = MAX_PUBLIC_NAME_LENGTH,
) -> str:
    """The event name, or an ``EventNameError`` (``EventNameTypeError`` for a non-string).

    Every name: a non-empty string (it becomes part of a Redis key) that is not ``bitop`` or
    ``bitop_…`` (those keys are where temporary bit-op results live), nor one of ``reserved``
    (the tracking endpoint reserves the universe, ``_seen``). ``public`` adds the rule for names
    from untrusted sources (beacons): at most ``max_length`` characters of letters, digits and
    ``:_.-``. The library's own callers may use any other name, as bitmapist allows.

    >>> check_event_name("song:played", public=True)
    'song:played'
    """
    if not isinstance(event_name, str):
        raise EventNameTypeError(event_name, f"must be a string, not {type(event_name).__name__}")
    if not event_name:
        raise EventNameError(event_name, "must not be empty")
    if public:
        if len(event_name) > max_length:
            raise EventNameError(f"{event_name[:20]}...", f"is longer than {max_length} characters")
        if not PUBLIC_EVENT_NAME.fullmatch(event_name):
            raise EventNameError(event_name, "may only hold letters, digits and ':_.-'")
    if event_name == BITOP_NAMESPACE or event_name.startswith(_BITOP_PREFIX):
        raise EventNameError(
            event_name,
            f"is reserved: keys under '{_BITOP_PREFIX}' hold temporary bit-op results",
        )
    if event_name in reserved:
        raise EventNameError(event_name, "is a name bitcore reserves for itself")
    return event_name


#: External ids (with the id map on): integers in ``[0, 2**63)``, strings of 1 to 128 printable
#: characters.
MAX_EXTERNAL_INT = 2**63 - 1
MAX_EXTERNAL_LENGTH = 128
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]{0,18}")


def check_external_id(external: Any) -> int | str:
    """An external user id in its canonical form, or a ``TypeError``/``ValueError`` naming it.

    An int in ``[0, 2**63)``, or a string of 1 to 128 printable characters. A string that spells
    such an int the way Python prints it (``"123"``; not ``"0123"``, ``"+1"`` or ``" 1"``) is
    the same user as the int, and comes back as the int: JavaScript cannot hold a 64-bit id as a
    number, so a page sends ``"1234567890123456789"`` where the backend has the int. Every other
    string is itself, compared exactly (case and all).

    >>> check_external_id("123"), check_external_id("0123"), check_external_id(7)
    (123, '0123', 7)
    """
    if isinstance(external, str):
        if not 0 < len(external) <= MAX_EXTERNAL_LENGTH:
            raise ValueError(
                f"user id {external[:20]!r} must be 1 to {MAX_EXTERNAL_LENGTH} characters long"
            )
        if _CANONICAL_INT.fullmatch(external):
            value = int(external)
            if value <= MAX_EXTERNAL_INT:
                return value
        if not external.isprintable():
            raise ValueError(f"user id {external[:20]!r} may only hold printable characters")
        return external
    if isinstance(external, bool) or not hasattr(external, "__index__"):
        raise TypeError(
            f"user id must be a string or an integer, got {type(external).__name__} {external!r}"
        )
    value = operator.index(external)
    if not 0 <= value <= MAX_EXTERNAL_INT:
        raise ValueError(f"user id {value} is out of range: integer ids must be in [0, 2**63)")
    return value
