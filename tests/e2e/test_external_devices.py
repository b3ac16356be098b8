"""The platform against devices it does not run: `hcp sim asic` and `hcp sim gpu` as their own
processes, found through a devices file (HCP_DEVICES_FILE), as real miners and GPU nodes
would be. When the miners' process dies the platform goes on: the miners turn unreachable,
the GPU nodes still answer, and the control loop keeps its tick."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.adapters.devices.site_file import load_device_file
from hcp.domain.errors import DataError
from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.workloads import Submission
from tests.api.conftest import START, make_settings
from tests.contract.test_asic_sim_cli import HCP, simulator
from tests.ports import free_port
from tests.processes import stop

NODES = "site-west-1-gpu-node"


@contextmanager
def gpu_nodes(port: int) -> Iterator[str]:
    """`hcp sim gpu`: one node of two GPUs named as the platform's site names it."""
    process = subprocess.Popen(
        [
            str(HCP),
            "sim",
            "gpu",
            "--nodes",
            "1",
            "--gpus-per-node",
            "2",
            "--port",
            str(port),
            "--prefix",
            NODES,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/nodes/{NODES}-001"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/metrics", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "hcp sim gpu exited"
            assert time.monotonic() < deadline, "hcp sim gpu did not answer within 30 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/nodes/{{node}}"
    finally:
        stop(process)


async def start_platform(
    tmp_path: Path,
    miners: list[tuple[str, int] | None],
    node_url: str,
    clock: ManualClock | None = None,
) -> tuple[bootstrap.Runtime, bootstrap.Live]:
    """`hcp up`'s runtime and live loop for 3 miners and 2 GPUs, found through a devices file
    (on the database under `tmp_path`: a second start is a restart)."""
    listed = ", ".join(f'"{host}:{port}"' for host, port in (m for m in miners if m))
    devices = tmp_path / "devices.toml"
    devices.write_text(f'[asics]\naddresses = [{listed}]\n[gpus]\nnode_url = "{node_url}"\n')
    settings = make_settings(
        f"sqlite:///{tmp_path / 'hcp.db'}",
        tmp_path / "var",
        site_asics=3,
        site_gpus=2,
        devices_file=devices,
        planner="breakeven",
    )
    runtime = bootstrap.build(settings, clock or ManualClock(START))
    bootstrap.prepare(runtime)
    return runtime, await bootstrap.start_live(runtime)


async def stop_platform(runtime: bootstrap.Runtime, live: bootstrap.Live) -> None:
    await bootstrap.stop_live(live)
    runtime.close()


def states(runtime: bootstrap.Runtime) -> list[tuple[str, str]]:
    with runtime.unit_of_work() as uow:
        stored = uow.fleet.devices(site_id=runtime.settings.site_id)
    return sorted((d.kind.value, d.state) for d in stored)


async def test_a_dead_simulator_process_does_not_stop_the_platform(tmp_path: Path) -> None:
    with gpu_nodes(free_port()) as node_url:
        with simulator("--count", "3", "--first-port", "0") as (_, miners):
            runtime, live = await start_platform(tmp_path, miners, node_url)
            try:
                await live.control.poll()
                await live.settle()
                assert states(runtime) == [("asic", "mining")] * 3 + [("gpu", "idle")] * 2
            except BaseException:
                await stop_platform(runtime, live)
                raise
        try:  # the miners' process is gone; the GPU nodes' still runs
            await live.control.poll()
            await live.settle()
            assert states(runtime) == [("asic", "unreachable")] * 3 + [("gpu", "idle")] * 2
            outcome = await live.control.tick()  # the loop keeps its tick
            assert outcome.plan is not None
            assert outcome.plan.asic_target({"S21"}) == {}  # no miner it could count on
            assert outcome.plan.gpu_budget() == 2
        finally:
            await stop_platform(runtime, live)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[asics]\naddresses = ["nowhere"]\n', ":2: asics.addresses: expected 'host:port'"),
        ("[asics]\nfirst_port = 70000\n", ":2: asics.first_port: must be a TCP port"),
        ('[gpus]\nnode_url = "http://x:9400/"\n', ":2: gpus.node_url: expected an http(s) URL"),
        ('[gpu]\nnode_url = "x"\n', ":1: gpu: unknown key"),
    ],
)
def test_a_devices_file_mistake_names_its_line_and_key(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "devices.toml"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_device_file(path)
    assert str(caught.value).startswith(str(path)) and where in str(caught.value)


def gpu_hours_billed(runtime: bootstrap.Runtime, since: datetime, until: datetime) -> Decimal:
    with runtime.unit_of_work() as uow:
        records = uow.billing.usage(since, until)
    return sum((r.gpu_hours for r in records), start=Decimal(0))


@pytest.mark.parametrize("nodes_restart", [False, True], ids=["nodes-run-on", "nodes-restarted"])
async def test_work_that_ran_on_while_the_platform_was_down_is_billed_once_its_nodes_vouch(
    tmp_path: Path, nodes_restart: bool
) -> None:
    """The platform stops (a restart, or a leader's death) while a 2-GPU job runs on GPU nodes
    of their own. When it starts again, the hour it was down is billed if the nodes still run
    the job; if they no longer know it (restarted), nothing shows it ran, and it is not."""
    clock = ManualClock(START)
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    job = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 2, None, 10.0))
    port = free_port()
    with simulator("--count", "3", "--first-port", "0") as (_, miners):
        with gpu_nodes(port) as node_url:
            runtime, live = await start_platform(tmp_path, miners, node_url, clock)
            try:
                submitted = await runtime.platform.workloads.submit(customer, job)
                await live.control.poll()
                outcome = await live.control.tick()
                assert outcome.scheduling is not None
                assert outcome.scheduling.started == [submitted.workload.id]
                clock.advance(timedelta(minutes=30))
                await live.control.tick()
            finally:
                await stop_platform(runtime, live)
            down_at = clock.now()
            assert gpu_hours_billed(runtime, START, down_at) == Decimal(1)
            clock.advance(timedelta(hours=1))  # nothing runs the control loop
            if not nodes_restart:
                up_at = await _restart(tmp_path, miners, node_url, clock)
                # The nodes still ran the job: 2 GPUs for the hour down.
                assert gpu_hours_billed(runtime, down_at, up_at) == Decimal(2)
        if nodes_restart:
            with gpu_nodes(port) as node_url:  # new nodes: they know no job
                up_at = await _restart(tmp_path, miners, node_url, clock)
            assert gpu_hours_billed(runtime, down_at, up_at) == 0


