"""The simulator's replies keep the shape of the recorded LuxOS reads: the same sections, keys
in the same order and values of the same JSON types (tests/fixtures/luxos/, which the simulator
produced and a LuxOS client parses)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hcp.domain.catalog import asic_model
from hcp.simulators.asic import Faults, MinerSim, MinerSimConfig, rpc

FIXTURES = Path(__file__).parents[1] / "fixtures" / "luxos"
READ = b'{"command": "summary+power+config+devs+tempctrl", "parameter": ""}'
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def shape(value: Any) -> Any:
    """Keys in order and the type of every leaf value."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def miner(**config: Any) -> MinerSim:
    return MinerSim(MinerSimConfig(asic_model("S21"), **config), T0)


def mining() -> Any:
    return rpc.answer(miner(), READ, T0 + timedelta(minutes=5))


def sleeping() -> Any:
    sim = miner()
    sim.sleep(T0)
    return rpc.answer(sim, READ, T0 + timedelta(hours=1))


def waking() -> Any:
    sim = miner(sleeping=True)
    sim.wake(T0)
    return rpc.answer(sim, READ, T0 + timedelta(seconds=45))


def dead_board() -> Any:
    return rpc.answer(miner(faults=Faults(dead_boards=1)), READ, T0 + timedelta(minutes=5))


def overheating() -> Any:
    return rpc.answer(miner(faults=Faults(overheating=True)), READ, T0 + timedelta(seconds=20))


@pytest.mark.parametrize(
    ("fixture", "read"),
    [
        ("read_mining", mining),
        ("read_sleeping", sleeping),
        ("read_waking", waking),
        ("read_dead_board", dead_board),
        ("read_overheating", overheating),
    ],
)
def test_a_read_has_the_shape_of_the_recorded_luxos_read(
    fixture: str, read: Callable[[], Any]
) -> None:
    recorded = json.loads((FIXTURES / f"{fixture}.json").read_text())
    assert shape(read()) == shape(recorded)
