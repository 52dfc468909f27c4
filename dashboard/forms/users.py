"""Forms of the users page (``/users``): which number of which report to list the users of.

Each is the report's own form (so a drill-down link is checked by exactly the report's rules:
known events and segments, bounded windows and lengths) plus what picks one number of it: a
cohort row's period and a column, a funnel step and whether its drop-off, a segment expression's
period. Everything comes from the query string of a link, so every field is bounded and checked;
anything else is a 400.
"""

from __future__ import annotations

from wtforms import Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from bitcore import drilldown, funnel, periods
from bitcore.cohort import TIME_GROUPS, engine
from dashboard.forms.cohort import MAX_COLUMNS, CohortForm
from dashboard.forms.fields import WholeNumberField, parse_start
from dashboard.forms.funnel import FunnelForm
from dashboard.forms.segments import PreviewForm

#: What a users page lists: the users of a cohort cell, of a funnel step, of a segment preview.
SOURCES = ("cohort", "funnel", "segment")
PART_CHOICES = [SelectChoice("step", "reached the step"), SelectChoice("dropoff", "dropped off")]
#: Longest period label a link carries (``2024-05-07 13h``), with room to spare.
MAX_LABEL = 20


class CohortCellForm(CohortForm):
    """A cohort's selections and grouping, a row's period (``cohort``) and a column (``offset``;
    none: the row's cohort itself, its "size")."""

    # WTForms: None removes a field. What picks the table's rows goes: a cell names its period.
    as_percent = None  # type: ignore[assignment]
    num_results = None  # type: ignore[assignment]
    num_of_rows = None  # type: ignore[assignment]
    start_date = None  # type: ignore[assignment]
    end_date = None  # type: ignore[assignment]
    rolling = None  # type: ignore[assignment]
    cohort = StringField("Cohort", validators=[InputRequired(), Length(max=MAX_LABEL)])
    offset = WholeNumberField(
        "Periods later",
        validators=[Optional(), NumberRange(0, MAX_COLUMNS, "Between %(min)s and %(max)s.")],
    )

    def validate(self, extra_validators: object = None) -> bool:
        """The fields' own checks only: which rows a table shows (``CohortForm``'s range of
        cohorts) is not a cell's question."""
        return Form.validate(self, extra_validators)  # type: ignore[arg-type]

    def validate_cohort(self, field: StringField) -> None:
        if self.time_group.data not in TIME_GROUPS:
            return  # the grouping's own error says what is wrong
        kind = engine.period_kind(self.time_group.data)
        try:
            drilldown.parse_label(kind, field.data or "")
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def cohort_period(self) -> periods.Period:
        return drilldown.parse_label(engine.period_kind(self.time_group.data), self.cohort.data)

    def selections(self) -> drilldown.Selections:
        return (
            self.select1.data,
            self.select1b.data or None,
            self.select2.data,
            self.select2b.data or None,
        )


class FunnelStepForm(FunnelForm):
    """A funnel's steps, period kind, start and window (no trend: one funnel), and which step's
    users: those who reached it, or (``part=dropoff``) those of the step before who did not."""

    trend = None  # type: ignore[assignment]  # WTForms: None removes the field
    rolling = None  # type: ignore[assignment]
    step = WholeNumberField(
        "Step",
        validators=[
            InputRequired(),
            NumberRange(1, funnel.MAX_STEPS, "Between %(min)s and %(max)s."),
        ],
    )
    part = SelectField("Users who", choices=PART_CHOICES, default="step")

    def validate_start(self, field: StringField) -> None:
        if self.kind.data not in {"hour", "day", "week", "month"}:
            return  # the kind's own error says what is wrong
        try:
            start = parse_start(self.kind.data, field.data or "")
            if isinstance(self.window.data, int):
                periods.shift(start, max(self.window.data, 1) - 1)
        except (ValueError, OverflowError) as error:
            raise ValidationError(str(error)) from None

    def validate_step(self, field: WholeNumberField) -> None:
        if isinstance(field.data, int) and field.data > len(self.steps.entries):
            raise ValidationError(f"The funnel has {len(self.steps.entries)} steps.")
        if field.data == 1 and self.part.data == "dropoff":
            raise ValidationError("Step 1 has no drop-off: everyone in it started the funnel.")

    @property
    def dropoff(self) -> bool:
        return self.part.data == "dropoff"


#: A segment expression (saved ones as ``@name``) and the period it is evaluated in: the
#: preview's own form, read from the query string.
SegmentUsersForm = PreviewForm
