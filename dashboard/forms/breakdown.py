"""The "compare" input of the report forms: up to five ``by=`` values, each a saved segment or a
dateless flag (``bitcore.breakdown``), as repeated query parameters
(``by=segment:ios&by=flag:premium``; ``unique:premium`` is read as ``flag:premium``).

Flags are offered here, as groups to compare or to filter by, and never as events: per period a
flag counts nobody. A value that is not a segment or flag, names none that exists, or is one too
many, is a field error (the report's 400).
"""

from __future__ import annotations

from typing import Any

import redis
from wtforms import Field
from wtforms.validators import ValidationError

from bitcore import BitCore
from bitcore.breakdown import MAX_GROUPS, Group, GroupError, parse_groups
from bitcore.segments import SegmentStore
from dashboard.forms.choices import Choices, flag_choices

#: The id of the ``<datalist>`` the group inputs offer their segments and flags from.
GROUP_CHOICES_ID = "group-choices"


class GroupsField(Field):
    """Every non-blank ``by`` value of the query, in order; ``groups`` once validated."""

    data: list[str]

    def __init__(self, label: str = "Compare", **kwargs: Any) -> None:
        kwargs.setdefault("description", f"up to {MAX_GROUPS} segments or flags, side by side")
        super().__init__(label, default=list, **kwargs)
        self.groups: list[Group] = []

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = [str(v).strip() for v in valuelist if str(v).strip()]

    def _value(self) -> str:
        return ""

    def slots(self) -> list[str]:
        """What the form's ``MAX_GROUPS`` inputs show: the values asked for, then blanks."""
        values = list(self.data or [])[:MAX_GROUPS]
        return values + [""] * (MAX_GROUPS - len(values))

    def check(self, choices: list[tuple[str, str]]) -> None:
        """Parse the values (``GroupError``: too many, not a segment or flag) and check each
        names a saved segment or a flag: a ``ValidationError`` saying which does not."""
        try:
            groups = parse_groups(self.data or [])
        except GroupError as error:
            raise ValidationError(str(error)) from None
        for group in groups:
            known = (
                choices.knows(group.token)
                if isinstance(choices, Choices)
                else group.token in dict(choices)
            )
            if not known:
                what = "saved segment" if group.selection.kind == "segment" else "flag"
                raise ValidationError(f"{group.by!r}: no {what} has this name.")
        self.groups = groups

    def query(self) -> list[tuple[str, str]]:
        """``("by", value)`` pairs for the report's links."""
        return [("by", group.by) for group in self.groups]


def group_choices(client: BitCore) -> list[tuple[str, str]]:
    """What a group input offers: every flag (``flag:<name>``), then every saved segment."""
    segments = [(f"segment:{name}", f"{name} (segment)") for name in SegmentStore(client).names()]
    return [*flag_choices(client), *segments]


def offered_group_choices(client: BitCore) -> list[tuple[str, str]]:
    """``group_choices``, or none when Redis does not answer: a report page still renders (its
    own answer says what failed)."""
    try:
        return group_choices(client)
    except redis.RedisError:
        return []
