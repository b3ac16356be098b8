"""`TomlTable` numbers: TOML's `inf` and `nan` are refused with the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcp.domain.errors import DataError
from hcp.tomlfile import TomlTable, load_toml


def table(tmp_path: Path, text: str) -> TomlTable:
    path = tmp_path / "numbers.toml"
    path.write_text(text)
    return load_toml(path)


@pytest.mark.parametrize("value", ["inf", "+inf", "-inf", "nan", "-nan"])
def test_a_non_finite_number_is_refused_at_its_line(tmp_path: Path, value: str) -> None:
    root = table(tmp_path, f"[site]\nname = 'a'\ncapacity_mw = {value}\n")
    site = root.table("site")
    assert site is not None
    with pytest.raises(DataError, match=r"numbers.toml:3: site.capacity_mw: must be a finite"):
        site.number("capacity_mw", minimum=0.0)


def test_finite_numbers_and_defaults_still_read(tmp_path: Path) -> None:
    root = table(tmp_path, "a = 1\nb = 2.5\n")
    assert (root.number("a"), root.number("b"), root.number("c", 7.0)) == (1.0, 2.5, 7.0)


@pytest.mark.parametrize("pair", ["[1, inf]", "[nan, 2]"])
def test_a_range_with_a_non_finite_end_is_refused(tmp_path: Path, pair: str) -> None:
    root = table(tmp_path, f"x = 0\nhours = {pair}\n")
    with pytest.raises(DataError, match=r"numbers.toml:2: hours: expected finite numbers"):
        root.range("hours")
