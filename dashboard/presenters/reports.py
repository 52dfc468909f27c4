"""What the lifecycle and stickiness pages show: bar-chart geometry and CSV rows.

Pure functions from a report (``bitcore.lifecycle``, ``bitcore.stickiness``) to coordinates and
rows; ``templates/_charts.html`` draws the bars, so the layout is tested without a browser.

>>> chart = bar_chart(["a", "b"], [[("users", 4)], [("users", 2)]])
>>> [(bar.label, bar.value, bar.height) for bar in chart.bars]
[('a', 4, 182.0), ('b', 2, 91.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bitcore import periods
from bitcore.lifecycle import STATES, Lifecycle
from bitcore.stickiness import Stickiness
from dashboard.presenters.charts import axis

LIFECYCLE_COLUMNS = ["period", *STATES]
STICKINESS_COLUMNS = ["days", "users"]
#: The lifecycle states drawn above the zero line, bottom up; dormant is drawn below it.
GAINS = ("new", "returning", "resurrecting")


@dataclass(frozen=True)
class Bar:
    """One rectangle: ``series`` names its colour (a CSS class), ``label`` its period."""

    x: float
    y: float
    width: float
    height: float
    series: str
    label: str
    value: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[tuple[float, int]]  # y, value (negative below the zero line)
    x_labels: list[tuple[float, str]]  # x (centre of a bar), label
    left: int
    zero: float  # y of the zero line
    bottom: int  # y of the plot's lower edge


def bar_chart(
    labels: Sequence[str],
    stacks: Sequence[Sequence[tuple[str, int]]],
    width: int = 640,
    height: int = 220,
    max_labels: int = 10,
) -> BarChart:
    """Bars of ``stacks`` (per label: ``(series, value)`` pairs, stacked in order; a negative
    value hangs below the zero line), on a rounded y axis."""
    left, right, top_pad, bottom_pad = 56, 12, 10, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom_pad
    ups = [sum(v for _, v in stack if v > 0) for stack in stacks]
    downs = [sum(-v for _, v in stack if v < 0) for stack in stacks]
    top, _ = axis(max(ups, default=0))
    low = axis(max(downs))[0] if any(downs) else 0
    scale = plot_h / (top + low)
    zero = round(top_pad + top * scale, 1)
    slot = plot_w / max(len(stacks), 1)
    bars = []
    for i, stack in enumerate(stacks):
        x = round(left + i * slot + slot * 0.15, 1)
        above, below = zero, zero
        for series, value in stack:
            size = round(abs(value) * scale, 1)
            if value >= 0:
                above = round(above - size, 1)
                y = above
            else:
                y, below = below, round(below + size, 1)
            bars.append(Bar(x, y, round(slot * 0.7, 1), size, series, labels[i], value))
    ticks = [(round(zero - top * f * scale, 1), round(top * f)) for f in (0, 0.5, 1)]
    if low:
        ticks.append((round(zero + low * scale, 1), -low))
    every = max(1, -(-len(labels) // max_labels))
    centres = [(round(left + (i + 0.5) * slot, 1), labels[i]) for i in range(0, len(labels), every)]
    return BarChart(width, height, bars, ticks, centres, left, zero, height - bottom_pad)


def lifecycle_chart(report: Lifecycle, width: int = 640, height: int = 260) -> BarChart:
    """New, returning and resurrecting stacked up; dormant hanging below zero."""
    stacks = [
        [*((state, getattr(p, state)) for state in GAINS), ("dormant", -p.dormant)]
        for p in report.periods
    ]
    labels = [p.period for p in report.periods]
    return bar_chart(labels, stacks, width, height, max_labels=max(2, width // 64))


def stickiness_chart(report: Stickiness, width: int = 640, height: int = 220) -> BarChart:
    histogram = report.histogram
    labels = [str(n) for n in range(1, len(histogram) + 1)]
    stacks = [[("users", u)] for u in histogram]
    return bar_chart(labels, stacks, width, height, max_labels=max(2, width // 64))


def lifecycle_rows(report: Lifecycle) -> list[dict[str, object]]:
    return [p.as_dict() for p in report.periods]


def stickiness_rows(report: Stickiness) -> list[dict[str, object]]:
    return list(report.as_dict()["histogram"])


def lifecycle_in_progress(report: Lifecycle, now: datetime) -> str | None:
    """The label of the report's last period when it is still in progress at ``now`` (its new,
    returning and resurrecting users can still grow, its dormant ones shrink), else ``None``."""
    if not report.periods or report.end < periods.period_of(report.kind, now):
        return None
    return report.periods[-1].period


def stickiness_in_progress(report: Stickiness, now: datetime) -> bool:
    """Whether the report's week or month is still in progress at ``now``: its users can still
    move to more days."""
    return report.period >= periods.period_of(report.period.kind, now)
