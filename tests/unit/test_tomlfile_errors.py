"""Where a TOML file's mistakes are reported: the line of a byte that is not UTF-8, and the
nearest line above a key that has none of its own (an entry of an inline array of tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcp.domain.errors import DataError
from hcp.tomlfile import load_toml


def test_a_file_that_is_not_utf8_is_refused_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "a"\n\n[site]\nname = "München"\n'.encode("latin-1"))
    with pytest.raises(DataError) as caught:
        load_toml(path)
    assert str(caught.value) == (
        f"{path}:4: not UTF-8 text: byte 0xfc cannot be decoded (save the file as UTF-8)"
    )


def test_a_key_inside_an_inline_table_is_placed_at_the_key_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "inline.toml"
    path.write_text('[site]\nname = "a"\nfleet = [\n  { model = "S21" },\n  { count = -1 },\n]\n')
    site = load_toml(path).table("site")
    assert site is not None
    entry = list(site.tables("fleet"))[1]
    with pytest.raises(DataError, match=r"inline.toml:3: site.fleet\[1\].count: must be >= 0"):
        entry.integer("count", minimum=0)
