"""The platform against devices it does not run: `hcp sim asic` and `hcp sim gpu` as their own
processes, found through a devices file (HCP_DEVICES_FILE), as real miners and GPU nodes
would be. When the miners' process dies the platform goes on: the miners turn unreachable,
the GPU nodes still answer, and the control loop keeps its tick."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.adapters.devices.site_file import load_device_file
from hcp.domain.errors import DataError
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
    tmp_path: Path, miners: list[tuple[str, int] | None], node_url: str
) -> tuple[bootstrap.Runtime, bootstrap.Live]:
    """`hcp up`'s runtime and live loop for 3 miners and 2 GPUs, found through a devices file."""
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
    runtime = bootstrap.build(settings, ManualClock(START))
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
