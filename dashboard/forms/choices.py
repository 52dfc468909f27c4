"""Choices for report forms: event names and saved segments, as selection tokens.

Anyone who can send beacons can add event names, so a form never offers all of them: the pickers
are text inputs with a ``<datalist>`` of a bounded number of names (the first
``BITCORE_PICKER_NAMES`` in name order, and those starting with what the user typed), and a typed
value is checked against the registry on the server (:meth:`Choices.knows`: one ``ZSCORE``).

Flags (dateless events such as ``ios``: ``mark_unique``) are not events: per period they count
nobody, so the event pickers never offer them and a bare flag name is refused saying so. Typed as
``flag:<name>`` a flag is its users whatever the period, a filter (the cohort's "and also": iOS
signups), and is accepted; :func:`flag_choices` lists them that way for a filter's picker.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app, has_app_context
from wtforms.validators import ValidationError

from bitcore import BitCore, event_names
from bitcore.segments import SegmentStore
from bitcore.selections import Selection

#: Names a picker offers when ``BITCORE_PICKER_NAMES`` is not set.
DEFAULT_PICKER_NAMES = 200


class FlagNotEvent(ValidationError):
    """A flag's name typed where an event is wanted: the message says how to use the flag (a
    report that rewords "unknown" names should let this one through as it is)."""


class Choices(list[tuple[str, str]]):
    """``(token, label)`` pairs to offer (events first, then segments, each sorted by name) that
    also know every valid token, offered or not: any registered event, any saved segment."""

    def __init__(
        self,
        client: BitCore,
        pairs: Iterable[tuple[str, str]],
        segments: set[str],
        accept_flags: bool = True,
    ):
        super().__init__(pairs)
        self.client = client
        self.segments = segments
        self.accept_flags = accept_flags

    def knows(self, token: str) -> bool:
        """Whether ``token`` names a registered event or a saved segment (or a flag, for
        choices that accept them)."""
        selection = Selection.parse(token)
        if selection.kind == "segment":
            return selection.name in self.segments
        kind = event_names.kind_of(self.client, selection.name)
        if selection.kind == "flag":
            return self.accept_flags and kind == "flag"
        return kind == "event"

    def refusal(self, value: str, token: str) -> ValidationError:
        """Why ``value`` is not accepted, for the person who typed it: a ``FlagNotEvent`` for a
        flag's name, else a ``ValidationError``."""
        selection = Selection.parse(token)
        if (
            selection.kind != "segment"
            and event_names.kind_of(self.client, selection.name) == "flag"
        ):
            return FlagNotEvent(
                f"{selection.name!r} is a flag (a dateless event): it has no per-period users to "
                f"count; as a filter write flag:{selection.name}, in a segment "
                f"unique({selection.name})."
            )
        return ValidationError(f"{value!r} is not a tracked event or saved segment.")


def picker_limit() -> int:
    """How many event names a picker offers: ``BITCORE_PICKER_NAMES`` (at least 1)."""
    configured = current_app.config.get("BITCORE_PICKER_NAMES") if has_app_context() else None
    return max(int(configured or DEFAULT_PICKER_NAMES), 1)


def selection_choices(client: BitCore, typed: Iterable[str] = ()) -> Choices:
    """The first names of the registry, the names starting with each ``typed`` value (a token
    such as ``event:son`` or a bare name), and every saved segment."""
    event_names.ensure(client)
    limit = picker_limit()
    names = set(event_names.page(client, 0, limit).names)
    for value in typed:
        if value and value.strip():
            prefix = Selection.parse(value.strip()).name
            names.update(event_names.with_prefix(client, prefix, 0, limit).names)
    segment_names = SegmentStore(client).names()
    events = [Selection("event", name) for name in sorted(names)]
    segments = [Selection("segment", name) for name in segment_names]
    pairs = [(s.token, s.label) for s in [*events, *segments]]
    return Choices(client, pairs, set(segment_names))


def known_token(choices: list[tuple[str, str]], value: str) -> str:
    """The token ``value`` stands for (a bare name is an event), if it names a registered event or a
    saved segment; else a ``ValidationError`` saying so. ``choices`` without the registry (a plain
    list) know only what they offer."""
    token = Selection.parse(value.strip()).token
    if isinstance(choices, Choices):
        if not choices.knows(token):
            raise choices.refusal(value, token)
    elif token not in dict(choices):
        raise ValidationError(f"{value!r} is not a tracked event or saved segment.")
    return token


def flag_choices(client: BitCore) -> list[tuple[str, str]]:
    """``(flag:<name>, "<name> (flag)")`` for the first flags (``event_names.MAX_FLAGS``), for
    pickers of filters, where a flag narrows a set whatever the period."""
    event_names.ensure(client)
    flags = [Selection("flag", name) for name in event_names.flag_page(client).names]
    return [(s.token, s.label) for s in flags]
