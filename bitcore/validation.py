"""Checks on what callers hand us, run before anything is written so bad input costs nothing."""

from __future__ import annotations

import operator
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


def check_event_name(event_name: Any) -> str:
    """The event name, or an error: a non-empty string (it becomes part of a Redis key) that is not
    ``bitop`` or ``bitop_…`` (those keys are where temporary bit-op results live).

    >>> check_event_name("song:played")
    'song:played'
    """
    if not isinstance(event_name, str):
        raise TypeError(
            f"event name must be a string, got {type(event_name).__name__} {event_name!r}"
        )
    if not event_name:
        raise ValueError(f"event name must not be empty, got {event_name!r}")
    if event_name == BITOP_NAMESPACE or event_name.startswith(f"{BITOP_NAMESPACE}_"):
        raise ValueError(
            f"event name {event_name!r} is reserved: keys under '{BITOP_NAMESPACE}_' hold "
            "temporary bit-op results"
        )
    return event_name
