"""The GPU drivers (DCGM scraper, node-agent client) against the GPU node simulator.

Most tests go through httpx's ASGI transport (same HTTP semantics, no socket); the ones about
sockets, the fleet server and a node that is down or gone use real loopback connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hcp.adapters.clock import ManualClock
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmTarget
from hcp.adapters.devices.errors import DeviceIOError, DeviceTimeout, DeviceUnreachable
from hcp.adapters.devices.gpu_errors import (
    GpuUnavailable,
    NodeDown,
    RequestInvalid,
    WorkloadConflict,
    WorkloadExists,
    WorkloadNotFound,
)
from hcp.adapters.devices.node_agent import NodeAgentClient
from hcp.domain.devices import GpuModel
from hcp.domain.errors import ValidationError
from hcp.domain.gpu_telemetry import AgentWorkloadState, GpuHealth, GpuReading
from hcp.simulators.gpu import (
    GpuNodeSim,
    GpuSimConfig,
    build_fleet_app,
    build_node_app,
    serve_nodes,
    serving,
)

MODEL = GpuModel("Test H100", family="H100", busy_power_w=700.0, idle_power_w=70.0, memory_gb=80)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOST = "gpu-node-001"
BASE = "http://sim"
TARGET = DcgmTarget(HOST, f"{BASE}/metrics")
State = AgentWorkloadState


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def node(clock: ManualClock) -> GpuNodeSim:
    return GpuNodeSim(HOST, MODEL, 4, clock=clock, seed=7)


@pytest.fixture
async def http(node: GpuNodeSim) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_node_app(node))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def agent(http: httpx.AsyncClient) -> NodeAgentClient:
    return NodeAgentClient(HOST, BASE, http)


@pytest.fixture
def scraper(http: httpx.AsyncClient, clock: ManualClock) -> DcgmScraper:
    return DcgmScraper(http, clock=clock)


async def by_index(scraper: DcgmScraper) -> dict[int, GpuReading]:
    return {r.gpu_index: r for r in await scraper.scrape(TARGET)}


def advance(clock: ManualClock, seconds: float) -> None:
    clock.advance(timedelta(seconds=seconds))


# -- lifecycle ----------------------------------------------------------------------------------


async def test_a_workload_progresses_with_the_clock_and_completes(
    agent: NodeAgentClient, scraper: DcgmScraper, clock: ManualClock
) -> None:
    started = await agent.start("job-1", [0, 2], duration_s=600)
    assert (started.state, started.progress, started.gpu_indices) == (State.RUNNING, 0.0, (0, 2))

    advance(clock, 150)
    assert (await agent.status("job-1")).progress == pytest.approx(0.25)
    gpus = await agent.list_gpus()
    assert [g.workload_id for g in gpus] == ["job-1", None, "job-1", None]

    advance(clock, 500)
    done = await agent.status("job-1")
    assert (done.state, done.progress) == (State.COMPLETED, 1.0)
    assert done.ended_at == T0 + timedelta(seconds=600)
    assert all(g.workload_id is None for g in await agent.list_gpus())


async def test_busy_gpus_draw_near_busy_power_and_heat_up_with_a_lag(
    agent: NodeAgentClient, scraper: DcgmScraper, clock: ManualClock
) -> None:
    idle = await by_index(scraper)
    assert all(63 <= r.power_w <= 77 and r.util_pct == 0 for r in idle.values())
    await agent.start("job-1", [1], duration_s=3600, fb_mib_per_gpu=60_000)

    advance(clock, 10)
    warming = (await by_index(scraper))[1]
    assert 658 <= warming.power_w <= 700 and warming.util_pct >= 95
    assert (warming.fb_used_mib, warming.fb_free_mib) == (60_000, 80 * 1024 - 60_000)
    assert idle[1].temp_c < warming.temp_c < 60

    advance(clock, 600)
    hot = await by_index(scraper)
    assert hot[1].temp_c == pytest.approx(70, abs=1)  # 25 °C ambient + 45 °C at full load
    assert hot[0].temp_c == pytest.approx(idle[0].temp_c, abs=1)


async def test_checkpoint_then_stop_returns_the_checkpoint_to_resume_from(
    agent: NodeAgentClient, clock: ManualClock
) -> None:
    await agent.start("train-7", [0, 1, 2, 3], duration_s=1000, checkpointable=True)
    advance(clock, 300)
    assert (await agent.checkpoint("train-7")).checkpoint_progress == pytest.approx(0.3)

    advance(clock, 200)
    stopped = await agent.stop("train-7")
    assert stopped.state is State.STOPPED
    assert stopped.progress == pytest.approx(0.5)
    assert stopped.checkpoint_progress == pytest.approx(0.3)
    assert all(g.workload_id is None for g in await agent.list_gpus())

    resumed = await agent.start("job-7b", [0], 1000, checkpointable=True, resume_from_progress=0.3)
    assert (resumed.progress, resumed.checkpoint_progress) == (0.3, 0.3)
    advance(clock, 700)
    assert (await agent.status("job-7b")).state is State.COMPLETED


async def test_checkpoint_is_refused_when_not_checkpointable_or_finished(
    agent: NodeAgentClient, clock: ManualClock
) -> None:
    await agent.start("infer-1", [0], duration_s=60)
    with pytest.raises(WorkloadConflict, match="not checkpointable"):
        await agent.checkpoint("infer-1")
    await agent.start("train-1", [1], duration_s=60, checkpointable=True)
    advance(clock, 61)
    with pytest.raises(WorkloadConflict, match="cannot checkpoint"):
        await agent.checkpoint("train-1")
    assert (await agent.stop("train-1")).state is State.COMPLETED  # stop leaves a finished one


# -- refusals -----------------------------------------------------------------------------------


async def test_a_busy_gpu_refuses_a_second_workload_with_409(agent: NodeAgentClient) -> None:
    await agent.start("job-1", [1], duration_s=60)
    with pytest.raises(GpuUnavailable, match=r"gpu 1 is busy with 'job-1'") as raised:
        await agent.start("job-2", [0, 1], duration_s=60)
    assert (raised.value.code, raised.value.workload_id) == (409, "job-2")
    with pytest.raises(WorkloadExists):
        await agent.start("job-1", [3], duration_s=60)
    assert [g.workload_id for g in await agent.list_gpus()] == [None, "job-1", None, None]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gpu_indices": [4]}, "gpu_index"),
        ({"gpu_indices": []}, "gpu_indices"),
        ({"gpu_indices": [0, 0]}, "gpu_indices"),
        ({"duration_s": 0}, "duration_s"),
        ({"duration_s": 1e12}, "duration_s"),  # its end would be past year 9999
        ({"resume_from_progress": 0.5}, "resume_from_progress"),
        ({"fb_mib_per_gpu": 10**6}, "fb_mib_per_gpu"),
        ({"workload_id": "a/b"}, "workload_id"),
    ],
)
async def test_bad_start_requests_are_refused_with_422(
    agent: NodeAgentClient, kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {"workload_id": "job", "gpu_indices": [0], "duration_s": 60.0}
    with pytest.raises(RequestInvalid, match=field) as raised:
        await agent.start(**{**args, **kwargs})  # type: ignore[arg-type]
    assert raised.value.code == 422


async def test_a_malformed_body_is_refused_with_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/workloads", json={"workload_id": "x", "gpu_indices": "all"})
    assert response.status_code == 422


async def test_an_unknown_workload_is_not_found(agent: NodeAgentClient) -> None:
    with pytest.raises(WorkloadNotFound, match="nope"):
        await agent.status("nope")


# -- faults -------------------------------------------------------------------------------------


async def test_an_xid_fails_the_workload_sets_the_xid_and_leaves_the_gpu_unhealthy(
    agent: NodeAgentClient, scraper: DcgmScraper, http: httpx.AsyncClient
) -> None:
    await agent.start("job-1", [0, 1], duration_s=600)
    assert (await http.post("/sim/gpus/1/xid", params={"xid": 48})).status_code == 204

    failed = await agent.status("job-1")
    assert (failed.state, failed.failure_reason) == (State.FAILED, "xid 48 on gpu 1")
    readings = await by_index(scraper)
    assert (readings[0].xid_errors, readings[1].xid_errors) == (0, 48)
    health = [g.health for g in await agent.list_gpus()]
    assert health[:2] == [GpuHealth.HEALTHY, GpuHealth.UNHEALTHY]
    with pytest.raises(GpuUnavailable, match="gpu 1 is unhealthy"):
        await agent.start("job-2", [1], duration_s=60)

    await http.post("/sim/gpus/1/reset")
    assert (await agent.start("job-2", [1], duration_s=60)).state is State.RUNNING


async def test_an_application_xid_fails_the_workload_but_keeps_the_gpu(
    agent: NodeAgentClient, node: GpuNodeSim
) -> None:
    await agent.start("job-1", [2], duration_s=600)
    node.inject_xid(2, 13)
    assert (await agent.status("job-1")).state is State.FAILED
    gpu = (await agent.list_gpus())[2]
    assert (gpu.health, gpu.last_xid, gpu.xid_count) == (GpuHealth.HEALTHY, 13, 1)


async def test_a_gpu_off_the_bus_leaves_the_metrics_and_is_reported_lost(
    agent: NodeAgentClient, scraper: DcgmScraper, http: httpx.AsyncClient
) -> None:
    await agent.start("job-1", [2], duration_s=600)
    await http.post("/sim/gpus/2/off-bus")

    assert sorted(await by_index(scraper)) == [0, 1, 3]
    lost = (await agent.list_gpus())[2]
    assert (lost.health, lost.power_w, lost.workload_id) == (GpuHealth.LOST, None, None)
    assert "fell off the bus" in str((await agent.status("job-1")).failure_reason)
    with pytest.raises(GpuUnavailable, match="gpu 2 is lost"):
        await agent.start("job-2", [2], duration_s=60)


# -- real sockets -------------------------------------------------------------------------------


async def test_statuses_of_many_workloads_come_in_one_call(
    agent: NodeAgentClient, clock: ManualClock
) -> None:
    await agent.start("job-1", [0], duration_s=600)
    await agent.start("job-2", [1], duration_s=300)
    advance(clock, 300)
    found = await agent.statuses(["job-1", "job-2", "job-never"])
    assert set(found) == {"job-1", "job-2"}  # a run the node never had is left out
    assert (found["job-1"].state, found["job-1"].progress) == (State.RUNNING, 0.5)
    assert found["job-1"] == await agent.status("job-1")
    assert found["job-2"].state is State.COMPLETED
    assert await agent.statuses([]) == {}


async def test_a_node_that_is_down_gives_node_down_and_the_sweep_carries_on(
    clock: ManualClock,
) -> None:
    nodes = [GpuNodeSim(f"gpu-node-00{i}", MODEL, 2, clock=clock) for i in (1, 2)]
    async with serving(build_fleet_app(nodes)) as server, httpx.AsyncClient() as http:
        base = {n.hostname: f"{server.base_url}/nodes/{n.hostname}" for n in nodes}
        agent = NodeAgentClient("gpu-node-001", base["gpu-node-001"], http)
        await agent.start("job-1", [0], duration_s=600)
        await http.post(f"{base['gpu-node-001']}/sim/node/down")

        with pytest.raises(NodeDown) as raised:
            await agent.list_gpus()
        assert raised.value.device == "gpu-node-001"
        targets = [DcgmTarget(h, f"{url}/metrics") for h, url in base.items()]
        sweep = await DcgmScraper(http).scrape_all(targets)
        assert isinstance(sweep.failures["gpu-node-001"], NodeDown)
        assert {r.host for r in sweep.readings} == {"gpu-node-002"}

        with pytest.raises(NodeDown):
            await agent.statuses(["job-1"])

        await http.post(f"{base['gpu-node-001']}/sim/node/up")
        assert (await agent.status("job-1")).failure_reason == "node went down"


async def test_a_closed_port_is_unreachable_not_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with NodeAgentClient("gone", url, timeout_s=1) as agent:
        with pytest.raises(DeviceUnreachable) as raised:
            await agent.list_gpus()
    assert not isinstance(raised.value, NodeDown)
    async with DcgmScraper(timeout_s=1) as scraper:
        with pytest.raises(DeviceUnreachable):
            await scraper.scrape(DcgmTarget("gone", f"{url}/metrics"))


async def test_serve_nodes_serves_the_whole_fleet_on_one_loopback_port(clock: ManualClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GpuSimConfig.uniform(MODEL, node_count=3, gpus_per_node=2, port=port)
    task = asyncio.create_task(serve_nodes(config, clock=clock))
    try:
        async with httpx.AsyncClient() as http:
            hostnames = await _when_listening(http, f"http://127.0.0.1:{port}/nodes")
            assert hostnames == ["gpu-node-001", "gpu-node-002", "gpu-node-003"]
            targets = [DcgmTarget(h, config.base_url(h) + "/metrics") for h in hostnames]
            sweep = await DcgmScraper(http, max_concurrency=2).scrape_all(targets)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (len(sweep.readings), sweep.failures) == (6, {})


async def _when_listening(http: httpx.AsyncClient, url: str) -> object:
    for _ in range(200):
        try:
            return (await http.get(url)).json()
        except httpx.ConnectError:
            await asyncio.sleep(0.01)
    raise AssertionError(f"nothing listens at {url}")


def test_simulators_bind_loopback_only() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        GpuSimConfig.uniform(MODEL, node_count=1, host="0.0.0.0")


# -- scraper mechanics --------------------------------------------------------------------------


async def test_a_slow_exporter_times_out_as_device_timeout() -> None:
    def never_answers(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(never_answers)) as http:
        with pytest.raises(DeviceTimeout, match="slow-node"):
            await DcgmScraper(http).scrape(DcgmTarget("slow-node", "http://x/metrics"))


async def test_scrape_all_keeps_at_most_max_concurrency_requests_in_flight() -> None:
    in_flight, peak = 0, 0

    async def exporter(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, text="")

    async with httpx.AsyncClient(transport=httpx.MockTransport(exporter)) as http:
        targets = [DcgmTarget(f"n{i}", f"http://n{i}/metrics") for i in range(10)]
        sweep = await DcgmScraper(http, max_concurrency=3).scrape_all(targets)
    assert (peak, sweep.readings, sweep.failures) == (3, (), {})


async def test_a_thousand_gpus_scrape_in_one_sweep(clock: ManualClock) -> None:
    config = GpuSimConfig.uniform(MODEL, node_count=125, gpus_per_node=8)
    nodes = [GpuNodeSim(s.hostname, s.model, s.gpu_count, clock=clock) for s in config.nodes]
    transport = httpx.ASGITransport(app=build_fleet_app(nodes))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        targets = [DcgmTarget(n.hostname, f"{BASE}/nodes/{n.hostname}/metrics") for n in nodes]
        sweep = await DcgmScraper(http).scrape_all(targets)
    assert (len(sweep.readings), sweep.failures) == (1000, {})


async def test_a_hostname_the_fleet_lacks_is_a_device_io_error(clock: ManualClock) -> None:
    app = build_fleet_app([GpuNodeSim(HOST, MODEL, 1, clock=clock)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        agent = NodeAgentClient("gpu-node-404", f"{BASE}/nodes/gpu-node-404", http)
        with pytest.raises(DeviceIOError, match="unexpected HTTP 404"):
            await agent.list_gpus()
