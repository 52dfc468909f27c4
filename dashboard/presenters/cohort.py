"""The cohort page's view model: one decision per cell, shared by its HTML, CSV and JSON.

``cohort_view`` is the one place that decides what a cell of ``/cohort`` shows (text, exact numbers,
colour, tooltip), so the page, its download and its JSON twin can never disagree. bitmapist's own
renderers (``render_html_data`` ...) stay in the library, ``bitcore/cohort/render.py``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bitcore.cohort.engine import CohortTable
from bitcore.cohort.render import column_averages


@dataclass(frozen=True)
class ViewCell:
    """What one cell shows (``text``), its exact numbers, and how it is coloured and titled."""

    text: str
    count: int | None
    percent: float | None
    style: str
    title: str


@dataclass(frozen=True)
class ViewRow:
    label: str
    size: int
    cells: list[ViewCell]


@dataclass(frozen=True)
class CohortView:
    as_percent: bool
    header: list[str]
    rows: list[ViewRow]
    average: list[str]

    @property
    def empty(self) -> bool:
        """True when no cohort has anyone in it: the page says so instead of drawing a blank
        table."""
        return not any(row.size for row in self.rows)


def row_label(moment: datetime, time_group: str) -> str:
    """A row's period in words; weeks by ISO week-year and number, with the Monday they start on."""
    if time_group == "weeks":
        iso_year, iso_week, weekday = moment.isocalendar()
        monday = moment.toordinal() - (weekday - 1)
        return f"{iso_year}-W{iso_week:02d} ({datetime.fromordinal(monday).strftime('%d %b')})"
    if time_group == "months":
        return moment.strftime("%b %Y")
    if time_group == "years":
        return moment.strftime("%Y")
    return moment.strftime("%a %d %b %Y")


def heat_style(percent: float) -> str:
    """Inline background for a cell: the bluer, the larger the share; white text on the darkest
    cells."""
    alpha = round(min(max(percent, 0.0), 100.0) / 100, 2)
    colour = "#fff" if alpha > 0.55 else "#111"
    return f"background-color: hsla(200, 80%, 40%, {alpha}); color: {colour}"


def cohort_view(table: CohortTable, as_percent: bool = True) -> CohortView:
    """The table as shown: percentages (2 decimals) or counts, a bitmapist-style average row."""
    rows: list[ViewRow] = []
    shown: list[list[Any]] = table.bitmapist_rows(as_percent)
    for i, start in enumerate(table.starts):
        cells = []
        for t, count in enumerate(table.cells[i]):
            percent = table.percent(i, t)
            if count is None or percent is None:
                cells.append(ViewCell("", None, None, "", "no data for this period"))
                continue
            text = f"{round(percent, 2)}%" if as_percent else str(count)
            title = f"{count} of {table.sizes[i]} users ({percent:.2f}%)"
            cells.append(ViewCell(text, count, round(percent, 2), heat_style(percent), title))
        rows.append(ViewRow(row_label(start, table.time_group), table.sizes[i], cells))
    average = []
    for t, mean in enumerate(column_averages(shown, table.num_of_rows)):
        if all(row.cells[t].count is None for row in rows):
            average.append("")  # bitmapist prints 0 here; an empty column has no average
        else:
            average.append(f"{round(mean, 2)}%" if as_percent else str(int(mean)))
    header = [str(t) for t in range(table.num_of_rows + 1)]
    return CohortView(as_percent, header, rows, average)


def view_csv(view: CohortView) -> str:
    """Exactly the shown table: header, one line per cohort, then the average line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Cohort", "Size", *view.header])
    for row in view.rows:
        writer.writerow([row.label, row.size, *(cell.text for cell in row.cells)])
    writer.writerow(["Average", "", *view.average])
    return buffer.getvalue()


def view_json(view: CohortView) -> dict[str, Any]:
    """The shown table, with each cell's exact count and percentage next to its text."""
    return {
        "as_percent": view.as_percent,
        "header": ["Cohort", "Size", *view.header],
        "rows": [
            {
                "cohort": row.label,
                "size": row.size,
                "cells": [
                    {"text": c.text, "count": c.count, "percent": c.percent} for c in row.cells
                ],
            }
            for row in view.rows
        ],
        "average": view.average,
        "empty": view.empty,
    }
