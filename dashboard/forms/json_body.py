"""JSON bodies for the dashboard's forms: an object of fields, or a 400.

Flask-WTF lets a form be posted as JSON (``request.get_json()`` becomes the form data), so any POST
to a form route can carry JSON of any shape. A string or a number there made the form raise
``ValueError``/``TypeError``, and a body nested a thousand levels deep made the parser raise
``RecursionError``: all three were 500s. The dashboard reads JSON only through its forms, so its
request class accepts exactly what a form can take, a flat object of fields, and answers 400 for
anything else.
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest

_SCALARS = (str, int, float, bool, type(None))


def is_form_fields(data: Any) -> bool:
    """An object whose values are scalars or lists of scalars, as form fields are.

    >>> is_form_fields({"name": "buyers", "kind": ["week"]}), is_form_fields("buyers")
    (True, False)
    """
    return isinstance(data, dict) and all(
        isinstance(value, _SCALARS)
        or (isinstance(value, list) and all(isinstance(item, _SCALARS) for item in value))
        for value in data.values()
    )


class FormRequest(Request):
    """Flask's request, whose JSON body is a flat object of form fields or a 400."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            data = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("The JSON body is nested too deeply.") from None
        if data is None or is_form_fields(data):
            return data
        if silent:
            return None
        raise BadRequest("A JSON body must be an object of form fields (names to values).")
