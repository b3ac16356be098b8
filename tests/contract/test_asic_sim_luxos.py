"""Our LuxOS client against our simulated miners, over real TCP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hcp.adapters.devices import cgminer
from hcp.adapters.devices.cgminer import TcpTransport
from hcp.adapters.devices.errors import (
    CommandRejected,
    DeviceConnectionReset,
    DeviceIOError,
    DeviceTimeout,
    DeviceUnreachable,
    MalformedReply,
    SessionUnavailable,
)
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy, read_all
from hcp.adapters.devices.luxos_driver import LuxosMinerDriver
from hcp.domain.devices import AsicModel, AsicProfile
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.simulators.asic import (
    Addressing,
    AsicFleetSimulator,
    Faults,
    MinerSimConfig,
    uniform_fleet,
)
from hcp.simulators.asic.config import FleetSimConfig
from hcp.simulators.asic.server import serve_fleet

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
FAST = RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.02)


class FastForwardClock:
    """Simulated time for the miners: moves only when a test says so."""

    def __init__(self) -> None:
        self._now = datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FastForwardClock:
    return FastForwardClock()


@pytest.fixture
async def fleet(clock: FastForwardClock) -> AsyncIterator[AsicFleetSimulator]:
    config = uniform_fleet(MODEL, 2, addressing=Addressing.PORTS, first_port=0)
    async with AsicFleetSimulator(config, clock) as simulator:
        yield simulator


def client_of(fleet: AsicFleetSimulator, index: int = 0, timeout_s: float = 1.0) -> LuxosClient:
    host, port = fleet.addresses[index]
    return LuxosClient(host, port, timeout_s=timeout_s, retry=FAST, clock=fleet.clock)


# --- reads -----------------------------------------------------------------------------------


async def test_a_fresh_miner_reads_as_mining_at_its_stock_profile(
    fleet: AsicFleetSimulator,
) -> None:
    reading = await client_of(fleet).read()
    assert reading.state is MinerState.MINING and reading.mining
    assert reading.hashrate_ths == pytest.approx(200.0, rel=0.05)
    assert reading.power_w == pytest.approx(3_500.0, rel=0.03)
    assert reading.profile == "stock"
    assert reading.temperature_c == pytest.approx(70.0, abs=1.0)  # 25 °C ambient + 45 °C
    assert reading.healthy and reading.problems == ()
    assert reading.device == "{}:{}".format(*fleet.addresses[0])


async def test_replies_carry_cgminer_status_blocks_and_luxos_field_names(
    fleet: AsicFleetSimulator,
) -> None:
    client = client_of(fleet)
    summary = await client.summary()
    status = summary["STATUS"][0]
    assert set(status) == {"STATUS", "When", "Code", "Msg", "Description"}
    assert status["STATUS"] == "S" and status["Description"].startswith("LUXminer")
    assert {"GHS 5s", "GHS av", "Accepted", "Rejected", "Elapsed"} <= set(summary["SUMMARY"][0])
    assert set((await client.power())["POWER"][0]) == {"Watts", "PSU"}
    assert "LUXminer" in (await client.version())["VERSION"][0]
    assert (await client.stats())["STATS"][1]["rate_unit"] == "GH"


async def test_joined_commands_come_back_keyed_by_command(fleet: AsicFleetSimulator) -> None:
    replies = await client_of(fleet).joined("summary", "pools", "devs")
    assert set(replies) == {"summary", "pools", "devs"}
    assert len(replies["devs"]["DEVS"]) == 3
    assert replies["pools"]["POOLS"][0]["Status"] == "Alive"


async def test_an_unknown_command_is_refused_with_code_14(fleet: AsicFleetSimulator) -> None:
    with pytest.raises(CommandRejected) as refused:
        await client_of(fleet).command("bogus")
    assert refused.value.code == 14
    assert refused.value.reason == "Invalid command"


async def test_profiles_list_the_models_hashing_profiles(fleet: AsicFleetSimulator) -> None:
    profiles = await client_of(fleet).profiles()
    assert profiles == MODEL.profiles


# --- physics through the protocol ------------------------------------------------------------


async def test_sleep_drops_to_sleep_power_and_wakeup_ramps_back_over_wake_seconds(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    client = client_of(fleet)
    await client.curtail_sleep()
    asleep = await client.read()
    assert asleep.state is MinerState.SLEEPING
    assert asleep.hashrate_ths == 0.0
    assert asleep.power_w == pytest.approx(20.0, rel=0.03)

    await client.curtail_wakeup()
    clock.advance(60)  # half of the model's 120 s wake time
    waking = await client.read()
    assert waking.state is MinerState.WAKING
    assert waking.hashrate_ths == pytest.approx(100.0, rel=0.05)
    assert waking.power_w == pytest.approx(20 + 3_480 / 2, rel=0.03)

    clock.advance(61)
    awake = await client.read()
    assert awake.state is MinerState.MINING
    assert awake.hashrate_ths == pytest.approx(200.0, rel=0.05)


async def test_temperature_follows_power_with_a_lag(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    client = client_of(fleet)
    await client.curtail_sleep()
    clock.advance(90)  # one time constant: 1/e of the 45 °C rise is left
    cooling = await client.read()
    clock.advance(3_600)
    cold = await client.read()
    assert cooling.temperature_c == pytest.approx(25 + 45 / 2.718, abs=1.0)
    assert cold.temperature_c == pytest.approx(25.0, abs=0.5)


async def test_shares_accrue_in_proportion_to_hashrate(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    mining, sleeping = client_of(fleet, 0), client_of(fleet, 1)
    await sleeping.curtail_sleep()
    clock.advance(3_600)
    hashing, idle = await mining.read(), await sleeping.read()
    total = hashing.accepted_shares + hashing.rejected_shares
    assert total == pytest.approx(200 * 0.002 * 3_600, rel=0.02)  # 1440 shares
    assert 0 < hashing.rejected_shares < 0.01 * total
    assert idle.accepted_shares == 0


async def test_profileset_by_name_and_by_watts_changes_power(
    fleet: AsicFleetSimulator,
) -> None:
    client = client_of(fleet)
    assert await client.set_profile("eco") == "eco"
    eco = await client.read()
    assert eco.profile == "eco"
    assert eco.power_w == pytest.approx(2_500.0, rel=0.03)
    assert eco.hashrate_ths == pytest.approx(150.0, rel=0.05)

    assert await client.set_profile(watts=4_000) == "stock"  # highest profile within 4 kW
    assert (await client.read()).power_w == pytest.approx(3_500.0, rel=0.03)
    assert fleet.miners[0].profile.name == "stock"


async def test_an_unknown_profile_is_refused(fleet: AsicFleetSimulator) -> None:
    with pytest.raises(CommandRejected, match="Unknown profile"):
        await client_of(fleet).set_profile("overdrive")


async def test_atmset_switches_thermal_management(fleet: AsicFleetSimulator) -> None:
    client = client_of(fleet)
    await client.set_atm(True)
    assert fleet.miners[0].atm_enabled
    assert await client.atm_enabled()
    assert (await client.config())["CONFIG"][0]["IsAtmEnabled"] is True


async def test_profileset_is_refused_while_atm_is_on(fleet: AsicFleetSimulator) -> None:
    client = client_of(fleet)
    await client.set_atm(True)
    session = await client._session()
    with pytest.raises(CommandRejected, match="while ATM is enabled"):
        await client.command("profileset", session, "eco")
    assert fleet.miners[0].profile.name == "stock"


async def test_set_profile_turns_atm_off_first_when_it_is_on(fleet: AsicFleetSimulator) -> None:
    client = client_of(fleet)
    await client.set_atm(True)
    assert await client.set_profile("eco") == "eco"
    assert (await client.read()).profile == "eco"
    # ATM stays off: back on, it would move the profile away from the one asked for.
    assert not await client.atm_enabled()
    assert not fleet.miners[0].atm_enabled


async def test_the_driver_sets_profiles_on_miners_with_atm_on(fleet: AsicFleetSimulator) -> None:
    driver = LuxosMinerDriver(retry=FAST)
    address = "{}:{}".format(*fleet.addresses[1])
    await driver.client(address).set_atm(True)
    await driver.set_profile(address, "turbo")
    [reading] = await driver.read_all([address])
    assert isinstance(reading, AsicReading) and reading.profile == "turbo"
    await driver.close()


async def test_an_unknown_profile_is_still_refused_with_atm_on(fleet: AsicFleetSimulator) -> None:
    client = client_of(fleet)
    await client.set_atm(True)
    with pytest.raises(CommandRejected, match="Unknown profile"):
        await client.set_profile("overdrive")
    assert fleet.miners[0].profile.name == "stock"


# --- sessions --------------------------------------------------------------------------------


async def test_changing_commands_fail_without_a_valid_session(fleet: AsicFleetSimulator) -> None:
    client = client_of(fleet)
    with pytest.raises(CommandRejected, match="session"):
        await client.command("curtail", "not-a-session", "sleep")
    with pytest.raises(CommandRejected, match="session"):
        await client.command("profileset", "eco")
    assert fleet.miners[0].state is MinerState.MINING


async def test_the_client_logs_on_once_and_reuses_its_session(fleet: AsicFleetSimulator) -> None:
    client = client_of(fleet)
    await client.curtail_sleep()
    first = fleet.miners[0].sessions.active(fleet.clock.now())
    await client.set_profile("eco")
    await client.curtail_wakeup()
    assert first is not None
    assert fleet.miners[0].sessions.active(fleet.clock.now()) == first


async def test_only_one_session_at_a_time(fleet: AsicFleetSimulator) -> None:
    holder, other = client_of(fleet), client_of(fleet)
    await holder.curtail_sleep()
    with pytest.raises(SessionUnavailable):
        await other.curtail_wakeup()
    await holder.logoff()
    await other.curtail_wakeup()
    assert fleet.miners[0].state is MinerState.WAKING


async def test_an_expired_session_is_renewed_transparently(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    client = client_of(fleet)
    await client.curtail_sleep()
    first = fleet.miners[0].sessions.active(clock.now())
    clock.advance(61)  # sessions expire after 60 idle seconds
    assert fleet.miners[0].sessions.active(clock.now()) is None
    await client.curtail_wakeup()
    renewed = fleet.miners[0].sessions.active(clock.now())
    assert renewed is not None and renewed != first
    assert fleet.miners[0].state is MinerState.WAKING


async def test_an_expired_session_lets_another_client_in(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    await client_of(fleet).curtail_sleep()
    clock.advance(61)
    await client_of(fleet).curtail_wakeup()
    assert fleet.miners[0].state is MinerState.WAKING


class RecordingTransport:
    """TCP that keeps each request and the reply it got, both decoded."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._tcp = TcpTransport(timeout_s=1.0)

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        raw = await self._tcp.exchange(host, port, request)
        reply = cgminer.decode_reply(f"{host}:{port}", raw)
        self.exchanges.append((json.loads(request), reply))
        return raw


