"""The simulated miner without sockets: physics, sessions, request handling, configuration."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hcp.domain.devices import AsicModel, AsicProfile
from hcp.domain.telemetry import MinerState
from hcp.simulators.asic import (
    Addressing,
    Faults,
    MinerSim,
    MinerSimConfig,
    loopback_hosts,
    rpc,
    uniform_fleet,
)
from hcp.simulators.asic.miner import DANGEROUS_C, TARGET_C
from hcp.simulators.asic.sessions import SessionTable

MODEL = AsicModel(
    name="S21",
    manufacturer="Bitmain",
    profiles=(
        AsicProfile("eco", hashrate_ths=150.0, power_w=2_500.0),
        AsicProfile("stock", hashrate_ths=200.0, power_w=3_500.0),
        AsicProfile("turbo", hashrate_ths=230.0, power_w=4_300.0),
    ),
    stock_profile="stock",
    sleep_power_w=20.0,
    wake_seconds=120.0,
)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def quiet_miner(**config: Any) -> MinerSim:
    """A miner without measurement noise, so figures can be checked exactly."""
    return MinerSim(MinerSimConfig(MODEL, noise=0.0, **config), T0)


def state_of(sim: MinerSim) -> MinerState:
    return sim.state


def ask(sim: MinerSim, command: str, parameter: str | None = None, t: float = 0) -> Any:
    body: dict[str, str] = {"command": command}
    if parameter is not None:
        body["parameter"] = parameter
    return rpc.answer(sim, json.dumps(body).encode(), at(t))


# --- physics ---------------------------------------------------------------------------------


def test_wake_ramps_linearly_then_mines() -> None:
    sim = quiet_miner(sleeping=True)
    sim.wake(at(0))
    sim.step(at(30))
    assert state_of(sim) is MinerState.WAKING
    assert sim.hashrate_ths == pytest.approx(50.0)
    assert sim.power_w == pytest.approx(20 + 3_480 / 4)
    sim.step(at(500))
    assert state_of(sim) is MinerState.MINING
    assert sim.hashrate_ths == pytest.approx(200.0)
    assert sim.power_w == pytest.approx(3_500.0)


def test_hashes_done_across_a_wake_ramp_are_integrated_exactly() -> None:
    sim = quiet_miner(sleeping=True)
    sim.wake(at(0))
    sim.step(at(240))  # 120 s ramp (mean 100 TH/s) then 120 s at 200 TH/s
    assert sim.average_hashrate_ths == pytest.approx((100 * 120 + 200 * 120) / 240)


def test_a_model_that_wakes_instantly_mines_at_once() -> None:
    instant = AsicModel("X", "Bitmain", MODEL.profiles, "stock", 20.0, wake_seconds=0.0)
    sim = MinerSim(MinerSimConfig(instant, noise=0.0, sleeping=True), T0)
    sim.wake(at(1))
    assert sim.state is MinerState.MINING and sim.hashrate_ths == pytest.approx(200.0)


def test_time_never_runs_backwards() -> None:
    sim = quiet_miner()
    sim.step(at(100))
    sim.step(at(50))
    assert sim.now == at(100).timestamp()
    assert sim.elapsed_s == 100


def test_noise_is_small_and_reproducible_per_seed() -> None:
    def series(seed: int) -> list[float]:
        sim = MinerSim(MinerSimConfig(MODEL, seed=seed), T0)
        values = []
        for s in range(1, 200):
            sim.step(at(s))
            values.append(sim.hashrate_ths)
        return values

    first = series(3)
    assert first == series(3) != series(4)
    assert all(abs(v - 200) < 200 * 0.05 for v in first)


def test_each_dead_board_takes_a_third() -> None:
    sim = quiet_miner(faults=Faults(dead_boards=2))
    assert sim.hashrate_ths == pytest.approx(200 / 3)
    assert [sim.board_alive(b) for b in range(3)] == [True, False, False]
    assert state_of(sim) is MinerState.MINING
    sim.set_faults(Faults(dead_boards=3), at(1))
    assert state_of(sim) is MinerState.FAULT


def test_a_sleeping_miner_with_dead_boards_is_still_asleep() -> None:
    sim = quiet_miner(sleeping=True, faults=Faults(dead_boards=3))
    assert sim.state is MinerState.SLEEPING


def test_temperature_settles_exponentially_towards_the_new_power() -> None:
    sim = quiet_miner()
    assert sim.temperature_c == pytest.approx(70.0)  # starts settled at stock
    sim.sleep(at(0))
    sim.step(at(90))  # one time constant
    assert sim.temperature_c == pytest.approx(25 + 45 * 0.36788, abs=0.01)


def test_a_lower_profile_runs_cooler_and_overheating_runs_hotter() -> None:
    sim = quiet_miner()
    sim.set_profile("eco", at(0))
    sim.step(at(3_600))
    assert sim.temperature_c == pytest.approx(25 + 45 * 2_500 / 3_500, abs=0.1)
    sim.set_faults(Faults(overheating=True), at(3_600))
    sim.step(at(7_200))
    assert sim.temperature_c > 75


def test_an_overheating_miner_cuts_its_boards_off_at_dangerous_and_back_on_once_cool() -> None:
    sim = quiet_miner()  # settled at 70 °C
    sim.set_faults(Faults(overheating=True), at(0))  # the boards head for 101.5 °C
    sim.step(at(200))
    assert sim.state is MinerState.MINING and 90 < sim.temperature_c < DANGEROUS_C
    t = 200
    while not sim.cut_off:  # polled every 5 s, as the platform does
        t += 5
        sim.step(at(t))
        assert t < 1_000, "never reached the Dangerous temperature"
    assert sim.temperature_c >= DANGEROUS_C
    assert sim.state is MinerState.FAULT
    assert sim.hashrate_ths == 0 and sim.power_w == pytest.approx(MODEL.sleep_power_w)
    reply = ask(sim, "summary+devs+power", t=t)
    assert reply["summary"][0]["SUMMARY"][0]["GHS 5s"] == 0
    assert reply["power"][0]["POWER"][0]["PSU"] is True  # the control board stays up
    cut_at = t
    while sim.cut_off:
        t += 5
        sim.step(at(t))
    assert sim.temperature_c <= TARGET_C and t - cut_at < 120  # tau 90 s: 100 -> 75 in ~40 s
    assert sim.state is MinerState.WAKING  # ramps back up, as after a wake
    sim.step(at(t + MODEL.wake_seconds))
    assert sim.state is MinerState.MINING and sim.hashrate_ths > 0


def test_a_miner_woken_while_cut_off_waits_to_cool_then_ramps_up() -> None:
    """Put to sleep and woken again before its boards cooled to Target: stepping past the end
    of that wake looped for ever (the ramp stayed 0, the wake never ended)."""
    sim = quiet_miner()
    sim.set_faults(Faults(overheating=True), at(0))
    t = 0
    while not sim.cut_off:
        t += 5
        sim.step(at(t))
    sim.sleep(at(t + 5))
    sim.wake(at(t + 10))
    assert sim.cut_off and sim.temperature_c > TARGET_C
    sim.step(at(t + 10 + MODEL.wake_seconds + 10))  # returns
    assert not sim.cut_off and sim.state is MinerState.WAKING  # cooled, ramping again
    sim.step(at(t + 10 + 3 * MODEL.wake_seconds))
    assert sim.state is MinerState.MINING


def test_a_sleeping_or_cool_miner_is_never_cut_off() -> None:
    hot = quiet_miner(faults=Faults(overheating=True))
    hot.sleep(at(0))
    hot.step(at(3_600))
    assert not hot.cut_off and hot.state is MinerState.SLEEPING
    cool = quiet_miner()
    cool.step(at(3_600))
    assert not cool.cut_off and cool.state is MinerState.MINING


def test_profile_within_picks_the_highest_that_fits() -> None:
    sim = quiet_miner()
    assert sim.profile_within(4_300).name == "turbo"
    assert sim.profile_within(4_299).name == "stock"
    assert sim.profile_within(100).name == "eco"  # nothing fits: the lowest


def test_a_zero_hashrate_profile_is_not_a_profileset_target() -> None:
    with_sleep = AsicModel(
        "X", "Bitmain", (AsicProfile("sleep", 0.0, 20.0), *MODEL.profiles), "stock", 20.0, 60.0
    )
    sim = MinerSim(MinerSimConfig(with_sleep), T0)
    assert [p.name for p in sim.hashing_profiles()] == ["eco", "stock", "turbo"]
    with pytest.raises(KeyError):
        sim.set_profile("sleep", at(1))


# --- sessions --------------------------------------------------------------------------------


def test_one_session_at_a_time_each_use_refreshes_it() -> None:
    table = SessionTable(timeout_s=60, rng=random.Random(1))
    session = table.logon(at(0))
    assert session is not None and len(session) == 8
    assert table.logon(at(1)) is None
    assert table.use(session, at(50))
    assert table.use(session, at(100))  # 50 s after the last use
    assert not table.use(session, at(161))  # 61 idle seconds: gone
    assert table.logon(at(161)) is not None


def test_logoff_ends_only_the_live_session() -> None:
    table = SessionTable(timeout_s=60, rng=random.Random(1))
    session = table.logon(at(0))
    assert session is not None
    assert not table.logoff("someone-else", at(1))
    assert table.logoff(session, at(2))
    assert table.active(at(2)) is None


# --- request handling ------------------------------------------------------------------------


def test_joined_commands_share_one_reply_keyed_by_command() -> None:
    reply = ask(quiet_miner(), "summary+bogus")
    assert set(reply) == {"summary", "bogus", "id"}
    assert reply["summary"][0]["STATUS"][0]["STATUS"] == "S"
    assert reply["bogus"][0]["STATUS"][0]["Code"] == 14


def test_a_command_named_twice_in_a_join_runs_once() -> None:
    miner = quiet_miner()
    session = ask(miner, "logon")["SESSION"][0]["SessionID"]
    reply = ask(miner, "logoff+logoff", session)
    assert set(reply) == {"logoff", "id"}
    assert reply["logoff"][0]["STATUS"][0]["STATUS"] == "S"  # the one that ran, not a refusal
    assert ask(miner, "session")["SESSION"][0]["SessionID"] == ""
    assert set(ask(miner, "summary+summary")) == {"summary", "id"}  # still a joined reply


@pytest.mark.parametrize("raw", [b"not json", b'{"parameter": "x"}', b"[1]", b"\xff\xfe"])
def test_requests_that_are_not_a_json_command_are_refused(raw: bytes) -> None:
    reply = rpc.answer(quiet_miner(), raw, T0)
    assert reply["STATUS"][0]["STATUS"] == "E"
    assert reply["STATUS"][0]["Code"] == rpc.CODE_INVALID_JSON


def test_a_trailing_nul_and_newline_are_tolerated() -> None:
    reply = rpc.answer(quiet_miner(), b'{"command": "version"}\n\x00', T0)
    assert reply["VERSION"][0]["Type"] == "Antminer S21"


def test_curtail_needs_the_session_and_a_known_action() -> None:
    sim = quiet_miner()
    session = ask(sim, "logon")["SESSION"][0]["SessionID"]
    assert ask(sim, "curtail", "sleep")["STATUS"][0]["Code"] == rpc.CODE_INVALID_SESSION
    assert ask(sim, "curtail", f"{session},nap")["STATUS"][0]["Code"] == rpc.CODE_INVALID_PARAMETER
    assert ask(sim, "curtail", f"{session},sleep")["CURTAIL"][0]["Action"] == "sleep mode"
    assert sim.state is MinerState.SLEEPING


def test_profileset_accepts_names_watts_kilowatts_and_the_legacy_board_form() -> None:
    sim = quiet_miner()
    session = ask(sim, "logon")["SESSION"][0]["SessionID"]
    assert ask(sim, "profileset", f"{session},eco")["PROFILE"][0]["Profile"] == "eco"
    assert ask(sim, "profileset", f"{session},4.3kW")["PROFILE"][0]["Profile"] == "turbo"
    assert ask(sim, "profileset", f"{session},3600W")["PROFILE"][0]["Profile"] == "stock"
    assert ask(sim, "profileset", f"{session},0,eco")["PROFILE"][0]["Profile"] == "eco"
    refused = ask(sim, "profileset", f"{session},overdrive")
    assert refused["STATUS"][0]["Code"] == rpc.CODE_UNKNOWN_PROFILE


def test_atmset_takes_key_value_pairs() -> None:
    sim = quiet_miner()
    session = ask(sim, "logon")["SESSION"][0]["SessionID"]
    assert ask(sim, "atmset", f"{session},enabled=true,temp_window=5")["STATUS"][0]["Code"] == 340
    assert sim.atm_enabled
    assert ask(sim, "atm")["ATM"][0]["Enabled"] is True
    bad = ask(sim, "atmset", f"{session},turbo=yes")
    assert bad["STATUS"][0]["Code"] == rpc.CODE_INVALID_PARAMETER


def test_the_session_command_shows_the_live_session_or_blank() -> None:
    sim = quiet_miner()
    assert ask(sim, "session")["SESSION"][0]["SessionID"] == ""
    session = ask(sim, "logon")["SESSION"][0]["SessionID"]
    assert ask(sim, "session")["SESSION"][0]["SessionID"] == session
    assert ask(sim, "logoff", session)["STATUS"][0]["STATUS"] == "S"
    assert ask(sim, "session")["SESSION"][0]["SessionID"] == ""


# --- configuration ---------------------------------------------------------------------------


def test_miners_listen_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MinerSimConfig(MODEL, host="10.0.0.5")


def test_faults_are_checked() -> None:
    with pytest.raises(ValueError):
        Faults(dead_boards=4)
    with pytest.raises(ValueError):
        Faults(reply_delay_s=-1)


def test_an_unknown_starting_profile_is_refused() -> None:
    with pytest.raises(KeyError):
        MinerSimConfig(MODEL, profile="overdrive")


def test_loopback_hosts_skip_network_and_broadcast_octets() -> None:
    assert list(loopback_hosts("127.1.0.253", 4)) == [
        "127.1.0.253",
        "127.1.0.254",
        "127.1.1.1",
        "127.1.1.2",
    ]
    with pytest.raises(ValueError, match="ran out"):
        list(loopback_hosts("127.255.255.250", 10))


def test_a_uniform_fleet_gives_each_miner_an_address_seed_and_its_faults() -> None:
    fleet = uniform_fleet(MODEL, 3, faults={1: Faults(overheating=True)})
    assert [(m.host, m.port, m.seed) for m in fleet.miners] == [
        ("127.1.0.1", 4028, 0),
        ("127.1.0.2", 4028, 1),
        ("127.1.0.3", 4028, 2),
    ]
    assert [m.faults.overheating for m in fleet.miners] == [False, True, False]
    by_port = uniform_fleet(MODEL, 2, addressing=Addressing.PORTS, first_port=5000)
    assert [(m.host, m.port) for m in by_port.miners] == [("127.0.0.1", 5000), ("127.0.0.1", 5001)]
