"""Damaged or ambiguous market CSV files: each is a DataError naming the file (and the line and
the file's real column where there is one), never a traceback or a half-read table."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pytest
from tests.unit.test_market_replay import (
    LONG_HEADER,
    WIDE_HEADER,
    btc_file,
    error_from,
    load,
    long_day,
    wide_rows,
    write,
)

from hcp.adapters.market.csvtable import read_header, read_table
from hcp.domain.errors import DataError

BITCOIN_ROWS = ["2023-12-31,7e13,20,42000", "2024-01-01,7e13,25,43000", "2024-01-02,8e13,30,44000"]


@pytest.fixture
def bitcoin(tmp_path: Path) -> Path:
    """Bitcoin daily 2023-12-31..2024-01-02: covers every window these tests load."""
    return btc_file(tmp_path, BITCOIN_ROWS)


def zipped_rows(count: int) -> bytes:
    """A gzip-compressed wide file of `count` rows, big enough that damage falls mid-stream."""
    text = "\n".join([WIDE_HEADER, *wide_rows([str(k) for k in range(count)])]) + "\n"
    return gzip.compress(text.encode())


# --- files that cannot be read to the end -------------------------------------------------


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path: Path, bitcoin: Path) -> None:
    lines = [WIDE_HEADER, *wide_rows(["1", "2", "3"])]
    lines[3] = lines[3].replace("local", "l\xe9cal")  # Latin-1 é: byte 0xe9
    rt = tmp_path / "rt.csv"
    rt.write_bytes("\n".join(lines).encode("latin-1"))
    error = error_from(rt, bitcoin)
    assert (error.path, error.line) == (str(rt), 4)
    assert "not UTF-8" in error.message and "0xe9" in error.message
    latin_btc = tmp_path / "latin_btc.csv"
    latin_btc.write_bytes(
        bitcoin.read_bytes() + "2024-01-03,8e13,30,44000 \xa3\n".encode("latin-1")
    )
    ok = write(tmp_path / "ok.csv", [WIDE_HEADER, *wide_rows(["1", "2"])])
    assert error_from(ok, latin_btc).line == 5


def test_bad_byte_in_a_gzip_file_names_the_line(tmp_path: Path, bitcoin: Path) -> None:
    text = "\n".join([WIDE_HEADER, *wide_rows(["1", "2", "3"])]) + "\n"
    rt = tmp_path / "rt.csv.gz"
    rt.write_bytes(gzip.compress(text.encode().replace(b",2,", b",\xff2,")))
    error = error_from(rt, bitcoin)
    assert (error.path, error.line) == (str(rt), 3) and "0xff" in error.message


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("truncated", "ended before"),
        ("bad checksum", "CRC check failed"),
        ("garbled stream", "while decompressing"),
    ],
)
def test_damaged_gzip_is_an_error_naming_the_file(
    tmp_path: Path, bitcoin: Path, damage: str, words: str
) -> None:
    data = bytearray(zipped_rows(3000))
    if damage == "truncated":
        del data[len(data) // 2 :]
    elif damage == "bad checksum":
        data[-6] ^= 0xFF
    else:
        data[20:40] = b"\xff" * 20
    rt = tmp_path / "rt.csv.gz"
    rt.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        read_table(rt)
    assert caught.value.path == str(rt)
    assert "damaged gzip file" in caught.value.message and words in caught.value.message
    assert error_from(rt, bitcoin).path == str(rt)


def test_a_directory_or_missing_path_is_an_error_naming_it(tmp_path: Path, bitcoin: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    error = error_from(folder, bitcoin)
    assert error.path == str(folder) and "Is a directory" in error.message
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2"])])
    assert error_from(rt, folder).path == str(folder)
    with pytest.raises(DataError, match="cannot read the file: No such file"):
        read_header(tmp_path / "absent.csv")


def test_csv_that_the_parser_rejects_names_the_line(tmp_path: Path) -> None:
    # An unclosed quote swallows the rest of the file into one field, past csv's size limit.
    path = write(tmp_path / "q.csv", ["a,b", "1,2", '3,"' + "x" * 200_000])
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert caught.value.line == 3 and "malformed CSV" in caught.value.message


# --- ambiguous headers and numbers ----------------------------------------------------------


def test_a_column_named_twice_is_an_error(tmp_path: Path, bitcoin: Path) -> None:
    rows = wide_rows(["1", "2"])
    rt = write(tmp_path / "rt.csv", [f"{WIDE_HEADER},HB_WEST", *(f"{r},9" for r in rows)])
    error = error_from(rt, bitcoin)
    assert (error.path, error.line, error.column) == (str(rt), 1, "HB_WEST")
    assert "duplicate column" in error.message
    twice = write(tmp_path / "b2.csv", ["date,difficulty,fees_btc_per_day,btc_usd,btc_usd"])
    ok = write(tmp_path / "ok.csv", [WIDE_HEADER, *rows])
    again = error_from(ok, twice)
    assert (again.path, again.line, again.column) == (str(twice), 1, "btc_usd")
    # Blank names may repeat: no one can ask for a column by an empty name.
    blanks = write(tmp_path / "t.csv", ["a,,", "1,,"])
    assert read_table(blanks).header == ("a", "", "")


@pytest.mark.parametrize("price", ["1_000", "１２", "1_0.5"])
def test_numbers_python_would_take_but_csv_does_not_are_text(
    tmp_path: Path, bitcoin: Path, price: str
) -> None:
    # Signs, exponents and padding are still numbers, in a file with a BOM too.
    plain = tmp_path / "plain.csv"
    lines = [WIDE_HEADER, *wide_rows(["-1.5", "+2", "3e1", " 4 "])]
    plain.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    series, _ = load(plain, bitcoin)
    assert series.electricity_usd_per_mwh["HB_WEST"].tolist() == [-1.5, 2, 30, 4]
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", price, "3"])])
    error = error_from(rt, bitcoin)
    assert (error.path, error.line, error.column) == (str(rt), 3, "HB_WEST")
    assert "not a number" in error.message


def test_underscored_delivery_hour_is_an_error(tmp_path: Path, bitcoin: Path) -> None:
    rows = [f"01/01/2024,{hour},1,HB_WEST,1,N" for hour in ("1", "1_0")]
    error = error_from(write(tmp_path / "l.csv", [LONG_HEADER, *rows]), bitcoin)
    assert (error.line, error.column) == (3, "DeliveryHour") and "1..24" in error.message


# --- errors about long files name the file's real column -----------------------------------


@pytest.mark.parametrize("empty", ["", "NaN"])
def test_empty_long_layout_price_names_the_price_column(
    tmp_path: Path, empty: str, bitcoin: Path
) -> None:
    rows = long_day(date(2024, 1, 1), [1, 2])
    rows[5] = rows[5].replace(",HB_WEST,5,", f",HB_WEST,{empty},")
    rt = write(tmp_path / "l.csv", [LONG_HEADER, *rows])
    error = error_from(rt, bitcoin)
    assert (error.path, error.line) == (str(rt), 7)
    assert error.column == "SettlementPointPrice (HB_WEST)" and "empty or NaN" in error.message
    assert "column SettlementPointPrice (HB_WEST)" in str(error)


def test_empty_day_ahead_price_names_the_price_column(tmp_path: Path, bitcoin: Path) -> None:
    rt = write(tmp_path / "rt.csv", [WIDE_HEADER, *wide_rows(["1", "2", "3", "4"])])
    da = write(
        tmp_path / "da.csv",
        [
            "interval_start_utc,interval_start_local,settlement_point,da_spp_usd_per_mwh",
            "2024-01-01T06:00:00Z,x,HB_HUBAVG,10",
            "2024-01-01T07:00:00Z,x,HB_HUBAVG,",
        ],
    )
    error = error_from(rt, bitcoin, day_ahead=da)
    assert (error.path, error.line) == (str(da), 3)
    assert error.column == "da_spp_usd_per_mwh (HB_HUBAVG)"
