"""Choices for report forms: every event name and every saved segment, as selection tokens."""

from __future__ import annotations

from bitcore import BitCore
from bitcore.segments import SegmentStore
from bitcore.selections import Selection


def selection_choices(client: BitCore) -> list[tuple[str, str]]:
    """``(token, label)`` pairs, events first, each group sorted by name."""
    events = [Selection("event", name) for name in sorted(client.get_event_names())]
    segments = [Selection("segment", name) for name in SegmentStore(client).names()]
    return [(s.token, s.label) for s in [*events, *segments]]
