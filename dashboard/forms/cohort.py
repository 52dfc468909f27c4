"""The cohort form: bitmapist's choices (cohort event AND optional event, return event AND optional
event, days/weeks/months/years, percent or counts, number of columns) and which cohorts to show:
from a first to a last cohort, or a number of them ending at one of those dates or today.

A plain WTForms ``Form`` read from the query string: the report is a GET, so its URL is shareable
and there is nothing for CSRF to protect. Selections are text inputs backed by a ``<datalist>`` of
a bounded number of events and every segment (``dashboard.forms.choices``), searchable by typing
without JavaScript; a value must name a registered event or a saved segment, offered or not (a bare
event name such as ``active`` is read as ``event:active``).

Which cohorts (``CohortRange``): ``start_date`` is the **first** cohort and ``end_date`` the
**last** (the periods containing them); with one of them empty, ``num_results`` cohorts from the
first or up to the last; with both empty, ``num_results`` cohorts up to today. ``rolling`` keeps
the last one "today" whenever a link is opened; otherwise links pin the dates shown
(``pinned_query``). Yearly tables always show three years (bitmapist's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, DateField, Field, Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, Optional

from bitcore import periods
from bitcore.cohort import COHORT_TYPES, RETENTIONS, TIME_GROUPS
from bitcore.cohort.engine import YEARS_SHOWN
from dashboard.forms.breakdown import GroupsField
from dashboard.forms.fields import WholeNumberField
from dashboard.forms.selection import checked_token, input_text

TIME_GROUP_CHOICES = [SelectChoice(g, g.title()) for g in TIME_GROUPS]
COHORT_TYPE_LABELS = {
    "recurring": "Did it in the period",
    "first_time": "Did it for the first time",
}
COHORT_TYPE_CHOICES = [SelectChoice(t, COHORT_TYPE_LABELS[t]) for t in COHORT_TYPES]
RETENTION_LABELS = {
    "on": "in that period",
    "on_or_after": "in that period or any later one",
}
RETENTION_CHOICES = [SelectChoice(r, RETENTION_LABELS[r]) for r in RETENTIONS]
AS_PERCENT_CHOICES = [SelectChoice("1", "Percent"), SelectChoice("0", "Counts")]
#: The period kind of each time group.
KIND_OF: dict[str, periods.Kind] = {
    "days": "day",
    "weeks": "week",
    "months": "month",
    "years": "year",
}
MAX_ROWS = 366
MAX_COLUMNS = 104
#: The most cells one table may have (rows x columns): the one limit the form checks, the page's
#: script checks before submitting and the page states. 366 daily cohorts x 55 columns, say.
MAX_CELLS = 20_000
#: What a checkbox reads as unticked in a hand-written URL (``rolling=0``).
FALSE_VALUES = ("", "0", "false", "off", "no")
#: What a hand-written URL (``?select1=a&select2=b``) means for the fields it leaves out.
DEFAULTS = {
    "cohort_type": "recurring",
    "retention": "on",
    "time_group": "days",
    "as_percent": "1",
    "num_results": "31",
    "num_of_rows": "12",
}


def with_defaults(args: MultiDict[str, str]) -> MultiDict[str, str]:
    """``args`` with ``DEFAULTS`` for the fields it leaves empty."""
    filled = args.copy()
    for name, default in DEFAULTS.items():
        if not filled.get(name, "").strip():
            filled[name] = default
    return filled


@dataclass(frozen=True)
class CohortRange:
    """The cohorts a table shows: ``count`` consecutive periods from ``first`` to ``last``."""

    first: periods.Period
    last: periods.Period
    count: int

    def moment(self) -> datetime:
        """A moment in the last cohort's period: the engine counts its rows back from it."""
        return periods.start(self.last, UTC)


def _period_date(period: periods.Period) -> date:
    return periods.start(period).date()


