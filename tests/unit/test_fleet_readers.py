"""The fleet readers turn read errors into unreachable statuses that say why, and log each
device's trouble once when it starts and once when it ends, never on every poll."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from hcp.adapters.clock import ManualClock
from hcp.adapters.devices import fleet_readers
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmSweep, DcgmTarget
from hcp.adapters.devices.errors import DeviceError, DeviceUnreachable
from hcp.adapters.devices.fleet_readers import (
    DcgmFleetReader,
    LuxosFleetReader,
    Transitions,
    condition,
)
from hcp.adapters.devices.luxos import LuxosClient
from hcp.domain.gpu_telemetry import GpuReading
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.telemetry import AsicReading, MinerState

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NODE_DOWN = "unreachable: node node-1: cannot connect: refused"
LOGGER = fleet_readers.__name__


def status(device_id: str, state: str = "mining", problems: tuple[str, ...] = ()) -> DeviceStatus:
    return DeviceStatus(device_id, state, not problems, NOW, problems=problems)


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    caplog.clear()
    return lines


@pytest.mark.parametrize(
    ("state", "problems", "expected"),
    [
        ("mining", (), "ok"),
        ("sleeping", (), "ok"),
        ("mining", ("board 2 dead",), "degraded"),
        (MinerState.FAULT.value, ("board 1 dead", "board 2 dead", "board 3 dead"), "faulted"),
        (UNREACHABLE, ("unreachable: cannot connect",), "unreachable"),
        ("busy", ("XID 48",), "degraded"),
    ],
)
def test_conditions(state: str, problems: tuple[str, ...], expected: str) -> None:
    assert condition(status("d", state, problems)) == expected


def test_each_transition_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    transitions = Transitions("miner")
    transitions.note([status("m1"), status("m2")])
    assert logged(caplog) == []  # healthy from the start: nothing happened
    lost = status("m1", UNREACHABLE, ("unreachable: cannot connect (refused)",))
    transitions.note([lost, status("m2")])
    transitions.note([lost, status("m2")])
    assert logged(caplog) == [
        ("WARNING", "miner m1 is unreachable (was ok): unreachable: cannot connect (refused)")
    ]
    hot = status("m1", problems=("overheating: 97 °C >= 90 °C",))
    hotter = status("m1", problems=("overheating: 98 °C >= 90 °C",))
    transitions.note([hot, status("m2")])
    transitions.note([hotter, status("m2")])  # still degraded: not logged again
    assert logged(caplog) == [
        ("WARNING", "miner m1 is degraded (was unreachable): overheating: 97 °C >= 90 °C")
    ]
    transitions.note([status("m1"), status("m2")])
    transitions.note([status("m1"), status("m2")])
    assert logged(caplog) == [("INFO", "miner m1 recovered (was degraded)")]


def test_a_device_first_seen_in_trouble_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    Transitions("GPU").note([status("g1", "busy", ("XID 48",))])
    assert logged(caplog) == [("WARNING", "GPU g1 is degraded (was ok): XID 48")]


def test_a_sweep_names_a_few_devices_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    transitions = Transitions("miner", per_sweep=2)
    down = [status(f"m{i}", UNREACHABLE, ("unreachable: no reply within 2 s",)) for i in range(5)]
    transitions.note(down)
    lines = logged(caplog)
    assert len(lines) == 3 and all(level == "WARNING" for level, _ in lines)
    assert lines[2][1] == "3 more miners turned unreachable, faulted or degraded in this sweep"
    transitions.note([status(f"m{i}") for i in range(5)])
    assert logged(caplog)[-1] == ("INFO", "3 more miners recovered in this sweep")


def reading(problems: tuple[str, ...] = ()) -> AsicReading:
    return AsicReading(
        "10.0.0.1:4028", NOW, MinerState.MINING, 200.0, 3500.0, 70.0, None, 0, 0, problems
    )


async def test_the_luxos_reader_says_why_a_miner_is_unreachable_and_logs_it_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    polls: list[list[AsicReading | DeviceError]] = [
        [reading(), DeviceUnreachable("10.0.0.2:4028", "cannot connect (refused)")],
        [reading(), DeviceUnreachable("10.0.0.2:4028", "cannot connect (refused)")],
        [reading(("board 2 dead",)), reading()],
    ]

    async def read_all(clients: Sequence[LuxosClient]) -> list[AsicReading | DeviceError]:
        assert len(clients) == 2
        return polls.pop(0)

    monkeypatch.setattr(fleet_readers, "read_all", read_all)
    addresses = {"m1": ("10.0.0.1", 4028), "m2": ("10.0.0.2", 4028)}
    reader = LuxosFleetReader(addresses, ManualClock(NOW))
    first = await reader.read()
    assert first[1] == DeviceStatus(
        "m2", UNREACHABLE, False, NOW, problems=("unreachable: cannot connect (refused)",)
    )
    await reader.read()
    assert logged(caplog) == [
        ("WARNING", "miner m2 is unreachable (was ok): unreachable: cannot connect (refused)")
    ]
    third = await reader.read()
    assert [s.problems for s in third] == [("board 2 dead",), ()]
    assert logged(caplog) == [
        ("WARNING", "miner m1 is degraded (was ok): board 2 dead"),
        ("INFO", "miner m2 recovered (was unreachable)"),
    ]


@dataclass
class ScriptedScraper:
    sweeps: list[DcgmSweep] = field(default_factory=list)

    async def scrape_all(self, targets: Iterable[DcgmTarget]) -> DcgmSweep:
        return self.sweeps.pop(0)

    async def aclose(self) -> None:
        pass


def gpu(index: int, xid: int = 0) -> GpuReading:
    return GpuReading("node-1", index, f"GPU-{index}", "H100", NOW, 0.0, 80.0, 40.0, 0, 80_000, xid)


async def test_the_dcgm_reader_says_why_a_gpu_is_unreachable_and_logs_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    down = DeviceUnreachable("node-1", "cannot connect: refused")
    scraper = ScriptedScraper(
        [
            DcgmSweep((gpu(0, xid=48),), {}),  # GPU 1 missing from its node's metrics
            DcgmSweep((), {"node-1": down}),
            DcgmSweep((), {"node-1": down}),
            DcgmSweep((gpu(0), gpu(1)), {}),
        ]
    )
    gpus = {("node-1", 0): "g0", ("node-1", 1): "g1"}
    reader = DcgmFleetReader(
        gpus, lambda host: f"http://{host}", ManualClock(NOW), scraper=_as_scraper(scraper)
    )
    first = await reader.read()
    assert [s.problems for s in first] == [("XID 48",), ("unreachable: fell off the bus",)]
    second = await reader.read()
    assert [s.problems for s in second] == [(NODE_DOWN,), (NODE_DOWN,)]
    await reader.read()
    await reader.read()
    assert logged(caplog) == [
        ("WARNING", "GPU g0 is degraded (was ok): XID 48"),
        ("WARNING", "GPU g1 is unreachable (was ok): unreachable: fell off the bus"),
        ("WARNING", f"GPU g0 is unreachable (was degraded): {NODE_DOWN}"),
        ("INFO", "GPU g0 recovered (was unreachable)"),
        ("INFO", "GPU g1 recovered (was unreachable)"),
    ]


def _as_scraper(scraper: ScriptedScraper) -> DcgmScraper:
    return scraper  # type: ignore[return-value]
