"""Geometry for the server-drawn SVG charts: pure functions from numbers to coordinates.

The templates draw (``templates/_charts.html``); this module only decides where points go and
which values the axes name, so it is tested without a browser.

>>> sparkline_points([0, 5, 10], width=100, height=20, pad=0)
'0.0,20.0 50.0,10.0 100.0,0.0'
>>> axis(0), axis(3), axis(1_234)
((1, 1), (3, 1), (1500, 500))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dashboard.presenters.numbers import count_text


@dataclass(frozen=True)
class Sparkline:
    """A small line: its ``points`` (an SVG polyline), one dot per known value ``(x, y,
    index)``, and the values at its bottom (``low``) and top (``high``) edges."""

    width: float
    height: float
    points: str
    dots: list[tuple[float, float, int]]
    low: float
    high: float


def sparkline(
    values: Sequence[float | None],
    width: float = 120,
    height: float = 24,
    pad: float = 2,
    *,
    floor: float | None = 0.0,
    empty_top: float = 1.0,
) -> Sparkline:
    """Lay out ``values`` left to right, oldest first; ``None`` is a gap (no point there).

    ``floor`` is the value at the bottom edge (0: counts); ``None`` scales the line to its data
    range instead, so a conversion going from 14.9 % to 15.9 % fills the height. The top edge is
    the largest value, or ``empty_top`` above the floor when every value sits on it (an
    all-zero series is a flat line at the bottom); a flat series scaled to its range is a line
    across the middle of a range ``empty_top`` wide (at the bottom when it is 0).
    """
    known = [v for v in values if v is not None]
    if floor is None:
        low, high = min(known, default=0.0), max(known, default=0.0)
        if high == low:  # flat: across the middle, or at the bottom when it is 0
            low = max(low - empty_top / 2, min(low, 0.0))
            high = low + empty_top
    else:
        low = floor
        high = max(known, default=floor)
        if high <= low:
            high = low + empty_top
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    inner = height - 2 * pad
    dots = [
        (round(pad + i * step, 1), round(pad + inner - inner * (v - low) / (high - low), 1), i)
        for i, v in enumerate(values)
        if v is not None
    ]
    points = " ".join(f"{x},{y}" for x, y, _ in dots)
    return Sparkline(width, height, points, dots, low, high)


def sparkline_points(
    values: Sequence[float], width: float = 120, height: float = 28, pad: float = 2
) -> str:
    """The ``points`` of the overview's trend lines: a :func:`sparkline` scaled to its data
    range, so a busy, steady event uses the whole height instead of its top pixels (a sparkline
    has no axis: the table beside it has the numbers); an all-zero series is a flat line at the
    bottom, any other flat series one across the middle.

    >>> sparkline_points([100, 110, 105], width=100, height=20, pad=0)
    '0.0,20.0 50.0,0.0 100.0,10.0'
    """
    return sparkline(values, width, height, pad, floor=None).points


def axis(largest: float, ticks: int = 4) -> tuple[int, int]:
    """``(top, step)`` of a zero-based axis of whole numbers showing ``largest``: the step is
    1, 2 or 5 x 10^n, at most ``ticks`` steps reach the top, and no two labels are equal (an
    all-zero series gets 0 and 1, not "0, 0, 0, 1, 1")."""
    if largest <= 0:
        return 1, 1
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if math.ceil(largest / step) <= ticks:
                return step * math.ceil(largest / step), step
        magnitude *= 10


@dataclass(frozen=True)
class LineChart:
    """An SVG line chart: plot area, polyline points, y grid lines and x labels (every few
    points)."""

    width: int
    height: int
    points: str
    #: x, y, label, value as text, and whether its period is still in progress: one per point
    dots: list[tuple[float, float, str, str, bool]]
    y_ticks: list[tuple[float, str]]  # y, label
    x_labels: list[tuple[float, str]]  # x, label
    left: int
    bottom: int


def line_chart(
    labels: Sequence[str],
    values: Sequence[float],
    width: int = 640,
    height: int = 220,
    max_labels: int = 8,
    *,
    text: Callable[[float], str] = count_text,
    in_progress: Sequence[bool] = (),
) -> LineChart:
    """Lay out a line chart of ``values`` (one per label) with a zero-based axis of round,
    distinct labels (``axis``); ``text`` writes a value, ``in_progress`` flags the points whose
    period is not over yet (drawn hollow)."""
    left, right, top_pad, bottom = 56, 40, 10, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top, tick = axis(max(values, default=0))
    step = plot_w / max(len(values) - 1, 1)
    coords = [
        (round(left + i * step, 1), round(top_pad + plot_h - plot_h * v / top, 1))
        for i, v in enumerate(values)
    ]
    every = max(1, -(-len(labels) // max_labels))
    flags = list(in_progress) + [False] * (len(values) - len(in_progress))
    return LineChart(
        width=width,
        height=height,
        points=" ".join(f"{x},{y}" for x, y in coords),
        dots=[(x, y, labels[i], text(values[i]), flags[i]) for i, (x, y) in enumerate(coords)],
        y_ticks=[
            (round(top_pad + plot_h - plot_h * value / top, 1), text(value))
            for value in range(0, top + 1, tick)
        ],
        x_labels=[(coords[i][0], labels[i]) for i in range(0, len(labels), every)],
        left=left,
        bottom=height - bottom,
    )


@dataclass(frozen=True)
class Series:
    """One line of a ``LinesChart``: its name, its polyline and its dots (x, y, label, text)."""

    name: str
    points: str
    dots: list[tuple[float, float, str, str]]


@dataclass(frozen=True)
class LinesChart:
    """Several lines over the same x labels and one zero-based y axis: compared groups."""

    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    left: int
    bottom: int


def lines_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    width: int = 640,
    height: int = 220,
    max_labels: int = 8,
    *,
    text: Callable[[float], str] = count_text,
) -> LinesChart:
    """Lay out ``series`` (name, one value per label, ``None`` where a group has none) over one
    axis, so overlaid lines compare at a glance; a gap leaves a point out."""
    left, right, top_pad, bottom = 56, 40, 10, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    known = [v for _, values in series for v in values if v is not None]
    top, tick = axis(max(known, default=0))
    step = plot_w / max(len(labels) - 1, 1)
    laid = []
    for name, values in series:
        dots = [
            (
                round(left + i * step, 1),
                round(top_pad + plot_h - plot_h * v / top, 1),
                labels[i],
                text(v),
            )
            for i, v in enumerate(values)
            if v is not None
        ]
        laid.append(Series(name, " ".join(f"{x},{y}" for x, y, _, _ in dots), dots))
    every = max(1, -(-len(labels) // max_labels))
    return LinesChart(
        width=width,
        height=height,
        series=laid,
        y_ticks=[
            (round(top_pad + plot_h - plot_h * value / top, 1), text(value))
            for value in range(0, top + 1, tick)
        ],
        x_labels=[(round(left + i * step, 1), labels[i]) for i in range(0, len(labels), every)],
        left=left,
        bottom=height - bottom,
    )


@dataclass(frozen=True)
class GroupedBar:
    x: float
    y: float
    width: float
    height: float
    series: int
    name: str
    label: str
    text: str


@dataclass(frozen=True)
class GroupedBars:
    """Bars in groups along x (one group per label, one bar per series), 0 to 100 %."""

    width: int
    height: int
    bars: list[GroupedBar]
    names: list[str]
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    left: int
    bottom: int


def grouped_bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    width: int = 640,
    height: int = 220,
) -> GroupedBars:
    """Lay out percentages (0..100, ``None``: no bar) as grouped bars: each label a slot, the
    series' bars side by side in it, so the same step of every group sits together."""
    left, right, top_pad, bottom = 48, 12, 10, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    slot = plot_w / max(len(labels), 1)
    bar = slot * 0.8 / max(len(series), 1)
    bars = []
    for n, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            if value is None:
                continue
            h = round(plot_h * min(max(value, 0.0), 100.0) / 100, 1)
            x = round(left + i * slot + slot * 0.1 + n * bar, 1)
            text = f"{value:.1f}%"
            bars.append(
                GroupedBar(
                    x, round(top_pad + plot_h - h, 1), round(bar, 1), h, n, name, labels[i], text
                )
            )
    return GroupedBars(
        width=width,
        height=height,
        bars=bars,
        names=[name for name, _ in series],
        y_ticks=[
            (round(top_pad + plot_h - plot_h * v / 100, 1), f"{v}%") for v in (0, 25, 50, 75, 100)
        ],
        x_labels=[(round(left + (i + 0.5) * slot, 1), label) for i, label in enumerate(labels)],
        left=left,
        bottom=height - bottom,
    )
