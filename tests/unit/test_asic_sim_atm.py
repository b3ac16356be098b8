"""LuxOS's Advanced Thermal Management in the simulator: `atmset` stores every key, `atm`
reports it, bad keys and values are refused, and `profileset` is refused while ATM is on."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.test_asic_sim_physics import ask, quiet_miner

from hcp.simulators.asic import MinerSim, rpc


def logged_on() -> tuple[MinerSim, str]:
    sim = quiet_miner()
    return sim, ask(sim, "logon")["SESSION"][0]["SessionID"]


def atm_of(sim: MinerSim) -> dict[str, Any]:
    reply = ask(sim, "atm")
    assert reply["STATUS"][0]["Code"] == 339
    entry: dict[str, Any] = reply["ATM"][0]
    return entry


def status(reply: Any) -> tuple[str, int, str]:
    block = reply["STATUS"][0]
    return block["STATUS"], block["Code"], block["Msg"]


def test_atm_reports_luxos_defaults() -> None:
    sim, _ = logged_on()
    assert atm_of(sim) == {
        "Enabled": False,
        "MaxProfile": "stock",
        "MaxProfileStep": "0",
        "MinProfile": "",
        "MinProfileStep": "",
        "PostRampMinutes": 15,
        "StartupMinutes": 15,
        "TempWindow": 5.0,
    }


def test_atmset_stores_and_atm_reports_every_key() -> None:
    sim, session = logged_on()
    settings = (
        "enabled=true,startup_minutes=20,post_ramp_minutes=3,temp_window=9,"
        "min_profile=eco,max_profile=turbo"
    )
    reply = ask(sim, "atmset", f"{session},{settings}")
    assert status(reply) == ("S", 340, "Advanced Thermal Management configuration updated")
    assert atm_of(sim) == {
        "Enabled": True,
        "MaxProfile": "turbo",
        "MaxProfileStep": "1",
        "MinProfile": "eco",
        "MinProfileStep": "-1",
        "PostRampMinutes": 3,
        "StartupMinutes": 20,
        "TempWindow": 9.0,
    }
    assert ask(sim, "config")["CONFIG"][0]["IsAtmEnabled"] is True


def test_atmset_changes_only_the_keys_given_in_any_order() -> None:
    sim, session = logged_on()
    ask(sim, "atmset", f"{session},temp_window=7.5")
    ask(sim, "atmset", f"{session},max_profile=-1,startup_minutes=0")
    atm = atm_of(sim)
    assert (atm["TempWindow"], atm["MaxProfile"], atm["StartupMinutes"]) == (7.5, "eco", 0)
    assert (atm["Enabled"], atm["PostRampMinutes"], atm["MinProfile"]) == (False, 15, "")


def test_min_profile_takes_steps_and_an_empty_value_for_unbounded() -> None:
    sim, session = logged_on()
    ask(sim, "atmset", f"{session},min_profile=-1")
    assert atm_of(sim)["MinProfile"] == "eco"
    ask(sim, "atmset", f"{session},min_profile=")
    assert (atm_of(sim)["MinProfile"], atm_of(sim)["MinProfileStep"]) == ("", "")


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("turbo=yes", "Unknown ATM key 'turbo'"),
        ("enabled", "key=value"),
        ("enabled=yes", "Invalid enabled 'yes'"),
        ("prevent_oc=1", "Invalid prevent_oc '1'"),
        ("startup_minutes=-1", "Invalid startup_minutes '-1'"),
        ("post_ramp_minutes=1.5", "Invalid post_ramp_minutes '1.5'"),
        ("startup_minutes=99999999", "Invalid startup_minutes"),
        ("temp_window=abc", "Invalid temp_window 'abc'"),
        ("temp_window=nan", "Invalid temp_window 'nan'"),
        ("temp_window=-3", "Invalid temp_window '-3'"),
        ("temp_window=500", "Invalid temp_window '500'"),
        ("min_profile=overdrive", "Invalid min_profile 'overdrive'"),
        ("max_profile=+5", "Invalid max_profile '+5'"),
        ("max_profile=", "Invalid max_profile ''"),
        ("min_profile=turbo,max_profile=eco", "min_profile 'turbo' is above max_profile 'eco'"),
    ],
)
def test_unknown_keys_and_bad_values_are_refused_and_change_nothing(
    setting: str, complaint: str
) -> None:
    sim, session = logged_on()
    before = atm_of(sim)
    reply = ask(sim, "atmset", f"{session},enabled=true,{setting}")
    state, code, msg = status(reply)
    assert (state, code) == ("E", rpc.CODE_INVALID_PARAMETER)
    assert complaint in msg
    assert atm_of(sim) == before  # not even the valid enabled=true was applied


def test_atmset_needs_a_session_and_some_settings() -> None:
    sim, session = logged_on()
    assert status(ask(sim, "atmset", "enabled=true"))[1] == rpc.CODE_INVALID_SESSION
    assert status(ask(sim, "atmset", session))[1] == rpc.CODE_INVALID_PARAMETER
    assert not sim.atm_enabled


def test_profileset_is_refused_while_atm_is_enabled() -> None:
    sim, session = logged_on()
    ask(sim, "atmset", f"{session},enabled=true")
    state, code, msg = status(ask(sim, "profileset", f"{session},eco"))
    assert (state, code) == ("E", rpc.CODE_ATM_ENABLED)
    assert "ATM is enabled" in msg and "atmset enabled=false" in msg
    assert sim.profile.name == "stock"

    ask(sim, "atmset", f"{session},enabled=false")
    assert ask(sim, "profileset", f"{session},eco")["PROFILE"][0]["Profile"] == "eco"


def test_profileset_takes_steps_from_the_stock_profile() -> None:
    sim, session = logged_on()
    assert ask(sim, "profileset", f"{session},+1")["PROFILE"][0]["Profile"] == "turbo"
    assert ask(sim, "profileset", f"{session},-1")["PROFILE"][0]["Profile"] == "eco"
    assert status(ask(sim, "profileset", f"{session},+2"))[1] == rpc.CODE_UNKNOWN_PROFILE


def test_prevent_oc_reverts_an_overclock_when_atm_is_turned_off() -> None:
    sim, session = logged_on()
    ask(sim, "profileset", f"{session},turbo")
    ask(sim, "atmset", f"{session},enabled=true")
    ask(sim, "atmset", f"{session},enabled=false,prevent_oc=true")
    assert sim.profile.name == "stock"
    assert "PreventOc" not in atm_of(sim)  # not a stored setting

    ask(sim, "profileset", f"{session},turbo")
    ask(sim, "atmset", f"{session},enabled=true")
    ask(sim, "atmset", f"{session},enabled=false")  # without prevent_oc the profile stays
    assert sim.profile.name == "turbo"


def test_prevent_oc_leaves_a_lower_profile_alone() -> None:
    sim, session = logged_on()
    ask(sim, "profileset", f"{session},eco")
    ask(sim, "atmset", f"{session},enabled=true")
    ask(sim, "atmset", f"{session},enabled=false,prevent_oc=true")
    assert sim.profile.name == "eco"
