"""The funnel form: steps (a variable-length list), period kind, start, window and trend length.

A plain WTForms ``Form`` read from the query string: the report is a GET, so its URL is shareable
and there is nothing for CSRF to protect. "Add step" / "Remove step" are ordinary submit buttons
handled by ``edited_args``, so the form works without JavaScript.
"""

from __future__ import annotations

import re
from datetime import datetime

from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, FieldList, Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, ValidationError

from bitcore import funnel, periods
from bitcore.selections import Selection
from dashboard.forms.breakdown import GroupsField
from dashboard.forms.fields import WholeNumberField, parse_start
from dashboard.forms.selection import checked_token, input_text

KIND_CHOICES = [
    SelectChoice("hour", "Hour"),
    SelectChoice("day", "Day"),
    SelectChoice("week", "Week"),
    SelectChoice("month", "Month"),
]
KINDS = {choice.value for choice in KIND_CHOICES}
DEFAULT_KIND = "day"
DEFAULT_WINDOW = 7
DEFAULT_TREND = 8
#: What a checkbox reads as unticked in a hand-written URL (``rolling=0``).
FALSE_VALUES = ("", "0", "false", "off", "no")
#: The id of the ``<datalist>`` every step input offers its names from.
STEP_CHOICES_ID = "funnel-choices"

_STEP_NAME = re.compile(r"^steps-(\d+)$")


def _known_step(form: FunnelForm, field: StringField) -> None:
    """A step names a registered event or a saved segment, offered by the datalist or not."""
    if (field.data or "").strip():
        field.data = checked_token(form.choices, field.data)


class FunnelForm(Form):
    """The funnel's query. Steps are text inputs with a ``<datalist>`` (``STEP_CHOICES_ID``) of a
    bounded number of names: a picker of every name would be megabytes once names are many."""

    steps = FieldList(
        StringField(
            "Step",
            validators=[InputRequired("Choose an event or segment."), _known_step],
            render_kw={
                "list": STEP_CHOICES_ID,
                "autocomplete": "off",
                "placeholder": "type to search events and segments",
            },
        ),
        label="Steps",
    )
    kind = SelectField("Period", choices=KIND_CHOICES, default=DEFAULT_KIND)
    start = StringField(
        "Start period", description="e.g. 2024-05-07, 2025-W01, 2024-05; empty: the latest"
    )
    window = WholeNumberField(
        "Conversion window (periods)",
        default=DEFAULT_WINDOW,
        validators=[
            InputRequired(),
            NumberRange(funnel.MIN_WINDOW, funnel.MAX_WINDOW, "Between %(min)s and %(max)s."),
        ],
    )
    trend = WholeNumberField(
        "Trend (start periods)",
        default=DEFAULT_TREND,
        validators=[
            InputRequired(),
            NumberRange(1, funnel.MAX_TREND, "Between %(min)s and %(max)s."),
        ],
    )

    rolling = BooleanField(
        "Rolling",
        description="links show the latest start when opened, not this one",
        false_values=FALSE_VALUES,
    )

    by = GroupsField()

    choices: list[tuple[str, str]] = []

    def set_step_choices(self, choices: list[tuple[str, str]]) -> None:
        """What the steps' ``<datalist>`` offers, and (a ``Choices``) what a step may name."""
        self.choices = choices

    def validate_steps(self, field: FieldList) -> None:
        if len(field.entries) < funnel.MIN_STEPS:
            raise ValidationError(f"A funnel needs at least {funnel.MIN_STEPS} steps.")
        if len(field.entries) > funnel.MAX_STEPS:
            raise ValidationError(f"A funnel has at most {funnel.MAX_STEPS} steps.")

    def validate_by(self, field: GroupsField) -> None:
        field.check(self.choices)

    def validate_start(self, field: StringField) -> None:
        if self.kind.data not in KINDS:
            return  # the kind's own error says what is wrong
        try:
            start = parse_start(self.kind.data, field.data or "")
            if isinstance(self.window.data, int) and isinstance(self.trend.data, int):
                periods.shift(start, max(self.window.data, 1) - 1)
                periods.shift(start, 1 - max(self.trend.data, 1))
        except (ValueError, OverflowError) as error:
            raise ValidationError(str(error)) from None

    def start_period(self) -> periods.Period:
        """The start period of a validated form."""
        return parse_start(self.kind.data, self.start.data or "")

    def step_tokens(self) -> list[str]:
        return [entry.data for entry in self.steps]

    def pinned_query(self) -> list[tuple[str, str]]:
        """The query of the report a validated form shows, with its start period written out
        (a link opened next week shows the same funnel), unless the user asked for a rolling
        one; steps by the names the inputs show."""
        pairs = [(f"steps-{i}", input_text(token)) for i, token in enumerate(self.step_tokens())]
        pairs += [("kind", self.kind.data), ("window", str(self.window.data))]
        pairs.append(("trend", str(self.trend.data)))
        pairs += self.by.query()
        if self.rolling.data:
            return [*pairs, ("rolling", "1")]
        return [*pairs, ("start", periods.label(self.start_period()))]


