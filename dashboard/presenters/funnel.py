"""The funnel page's view model: the rows of its table, trend and exports, and its sparkline.

The HTML table, ``/funnel.json`` and ``/funnel.csv`` all come from these rows, so an export is
exactly what is shown.
"""

from __future__ import annotations

from typing import Any

from bitcore import funnel, periods

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
                "drop_off": step.drop_off,
                "drop_off_pct": percent(step.drop_off / previous) if previous else None,
            }
        )
    return rows


def trend_columns(steps: int) -> list[str]:
    return ["start", "end", *[f"step_{n}" for n in range(1, steps + 1)], "conversion_pct"]


def trend_rows(trend: funnel.FunnelTrend) -> list[dict[str, Any]]:
    """One dict per start period, oldest first: step counts and overall conversion."""
    rows = []
    for report in trend.funnels:
        row: dict[str, Any] = {
            "start": periods.label(report.start),
            "end": periods.label(report.end),
        }
        for step in report.steps:
            row[f"step_{step.position}"] = step.count
        row["conversion_pct"] = percent(report.conversion)
        rows.append(row)
    return rows


def sparkline(values: list[float | None], width: int = 120, height: int = 28) -> dict[str, Any]:
    """Points of a small SVG line: 0 % at the bottom, the highest value at the top (2 px margins).

    Conversions are often a few percent; on a 0..100 % scale the line would be flat.
    """
    step = (width - 4) / max(len(values) - 1, 1)
    top = max((v for v in values if v is not None), default=0.0) or 100.0
    points = [
        (round(2 + i * step, 1), round(2 + (height - 4) * (1 - v / top), 1))
        for i, v in enumerate(values)
        if v is not None
    ]
    return {
        "width": width,
        "height": height,
        "top": top,
        "points": " ".join(f"{x},{y}" for x, y in points),
        "dots": points,
    }
