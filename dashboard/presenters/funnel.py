"""The funnel page's view model: the rows of its table, trend and exports, and its trend line.

The HTML table, ``/funnel.json`` and ``/funnel.csv`` all come from these rows, so an export is
exactly what is shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bitcore import funnel, periods
from dashboard.presenters.charts import GroupedBars, Sparkline, grouped_bar_chart, sparkline

FUNNEL_COLUMNS = [
    "step",
    "name",
    "token",
    "users",
    "pct_of_step_1",
    "pct_of_previous",
    "drop_off",
    "drop_off_pct",
]


def percent(rate: float | None) -> float | None:
    """A rate as the percentage the page prints (one decimal), or ``None`` when there is no base."""
    return None if rate is None else round(rate * 100, 1)


def funnel_rows(report: funnel.Funnel) -> list[dict[str, Any]]:
    """One dict per step, the columns of the table, the CSV and the JSON alike."""
    rows = []
    for step in report.steps:
        previous = step.count + step.drop_off
        rows.append(
            {
                "step": step.position,
                "name": step.label,
                "token": step.token,
                "users": step.count,
                "pct_of_step_1": percent(step.of_first),
                "pct_of_previous": percent(step.of_previous),
                # step 1 has no step before it: no drop-off (the page's "—"), not 0
                "drop_off": step.drop_off if step.position > 1 else None,
                "drop_off_pct": (
                    percent(step.drop_off / previous) if previous and step.position > 1 else None
                ),
            }
        )
    return rows


def trend_columns(steps: int) -> list[str]:
    steps_ = [f"step_{n}" for n in range(1, steps + 1)]
    return ["start", "end", *steps_, "conversion_pct", "in_progress"]


def in_progress(report: funnel.Funnel, now: datetime) -> bool:
    """Whether the window of ``report`` ends in the current period or later: its counts can
    still grow, so the page marks it."""
    return report.end >= periods.period_of(report.kind, now)


def trend_rows(trend: funnel.FunnelTrend, now: datetime) -> list[dict[str, Any]]:
    """One dict per start period, oldest first: step counts, overall conversion, and whether its
    window is still open at ``now``."""
    rows = []
    for report in trend.funnels:
        row: dict[str, Any] = {
            "start": periods.label(report.start),
            "end": periods.label(report.end),
        }
        for step in report.steps:
            row[f"step_{step.position}"] = step.count
        row["conversion_pct"] = percent(report.conversion)
        row["in_progress"] = in_progress(report, now)
        rows.append(row)
    return rows


def conversion_line(rows: list[dict[str, Any]]) -> Sparkline | None:
    """The trend's overall conversion as a line scaled to its range (a change from 14.9 % to
    15.9 % fills the height), or ``None`` when no start period had anyone at step 1: nothing to
    draw, the page says so instead."""
    values = [row["conversion_pct"] for row in rows]
    if all(value is None for value in values):
        return None
    return sparkline(values, width=240, height=56, pad=5, floor=None, empty_top=1.0)


def funnel_summary(report: funnel.Funnel, now: datetime) -> dict[str, Any]:
    """What the page and ``/funnel.json`` show of one funnel: its window and its step rows."""
    return {
        "kind": report.kind,
        "start": periods.label(report.start),
        "end": periods.label(report.end),
        "window": report.window,
        "in_progress": in_progress(report, now),
        "conversion_pct": percent(report.conversion),
        "steps": funnel_rows(report),
    }


def grouped_rows(
    rows: list[dict[str, Any]], groups: list[tuple[str, list[dict[str, Any]]]]
) -> list[dict[str, Any]]:
    """Everyone's step rows then each compared group's, with a ``group`` column (``all``)."""
    return [{"group": by, **row} for by, shown in [("all", rows), *groups] for row in shown]


def grouped_bars(summary: dict[str, Any], groups: list[dict[str, Any]]) -> GroupedBars:
    """Each step's share of step 1, everyone's bar and each group's side by side."""
    series = [("All users", summary), *((g["label"], g["funnel"]) for g in groups)]
    labels = [f"{row['step']}. {row['name']}" for row in summary["steps"]]
    values = [[row["pct_of_step_1"] for row in shown["steps"]] for _, shown in series]
    return grouped_bar_chart(
        labels, [(name, v) for (name, _), v in zip(series, values, strict=True)]
    )
