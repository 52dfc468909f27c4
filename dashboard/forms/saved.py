"""Forms of saved reports: save or edit one, put it on the overview or take it off, delete it.

Every one is a CSRF-protected POST (Flask-WTF). The name and the query are checked by bitcore's own
rules (``check_report_name``, ``parse_query``), so the form and the library never disagree; whether
the page's own form takes the query is checked by the view (it needs Redis).
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Optional, ValidationError

from bitcore.saved_reports import (
    MAX_NAME_LENGTH,
    MAX_QUERY_LENGTH,
    PAGES,
    SavedReportError,
    check_report_name,
    parse_query,
)

DATES_CHOICES = [
    SelectChoice("pinned", "Pin these dates: it always shows the same periods"),
    SelectChoice("rolling", "Roll with time: it always ends in the current period"),
]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _valid_name(form: Any, field: Any) -> None:
    try:
        check_report_name(field.data or "")
    except SavedReportError as error:
        raise ValidationError(str(error)) from None


def _valid_query(form: Any, field: Any) -> None:
    try:
        parse_query(field.data or "")
    except SavedReportError as error:
        raise ValidationError(str(error)) from None


def _valid_page(form: Any, field: Any) -> None:
    if field.data not in PAGES:
        raise ValidationError(f"A report is one of {', '.join(PAGES)}.")


class SavedReportForm(FlaskForm):
    """Save a report (the "Save this report" control of a report page) or edit a saved one."""

    name = StringField(
        "Name",
        filters=[_strip],
        validators=[InputRequired("Name the report."), _valid_name],
        description=f"Letters, digits, spaces and :_.,()&+'- — at most {MAX_NAME_LENGTH} "
        "characters.",
        render_kw={"maxlength": MAX_NAME_LENGTH},
    )
    page = HiddenField(
        validators=[DataRequired("Which report? Save it from its page."), _valid_page]
    )
    query = TextAreaField(
        "Query",
        filters=[_strip],
        validators=[InputRequired("A report needs its query."), _valid_query],
        description=f"The report page's query string, at most {MAX_QUERY_LENGTH:,} characters.",
        render_kw={"rows": 3, "spellcheck": "false"},
    )
    dates = RadioField("Dates", choices=DATES_CHOICES, validators=[Optional()])
    on_overview = BooleanField("Show it on the overview")
    save = SubmitField("Save report")


class OverviewForm(FlaskForm):
    """Put a report on the overview (``on_overview=1``) or take it off (``0``)."""

    on_overview = HiddenField(validators=[InputRequired()])

    @property
    def wanted(self) -> bool:
        return self.on_overview.data == "1"


class ConfirmDeleteForm(FlaskForm):
    """Only a CSRF token and a button: deleting is a POST from the confirmation page."""

    delete = SubmitField("Delete")