class _RangeError(ValueError):
    """What is wrong with the cohorts asked for, and the field to show it next to."""

    def __init__(self, field: Field, message: str):
        super().__init__(message)
        self.field = field


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
    retention = SelectField("Counted when they came back", choices=RETENTION_CHOICES, default="on")
    time_group = SelectField("Group by", choices=TIME_GROUP_CHOICES, default="days")
    as_percent = SelectField("Show", choices=AS_PERCENT_CHOICES, default="1")
    start_date = DateField(
        "First cohort",
        validators=[Optional()],
        format="%Y-%m-%d",
        description="empty: counted back from the last",
    )
    end_date = DateField(
        "Last cohort",
        validators=[Optional()],
        format="%Y-%m-%d",
        description="empty: today (or counted on from the first)",
    )
    num_results = WholeNumberField(
        "Cohorts (rows)",
        default=31,
        description="used when a date is empty",
        validators=[InputRequired(), NumberRange(1, MAX_ROWS, "Between %(min)s and %(max)s.")],
    )
    num_of_rows = WholeNumberField(
        "Periods after the first (columns)",
        default=12,
        validators=[InputRequired(), NumberRange(0, MAX_COLUMNS, "Between %(min)s and %(max)s.")],
    )
    by = GroupsField()
    rolling = BooleanField(
        "Rolling",
        description="links always end today, instead of these dates",
        false_values=FALSE_VALUES,
    )

    def __init__(
        self,
        *args: object,
        choices: list[tuple[str, str]] | None = None,
        today: date | None = None,
        **kwargs: object,
    ):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.choices = choices or []
        self.today = today or datetime.now(UTC).date()
        self.range: CohortRange | None = None

    def _check_selection(self, field: StringField) -> None:
        if (field.data or "").strip():
            field.data = checked_token(self.choices, field.data)

    validate_select1 = _check_selection
    validate_select1b = _check_selection
    validate_select2 = _check_selection
    validate_select2b = _check_selection

    def validate_by(self, field: GroupsField) -> None:
        field.check(self.choices)

    def validate(self, extra_validators: object = None) -> bool:
        """The fields' checks, then which cohorts they make (``CohortRange``); a range that is
        backwards, in the future, beyond years 1..9999 or too large is an error on the field
        that made it."""
        if not super().validate(extra_validators):  # type: ignore[arg-type]
            return False
        try:
            self.range = self._cohort_range()
        except _RangeError as error:
            error.field.errors = [*error.field.errors, str(error)]
            return False
        # the rows input shows how many cohorts the table has (two dates make their own number);
        # the dates stay as typed, so a changed number of rows still counts from them next time
        self.num_results.data = self.range.count
        self.num_results.raw_data = [str(self.range.count)]
        return True

    def _cohort_range(self) -> CohortRange:
        kind = KIND_OF[self.time_group.data]
        start, end = self.start_date.data, self.end_date.data
        if self.rolling.data:
            start, end = None, None
        blame = self.end_date if end else self.start_date if start else self.num_results
        count = YEARS_SHOWN if kind == "year" else self.num_results.data
        try:
            if start and end and kind != "year":
                first, last = periods.period_of(kind, start), periods.period_of(kind, end)
                count = periods.count_between(first, last)
                if not count:
                    raise _RangeError(blame, "The last cohort must not be before the first.")
            elif start:
                first = periods.period_of(kind, start)
                last = periods.shift(first, count - 1)
            else:
                last = periods.period_of(kind, end or self.today)
                first = periods.shift(last, 1 - count)
            periods.shift(last, self.num_of_rows.data)  # the last column exists
        except (ValueError, OverflowError) as error:
            message = f"The table would reach beyond the years 1 to 9999 ({error})."
            raise _RangeError(blame, message) from None
        if first > periods.period_of(kind, self.today):
            raise _RangeError(
                self.start_date if start else blame,
                f"{_period_date(first).isoformat()} is in the future (today is "
                f"{self.today.isoformat()}): nobody can be in that cohort yet.",
            )
        if count > MAX_ROWS:
            raise _RangeError(blame, f"These dates make {count:,} cohorts: at most {MAX_ROWS}.")
        cells = count * (self.num_of_rows.data + 1)
        if cells > MAX_CELLS:
            raise _RangeError(
                self.num_of_rows,
                f"At most {MAX_CELLS:,} cells: {count:,} cohorts x "
                f"{self.num_of_rows.data + 1} columns is {cells:,}. Ask for fewer cohorts or "
                "columns.",
            )
        return CohortRange(first, last, count)

    def query(self) -> dict[str, object]:
        """The validated form as ``bitcore.cohort.engine.cohort_table`` arguments: the rows are
        counted back from a moment in the last cohort."""
        assert self.range is not None, "a validated form knows its cohorts"
        return {
            "select1": self.select1.data,
            "select2": self.select2.data,
            "select1b": self.select1b.data or None,
            "select2b": self.select2b.data or None,
            "time_group": self.time_group.data,
            "num_results": self.range.count,
            "num_of_rows": self.num_of_rows.data,
            "now": self.range.moment(),
            "cohort_type": self.cohort_type.data,
            "retention": self.retention.data,
            "groups": [group.token for group in self.by.groups],
        }

    def pinned_query(self) -> list[tuple[str, str]]:
        """The query of the table a validated form shows: its first and last cohorts written out
        (a link opened next week shows the same table), unless it is rolling; selections by the
        names the inputs show."""
        assert self.range is not None, "a validated form knows its cohorts"
        pairs = [
            (name, input_text(getattr(self, name).data))
            for name in ("select1", "select1b", "select2", "select2b")
        ]
        pairs += [
            ("time_group", self.time_group.data),
            ("as_percent", self.as_percent.data),
            ("num_of_rows", str(self.num_of_rows.data)),
            ("cohort_type", self.cohort_type.data),
            ("retention", self.retention.data),
            *self.by.query(),
        ]
        if self.rolling.data:
            return [*pairs, ("num_results", str(self.range.count)), ("rolling", "1")]
        return [
            *pairs,
            ("start_date", _period_date(self.range.first).isoformat()),
            ("end_date", _period_date(self.range.last).isoformat()),
        ]

    @property
    def percent(self) -> bool:
        return self.as_percent.data != "0"
