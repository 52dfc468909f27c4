"""Geometry for the server-drawn SVG charts: pure functions from numbers to coordinates.

The templates draw (``templates/_charts.html``); this module only decides where points go, so it is
tested without a browser.

>>> sparkline_points([0, 5, 10], width=100, height=20, pad=0)
'0.0,20.0 50.0,10.0 100.0,0.0'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def sparkline_points(
    values: Sequence[float], width: float = 120, height: float = 28, pad: float = 2
) -> str:
    """The ``points`` of an SVG polyline for ``values``: first value at the left, the smallest
    value at the bottom and the largest at the top, so the line uses the whole height and shows
    the shape of the trend (a sparkline has no axis; the table beside it has the numbers). A
    series that never changes is a flat line: at the bottom when it is all zeros, else midway.

    >>> sparkline_points([100, 110, 105], width=100, height=20, pad=0)
    '0.0,20.0 50.0,0.0 100.0,10.0'
    >>> sparkline_points([0, 0], width=10, height=20, pad=0), sparkline_points([7, 7], 10, 20, 0)
    ('0.0,20.0 10.0,20.0', '0.0,10.0 10.0,10.0')
    """
    if not values:
        return ""
    low, high = min(values), max(values)
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    inner = height - 2 * pad
    if high == low:
        level = float(inner) if high == 0 else inner / 2
        return " ".join(
            f"{round(pad + i * step, 1)},{round(pad + level, 1)}" for i in range(len(values))
        )
    return " ".join(
        f"{round(pad + i * step, 1)},{round(pad + inner - inner * (v - low) / (high - low), 1)}"
        for i, v in enumerate(values)
    )


@dataclass(frozen=True)
class LineChart:
    """An SVG line chart: plot area, polyline points, y grid lines and x labels (every few
    points)."""

    width: int
    height: int
    points: str
    dots: list[tuple[float, float, str, int]]  # x, y, label, value: one per point, for tooltips
    y_ticks: list[tuple[float, int]]  # y, value
    x_labels: list[tuple[float, str]]  # x, label
    left: int
    bottom: int


def nice_top(value: int) -> int:
    """A round number at or above ``value`` for the y axis (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def line_chart(
    labels: Sequence[str],
    values: Sequence[int],
    width: int = 640,
    height: int = 220,
    max_labels: int = 8,
) -> LineChart:
    """Lay out a line chart of ``values`` (one per label) with a zero-based, rounded y axis."""
    left, right, top_pad, bottom = 56, 40, 10, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = nice_top(max(values, default=0))
    step = plot_w / max(len(values) - 1, 1)
    coords = [
        (round(left + i * step, 1), round(top_pad + plot_h - plot_h * v / top, 1))
        for i, v in enumerate(values)
    ]
    every = max(1, -(-len(labels) // max_labels))
    return LineChart(
        width=width,
        height=height,
        points=" ".join(f"{x},{y}" for x, y in coords),
        dots=[(x, y, labels[i], values[i]) for i, (x, y) in enumerate(coords)],
        y_ticks=[
            (round(top_pad + plot_h - plot_h * f, 1), round(top * f))
            for f in (0, 0.25, 0.5, 0.75, 1)
        ],
        x_labels=[(coords[i][0], labels[i]) for i in range(0, len(labels), every)],
        left=left,
        bottom=height - bottom,
    )
