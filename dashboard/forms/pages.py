"""The forms of the overview and event pages: the event filter and the user lookup (GETs)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, SearchField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from bitcore.validation import MAX_UUID
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
