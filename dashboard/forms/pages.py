"""The forms of the overview and event pages: the event filter and the user lookup (GETs)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, Field, SearchField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from bitcore.validation import MAX_EXTERNAL_LENGTH, MAX_UUID, check_external_id
from dashboard.forms.fields import WholeNumberField

#: No page number past this is meaningful (a million events at 50 a page would need 20,000).
MAX_PAGE = 1_000_000


class OverviewFilterForm(FlaskForm):
    """``GET /?q=song&page=2``: the events whose name contains ``q`` (case-insensitive), a
    page at a time."""

    class Meta:
        csrf = False  # a GET filter is a shareable URL, it changes nothing

    q = SearchField("Filter", validators=[Optional(), Length(max=200)])
    page = WholeNumberField(
        "Page",
        default=1,
        validators=[
            Optional(),
            NumberRange(min=1, max=MAX_PAGE, message=f"Pages are numbered 1 to {MAX_PAGE:,}."),
        ],
    )


class FlagLookupForm(FlaskForm):
    """``GET /event/<flag>?user=123``: does that user carry the flag? (A flag has no date.)"""

    class Meta:
        csrf = False

    #: How a phone's keyboard should look for the id: digits (plain ids) or text (mapped ones).
    user_inputmode = "numeric"
    user = WholeNumberField(
        "User id",
        validators=[
            InputRequired(message="Enter a user id."),
            NumberRange(
                min=0, max=MAX_UUID, message=f"User ids are whole numbers from 0 to {MAX_UUID}."
            ),
        ],
    )


class UserLookupForm(FlagLookupForm):
    """``GET /event/<name>?user=123&date=2024-05-07``: was that user active then?"""

    date = DateField("Date", validators=[DataRequired(message="Enter a date as YYYY-MM-DD.")])


def _external_id(_form: Any, field: Field) -> None:
    """The library's rule for external ids; the field's data becomes the canonical id."""
    try:
        field.data = check_external_id(field.data)
    except (TypeError, ValueError) as error:
        raise ValidationError(str(error)) from None


class ExternalFlagLookupForm(FlagLookupForm):
    """The flag lookup when the id map is on: ``?user=usr_8f3a`` (a string, or a 64-bit int)."""

    user_inputmode = "text"

    user = StringField(  # type: ignore[assignment]
        "User id",
        validators=[
            InputRequired(message="Enter a user id."),
            Length(max=MAX_EXTERNAL_LENGTH, message="User ids are at most 128 characters long."),
            _external_id,
        ],
    )


class ExternalUserLookupForm(ExternalFlagLookupForm, UserLookupForm):
    """The event lookup when the id map is on: an external id and a date."""
