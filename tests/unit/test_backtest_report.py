"""The HTML report: self-contained, one chart per view, long windows reduced."""

from __future__ import annotations

import numpy as np

from hcp.backtest.report import line_chart, stacked_chart

SECONDS = 1_704_067_200 + 900 * np.arange(35_136, dtype=np.int64)


def test_a_long_window_is_drawn_from_a_few_hundred_points() -> None:
    svg = line_chart(SECONDS, {"HB_WEST": np.sin(np.arange(35_136.0))}, "USD/MWh")
    points = svg.split("points='")[1].split("'")[0].split()
    assert 300 <= len(points) <= 600
    assert svg.startswith("<svg") and "USD/MWh" in svg and "2024-01-01" in svg


def test_stacked_areas_reach_the_total() -> None:
    series = {"ASICs": np.full(96, 20.0), "GPU spot": np.full(96, 5.0)}
    svg = stacked_chart(SECONDS[:96], series, "MW")
    assert svg.count("<polygon") == 2 and ">25<" in svg and "GPU spot" in svg
