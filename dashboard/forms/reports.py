"""The lifecycle and stickiness forms: an event, a period kind, and which periods.

Plain WTForms ``Form`` classes read from the query string (GET: a report is a shareable URL, with
nothing for CSRF to protect). The event is a text input with a ``<datalist>`` of a bounded
number of names (``dashboard.forms.choices``), checked against the registry on the server; these
reports are about one event, so a segment is refused with a message saying so.
"""

from __future__ import annotations

from datetime import datetime

from wtforms import Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, ValidationError

from bitcore import lifecycle, periods
from bitcore.selections import Selection
from dashboard.forms.breakdown import GroupsField
from dashboard.forms.choices import known_token
from dashboard.forms.fields import WholeNumberField, parse_start

#: The id of the ``<datalist>`` the event input offers its names from.
EVENT_CHOICES_ID = "report-events"
_EVENT_FIELD = {
    "list": EVENT_CHOICES_ID,
    "autocomplete": "off",
    "placeholder": "type to search events",
}


class _EventReportForm(Form):
    """What both reports share: the event, checked against the registry."""

    event = StringField(
        "Event", validators=[InputRequired("Choose an event.")], render_kw=_EVENT_FIELD
    )
    choices: list[tuple[str, str]] = []

    def __init__(
        self, *args: object, choices: list[tuple[str, str]] | None = None, **kwargs: object
    ):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.choices = choices or []

    by = GroupsField()

    def validate_by(self, field: GroupsField) -> None:
        field.check(self.choices)

    def validate_event(self, field: StringField) -> None:
        token = known_token(self.choices, field.data or "")
        selection = Selection.parse(token)
        if selection.kind != "event":
            raise ValidationError("This report is about one event, not a segment.")
        field.data = selection.name

    def period_of(self, field: StringField, kind: str, now: datetime) -> periods.Period:
        """The ``kind`` period ``field`` names, or the current one when it is empty."""
        text = (field.data or "").strip()
        return parse_start(kind, text) if text else periods.period_of(kind, now)  # type: ignore[arg-type]

    def _check_period(self, field: StringField, kind: str) -> None:
        if (field.data or "").strip():
            try:
                parse_start(kind, field.data)  # type: ignore[arg-type]
            except ValueError as error:
                raise ValidationError(str(error)) from None


class LifecycleForm(_EventReportForm):
    period = SelectField(
        "Period",
        choices=[SelectChoice(k, k.title()) for k in lifecycle.KINDS],
        default="week",
    )
    count = WholeNumberField(
        "Periods",
        default=12,
        validators=[
            InputRequired(),
            NumberRange(1, lifecycle.MAX_PERIODS, "Between %(min)s and %(max)s."),
        ],
    )
    end = StringField("Last period", description="empty: the current one; e.g. 2026-W40")

    def validate_end(self, field: StringField) -> None:
        if self.period.data in lifecycle.KINDS:
            self._check_period(field, self.period.data)


class StickinessForm(_EventReportForm):
    period = SelectField(
        "Period", choices=[SelectChoice("week", "Week"), SelectChoice("month", "Month")]
    )
    start = StringField("Which", description="empty: the current one; e.g. 2026-W40, 2026-10")

    def validate_start(self, field: StringField) -> None:
        if self.period.data in ("week", "month"):
            self._check_period(field, self.period.data)
