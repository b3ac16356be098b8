"""`hcp sim asic` without starting it: option checks, `--faults` files and their errors, and
how the bound addresses are listed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcp.cli import sim
from hcp.cli.main import app
from hcp.domain.errors import DataError
from hcp.simulators.asic import Faults
from hcp.simulators.asic.faultfile import FAULT_KEYS, load_faults


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["sim", "asic", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.replace("│", " ").split())  # unbox rich


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(text)
    return path


# --- options ---------------------------------------------------------------------------------


def test_ports_beyond_65535_are_refused_up_front() -> None:
    code, output = run("--first-port", "65534", "--count", "3")
    assert code == 2
    assert "Invalid value for --first-port" in output
    assert "need ports up to 65536" in output and "--first-port 65533" in output


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_first_port_that_is_no_port_is_refused(port: str) -> None:
    code, output = run("--first-port", port, "--count", "1")
    assert code == 2 and "is not a TCP port" in output


def test_an_unknown_model_names_the_known_ones() -> None:
    code, output = run("--model", "NOPE")
    assert code == 2
    assert "Invalid value for --model" in output and "unknown ASIC model 'NOPE'" in output
    assert "S21" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("first_ip", "complaint"),
    [
        ("nope", "'nope' is not an IPv4 address"),
        ("10.0.0.1", "not a loopback address"),
        ("127.255.255.250", "ran out of loopback addresses"),
    ],
)
def test_first_ip_must_leave_room_on_loopback(first_ip: str, complaint: str) -> None:
    code, output = run("--ips", "--first-ip", first_ip, "--count", "10")
    assert code == 2
    assert "Invalid value for --first-ip" in output and complaint in output


# --- fault files -----------------------------------------------------------------------------

EXAMPLE = """\
# miner indexes as `hcp sim asic` lists them
[0]
offline = true

[2-4]
dead_boards = 1
overheating = true

["5"]
malformed_replies = true
reply_delay_s = 2.5
reset_connections = true
"""


def test_a_fault_file_maps_indexes_and_ranges_to_faults(tmp_path: Path) -> None:
    faults = load_faults(write(tmp_path, EXAMPLE), count=10)
    hot = Faults(dead_boards=1, overheating=True)
    assert faults == {
        0: Faults(offline=True),
        2: hot,
        3: hot,
        4: hot,
        5: Faults(malformed_replies=True, reply_delay_s=2.5, reset_connections=True),
    }


def test_a_fault_file_can_set_every_field_of_faults(tmp_path: Path) -> None:
    # A field added to Faults must be added to the file format too.
    assert set(FAULT_KEYS) == {f.name for f in dataclasses.fields(Faults)}
    assert set(EXAMPLE.split()) >= set(FAULT_KEYS)


@pytest.mark.parametrize(
    ("text", "where", "complaint"),
    [
        ("[1]\nofline = true\n", ":2: 1.ofline", "unknown fault; did you mean offline?"),
        ("[1]\nhashrate = 3\n", ":2: 1.hashrate", "unknown fault; faults: offline, dead_boards"),
        ("[1]\noffline = 1\n", ":2: 1.offline", "expected true or false, got 1"),
        ("[1]\ndead_boards = 4\n", ":2: 1.dead_boards", "must be 0..3, got 4"),
        ("[1]\ndead_boards = -1\n", ":2: 1.dead_boards", "must be >= 0"),
        ("[1]\ndead_boards = 1.5\n", ":2: 1.dead_boards", "expected an integer"),
        ("[1]\nreply_delay_s = -2\n", ":2: 1.reply_delay_s", "must be >= 0.0"),
        ("[1]\nreply_delay_s = inf\n", ":2: 1.reply_delay_s", "must be a finite number"),
        ("[1]\nreply_delay_s = nan\n", ":2: 1.reply_delay_s", "must be a finite number"),
        ("\n[miners]\noffline = true\n", ":2: miners", "not a miner index or range"),
        ("[7-3]\noffline = true\n", ":1: 7-3", "empty range"),
        ("[10]\noffline = true\n", ":1: 10", "no miner 10: the fleet has miners 0-9"),
        ("[2-12]\noffline = true\n", ":1: 2-12", "no miner 12"),
        ("[1-3]\noffline = true\n[3]\ndead_boards = 1\n", ":3: 3", "already has faults from [1-3]"),
        ("1 = true\n", ":1: 1", "expected a table"),
        ("[1]\noffline = \n", ":2 column 11", "invalid TOML"),
    ],
)
def test_fault_file_mistakes_name_file_line_and_key(
    tmp_path: Path, text: str, where: str, complaint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as caught:
        load_faults(path, count=10)
    message = str(caught.value)
    assert message.startswith(f"{path}{where}"), message
    assert complaint in message


def test_the_cli_reports_a_bad_fault_file_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[1]\noverheat = true\n")
    code, output = run("--count", "3", "--faults", str(path))
    assert code == 2
    assert f"hcp: {path}:2: 1.overheat: unknown fault; did you mean overheating?" in output


def test_the_cli_reports_a_missing_fault_file(tmp_path: Path) -> None:
    code, output = run("--faults", str(tmp_path / "absent.toml"))
    assert code == 2 and "absent.toml: cannot read" in output


# --- the address list ------------------------------------------------------------------------


def test_addresses_are_listed_in_runs_of_consecutive_ports_or_ips() -> None:
    places: list[tuple[str, int] | None] = [
        ("127.0.0.1", 14028),
        ("127.0.0.1", 14029),
        ("127.0.0.1", 14030),
        None,
        None,
        ("127.0.0.1", 40001),
        ("127.1.0.254", 4028),
        ("127.1.0.255", 4028),
        ("127.1.1.1", 4028),
    ]
    runs = list(sim._runs(places))
    assert runs == [(0, 2), (3, 4), (5, 5), (6, 7), (8, 8)]
    lines = [sim._where(places[a], places[b]) for a, b in runs]
    assert lines == [
        "127.0.0.1:14028-14030",
        "offline (nothing listens)",
        "127.0.0.1:40001",
        "127.1.0.254-127.1.0.255, port 4028",
        "127.1.1.1:4028",
    ]
