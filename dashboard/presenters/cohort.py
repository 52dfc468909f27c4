"""The cohort page's view model: one decision per cell, shared by its HTML, CSV and JSON.

``cohort_view`` is the one place that decides what a cell of ``/cohort`` shows (text, exact numbers,
colour, tooltip, whether its period is still in progress), so the page, its download and its JSON
twin can never disagree. bitmapist's own renderers (``render_html_data`` ...) and its unweighted
average (``column_averages``, what ``get_dates_data`` users get) stay in the library,
``bitcore/cohort/render.py``; the page's average row is weighted by cohort size
(``weighted_average``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bitcore import periods
from bitcore.cohort.engine import CohortTable, period_for
from dashboard.presenters.charts import LineChart, LinesChart, line_chart, lines_chart
from dashboard.presenters.numbers import count_text, percent_text

#: A column's unit, by time group: "Day 0", "Week 1".
UNITS = {"days": "Day", "weeks": "Week", "months": "Month", "years": "Year"}
#: The hue of the heatmap, and the opacity of its darkest cell.
HUE = "200, 80%, 40%"
DARKEST = 0.85
IN_PROGRESS = "period still in progress: the number can still grow"


@dataclass(frozen=True)
class ViewCell:
    """What one cell shows (``text``), its exact numbers, and how it is coloured and titled."""

    text: str
    count: int | None
    percent: float | None
    style: str
    title: str
    in_progress: bool = False
    size: int | None = None  # the users it is a share of (the average row's)


@dataclass(frozen=True)
class ViewRow:
    label: str
    size: int
    cells: list[ViewCell]
    in_progress: bool = False

    @property
    def size_text(self) -> str:
        return count_text(self.size)


#: What a column counts, by retention mode (``bitcore.cohort.retention``), for the page's heading.
RETENTION_TEXT = {
    "on": "came back in exactly that period",
    "on_or_after": "came back in that period or any later one, up to now",
}


@dataclass(frozen=True)
class CohortView:
    as_percent: bool
    header: list[str]
    rows: list[ViewRow]
    average: list[ViewCell]
    average_label: str
    scale_top: float  # the share the darkest colour stands for (columns after the first)
    legend: list[tuple[str, str]]  # (style, text) swatches, lightest first
    curve: LineChart | None
    retention: str = "on"

    @property
    def retention_text(self) -> str:
        return RETENTION_TEXT[self.retention]

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


def heat_style(percent: float, top: float = 100.0) -> str:
    """Inline background for a cell: the bluer, the larger the share of ``top`` (the largest
    share after the first column); white text on the darkest cells."""
    alpha = round(min(max(percent, 0.0) / top, 1.0) * DARKEST, 2) if top > 0 else 0.0
    colour = "#fff" if alpha > 0.5 else "#111"
    return f"background-color: hsla({HUE}, {alpha}); color: {colour}"


def scale_top(table: CohortTable) -> float:
    """The share the darkest colour stands for: the largest of the columns after the first (the
    first is the cohort itself, often 100 %, and would wash every later cell out)."""
    shares = [
        percent
        for i in range(len(table.starts))
        for t in range(1, table.num_of_rows + 1)
        if (percent := table.percent(i, t)) is not None
    ]
    return max(shares, default=0.0) or 100.0


def weighted_average(
    table: CohortTable, column: int, counted: list[list[bool]]
) -> tuple[int, int] | None:
    """``(returned, cohort users)`` over the cohorts counted in ``column``: their percentage is
    the average weighted by cohort size (a cohort of 10 weighs a tenth of one of 100), unlike
    bitmapist's plain mean of the cells. ``None`` when no cohort is counted there."""
    rows = [i for i in range(len(table.starts)) if counted[i][column]]
    if not rows:
        return None
    return sum(table.cells[i][column] or 0 for i in rows), sum(table.sizes[i] for i in rows)


def _cell_periods(table: CohortTable, row: int) -> list[periods.Period]:
    first = period_for(table.time_group, table.starts[row])
    return [periods.shift(first, t) for t in range(table.num_of_rows + 1)]


def cohort_view(
    table: CohortTable, as_percent: bool = True, now: datetime | None = None
) -> CohortView:
    """The table as shown: percentages (one decimal) or counts, a heatmap scaled to the columns
    after the first, cells of periods still in progress at ``now`` marked (and left out of the
    weighted average row), and the retention curve of that average."""
    current = period_for(table.time_group, now) if now else None
    top = scale_top(table)
    rows: list[ViewRow] = []
    counted: list[list[bool]] = []
    for i, start in enumerate(table.starts):
        cells, row_counted = [], []
        size = table.sizes[i]
        for t, period in enumerate(_cell_periods(table, i)):
            count, percent = table.cells[i][t], table.percent(i, t)
            open_ = current is not None and period == current
            row_counted.append(count is not None and not open_)
            if count is None or percent is None:
                cells.append(ViewCell("", None, None, "", "no data for this period", open_))
                continue
            text = percent_text(percent) if as_percent else count_text(count)
            title = f"{count_text(count)} of {count_text(size)} users ({percent_text(percent)})"
            style = heat_style(percent, top) if t else ""
            title += f"; {IN_PROGRESS}" if open_ else ""
            cells.append(ViewCell(text, count, round(percent, 1), style, title, open_))
        counted.append(row_counted)
        in_progress = current is not None and _cell_periods(table, i)[0] == current
        rows.append(ViewRow(row_label(start, table.time_group), size, cells, in_progress))
    average = _average_row(table, counted, as_percent)
    unit = UNITS[table.time_group]
    plus = "+" if table.retention == "on_or_after" else ""  # "Week 2+": week 2 or later
    header = [f"{unit} {t}{plus}" for t in range(table.num_of_rows + 1)]
    label = "Average, weighted by cohort size" if as_percent else "All cohorts (total)"
    curve = retention_curve(header, average)
    return CohortView(
        as_percent, header, rows, average, label, top, legend(top), curve, table.retention
    )


