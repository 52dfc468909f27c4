"""What a report picks as a set of users: an event, or a saved segment, named by one string token.

Reports (cohort, funnel) and the dashboard's form choices speak in tokens: ``event:<name>``,
``segment:<name>`` or ``flag:<name>`` (a dateless event: the same users whatever the period, so a
filter such as the cohort's "and also", not a step or a cohort of its own). A bare string is an
event name, so bitmapist-style calls (``select1="active"``) keep working. Event names may contain
``:`` (``song:played``); only the first ``:`` after a known kind counts.

>>> Selection.parse("event:song:played")
Selection(kind='event', name='song:played')
>>> Selection.parse("song:played").token
'event:song:played'
>>> Selection.parse("segment:ios users").kind
'segment'
>>> Selection.parse("flag:ios").label
'ios (flag)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bitcore.segments import SegmentStore
from bitcore.validation import check_event_name

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.client import BitCore
    from bitcore.periods import Period

SelectionKind = Literal["event", "segment", "flag"]
_KINDS: tuple[SelectionKind, ...] = ("event", "segment", "flag")


@dataclass(frozen=True)
class Selection:
    kind: SelectionKind
    name: str

    @classmethod
    def parse(cls, token: str) -> Selection:
        head, sep, rest = token.partition(":")
        if sep and head in _KINDS and rest:
            return cls(head, rest)  # type: ignore[arg-type]
        return cls("event", token)

    @property
    def token(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        return self.name if self.kind == "event" else f"{self.name} ({self.kind})"

    def stored_key(self, client: BitCore, period: Period) -> str | None:
        """The key an event's bitmap in ``period`` is stored under, named without building the
        bitmap (a funnel's plan names 150 of them); ``None`` for a segment or a flag."""
        if self.kind != "event":
            return None
        return client.keys.event_key(check_event_name(self.name), period)

    def bitmap(self, client: BitCore, period: Period, *, compute: bool = True) -> Bitmap:
        """The users of this selection in ``period`` (a flag's, whatever the period);
        ``compute=False`` leaves a segment's result to the report that reads it (its read builds
        every segment at once: ``bitcore.reading.opened``)."""
        if self.kind == "event":
            return client.event(self.name, period)
        if self.kind == "flag":
            return client.UniqueEvents(self.name)
        return SegmentStore(client).bitmap(self.name, period, compute=compute)
