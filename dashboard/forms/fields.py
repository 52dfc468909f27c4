"""Form fields shared by the dashboard's forms."""

from __future__ import annotations

from typing import Any

from wtforms import IntegerField

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
