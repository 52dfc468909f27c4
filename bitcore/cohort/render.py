"""Cohort tables as HTML and CSV: bitmapist's three renderers.

bitmapist renders with mako templates; these build the same markup with plain strings and
``html.escape`` (every label and value that reaches the page is escaped). The dashboard's own view
of a cohort table (what each cell shows, its colour) is ``dashboard/presenters/cohort.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

Choice = tuple[str, str]

_TIME_GROUP_LABELS = (
    ("days", "Days"),
    ("weeks", "Weeks"),
    ("months", "Months"),
    ("years", "Years"),
)
_NUM_RESULTS = ("7", "28", "31", "-", "12", "24", "-", "4", "52", "104")
_NUM_OF_ROWS = ("3", "6", "12", "24", "48")


def _selected(flag: bool) -> str:
    return ' selected="selected"' if flag else ""


def _options(name: str, selections: Sequence[Any], current: str | None) -> str:
    parts = [f'<select name="{escape(name)}">']
    for option in selections:
        if option == "---":
            parts.append('<option value="" disabled="disabled">----</option>')
            continue
        label, value = option
        parts.append(
            f'<option value="{escape(str(value))}"{_selected(current == value)}>'
            f"{escape(str(label))}</option>"
        )
    parts.append("</select>")
    return "\n".join(parts)


def _number_select(name: str, values: Sequence[str], current: int) -> str:
    parts = [f'<select name="{name}">']
    for value in values:
        if value == "-":
            parts.append('<option value="" disabled="disabled">----</option>')
        else:
            parts.append(
                f'<option value="{value}"{_selected(current == int(value))}>{value}</option>'
            )
    parts.append("</select>")
    return "\n".join(parts)


def render_html_form(
    action_url: str,
    selections1: Sequence[Any],
    selections1b: Sequence[Any] | None = None,
    selections2: Sequence[Any] | None = None,
    selections2b: Sequence[Any] | None = None,
    time_group: str = "days",
    select1: str | None = None,
    select1b: str | None = None,
    select2: str | None = None,
    select2b: str | None = None,
    as_percent: Any = True,
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> str:
    """bitmapist's GET form: ``selections*`` are ``[(label, value), ...]``; the optional ANDs get a
    blank."""
    selections2 = list(selections2 or selections1)
    with_blank1 = [("------", ""), *(selections1b or selections1)]
    with_blank2 = [("------", ""), *(selections2b or selections2)]
    groups = "\n".join(
        f'<option value="{value}"{_selected(time_group == value)}>{label}</option>'
        for value, label in _TIME_GROUP_LABELS
    )
    return f"""<form action="{escape(action_url)}" method="GET" class="cohort_form">
<dl><dd>Show me people who
{_options("select1", selections1, select1)}
AND
{_options("select1b", with_blank1, select1b)}
and then came back to
{_options("select2", selections2, select2)}
AND
{_options("select2b", with_blank2, select2b)}
</dd></dl>
<dl>
<dd>Group By: <select name="time_group">
{groups}
</select></dd>
<dd>As percent: <select name="as_percent">
<option value="1"{_selected(bool(as_percent))}>Yes</option>
<option value="0"{_selected(not as_percent)}>No</option>
</select></dd>
<dd>Number of results: {_number_select("num_results", _NUM_RESULTS, int(num_results))}</dd>
<dd>Number of rows: {_number_select("num_of_rows", _NUM_OF_ROWS, int(num_of_rows))}</dd>
<dd>Start date: <input name="start_date" type="date" value="{escape(start_date or "")}" /></dd>
</dl>
<dl><dd><input type="submit" value="Show me results" /></dd></dl>
</form>
"""


def _bitmapist_date(moment: datetime, time_group: str, csv_style: bool = False) -> str:
    if time_group == "months":
        return moment.strftime("%d %b")
    if time_group == "weeks":
        return moment.strftime("Week %U %d %b" if csv_style else "Week %U, %d %b")
    if time_group == "years":
        return moment.strftime("%Y")
    return moment.strftime("%d %b %Y" if csv_style else "%d %b, %Y")


def column_averages(dates_data: Sequence[Sequence[Any]], num_of_rows: int) -> list[float]:
    """Per column, the mean of the cells that are not ``''`` (0 when there are none), as bitmapist
    does."""
    averages = []
    for i in range(2, num_of_rows + 3):
        entries = [row[i] for row in dates_data if row[i] != ""]
        averages.append(sum(entries) / len(entries) if entries else 0)
    return averages


def render_html_data(
    dates_data: Sequence[Sequence[Any]],
    as_percent: Any = True,
    time_group: str = "days",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> str:
    """bitmapist's ``<table class="cohort_table">``: a row per cohort, an average row at the
    bottom."""
    num_of_rows = int(num_of_rows)
    out = [
        '<table class="cohort_table" cellpadding="0" cellspacing="0">',
        '<tr><th width="200"></th>',
    ]
    out += [f'<th class="entry">{i}</th>' for i in range(num_of_rows + 1)]
    out.append("</tr>")
    for row in dates_data:
        out.append(
            f'<tr><td><div class="date">{escape(_bitmapist_date(row[0], time_group))}</div>'
            f'<div class="total_count">{escape(str(row[1]))}</div></td>'
        )
        for entry in row[2 : num_of_rows + 3]:
            if entry == "":
                out.append("<td></td>")
            elif as_percent:
                colour = f"hsla(200, 100%, 0%, {round(float(entry / 100) + 0.5, 1)});"
                alpha = round(float(entry / 100), 1)
                out.append(
                    f'<td style="background-color: hsla(200, 80%, 50%, {alpha}); color: {colour}">'
                    f"{round(entry, 2)}%</td>"
                )
            else:
                out.append(f"<td>{int(entry)}</td>")
        out.append("</tr>")
    out.append('<tr><td class="avg_row"></td>')
    for average in column_averages(dates_data, num_of_rows):
        text = f"{round(average, 2)}%" if as_percent else str(int(average))
        out.append(f'<td class="avg_row">{text}</td>')
    out.append("</tr></table>")
    return "\n".join(out)


def render_csv_data(
    dates_data: Sequence[Sequence[Any]],
    as_percent: Any = True,
    time_group: str = "days",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> str:
    """bitmapist's CSV: ``Date,Total,0,1,...`` then one line per cohort (percentages rounded to
    2)."""
    num_of_rows = int(num_of_rows)
    lines = ["Date,Total," + ",".join(str(i) for i in range(num_of_rows + 1))]
    for row in dates_data:
        cells = []
        for entry in row[2 : num_of_rows + 3]:
            if entry == "":
                cells.append("")
            else:
                cells.append(str(round(entry, 2)) if as_percent else str(int(entry)))
        lines.append(
            f"{_bitmapist_date(row[0], time_group, csv_style=True)},{row[1]},{','.join(cells)}"
        )
    return "\n".join(lines) + "\n"


__all__ = ["column_averages", "render_csv_data", "render_html_data", "render_html_form"]
