"""CSV replay of market data: every bad-data case names file, line and column, or is a
reported repair; ERCOT's long layout converts to UTC across DST."""

from __future__ import annotations

import csv
import gzip
import logging
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hcp.adapters.market.replay import (
    GpuSpotCsv,
    Repair,
    ReplayMarketFeed,
    load_market_series,
)
from hcp.domain.errors import DataError
from hcp.domain.market import MarketSeries
from hcp.services.ports import MarketFeed

T0 = datetime(2024, 1, 1, 6, tzinfo=UTC)
WIDE_HEADER = "interval_start_utc,interval_start_local,HB_WEST,HB_NORTH"
LONG_HEADER = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointPrice,DSTFlag"
)


def write(path: Path, lines: Sequence[str]) -> Path:
    """`lines` as a file at `path` (gzip when the name ends in .gz)."""
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def wide_rows(prices: Sequence[str], start: datetime = T0, minutes: int = 15) -> list[str]:
    """Wide-layout rows, one per price (HB_NORTH = HB_WEST + 1 where numeric)."""
    rows = []
    for k, price in enumerate(prices):
        at = start + timedelta(minutes=minutes * k)
        try:
            north = str(float(price) + 1)
        except ValueError:
            north = "1"
        rows.append(f"{at:%Y-%m-%dT%H:%M:%SZ},local,{price},{north}")
    return rows


@pytest.fixture
def btc(tmp_path: Path) -> Path:
    """Bitcoin daily 2023-12-31..2024-01-03 with one extra column to ignore."""
    return write(
        tmp_path / "btc.csv",
        [
            "date,difficulty,fees_btc_per_day,btc_usd,subsidy_btc",
            "2023-12-31,7e13,20,42000,6.25",
            "2024-01-01,7e13,25,43000,6.25",
            "2024-01-02,8e13,30,44000,6.25",
            "2024-01-03,8e13,35,45000,6.25",
        ],
    )


def load(rt: Path, btc: Path, **kwargs: Any) -> tuple[MarketSeries, list[Repair]]:
    """The files loaded for HB_WEST unless `nodes` says otherwise."""
    kwargs.setdefault("nodes", ["HB_WEST"])
    return load_market_series(electricity=rt, bitcoin=btc, **kwargs)


def error_from(rt: Path, btc: Path, **kwargs: Any) -> DataError:
    """The DataError loading these files raises."""
    with pytest.raises(DataError) as caught:
        load(rt, btc, **kwargs)
    return caught.value


# --- wide layout: the happy path ---------------------------------------------------------


def test_wide_file_loads_nodes_bitcoin_and_constant_gpu_spot(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["10", "-5.5", "30", "40"])])
    series, repairs = load_market_series(
        electricity=rt, bitcoin=btc, nodes=["HB_WEST", "HB_NORTH"], gpu_spot={"H100": 2.5}
    )
    assert repairs == []
    assert len(series) == 4 and series.start == T0 and series.step == timedelta(minutes=15)
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == [10, -5.5, 30, 40]
    snap = series.snapshot(1)
    assert snap.electricity("HB_NORTH") == -4.5
    assert (snap.btc_usd, snap.difficulty, snap.fees_btc_per_day) == (43000, 7e13, 25)
    assert snap.gpu_spot("H100") == 2.5 and snap.day_ahead_usd_per_mwh == {}


def test_gzip_file_reads_like_plain(tmp_path: Path, btc: Path) -> None:
    rows = [WIDE_HEADER, *wide_rows(["1", "2", "3"])]
    plain, _ = load_market_series(
        electricity=write(tmp_path / "a.csv", rows), bitcoin=btc, nodes=["HB_WEST"]
    )
    zipped, _ = load_market_series(
        electricity=write(tmp_path / "a.csv.gz", rows), bitcoin=btc, nodes=["HB_WEST"]
    )
    assert np.array_equal(plain.electricity_usd_per_mwh["HB_WEST"], [1, 2, 3])
    assert np.array_equal(zipped.electricity_usd_per_mwh["HB_WEST"], [1, 2, 3])


def test_daily_bitcoin_values_follow_the_utc_date(tmp_path: Path, btc: Path) -> None:
    start = datetime(2024, 1, 1, 23, 30, tzinfo=UTC)
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2", "3", "4"], start)])
    series, _ = load_market_series(electricity=rt, bitcoin=btc, nodes=["HB_WEST"])
    assert series.btc_usd.tolist() == [43000, 43000, 44000, 44000]


