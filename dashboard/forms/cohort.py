"""The cohort form: bitmapist's choices (cohort event AND optional event, return event AND optional
event, days/weeks/months/years, percent or counts, number of periods, number of columns, start
date).

A plain WTForms ``Form`` read from the query string: the report is a GET, so its URL is shareable
and there is nothing for CSRF to protect. Selections are text inputs backed by a ``<datalist>`` of
a bounded number of events and every segment (``dashboard.forms.choices``), searchable by typing
without JavaScript; a value must name a registered event or a saved segment, offered or not (a bare
event name such as ``active`` is read as ``event:active``).
"""

from __future__ import annotations

from wtforms import DateField, Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, Optional, ValidationError

from bitcore.cohort import COHORT_TYPES, TIME_GROUPS
from dashboard.forms.choices import known_token
from dashboard.forms.fields import WholeNumberField

TIME_GROUP_CHOICES = [SelectChoice(g, g.title()) for g in TIME_GROUPS]
COHORT_TYPE_LABELS = {
    "recurring": "Did it in the period",
    "first_time": "Did it for the first time",
}
COHORT_TYPE_CHOICES = [SelectChoice(t, COHORT_TYPE_LABELS[t]) for t in COHORT_TYPES]
AS_PERCENT_CHOICES = [SelectChoice("1", "Percent"), SelectChoice("0", "Counts")]
MAX_ROWS = 366
MAX_COLUMNS = 104
#: Keeps one request's work bounded: 366 daily cohorts x 105 columns is the most anyone asks for.
MAX_CELLS = 20_000


class CohortForm(Form):
    select1 = StringField(
        "People who did", validators=[InputRequired("Choose an event or segment.")]
    )
    select1b = StringField("and also (optional)")
    cohort_type = SelectField("Cohort", choices=COHORT_TYPE_CHOICES, default="recurring")
    select2 = StringField(
        "and came back to", validators=[InputRequired("Choose an event or segment.")]
    )
    select2b = StringField("and also (optional)")
    time_group = SelectField("Group by", choices=TIME_GROUP_CHOICES, default="days")
    as_percent = SelectField("Show", choices=AS_PERCENT_CHOICES, default="1")
    num_results = WholeNumberField(
        "Cohorts (rows)",
        default=31,
        validators=[InputRequired(), NumberRange(1, MAX_ROWS, "Between %(min)s and %(max)s.")],
    )
    num_of_rows = WholeNumberField(
        "Later periods (columns - 1)",
        default=12,
        validators=[InputRequired(), NumberRange(0, MAX_COLUMNS, "Between %(min)s and %(max)s.")],
    )
    start_date = DateField("Start date", validators=[Optional()], format="%Y-%m-%d")

    def __init__(
        self, *args: object, choices: list[tuple[str, str]] | None = None, **kwargs: object
    ):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.choices = choices or []

    def _check_selection(self, field: StringField) -> None:
        if (field.data or "").strip():
            field.data = known_token(self.choices, field.data)

    validate_select1 = _check_selection
    validate_select1b = _check_selection
    validate_select2 = _check_selection
    validate_select2b = _check_selection

    def validate_num_of_rows(self, field: WholeNumberField) -> None:
        rows = self.num_results.data if self.time_group.data != "years" else 3
        if (
            isinstance(rows, int)
            and isinstance(field.data, int)
            and rows * (field.data + 1) > MAX_CELLS
        ):
            raise ValidationError(f"At most {MAX_CELLS:,} cells: ask for fewer rows or columns.")

    def query(self) -> dict[str, object]:
        """The validated form as ``bitcore.cohort.cohort_table`` arguments."""
        start = self.start_date.data
        return {
            "select1": self.select1.data,
            "select2": self.select2.data,
            "select1b": self.select1b.data or None,
            "select2b": self.select2b.data or None,
            "time_group": self.time_group.data,
            "num_results": self.num_results.data,
            "num_of_rows": self.num_of_rows.data,
            "start_date": start.strftime("%Y-%m-%d") if start else None,
            "cohort_type": self.cohort_type.data,
        }

    @property
    def percent(self) -> bool:
        return self.as_percent.data != "0"
