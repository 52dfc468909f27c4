"""Form fields shared by the dashboard's forms, and how they read a period typed by hand."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from wtforms import IntegerField

from bitcore import periods

#: No whole number a form asks for is this large; a longer one is refused before any check.
MAX_INTEGER = 2**63 - 1


class WholeNumberField(IntegerField):
    """An ``IntegerField`` that refuses numbers beyond 64 bits as invalid input.

    WTForms' ``NumberRange`` calls ``math.isnan`` on the value, which raises ``OverflowError`` for
    an integer of a few hundred digits: a ``?page=999…9`` would be a 500 instead of a 400.
    """

    data: Any  # an int once validated, as IntegerField's (typed here, not inferred from None)

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        value: Any = getattr(self, "data", None)
        if isinstance(value, int) and abs(value) > MAX_INTEGER:
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value."))


_START_FORMATS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(\d{4})-W(\d{1,2})$", re.I), "week"),
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2})(?::\d{2})?h?)?$"), "moment"),
    (re.compile(r"^(\d{4})-(\d{1,2})$"), "month"),
]


def parse_start(kind: periods.Kind, text: str) -> periods.Period:
    """The ``kind`` period containing ``text``, which names an hour, a day, an ISO week or a month.

    ``2024-05-07 13h`` (as the page writes hours), ``2024-05-07T13``, ``2024-05-07``, ``2025-W01``
    and ``2024-05`` are accepted; a coarser text means its first moment (``2024-05`` is May 1st).

    >>> periods.label(parse_start("week", "2024-12-30"))
    '2025-W01'
    """
    text = text.strip()
    for pattern, shape in _START_FORMATS:
        found = pattern.match(text)
        if not found:
            continue
        numbers = [int(g) for g in found.groups() if g is not None]
        try:
            if shape == "week":
                moment: date | datetime = date.fromisocalendar(numbers[0], numbers[1], 1)
            elif shape == "month":
                moment = date(numbers[0], numbers[1], 1)
            else:
                hour_ = numbers[3] if len(numbers) > 3 else 0
                moment = datetime(numbers[0], numbers[1], numbers[2], hour_)
        except ValueError as error:
            raise ValueError(f"{text!r} is not a real date: {error}") from None
        return periods.period_of(kind, moment)
    raise ValueError(
        f"{text!r} is not a period: write 2024-05-07, 2024-05-07 13h, 2025-W01 or 2024-05"
    )
