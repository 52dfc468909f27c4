"""What a report's event-or-segment input shows and what it says about a name it does not know.

The report forms (cohort, funnel) read a selection token (``event:signup``, ``segment:ios``) from
a text input, but a person thinks in event names: the inputs, their ``<datalist>`` and the
page's headings show ``signup``, and only segments carry their ``segment:`` prefix (a bare name
is always read as an event).

>>> input_text("event:song:played"), input_text("segment:ios users")
('song:played', 'segment:ios users')
"""

from __future__ import annotations

from wtforms.validators import ValidationError

from bitcore.selections import Selection
from dashboard.forms.choices import FlagNotEvent, known_token


def input_text(token: str | None) -> str:
    """What an input shows for ``token``: an event's bare name, a segment's token."""
    if not token:
        return ""
    selection = Selection.parse(token)
    return selection.name if selection.kind == "event" else selection.token


def unknown_message(value: str) -> str:
    """``Unknown event 'nope'``: what a report says about a name nothing was tracked under."""
    selection = Selection.parse(value.strip())
    if selection.kind == "segment":
        return f"Unknown segment {selection.name!r}: no saved segment has this name."
    return f"Unknown event {selection.name!r}: nothing has been tracked under this name."


def checked_token(choices: list[tuple[str, str]], value: str) -> str:
    """The token ``value`` names (``known_token``), or a ``ValidationError`` naming the unknown
    event or segment."""
    try:
        return known_token(choices, value)
    except FlagNotEvent:  # its message says how to use the flag
        raise
    except ValidationError:
        raise ValidationError(unknown_message(value)) from None
