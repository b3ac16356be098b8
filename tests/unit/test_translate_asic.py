"""LuxOS payload translators, fed with recorded replies (tests/fixtures/luxos/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hcp.adapters.devices import translate
from hcp.adapters.devices.cgminer import decode_reply, encode_request
from hcp.adapters.devices.errors import CommandRejected, MalformedReply
from hcp.domain.devices import AsicProfile
from hcp.domain.telemetry import AsicReading, MinerState

FIXTURES = Path(__file__).parents[1] / "fixtures" / "luxos"
AT = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
DEVICE = "127.0.0.1:4028"
READ = ("summary", "power", "config", "devs", "tempctrl")


def recorded(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def reading_from(name: str) -> AsicReading:
    replies = translate.split_joined(DEVICE, recorded(name), READ)
    return translate.asic_reading(DEVICE, AT, replies)


def test_a_healthy_miner_reads_as_mining_in_canonical_units() -> None:
    reading = reading_from("read_mining")
    assert reading == AsicReading(
        device=DEVICE,
        at=AT,
        state=MinerState.MINING,
        hashrate_ths=199.54781,  # GHS 5s / 1000
        power_w=3_494.0,
        temperature_c=70.0,
        profile="stock",
        accepted_shares=7_178,
        rejected_shares=21,
        problems=(),
    )
    assert reading.healthy and reading.mining


def test_a_curtailed_miner_reads_as_sleeping() -> None:
    reading = reading_from("read_sleeping")
    assert reading.state is MinerState.SLEEPING and not reading.mining
    assert reading.hashrate_ths == 0.0
    assert reading.power_w < 25
    assert reading.healthy


def test_a_ramping_miner_reads_as_waking() -> None:
    reading = reading_from("read_waking")
    assert reading.state is MinerState.WAKING
    assert 0 < reading.hashrate_ths < 100
    assert reading.healthy  # low hashrate while ramping is expected, not a problem


def test_a_dead_board_is_named_and_the_shortfall_reported() -> None:
    reading = reading_from("read_dead_board")
    assert reading.state is MinerState.MINING
    assert reading.problems == ("board 2 dead", "hashrate 133 TH/s is 67% of nominal")
    assert not reading.healthy


def test_boards_above_the_hot_threshold_are_overheating() -> None:
    reading = reading_from("read_overheating")
    assert reading.temperature_c is not None and reading.temperature_c > 90
    assert reading.problems == (f"overheating: {reading.temperature_c:.0f} °C >= 90 °C",)


def test_without_tempctrl_the_default_hot_threshold_applies() -> None:
    replies = translate.split_joined(DEVICE, recorded("read_overheating"), READ[:-1])
    reading = translate.asic_reading(DEVICE, AT, replies)
    assert any(p.endswith(f">= {translate.DEFAULT_HOT_C:.0f} °C") for p in reading.problems)


@pytest.mark.parametrize(
    ("psu_on", "statuses", "ramping", "hashrate", "state"),
    [
        (False, ["Alive"] * 3, False, 0.0, MinerState.SLEEPING),
        (True, ["Alive"] * 3, True, 50.0, MinerState.WAKING),
        (True, ["Dead"] * 3, False, 0.0, MinerState.FAULT),
        (True, ["Alive"] * 3, False, 0.0, MinerState.FAULT),
        (True, ["Alive", "Alive", "Dead"], False, 133.0, MinerState.MINING),
    ],
)
def test_miner_state_from_psu_boards_and_hashrate(
    psu_on: bool, statuses: list[str], ramping: bool, hashrate: float, state: MinerState
) -> None:
    boards = [translate.Board(i, s, ramping, 60.0, 66.7) for i, s in enumerate(statuses)]
    assert translate.miner_state(psu_on, boards, hashrate) is state


def test_a_miner_that_hashes_nothing_with_live_boards_says_so() -> None:
    boards = [translate.Board(i, "Alive", False, 40.0, 66.7) for i in range(3)]
    assert translate.problems(MinerState.FAULT, boards, 0.0, 90.0) == ("not hashing",)


def test_stock_cgminer_hashrate_in_mhs_is_understood() -> None:
    assert translate.hashrate_ths(DEVICE, recorded("cgminer_summary")) == pytest.approx(
        109.87654321
    )


def test_profiles_become_asic_profiles() -> None:
    assert translate.asic_profiles(DEVICE, recorded("profiles")) == (
        AsicProfile("eco", 150.0, 2_500.0),
        AsicProfile("stock", 200.0, 3_500.0),
        AsicProfile("turbo", 230.0, 4_300.0),
    )


def test_logon_grants_a_session_id() -> None:
    payload = recorded("logon")
    translate.check_status(DEVICE, "logon", payload)
    assert translate.session_id(DEVICE, payload) == payload["SESSION"][0]["SessionID"]


def test_an_error_status_is_a_rejection_with_code_and_message() -> None:
    with pytest.raises(CommandRejected) as busy:
        translate.check_status(DEVICE, "logon", recorded("logon_busy"))
    assert (busy.value.code, busy.value.reason) == (402, "Another session is active")
    with pytest.raises(CommandRejected) as invalid:
        translate.check_status(DEVICE, "bogus", recorded("invalid_command"))
    assert invalid.value.code == 14 and invalid.value.device == DEVICE


def test_an_error_inside_a_joined_reply_is_a_rejection() -> None:
    payload = {"summary": [recorded("invalid_command")], "id": 1}
    with pytest.raises(CommandRejected):
        translate.split_joined(DEVICE, payload, ["summary"])


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 1},
        {"summary": [], "power": [], "id": 1},
        {"summary": "oops", "id": 1},
    ],
)
def test_a_joined_reply_missing_parts_is_malformed(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedReply):
        translate.split_joined(DEVICE, payload, ["summary", "power"])


@pytest.mark.parametrize(
    "entry",
    [{}, {"GHS 5s": "fast"}, {"GHS 5s": True}, {"GHS 5s": None}],
)
def test_a_summary_without_a_numeric_hashrate_is_malformed(entry: dict[str, Any]) -> None:
    payload = {"STATUS": [{"STATUS": "S"}], "SUMMARY": [entry], "id": 1}
    with pytest.raises(MalformedReply):
        translate.hashrate_ths(DEVICE, payload)


def test_numbers_sent_as_strings_are_accepted() -> None:
    payload = {"SUMMARY": [{"GHS 5s": "201234.5"}]}
    assert translate.hashrate_ths(DEVICE, payload) == pytest.approx(201.2345)


def test_a_reading_needs_its_four_core_replies() -> None:
    replies = translate.split_joined(DEVICE, recorded("read_mining"), READ)
    del replies["devs"]
    with pytest.raises(MalformedReply, match="devs"):
        translate.asic_reading(DEVICE, AT, replies)


def test_an_unknown_status_letter_is_malformed() -> None:
    with pytest.raises(MalformedReply):
        translate.check_status(DEVICE, "summary", {"STATUS": [{"STATUS": "?"}]})


def test_requests_and_replies_round_trip_the_wire_format() -> None:
    assert json.loads(encode_request("curtail", ["ab12CD34", "sleep"])) == {
        "command": "curtail",
        "parameter": "ab12CD34,sleep",
    }
    assert json.loads(encode_request("summary")) == {"command": "summary"}
    raw = json.dumps(recorded("logon")).encode() + b"\x00"
    assert decode_reply(DEVICE, raw) == recorded("logon")


@pytest.mark.parametrize("raw", [b"\x8b\x1f\xff garbage", b"[1, 2]", b"", b'{"STATUS": ['])
def test_garbage_on_the_wire_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedReply):
        decode_reply(DEVICE, raw)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1" + "0" * 400])
@pytest.mark.parametrize(
    ("part", "section", "key"),
    [
        ("summary", "SUMMARY", "Accepted"),
        ("summary", "SUMMARY", "GHS 5s"),
        ("power", "POWER", "Watts"),
        ("devs", "DEVS", "Temperature"),
        ("devs", "DEVS", "ASC"),
        ("devs", "DEVS", "Nominal MHS"),
        ("tempctrl", "TEMPCTRL", "Hot"),
    ],
)
def test_a_non_finite_number_on_the_wire_is_malformed(
    part: str, section: str, key: str, value: str
) -> None:
    """The decoder lets NaN, Infinity and huge integers through (orjson refuses them, json
    takes them); no reading is made of them, as of any other field that is not a number."""
    payload = recorded("read_mining")
    payload[part][0][section][0][key] = "__HERE__"
    raw = json.dumps(payload).replace('"__HERE__"', value).encode() + b"\x00"
    replies = translate.split_joined(DEVICE, decode_reply(DEVICE, raw), READ)
    with pytest.raises(MalformedReply, match=key):
        translate.asic_reading(DEVICE, AT, replies)
