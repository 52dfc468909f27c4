"""Chart geometry (``dashboard.presenters.charts``): where the points of the SVG lines go."""

from __future__ import annotations

import pytest

from dashboard.presenters import charts


def parse(points: str) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in points.split()]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 5, 10], [(0, 20), (50, 10), (100, 0)]),
        ([0, 0], [(0, 20), (100, 20)]),  # all zero: flat at the bottom, no division by zero
        ([7], [(0, 10)]),  # one value, or one that never changes: flat, midway
        ([7, 7, 7], [(0, 10), (50, 10), (100, 10)]),
        # a busy, steady series uses the whole height, not the top pixels (zero is not drawn)
        ([1800, 1900, 1850], [(0, 20), (50, 0), (100, 10)]),
        ([], []),
    ],
)
def test_sparkline_points(values: list[int], expected: list[tuple[float, float]]) -> None:
    assert parse(charts.sparkline_points(values, width=100, height=20, pad=0)) == expected


def test_sparkline_stays_inside_its_padding() -> None:
    points = parse(charts.sparkline_points([3, 1, 4, 1, 5, 9, 2, 6], width=120, height=24, pad=2))
    assert all(2 <= x <= 118 and 2 <= y <= 22 for x, y in points)
    assert min(points, key=lambda p: p[1]) == points[5], "the largest value is highest"


@pytest.mark.parametrize(
    ("largest", "labels"),
    [
        (0, [0, 1]),  # all zero: two distinct labels, not "0, 0, 0, 1, 1"
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (10, [0, 5, 10]),
        (180, [0, 50, 100, 150, 200]),
        (4_999, [0, 2_000, 4_000, 6_000]),
        (33.3, [0, 10, 20, 30, 40]),
    ],
)
def test_axis_labels_are_round_and_distinct(largest: float, labels: list[int]) -> None:
    top, step = charts.axis(largest)
    assert list(range(0, top + 1, step)) == labels


def test_an_all_zero_chart_has_sane_labels() -> None:
    chart = charts.line_chart(["a", "b", "c"], [0, 0, 0])
    assert [text for _, text in chart.y_ticks] == ["0", "1"]
    assert all(y == chart.bottom for _, y, *_ in chart.dots), "zero sits on the x axis"


def test_line_chart_layout() -> None:
    labels = [f"d{i}" for i in range(30)]
    values = [i * 10 for i in range(30)]
    chart = charts.line_chart(
        labels, values, width=640, height=220, in_progress=[False] * 29 + [True]
    )
    dots = chart.dots
    assert len(dots) == 30 and dots[0][2:] == ("d0", "0", False)
    assert dots[-1][2:] == ("d29", "290", True), "the last period is still in progress"
    assert dots[0][1] == chart.bottom, "zero sits on the x axis"
    assert chart.y_ticks[-1][1] == "300" and chart.y_ticks[0][1] == "0"
    assert len(chart.x_labels) <= 8 and chart.x_labels[0] == (dots[0][0], "d0")
    assert all(chart.left <= x <= 640 for x, *_ in dots)


def test_sparkline_gaps_and_range() -> None:
    """One sparkline for the overview (from zero) and the funnel trend (its data range)."""
    zero_based = charts.sparkline([0.0, None, 5.0, 10.0], width=104, height=24)
    assert zero_based.dots == [(2.0, 22.0, 0), (68.7, 12.0, 2), (102.0, 2.0, 3)]
    ranged = charts.sparkline([14.9, 15.9], width=100, height=20, pad=0, floor=None)
    assert ranged.points == "0.0,20.0 100.0,0.0" and (ranged.low, ranged.high) == (14.9, 15.9)
    flat = charts.sparkline([15.0, 15.0], width=100, height=20, pad=0, floor=None)
    assert flat.points == "0.0,10.0 100.0,10.0", "a flat line across the middle"
    assert charts.sparkline([0.0, 0.0], floor=None).low == 0, "never below zero when flat at 0"