def default_start(kind: str, window: object, today: datetime) -> str:
    """The latest start whose window ends in the current period: the freshest complete question."""
    kind_ = kind if kind in KINDS else DEFAULT_KIND
    size = window if isinstance(window, int) and 1 <= window <= funnel.MAX_WINDOW else 1
    current = periods.period_of(kind_, today)  # type: ignore[arg-type]
    return periods.label(periods.shift(current, 1 - size))


def with_defaults(args: MultiDict[str, str], now: datetime) -> MultiDict[str, str]:
    """A partial URL (``?steps-0=a&steps-1=b``) means the defaults for the rest; an empty start,
    or a rolling funnel, starts at the latest start whose window ends ``now``."""
    filled = normalise_steps(args)
    for name, value in (
        ("kind", DEFAULT_KIND),
        ("window", DEFAULT_WINDOW),
        ("trend", DEFAULT_TREND),
    ):
        if not filled.get(name):
            filled[name] = str(value)
    if not filled.get("start", "").strip() or is_rolling(filled):
        window = filled.get("window", "")
        size = int(window) if window.isdigit() else DEFAULT_WINDOW
        filled["start"] = default_start(filled["kind"], size, now)
    return filled


def normalise_steps(args: MultiDict[str, str]) -> MultiDict[str, str]:
    """Bare names in a hand-written URL (``steps-0=signup``) become tokens (``event:signup``)."""
    normal = args.copy()
    for name in args:
        if _STEP_NAME.match(name) and args[name]:
            normal[name] = Selection.parse(args[name]).token
    return normal


def step_values(args: MultiDict[str, str]) -> list[str]:
    """The submitted steps in their index order (``steps-0``, ``steps-1``, ...)."""
    indexed = []
    for name in args:
        found = _STEP_NAME.match(name)
        if found:
            indexed.append((int(found.group(1)), args.get(name, "")))
    return [value for _, value in sorted(indexed)]


def edited_args(args: MultiDict[str, str]) -> tuple[MultiDict[str, str], str | None]:
    """Apply an "Add step" / "Remove step" press to the query; returns the new query and a notice.

    The steps are renumbered from 0, so the re-rendered form posts back cleanly.
    """
    steps = step_values(args)
    notice = None
    if "add" in args:
        if len(steps) >= funnel.MAX_STEPS:
            notice = f"A funnel has at most {funnel.MAX_STEPS} steps."
        else:
            steps.append("")
    remove = args.get("remove", "")
    if remove.isdigit() and int(remove) < len(steps):
        del steps[int(remove)]
    edited: MultiDict[str, str] = MultiDict(
        [(k, v) for k, v in args.items(multi=True) if k not in {"add", "remove"}]
    )
    for name in [n for n in edited if _STEP_NAME.match(n)]:
        edited.poplist(name)
    for index, value in enumerate(steps):
        edited[f"steps-{index}"] = value
    return edited, notice


def is_rolling(args: MultiDict[str, str]) -> bool:
    """Whether the query asks for a rolling funnel: the latest start whenever it is opened."""
    return args.get("rolling", "").strip().lower() not in FALSE_VALUES


def without_empty_steps(args: MultiDict[str, str]) -> MultiDict[str, str]:
    """The query without its empty steps, renumbered: the funnel an edited form still shows."""
    kept: MultiDict[str, str] = MultiDict(
        [(k, v) for k, v in args.items(multi=True) if not _STEP_NAME.match(k)]
    )
    for index, value in enumerate(v for v in step_values(args) if v.strip()):
        kept[f"steps-{index}"] = value
    return kept


def is_edit(args: MultiDict[str, str]) -> bool:
    return "add" in args or "remove" in args
