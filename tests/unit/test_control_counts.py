"""What the plan may count on, and what the miners it cannot count on draw."""

from __future__ import annotations

from datetime import UTC, datetime

from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.services.control import healthy_counts, unmanaged_watts

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def miner(i: int, maintenance: str | None = None) -> Device:
    return Device(
        f"a{i}", "s", None, "S21", DeviceKind.ASIC, "mining", NOW, maintenance=maintenance
    )


def gpu(i: int, maintenance: str | None = None) -> Device:
    return Device(f"g{i}", "s", None, "H100 SXM", DeviceKind.GPU, "idle", NOW,
                  maintenance=maintenance)  # fmt: skip


def status(
    device_id: str, power_w: float, healthy: bool = True, state: str = "mining"
) -> DeviceStatus:
    return DeviceStatus(device_id, state, healthy, NOW, power_w=power_w)


DEVICES = [miner(0), miner(1), miner(2, "fans"), miner(3), miner(4), gpu(0, "riser"), gpu(1)]
LATEST = {
    "a0": status("a0", 3_500.0),
    "a1": status("a1", 3_400.0, healthy=False),  # overheating, still hashing
    "a2": status("a2", 3_300.0),  # in maintenance, hashing
    "a3": status("a3", 25.0, state="sleeping"),  # held asleep by the dispatcher
    "a4": status("a4", 0.0, healthy=False, state=UNREACHABLE),
}
ANSWERS = {"a4": status("a4", 3_200.0)}  # what it drew when it last answered


def test_the_plan_counts_healthy_devices_in_service_and_not_held() -> None:
    counts = healthy_counts(DEVICES, LATEST, held={"a3"})
    assert (counts.asics, counts.gpus) == ({"S21": 1}, {"H100 SXM": 1})
    draining = healthy_counts(DEVICES, LATEST, draining={"g0"}, held={"a3"})
    assert draining.gpus == {"H100 SXM": 2}  # a GPU in maintenance that still holds work


def test_what_the_left_out_miners_draw_comes_off_the_plan() -> None:
    assert unmanaged_watts(DEVICES, LATEST, ANSWERS, held={"a3"}) == 3_400 + 3_300 + 25 + 3_200
    assert unmanaged_watts(DEVICES, LATEST, ANSWERS) == 3_400 + 3_300 + 3_200
