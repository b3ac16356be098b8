"""The HTML report: self-contained, one chart per view, long windows reduced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hcp.backtest import report
from hcp.backtest.report import line_chart, report_path, stacked_chart, write_report

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


def points(svg: str) -> list[str]:
    """The points of the chart's first line."""
    return svg.split("points='")[1].split("'")[0].split()


def test_the_cumulative_line_ends_at_the_total() -> None:
    """35,136 intervals in buckets of 59 leave 31 over: the last bucket is drawn too."""
    profit = np.zeros(35_136)
    profit[-1] = 1_000.0
    svg = line_chart(SECONDS, {"mpc": np.cumsum(profit)}, "USD", running_total=True)
    assert points(svg)[-1] == "844.0,56.0"  # the right edge, at the top: the total
    assert ">1,000<" in svg


def test_the_last_partial_bucket_is_drawn_from_its_mean() -> None:
    prices = np.zeros(35_136)
    prices[-1] = 310.0  # the last bucket's 31 intervals average 10
    svg = line_chart(SECONDS, {"HB_WEST": prices}, "USD/MWh")
    assert len(points(svg)) == 596 and points(svg)[-1].endswith(",56.0") and ">10.0<" in svg


def test_a_report_is_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "report.html").write_text("the last report")

    def fail(self: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "render_report", lambda title, results: "<html>")
    monkeypatch.setattr(Path, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        write_report(tmp_path, "t", [])
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert (tmp_path / "report.html").read_text() == "the last report"


def test_a_report_folder_that_cannot_be_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        report_path(tmp_path / "file")
    with pytest.raises(NotADirectoryError):
        report_path(tmp_path / "file" / "below")
    (tmp_path / "taken" / "report.html").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        report_path(tmp_path / "taken")
    assert report_path(tmp_path / "new" / "deep") == tmp_path / "new" / "deep" / "report.html"
