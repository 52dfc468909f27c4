"""Forms of the segments pages: edit a segment (a CSRF-protected POST), delete one, preview one.

The name and expression are checked by bitcore's own rules (``check_segment_name``,
``parse_expression``), so the form and the library can never disagree. A parse error is kept on the
form (``syntax_error``) so the page can underline the bad part of the expression.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, Form, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from bitcore import periods
from bitcore.segments import (
    MAX_LENGTH,
    MAX_NAME_LENGTH,
    InvalidSegmentName,
    SegmentSyntaxError,
    check_segment_name,
    parse_expression,
)
from bitcore.segments.store import MAX_DESCRIPTION_LENGTH
from dashboard import store

KIND_CHOICES = [SelectChoice(kind, kind.title()) for kind in periods.KINDS]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _today() -> date:
    return store.client().now().date()


def _valid_name(form: Any, field: Any) -> None:
    try:
        check_segment_name(field.data or "")
    except InvalidSegmentName as error:
        raise ValidationError(str(error)) from None


def _valid_expression(form: Any, field: Any) -> None:
    try:
        parse_expression(field.data or "")
    except SegmentSyntaxError as error:
        form.syntax_error = error
        raise ValidationError(str(error)) from None


class _PeriodFields:
    """The period a preview is computed for: a kind, and any date inside it."""

    kind = SelectField("Period", choices=KIND_CHOICES, default="week")
    when = DateField("containing", default=_today, validators=[Optional()])

    def period(self) -> periods.Period:
        moment = self.when.data or _today()  # type: ignore[attr-defined]
        return periods.period_of(self.kind.data, moment)  # type: ignore[attr-defined]


class SegmentForm(_PeriodFields, FlaskForm):
    """Create or edit a segment. "Preview" re-renders the form with the size; "Save" stores it."""

    name = StringField(
        "Name",
        filters=[_strip],
        validators=[InputRequired(), Length(max=MAX_NAME_LENGTH), _valid_name],
        description=f"Letters, digits, spaces and :_.- — at most {MAX_NAME_LENGTH} characters.",
    )
    expression = TextAreaField(
        "Expression",
        validators=[InputRequired(), Length(max=MAX_LENGTH), _valid_expression],
        render_kw={"rows": 3, "spellcheck": "false"},
    )
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=MAX_DESCRIPTION_LENGTH)],
        render_kw={"rows": 2},
    )
    preview = SubmitField("Preview")
    save = SubmitField("Save")

    syntax_error: SegmentSyntaxError | None = None


class PreviewForm(_PeriodFields, Form):
    """The read-only preview (``GET /segments/preview``): a shareable URL, so no CSRF token."""

    expression = TextAreaField(
        "Expression",
        validators=[InputRequired(), Length(max=MAX_LENGTH), _valid_expression],
        render_kw={"rows": 3, "spellcheck": "false"},
    )
    name = StringField("As segment", filters=[_strip], validators=[Optional(), _valid_name])

    syntax_error: SegmentSyntaxError | None = None


class DeleteForm(FlaskForm):
    """Only a CSRF token and a button: deleting is a POST."""

    delete = SubmitField("Delete")