def test_window_and_step_choose_and_resample(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows([str(p) for p in range(8)])])
    hourly, _ = load(rt, btc, step=timedelta(hours=1))
    assert hourly.electricity_usd_per_mwh["HB_WEST"].tolist() == [1.5, 5.5]
    fine, _ = load(
        rt,
        btc,
        step=timedelta(minutes=5),
        start=T0 + timedelta(minutes=10),
        end=T0 + timedelta(minutes=30),
    )
    assert fine.electricity_usd_per_mwh["HB_WEST"].tolist() == [0, 1, 1, 1]


# --- bad electricity data -----------------------------------------------------------------


def test_text_in_a_number_column_names_file_line_and_column(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "n/a?", "3"])])
    error = error_from(rt, btc)
    assert (error.path, error.line, error.column) == (str(rt), 3, "HB_WEST")
    assert "not a number" in str(error) and str(rt) in str(error)


def test_nan_value_is_an_error_without_a_fill_allowance(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "NaN", "3"])])
    error = error_from(rt, btc)
    assert (error.line, error.column) == (3, "HB_WEST")
    assert "empty or NaN" in error.message


def test_empty_value_is_forward_filled_and_reported(
    tmp_path: Path, btc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "", "3"])])
    with caplog.at_level(logging.WARNING):
        series, repairs = load(rt, btc, max_fill_steps=1)
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == [1, 1, 3]
    assert [(r.path, r.count) for r in repairs] == [(str(rt), 1)]
    assert "forward-filled" in caplog.text


def test_gap_within_the_limit_is_filled(tmp_path: Path, btc: Path) -> None:
    rows = wide_rows(["1", "2", "3", "4", "5"])
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, rows[0], rows[3], rows[4]])
    series, repairs = load(rt, btc, max_fill_steps=2)
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == [1, 1, 1, 4, 5]
    assert repairs[0].count == 2 and "max_fill_steps=2" in repairs[0].how


def test_gap_beyond_the_limit_names_the_row_after_it(tmp_path: Path, btc: Path) -> None:
    rows = wide_rows(["1", "2", "3", "4", "5"])
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, rows[0], rows[3], rows[4]])
    error = error_from(rt, btc, max_fill_steps=1)
    assert (error.line, error.column) == (3, "interval_start_utc")
    assert "gap" in error.message and "max_fill_steps=1" in error.message


def test_duplicate_timestamp_is_an_error(tmp_path: Path, btc: Path) -> None:
    rows = wide_rows(["1", "2", "3"])
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, rows[0], rows[1], rows[1], rows[2]])
    error = error_from(rt, btc, max_fill_steps=5)
    assert (error.line, error.column) == (4, "interval_start_utc")
    assert "duplicate" in error.message


def test_unsorted_timestamps_are_an_error(tmp_path: Path, btc: Path) -> None:
    rows = wide_rows(["1", "2", "3"])
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, rows[0], rows[2], rows[1]])
    error = error_from(rt, btc, max_fill_steps=5)
    assert (error.line, error.column) == (4, "interval_start_utc")
    assert "out-of-order" in error.message


def test_off_grid_and_malformed_timestamps_are_errors(tmp_path: Path, btc: Path) -> None:
    rows = wide_rows(["1", "2", "3", "4"])
    skewed = rows[2].replace(":30:00Z", ":37:00Z")
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, rows[0], rows[1], skewed, rows[3]])
    assert error_from(rt, btc).line == 4
    garbled = write(tmp_path / "g.csv", [WIDE_HEADER, rows[0], "yesterday,x,1,2"])
    error = error_from(garbled, btc)
    assert (error.line, error.column) == (3, "interval_start_utc")