def _average_row(table: CohortTable, counted: list[list[bool]], as_percent: bool) -> list[ViewCell]:
    cells = []
    for t in range(table.num_of_rows + 1):
        totals = weighted_average(table, t, counted)
        if totals is None or not totals[1]:
            cells.append(ViewCell("", None, None, "", "no finished period to average"))
            continue
        returned, users = totals
        percent = returned / users * 100
        text = percent_text(percent) if as_percent else count_text(returned)
        title = (
            f"{count_text(returned)} of {count_text(users)} users ({percent_text(percent)}) in the "
            "cohorts whose period is over"
        )
        cells.append(ViewCell(text, returned, round(percent, 1), "", title, size=users))
    return cells


def legend(top: float, steps: int = 5) -> list[tuple[str, str]]:
    """Swatches of the heatmap's scale, from 0 to ``top``."""
    return [
        (heat_style(top * k / (steps - 1), top), percent_text(top * k / (steps - 1)))
        for k in range(steps)
    ]


def retention_curve(
    header: list[str], average: list[ViewCell], width: int = 640, height: int = 200
) -> LineChart | None:
    """The weighted average per column as a line, up to the last column that has one (the page's
    is 640 x 200; a saved report's card is smaller)."""
    shown = [(label, cell.percent) for label, cell in zip(header, average, strict=True)]
    while shown and shown[-1][1] is None:
        shown.pop()
    if len(shown) < 2 or any(value is None for _, value in shown):
        return None
    labels = [label for label, _ in shown]
    values = [float(value or 0.0) for _, value in shown]
    labelled = max(2, width // 80)  # 8 on the page's chart, fewer on a card
    return line_chart(labels, values, width, height, labelled, text=percent_text)


def view_csv(view: CohortView) -> str:
    """Exactly the shown table: header, one line per cohort, then the average line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Cohort", "Size", *view.header])
    for row in view.rows:
        writer.writerow([row.label, row.size_text, *(cell.text for cell in row.cells)])
    writer.writerow([view.average_label, "", *(cell.text for cell in view.average)])
    return buffer.getvalue()


def view_json(view: CohortView) -> dict[str, Any]:
    """The shown table, with each cell's exact count and percentage next to its text; the
    average row's cells are alike, with the users they are a share of."""
    return {
        "as_percent": view.as_percent,
        "retention": view.retention,
        "header": ["Cohort", "Size", *view.header],
        "rows": [
            {
                "cohort": row.label,
                "size": row.size,
                "in_progress": row.in_progress,
                "cells": [
                    {
                        "text": c.text,
                        "count": c.count,
                        "percent": c.percent,
                        "in_progress": c.in_progress,
                    }
                    for c in row.cells
                ],
            }
            for row in view.rows
        ],
        "average": [
            {"text": c.text, "count": c.count, "size": c.size, "percent": c.percent}
            for c in view.average
        ],
        "average_label": view.average_label,
        "empty": view.empty,
    }


@dataclass(frozen=True)
class GroupView:
    """A compared group's table (``bitcore.breakdown``): ``by`` as asked, its label, its view
    and its cells' drill-down links."""

    by: str
    label: str
    view: CohortView
    users_url: Callable[[int, int | None], str] | None = None


def compared_curves(view: CohortView, groups: list[GroupView]) -> LinesChart | None:
    """Everyone's retention curve and each group's, overlaid: the weighted average per column
    (``None`` without groups, or when no column has an average)."""
    if not groups:
        return None
    series = [("All users", [c.percent for c in view.average])]
    series += [(g.label, [c.percent for c in g.view.average]) for g in groups]
    if all(v is None for _, values in series for v in values):
        return None
    return lines_chart(view.header, series, width=640, height=220, text=percent_text)


def grouped_csv(view: CohortView, groups: list[tuple[str, CohortView]]) -> str:
    """Everyone's table then each group's, one after the other, with a first "Group" column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Group", "Cohort", "Size", *view.header])
    for by, shown in [("all", view), *groups]:
        for row in shown.rows:
            writer.writerow([by, row.label, row.size_text, *(cell.text for cell in row.cells)])
        writer.writerow([by, shown.average_label, "", *(cell.text for cell in shown.average)])
    return buffer.getvalue()