async def _restart(
    tmp_path: Path, miners: list[tuple[str, int] | None], node_url: str, clock: ManualClock
) -> datetime:
    """Start the platform again on the same database; its first poll and tick; when it came
    back."""
    runtime, live = await start_platform(tmp_path, miners, node_url, clock)
    try:
        up_at = clock.now()
        await live.control.poll()
        outcome = await live.control.tick()
        assert outcome.errors == []
        return up_at
    finally:
        await stop_platform(runtime, live)


async def test_the_time_down_is_billed_when_the_first_tick_after_a_restart_cannot_ask_the_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first tick after the restart failed to schedule (so asked no node) and metered its
    own minute; the next one, which asked them, found the store metered past its start and
    billed nothing of the hour down, though the nodes still ran the job."""
    clock = ManualClock(START)
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    job = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 2, None, 10.0))
    with (
        simulator("--count", "3", "--first-port", "0") as (_, miners),
        gpu_nodes(free_port()) as node_url,
    ):
        runtime, live = await start_platform(tmp_path, miners, node_url, clock)
        try:
            await runtime.platform.workloads.submit(customer, job)
            await live.control.poll()
            await live.control.tick()
            clock.advance(timedelta(minutes=30))
            await live.control.tick()
        finally:
            await stop_platform(runtime, live)
        down_at = clock.now()
        clock.advance(timedelta(hours=1))  # nothing runs the control loop
        runtime, live = await start_platform(tmp_path, miners, node_url, clock)
        try:
            up_at = clock.now()
            with monkeypatch.context() as patch:
                patch.setattr(live.control._scheduler, "tick", _unanswered)
                clock.advance(timedelta(minutes=1))
                assert (await live.control.tick()).errors != []
            clock.advance(timedelta(minutes=1))
            await live.control.poll()
            assert (await live.control.tick()).errors == []
        finally:
            await stop_platform(runtime, live)
    assert gpu_hours_billed(runtime, down_at, up_at) == Decimal(2)  # 2 GPUs, the hour down
    assert gpu_hours_billed(runtime, START, clock.now()) == Decimal("3.066667")


async def _unanswered(*args: object, **kwargs: object) -> object:
    raise RuntimeError("the store did not answer")