def test_unknown_settlement_point_lists_the_known_ones(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2"])])
    error = error_from(rt, btc, nodes=["HB_WSET"])
    assert error.line == 1 and "HB_WSET" in error.message
    assert "HB_NORTH, HB_WEST" in error.message and "interval_start" not in error.message


def test_window_outside_the_file_is_an_error(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2", "3", "4"])])
    late = error_from(rt, btc, start=T0, end=T0 + timedelta(hours=2))
    assert (late.line, late.column) == (5, "interval_start_utc") and "outside" in late.message
    early = error_from(rt, btc, start=T0 - timedelta(minutes=15), end=T0 + timedelta(minutes=30))
    assert early.line == 2 and "outside" in early.message
    after = error_from(rt, btc, start=T0 + timedelta(hours=5))
    assert after.line == 5 and "outside" in after.message


def test_ragged_row_and_foreign_header_are_errors(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2"]), "2024-01-01T06:30:00Z,x"])
    assert error_from(rt, btc).line == 4
    other = write(tmp_path / "o.csv", ["when,price", "2024-01-01,1"])
    assert "not an ERCOT price file" in error_from(other, btc).message


def test_step_that_does_not_fit_the_file_is_an_error(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2", "3", "4"])])
    assert "line up" in error_from(rt, btc, step=timedelta(minutes=10)).message


# --- bitcoin daily -------------------------------------------------------------------------


def btc_file(tmp_path: Path, rows: Sequence[str]) -> Path:
    return write(tmp_path / "b.csv", ["date,difficulty,fees_btc_per_day,btc_usd", *rows])


def test_missing_bitcoin_days_are_forward_filled_and_reported(tmp_path: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1"] * 3, minutes=24 * 60)])
    bitcoin = btc_file(tmp_path, ["2024-01-01,7e13,10,40000", "2024-01-02,7e13,,41000"])
    series, repairs = load(rt, bitcoin)
    assert series.fees_btc_per_day.tolist() == [10, 10, 10]
    assert series.btc_usd.tolist() == [40000, 41000, 41000]
    # The last day-long step from 06:00 ends on the 4th: mining earns its figures too.
    assert series.bitcoin_days is not None and series.bitcoin_days.last == date(2024, 1, 4)
    counts = {r.what: r.count for r in repairs}
    assert counts == {
        "days without fees_btc_per_day": 3,
        "days without difficulty": 2,
        "days without btc_usd": 2,
    }


def test_bitcoin_gap_longer_than_allowed_is_an_error(tmp_path: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1"] * 4, minutes=24 * 60)])
    bitcoin = btc_file(tmp_path, ["2024-01-01,7e13,10,40000", "2024-01-04,7e13,10,41000"])
    error = error_from(rt, bitcoin, max_fill_days=1)
    assert (error.path, error.line, error.column) == (str(bitcoin), 3, "date")


def test_bitcoin_errors_name_line_and_column(tmp_path: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2"])])
    cases = {
        ("2024-01-01,7e13,10,lots",): (2, "btc_usd"),
        ("2024-01-01,-7e13,10,1",): (2, "difficulty"),
        ("2024-01-01,7e13,10,1", "2024-01-01,7e13,10,1"): (3, "date"),
        ("01/01/2024,7e13,10,1",): (2, "date"),
        ("2024-01-02,7e13,10,1",): (2, "date"),  # the window starts before the file
    }
    for rows, where in cases.items():
        error = error_from(rt, btc_file(tmp_path, rows))
        assert (error.line, error.column) == where, error
    no_price = write(tmp_path / "n.csv", ["date,difficulty,fees_btc_per_day", "2024-01-01,1,1"])
    error = error_from(rt, no_price)
    assert (error.line, error.column) == (1, "btc_usd") and "missing required" in error.message


# --- ERCOT native long layout across DST --------------------------------------------------


def long_day(day: date, hours: Sequence[int], node: str = "HB_WEST", repeat: int = 0) -> list[str]:
    """Rows for `hours` (hour ending) of `day`; hour `repeat` is listed again with DSTFlag Y.
    The price encodes the row's position so the order can be checked."""
    rows, k = [], 0
    for hour in hours:
        flags = ["N", "Y"] if hour == repeat else ["N"]
        for flag in flags:
            for interval in range(1, 5):
                rows.append(f"{day:%m/%d/%Y},{hour},{interval},{node},{k},{flag}")
                k += 1
    return rows


def test_spring_forward_day_has_92_intervals_in_order(tmp_path: Path, btc: Path) -> None:
    day = date(2024, 3, 10)
    rows = long_day(day, [h for h in range(1, 25) if h != 3]) + long_day(day, [1], "HB_NORTH")
    rt = write(tmp_path / "long.csv", [LONG_HEADER, *rows])
    bitcoin = btc_file(tmp_path, ["2024-03-10,8e13,10,60000", "2024-03-11,8e13,10,61000"])
    series, repairs = load(rt, bitcoin)
    assert len(series) == 92 and repairs == []
    assert series.start == datetime(2024, 3, 10, 6, tzinfo=UTC)
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == list(range(92))
    # Hour ending 4 starts at 03:00 CDT = 08:00 UTC, right after 01:45 CST = 07:45 UTC.
    assert series.time_at(8) == datetime(2024, 3, 10, 8, tzinfo=UTC)


def test_fall_back_day_has_100_intervals_with_the_flagged_hour(tmp_path: Path) -> None:
    day = date(2024, 11, 3)
    rt = write(tmp_path / "long.csv", [LONG_HEADER, *long_day(day, range(1, 25), repeat=2)])
    bitcoin = btc_file(tmp_path, ["2024-11-03,1e14,10,69000", "2024-11-04,1e14,10,68000"])
    series, _ = load(rt, bitcoin)
    assert len(series) == 100
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == list(range(100))
    # Hour ending 2 runs 01:00-02:00 twice: CDT (06:00 UTC), then, flagged Y, CST (07:00 UTC).
    assert series.time_at(4) == datetime(2024, 11, 3, 6, tzinfo=UTC)
    assert series.snapshot(8).electricity("HB_WEST") == 8
    assert series.time_at(8) == datetime(2024, 11, 3, 7, tzinfo=UTC)
    assert series.end == datetime(2024, 11, 4, 6, tzinfo=UTC)


def test_long_layout_errors(tmp_path: Path, btc: Path) -> None:
    day = date(2024, 3, 10)
    cases = {
        "skipped hour present": (long_day(day, [1, 2, 3]), 10, "DeliveryHour", "does not exist"),
        "Y on a plain hour": (long_day(day, [1, 2], repeat=1), 6, "DSTFlag", "not the repeated"),
        "hour 25": ([f"{day:%m/%d/%Y},25,1,HB_WEST,1,N"], 2, "DeliveryHour", "1..24"),
        "interval 5": ([f"{day:%m/%d/%Y},1,5,HB_WEST,1,N"], 2, "DeliveryInterval", "1..4"),
        "ISO date": (["2024-03-10,1,1,HB_WEST,1,N"], 2, "DeliveryDate", "MM/DD/YYYY"),
        "text price": (
            [f"{day:%m/%d/%Y},1,1,HB_WEST,cheap,N"],
            2,
            "SettlementPointPrice",
            "number",
        ),
    }
    for name, (rows, line, column, words) in cases.items():
        error = error_from(write(tmp_path / "l.csv", [LONG_HEADER, *rows]), btc)
        assert (error.line, error.column) == (line, column), name
        assert words in error.message, name


def test_long_layout_duplicates_and_unknown_points(tmp_path: Path, btc: Path) -> None:
    rows = long_day(date(2024, 3, 10), [1], "HB_NORTH")
    rt = write(tmp_path / "l.csv", [LONG_HEADER, *rows, rows[-1]])
    error = error_from(rt, btc, nodes=["HB_NORTH"])
    assert error.line == 6 and "duplicate" in error.message and "DeliveryHour" in str(error.column)
    unknown = error_from(rt, btc, nodes=["HB_WEST"])
    assert unknown.column == "SettlementPointName" and "known: HB_NORTH" in unknown.message


TYPED_HEADER = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,"
    "SettlementPointPrice,DSTFlag"
)


def typed_rows(points: Sequence[tuple[str, str, int]], hours: int = 2) -> list[str]:
    """Long rows as ERCOT writes them (NP6-905-CD), for 2024-03-11 from hour ending 1: every
    interval lists each (name, type, price offset) in turn; the price is offset + interval."""
    rows = []
    for k in range(4 * hours):
        hour, interval = k // 4 + 1, k % 4 + 1
        for name, kind, offset in points:
            rows.append(f"03/11/2024,{hour:02d},{interval},{name},{kind},{offset + k},N")
    return rows


def test_a_load_zone_listed_as_lz_and_lzew_is_read_from_its_lz_rows(
    tmp_path: Path, btc: Path
) -> None:
    points = [("HB_WEST", "HU", 0), ("LZ_WEST", "LZ", 100), ("LZ_WEST", "LZEW", 200)]
    rt = write(tmp_path / "np6905.csv", [TYPED_HEADER, *typed_rows(points)])
    bitcoin = btc_file(tmp_path, ["2024-03-11,8e13,10,60000"])
    series, _ = load(rt, bitcoin, nodes=["LZ_WEST", "HB_WEST"])
    assert len(series) == 8 and series.start == datetime(2024, 3, 11, 5, tzinfo=UTC)
    assert series.electricity_usd_per_mwh["LZ_WEST"].tolist() == list(range(100, 108))
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == list(range(8))
    energy_weighted, _ = load(rt, bitcoin, nodes=["LZ_WEST"], settlement_point_type="LZEW")
    assert energy_weighted.electricity_usd_per_mwh["LZ_WEST"].tolist() == list(range(200, 208))


def test_a_repeated_interval_of_a_typed_long_file_names_the_type(tmp_path: Path, btc: Path) -> None:
    rows = typed_rows([("LZ_WEST", "LZ", 100), ("LZ_WEST", "LZEW", 200)])
    rt = write(tmp_path / "np6905.csv", [TYPED_HEADER, *rows, rows[-2]])  # an LZ row again
    bitcoin = btc_file(tmp_path, ["2024-03-11,8e13,10,60000"])
    error = error_from(rt, bitcoin, nodes=["LZ_WEST"])
    assert (error.line, error.column) == (18, "DeliveryDate/DeliveryHour/DeliveryInterval/DSTFlag")
    assert "duplicate timestamp 2024-03-11T06:45:00Z for LZ_WEST" in error.message
    assert "SettlementPointType LZ; line 16 has it too, type LZ" in error.message


def test_a_point_under_several_types_none_of_them_chosen_is_refused(
    tmp_path: Path, btc: Path
) -> None:
    rows = typed_rows([("HB_WEST", "HU", 0), ("HB_WEST", "LZEW", 50)])
    rt = write(tmp_path / "odd.csv", [TYPED_HEADER, *rows])
    bitcoin = btc_file(tmp_path, ["2024-03-11,8e13,10,60000"])
    error = error_from(rt, bitcoin)
    assert (error.line, error.column) == (3, "SettlementPointType")
    assert "HB_WEST is listed under several SettlementPointTypes (HU, LZEW)" in error.message
    chosen, _ = load(rt, bitcoin, settlement_point_type="HU")
    assert chosen.electricity_usd_per_mwh["HB_WEST"].tolist() == list(range(8))


# --- day-ahead and GPU spot -----------------------------------------------------------------


def test_day_ahead_is_broadcast_to_the_step_and_unknown_is_nan(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows([str(p) for p in range(8)])])
    da = write(
        tmp_path / "da.csv",
        [
            "interval_start_utc,interval_start_local,settlement_point,da_spp_usd_per_mwh",
            "2024-01-01T05:00:00Z,x,HB_HUBAVG,10",
            "2024-01-01T06:00:00Z,x,HB_HUBAVG,20.5",
        ],
    )
    series, repairs = load(rt, btc, day_ahead=da)
    values = series.day_ahead_usd_per_mwh["HB_HUBAVG"]
    assert values[:4].tolist() == [20.5] * 4 and np.isnan(values[4:]).all()
    assert series.snapshot(5).day_ahead_usd_per_mwh == {}
    assert [(r.path, r.count, r.how) for r in repairs] == [(str(da), 4, "left NaN (unknown)")]


def test_gpu_spot_csv_sources_are_forward_filled(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1"] * 4, minutes=60)])
    quotes = write(
        tmp_path / "gpu.csv",
        [
            "timestamp_utc,gpu,usd_per_gpu_hr_median",
            "2024-01-01T05:59:58+00:00,H100_SXM,2.0",
            "2024-01-01T06:00:30+00:00,A100_SXM,1.1",
            "2024-01-01T07:30:00+00:00,H100_SXM,",
            "2024-01-01T07:40:00+00:00,H100_SXM,2.4",
        ],
    )
    daily = write(tmp_path / "idx.csv", ["date,neocloud-H100", "2024-01-01,2.6"])
    sources = [
        GpuSpotCsv(quotes, "H100", "usd_per_gpu_hr_median", gpu_column="gpu", gpu="H100_SXM"),
        GpuSpotCsv(daily, "H100-index", "neocloud-H100"),
    ]
    series, repairs = load(rt, btc, gpu_spot=sources)
    spot = series.gpu_spot_usd_per_gpu_hour
    assert spot["H100"].tolist() == [2.0, 2.0, 2.4, 2.4]
    assert spot["H100-index"].tolist() == [2.6] * 4
    assert [(r.path, r.count) for r in repairs] == [(str(quotes), 1)]


def test_gpu_spot_problems_are_errors(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1"] * 4, minutes=60)])
    quotes = write(tmp_path / "q.csv", ["timestamp_utc,gpu,p", "2024-01-01T06:00:00Z,H100,2"])
    stale = GpuSpotCsv(quotes, "H100", "p", max_age=timedelta(hours=1))
    error = error_from(rt, btc, gpu_spot=[stale])
    assert (error.line, error.column) == (2, "timestamp_utc") and "file ends" in error.message
    unknown = error_from(rt, btc, gpu_spot=[GpuSpotCsv(quotes, "B200", "p", "gpu", "B200")])
    assert unknown.column == "gpu" and "known: H100" in unknown.message


# --- the feed ---------------------------------------------------------------------------------


def test_replay_feed_plays_the_series_then_stops(tmp_path: Path, btc: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2", "3"])])
    series, _ = load(rt, btc)
    feed = ReplayMarketFeed(series)
    port: MarketFeed = feed  # mypy checks the feed against the port
    assert port.step == timedelta(minutes=15)
    assert feed.step == timedelta(minutes=15)
    first = feed.current()
    assert first is not None and first.at == T0 and feed.remaining == 2
    rest = [feed.next_snapshot(), feed.next_snapshot()]
    assert [s.electricity("HB_WEST") for s in rest if s is not None] == [2, 3]
    assert feed.next_snapshot() is None and feed.current() == rest[-1]


# --- the real data ----------------------------------------------------------------------------


@pytest.mark.data
def test_hb_west_2024_loads_every_interval(shared_data: Path) -> None:
    series, repairs = load_market_series(
        electricity=shared_data / "raw/ercot_rtm_spp_hubs/ercot_rtm_spp_15min_2024.csv.gz",
        bitcoin=shared_data / "derived/btc_hashprice_daily_2020_2025.csv",
        nodes=["HB_WEST"],
    )
    assert len(series) == 35_136 and repairs == []
    assert series.start == datetime(2024, 1, 1, 6, tzinfo=UTC)
    # Read by hand from the file: line 22342 (2024-08-20T23:00Z) has HB_WEST 33.31, and the
    # bitcoin file's 2024-08-20 row has btc_usd 59475.91, difficulty 86871474313762.0.
    snap = series.snapshot(series.index_of(datetime(2024, 8, 20, 23, tzinfo=UTC)))
    assert snap.electricity("HB_WEST") == 33.31
    assert (snap.btc_usd, snap.difficulty) == (59475.91, 86871474313762.0)
    # Fall back: 01:00 CST on 2024-11-03 is 07:00 UTC, HB_WEST 27.96 (line 29478).
    assert (
        series.snapshot(series.index_of(datetime(2024, 11, 3, 7, tzinfo=UTC))).electricity(
            "HB_WEST"
        )
        == 27.96
    )
    assert series.snapshot(-1).electricity("HB_WEST") == 18.78
    assert not math.isnan(float(series.electricity_usd_per_mwh["HB_WEST"].sum()))


@pytest.mark.data
def test_long_layout_matches_the_wide_file_on_dst_days(shared_data: Path, tmp_path: Path) -> None:
    """ERCOT's long layout written from the wide 2024 file's DST days reads back identically."""
    wide = shared_data / "raw/ercot_rtm_spp_hubs/ercot_rtm_spp_15min_2024.csv.gz"
    bitcoin = shared_data / "derived/btc_hashprice_daily_2020_2025.csv"
    with gzip.open(wide, "rt", newline="") as text:
        rows = [row for row in csv.reader(text) if row[1][:10] in ("2024-03-10", "2024-11-03")]
    for day, count in (("2024-03-10", 92), ("2024-11-03", 100)):
        day_rows = [row for row in rows if row[1].startswith(day)]
        long_rows, seen = [], set()
        for row in day_rows:
            local = datetime.fromisoformat(row[1])
            flag = "Y" if local.replace(tzinfo=None) in seen else "N"
            seen.add(local.replace(tzinfo=None))
            he, interval = local.hour + 1, local.minute // 15 + 1
            long_rows.append(f"{local:%m/%d/%Y},{he},{interval},HB_WEST,{row[8]},{flag}")
        path = write(tmp_path / f"{day}.csv", [LONG_HEADER, *long_rows])
        series, _ = load_market_series(electricity=path, bitcoin=bitcoin, nodes=["HB_WEST"])
        start = datetime.fromisoformat(day_rows[0][0])
        assert len(series) == count and series.start == start
        expected = [float(row[8]) for row in day_rows]
        assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == expected