async def test_logoff_after_expiry_is_quiet(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    """LuxOS dropped the idle session: the miner refuses its logoff as an invalid session, the
    client takes that as given back (no error), and the miner is free for the next logon and
    otherwise as it was. A second logoff holds nothing and sends nothing."""
    recording, (host, port), miner = RecordingTransport(), fleet.addresses[0], fleet.miners[0]
    client = LuxosClient(host, port, retry=FAST, transport=recording, clock=fleet.clock)
    await client.curtail_sleep()
    expired = miner.sessions.active(clock.now())
    clock.advance(61)
    sent = len(recording.exchanges)
    await client.logoff()
    await client.logoff()  # nothing held: nothing to do
    [(request, reply)] = recording.exchanges[sent:]
    assert request == {"command": "logoff", "parameter": expired}
    status = reply["STATUS"][0]
    assert (status["STATUS"], status["Code"], status["Msg"]) == ("E", 403, "Invalid session id")
    assert miner.sessions.active(clock.now()) is None
    logon = await client_of(fleet).command("logon")  # another tool gets in at once
    assert logon["STATUS"][0]["Code"] == 316
    assert miner.sessions.active(clock.now()) == logon["SESSION"][0]["SessionID"] != expired
    assert miner.state is MinerState.SLEEPING and miner.profile.name == "stock"


async def test_session_idle_expiry_is_configurable(clock: FastForwardClock) -> None:
    config = FleetSimConfig(miners=(MinerSimConfig(MODEL, port=0, session_timeout_s=5.0),))
    async with AsicFleetSimulator(config, clock) as fleet:
        await client_of(fleet).curtail_sleep()
        clock.advance(6)
        await client_of(fleet).curtail_wakeup()  # a second client gets in after 5 s
    assert fleet.miners[0].state is MinerState.WAKING


# --- faults ----------------------------------------------------------------------------------


async def test_an_offline_miner_refuses_connections_until_it_is_back(
    fleet: AsicFleetSimulator,
) -> None:
    await fleet.set_faults(0, Faults(offline=True))
    with pytest.raises(DeviceUnreachable):
        await client_of(fleet).read()
    await fleet.set_faults(0, Faults())
    assert (await client_of(fleet).read()).healthy


async def test_a_dead_hashboard_costs_a_third_of_hashrate_and_is_reported(
    fleet: AsicFleetSimulator,
) -> None:
    await fleet.set_faults(0, Faults(dead_boards=1))
    reading = await client_of(fleet).read()
    assert reading.state is MinerState.MINING
    assert reading.hashrate_ths == pytest.approx(200 * 2 / 3, rel=0.05)
    assert reading.power_w == pytest.approx(20 + 3_480 * 2 / 3, rel=0.03)
    assert not reading.healthy
    assert "board 2 dead" in reading.problems
    assert any("of nominal" in p for p in reading.problems)


async def test_a_miner_with_every_board_dead_is_a_fault(fleet: AsicFleetSimulator) -> None:
    await fleet.set_faults(0, Faults(dead_boards=3))
    reading = await client_of(fleet).read()
    assert reading.state is MinerState.FAULT
    assert reading.hashrate_ths == 0.0
    assert reading.temperature_c is None


async def test_an_overheating_miner_runs_hot_and_is_reported(
    fleet: AsicFleetSimulator, clock: FastForwardClock
) -> None:
    await fleet.set_faults(0, Faults(overheating=True))
    clock.advance(900)
    reading = await client_of(fleet).read()
    assert reading.temperature_c is not None and reading.temperature_c > 90
    assert any(p.startswith("overheating") for p in reading.problems)


async def test_malformed_replies_raise_after_the_retries(fleet: AsicFleetSimulator) -> None:
    await fleet.set_faults(0, Faults(malformed_replies=True))
    with pytest.raises(MalformedReply):
        await client_of(fleet).read()


async def test_slow_replies_time_out_or_arrive_depending_on_the_timeout(
    fleet: AsicFleetSimulator,
) -> None:
    await fleet.set_faults(0, Faults(reply_delay_s=0.3))
    with pytest.raises(DeviceTimeout):
        await client_of(fleet, timeout_s=0.1).summary()
    assert (await client_of(fleet, timeout_s=2.0).read()).hashrate_ths > 0


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listener never accepts and whose queue is full: connecting hangs (the
    kernel drops the SYNs), as it does to a miner that lost power."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for held in (*fillers, listener):
        held.close()


async def test_a_connect_that_never_completes_times_out(unanswered_port: int) -> None:
    started = time.perf_counter()
    with pytest.raises(DeviceTimeout, match=r"within 0\.2 s"):
        await TcpTransport(timeout_s=0.2).exchange("127.0.0.1", unanswered_port, b"{}")
    assert 0.2 <= time.perf_counter() - started < 1.0


async def test_cancelling_an_exchange_while_it_connects_is_a_cancellation(
    unanswered_port: int,
) -> None:
    transport = TcpTransport(timeout_s=5.0)
    exchange = asyncio.ensure_future(transport.exchange("127.0.0.1", unanswered_port, b"{}"))
    await asyncio.sleep(0.1)
    exchange.cancel()
    with pytest.raises(asyncio.CancelledError):
        await exchange
    assert exchange.cancelled()  # not turned into a DeviceTimeout


async def test_a_cancel_beside_a_timer_that_fired_after_connecting_stays_a_cancel(
    fleet: AsicFleetSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer fires once connected but before the exchange resumes, and a cancel from
    outside lands in the same moment: the caller sees its cancel, not a timeout."""
    held: dict[str, asyncio.Task[bytes]] = {}
    made = cgminer._Exchange.connection_made

    def racing(self: cgminer._Exchange, transport: asyncio.BaseTransport) -> None:
        made(self, transport)
        self.expire(held["task"])
        held["task"].cancel()

    monkeypatch.setattr(cgminer._Exchange, "connection_made", racing)
    host, port = fleet.addresses[0]
    exchange = asyncio.ensure_future(TcpTransport(5.0).exchange(host, port, b"{}"))
    held["task"] = exchange
    with pytest.raises(asyncio.CancelledError):
        await exchange
    assert exchange.cancelled()


async def test_connection_resets_raise_a_typed_error(fleet: AsicFleetSimulator) -> None:
    await fleet.set_faults(0, Faults(reset_connections=True))
    with pytest.raises(DeviceConnectionReset):
        await client_of(fleet).summary()


async def test_faults_can_be_configured_per_miner_from_the_start(
    clock: FastForwardClock,
) -> None:
    faults = {0: Faults(offline=True), 1: Faults(dead_boards=1)}
    config = uniform_fleet(MODEL, 3, addressing=Addressing.PORTS, first_port=0, faults=faults)
    async with AsicFleetSimulator(config, clock) as fleet:
        clients = [client_of(fleet, i) for i in range(3)]
        offline, degraded, healthy = await read_all(clients)
    assert isinstance(offline, DeviceUnreachable)
    assert isinstance(degraded, AsicReading) and "board 2 dead" in degraded.problems
    assert isinstance(healthy, AsicReading) and healthy.healthy


# --- retries and concurrency -----------------------------------------------------------------


class FlakyTransport:
    """Resets the first `failures` exchanges, then behaves; records each try's start time."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries: list[float] = []
        self._tcp = TcpTransport(timeout_s=1.0)

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        self.tries.append(time.monotonic())
        if len(self.tries) <= self.failures:
            raise DeviceConnectionReset(f"{host}:{port}", "injected")
        return await self._tcp.exchange(host, port, request)


async def test_failed_exchanges_are_retried_with_exponential_backoff(
    fleet: AsicFleetSimulator,
) -> None:
    flaky = FlakyTransport(failures=2)
    retry = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=1.0)
    host, port = fleet.addresses[0]
    client = LuxosClient(host, port, retry=retry, transport=flaky)
    assert (await client.summary())["SUMMARY"]
    gaps = [b - a for a, b in zip(flaky.tries, flaky.tries[1:], strict=False)]
    assert len(flaky.tries) == 3
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # 0.05 s, then doubled


async def test_retries_stop_after_the_policys_attempts(fleet: AsicFleetSimulator) -> None:
    flaky = FlakyTransport(failures=5)
    host, port = fleet.addresses[0]
    client = LuxosClient(host, port, retry=RetryPolicy(3, 0.001, 0.001), transport=flaky)
    with pytest.raises(DeviceIOError):
        await client.summary()
    assert len(flaky.tries) == 3


class CountingTransport:
    """Counts exchanges in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self._tcp = TcpTransport(timeout_s=2.0)

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            return await self._tcp.exchange(host, port, request)
        finally:
            self.in_flight -= 1


async def test_a_shared_limiter_bounds_exchanges_in_flight_across_miners(
    clock: FastForwardClock,
) -> None:
    slow = {i: Faults(reply_delay_s=0.05) for i in range(8)}
    config = uniform_fleet(MODEL, 8, addressing=Addressing.PORTS, first_port=0, faults=slow)
    limiter, counting = asyncio.Semaphore(3), CountingTransport()
    async with AsicFleetSimulator(config, clock) as fleet:
        clients = [
            LuxosClient(host, port, limiter=limiter, transport=counting)
            for host, port in fleet.addresses
        ]
        readings = await read_all(clients)
    assert all(isinstance(r, AsicReading) for r in readings)
    assert counting.most == 3


# --- scale -----------------------------------------------------------------------------------


async def _summaries_from(count: int, clock: FastForwardClock) -> float:
    # A random block of 127/8 per run, so a second test run on the same machine cannot collide.
    first_ip = f"127.{random.randint(64, 250)}.0.1"
    config = uniform_fleet(MODEL, count, first_ip=first_ip)
    limiter = asyncio.Semaphore(256)
    async with AsicFleetSimulator(config, clock) as fleet:
        clients = [LuxosClient(h, p, limiter=limiter, timeout_s=10.0) for h, p in fleet.addresses]
        started = time.monotonic()
        replies = await asyncio.gather(*(c.summary() for c in clients))
        elapsed = time.monotonic() - started
    assert all(r["SUMMARY"][0]["GHS 5s"] > 0 for r in replies)
    assert len({c.host for c in clients}) == count  # each miner on its own loopback IP
    return elapsed


async def test_a_thousand_miners_in_one_process_each_answer_a_summary(
    clock: FastForwardClock,
) -> None:
    assert await _summaries_from(1_000, clock) < 5.0


@pytest.mark.slow
async def test_ten_thousand_miners_in_one_process_each_answer_a_summary(
    clock: FastForwardClock,
) -> None:
    assert await _summaries_from(10_000, clock) < 60.0


# --- the process entry point -----------------------------------------------------------------


async def test_serve_fleet_serves_until_cancelled() -> None:
    host = f"127.{random.randint(64, 250)}.{random.randint(0, 250)}.1"
    config = FleetSimConfig(miners=(MinerSimConfig(MODEL, host=host),))
    serving = asyncio.create_task(serve_fleet(config))
    client = LuxosClient(host, retry=RetryPolicy(attempts=50, first_delay_s=0.02, max_delay_s=0.02))
    assert (await client.read()).state is MinerState.MINING
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    with pytest.raises(DeviceUnreachable):
        await LuxosClient(host, retry=FAST).read()


async def test_serve_fleet_reports_readiness_once_every_miner_listens() -> None:
    config = uniform_fleet(MODEL, 2, addressing=Addressing.PORTS, first_port=0)
    ready: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        serve_fleet(config, on_ready=lambda fleet: ready.set_result(fleet.addresses))
    )
    addresses = await asyncio.wait_for(ready, timeout=10)
    assert all(port > 0 for _, port in addresses)  # the bound ports, not the configured 0
    assert (await LuxosClient(*addresses[1], retry=FAST).read()).state is MinerState.MINING
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving


async def test_a_miner_that_cannot_listen_stops_the_whole_fleet_from_starting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        miners = (MinerSimConfig(MODEL, port=0), MinerSimConfig(MODEL, port=port))
        fleet = AsicFleetSimulator(FleetSimConfig(miners=miners))
        with pytest.raises(OSError, match="address already in use"):
            await fleet.start()
    first = fleet.addresses[0]
    with pytest.raises(DeviceUnreachable):  # the miner that had started was stopped again
        await LuxosClient(*first, retry=FAST).read()


# --- the wire --------------------------------------------------------------------------------


def _send_and_read(port: int, *chunks: bytes) -> tuple[bytes, str]:
    """Send `chunks` to a miner on 127.0.0.1 (as separate segments), then read until it hangs
    up; what came, and how it ended ("eof" or the error's name)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            with contextlib.suppress(OSError):  # the miner may hang up while we still send
                sock.sendall(chunk)
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except OSError as error:
            return received, type(error).__name__
        return received, "eof"


async def test_a_request_cut_at_the_size_limit_still_gets_its_reply(
    fleet: AsicFleetSimulator,
) -> None:
    """The miner answers once MAX_REQUEST_BYTES have come, while the client still sends; it
    then hangs up with input unread, which resets the connection. The reply (held corked for
    the close) must leave before that, as a miner's would."""
    _, port = fleet.addresses[0]
    oversized = b'{"command":"' + b"x" * 300_000
    for _ in range(5):
        received, _ = await asyncio.to_thread(_send_and_read, port, oversized)
        assert received.endswith(b"\x00") and b'"STATUS":"E"' in received


async def test_bytes_after_the_request_do_not_cost_the_reply(fleet: AsicFleetSimulator) -> None:
    _, port = fleet.addresses[0]
    for _ in range(20):
        received, how = await asyncio.to_thread(
            _send_and_read, port, b'{"command":"version"}', b"\n"
        )
        assert received.endswith(b"\x00") and b"LUXminer" in received, (received, how)
