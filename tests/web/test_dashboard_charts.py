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
    ("value", "top"),
    [
        (0, 1),
        (1, 1),
        (3, 5),
        (7, 10),
        (10, 10),
        (11, 20),
        (180, 200),
        (4_999, 5_000),
        (50_001, 100_000),
    ],
)
def test_nice_top(value: int, top: int) -> None:
    assert charts.nice_top(value) == top


def test_line_chart_layout() -> None:
    labels = [f"d{i}" for i in range(30)]
    values = [i * 10 for i in range(30)]
    chart = charts.line_chart(labels, values, width=640, height=220)
    dots = chart.dots
    assert len(dots) == 30 and dots[0][2:] == ("d0", 0) and dots[-1][2:] == ("d29", 290)
    assert dots[0][1] == chart.bottom, "zero sits on the x axis"
    assert chart.y_ticks[-1][1] == 500 and chart.y_ticks[0][1] == 0
    assert len(chart.x_labels) <= 8 and chart.x_labels[0] == (dots[0][0], "d0")
    assert all(chart.left <= x <= 640 for x, *_ in dots)
