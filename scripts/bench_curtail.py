"""Curtail N simulated miners over real TCP and confirm it by telemetry. Prints one JSON object.

What one run measures (wall time from the first command to the last confirmation):

Every run: the dispatcher plans, sends `curtail sleep` to every miner (LuxOS: a logon, then the
command), then polls (`read`: summary+power+config+devs+tempctrl) until telemetry confirms every
miner asleep. The miners were polled once beforehand, as the controller always has the last
tick's telemetry; that poll is not timed, and the timed part waits until the TIME_WAIT
sockets it (or an earlier run) left on the simulated miners' side are gone (`drain_time_wait`;
each run's JSON gives the wait and the count at its start). Miners are simulated S21s, each
on its own loopback IP, port 4028.

- `curtail_10k_seconds`: 10,000 miners, run as the 100,000 are: the simulator in a child
  process (real miners are other machines), the dispatcher in this one with its sockets in
  `--io-workers` device I/O worker processes (`HCP_DEVICE_IO_WORKERS`).
- `curtail_10k_one_process_seconds`: the same 10,000 with the simulator, the dispatcher and
  its sockets all in ONE process and event loop: the miners' CPU and the controller's on one
  core.
- `curtail_10k_split_process_seconds`: the simulator in a child process, the dispatcher's
  sockets in its own process (no workers), and the CPU each side spent: the server-vs-client
  split of the one-process run.
- `curtail_100k_seconds`: 100,000 miners. One process cannot hold them: a listening socket is a
  file descriptor and the hard open-file limit is read below; so the simulator runs in as many
  child processes as the limit needs, the dispatcher in this one. Null, with
  `curtail_100k_note`, when that is not possible here.
- `with_reply_delay`: 2,000 miners that each take 20 ms to answer (as firmware and a network do;
  loopback does not), curtailed by the dispatcher and, over 100 of them, by the naive loop.
- `naive_baseline`: one miner at a time (logon, curtail, read), no concurrency, over the first
  500 miners of the one-process fleet (woken again first), extrapolated linearly: what a
  straightforward loop would take.

Where the time goes: per run, the wall time of each phase (plan, send, confirm polls, confirm),
the count and mean latency of each exchange kind (logon, curtail, read), CPU seconds, and the
cost of a minimal TCP exchange (connect, empty request, error reply, close).

    .venv/bin/python scripts/bench_curtail.py [--miners 10000] [--big 100000] [--no-big]
        [--parts workers,one,delay,split,big] [--io-workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hcp.adapters.devices.cgminer import TcpTransport, Transport
from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.io_workers import WorkerTransport
from hcp.adapters.devices.luxos import LuxosClient
from hcp.adapters.devices.luxos_driver import LuxosMinerDriver
from hcp.aio import run_on_uvloop
from hcp.dispatch import AsicTarget, MinerView, OutcomeStatus, plan_commands
from hcp.domain.catalog import asic_model
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.gc_tuning import settle_heap
from hcp.services.dispatcher import Dispatcher, InMemoryCommandLog
from hcp.simulators.asic import AsicFleetSimulator, Faults, loopback_hosts, uniform_fleet

MODEL = asic_model("S21")
TARGETS_S = {"curtail_10k_seconds": 5.0, "curtail_100k_seconds": 30.0}
CURTAIL_ALL = AsicTarget({MODEL.name: {}}, reason="bench: curtail every miner")
HEADROOM_FDS = 4_096
"""File descriptors a simulator process keeps for connections and the rest of the program."""
MAX_CONFIRM_POLLS = 5
FIRST_IP = {
    "in_process": "127.64.0.1",
    "delayed": "127.80.0.1",
    "split": "127.96.0.1",
    "workers": "127.112.0.1",
    "big": "127.128.0.1",
    "big_without_workers": "127.192.0.1",
}


# --- measuring -------------------------------------------------------------------------------


class TimedTransport:
    """A real transport (TCP here, or through device I/O worker processes), timing each
    exchange by the command it carries."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.latencies_s: dict[str, list[float]] = defaultdict(list)

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        kind = _kind(request)
        started = time.perf_counter()
        try:
            return await self._inner.exchange(host, port, request)
        finally:
            self.latencies_s[kind].append(time.perf_counter() - started)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            kind: {
                "count": len(times),
                "mean_ms": round(1e3 * statistics.fmean(times), 2),
                "p99_ms": round(1e3 * sorted(times)[int(0.99 * (len(times) - 1))], 2),
            }
            for kind, times in sorted(self.latencies_s.items())
        }


def _kind(request: bytes) -> str:
    """The exchange's kind from the request `encode_request` wrote (`{"command":"..."`). No
    JSON parse: this runs inside the measured client CPU, 300,000 times at 100,000 miners."""
    command = request.partition(b'"command":"')[2].partition(b'"')[0]
    if b"+" in command:
        return "read"
    return command.decode()


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    """One timed curtailment: phases in wall seconds, exchanges, CPU."""

    miners: int
    phases_s: dict[str, float] = field(default_factory=dict)
    confirmed: int = 0
    polls: int = 0
    errors: int = 0
    cpu_s: float = 0.0
    exchanges: dict[str, dict[str, float]] = field(default_factory=dict)
    time_wait: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return round(sum(self.phases_s.values()), 3)

    def as_json(self) -> dict[str, Any]:
        wall = self.seconds
        return {
            "miners": self.miners,
            "seconds": wall,
            "confirmed": self.confirmed,
            "send_errors": self.errors,
            "confirm_polls": self.polls,
            "phases_s": {k: round(v, 3) for k, v in self.phases_s.items()},
            "exchanges": self.exchanges,
            "cpu_s": round(self.cpu_s, 2),
            "cpu_per_wall": round(self.cpu_s / wall, 2) if wall else None,
            "time_wait_sockets": self.time_wait,
        }


# --- the curtailment -------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def timed_driver(
    concurrency: int, timeout_s: float, inner: Transport | None = None
) -> tuple[LuxosMinerDriver, TimedTransport]:
    transport = TimedTransport(inner or TcpTransport(timeout_s))
    driver = LuxosMinerDriver(timeout_s=timeout_s, max_in_flight=concurrency, transport=transport)
    return driver, transport


async def curtail(
    addresses: Sequence[str],
    concurrency: int,
    timeout_s: float,
    on_start: Callable[[], object] = lambda: None,
    inner: Transport | None = None,
) -> Run:
    """A curtailment through a new driver (see `curtail_with`)."""
    driver, transport = timed_driver(concurrency, timeout_s, inner)
    return await curtail_with(driver, transport, addresses, concurrency, on_start)


async def curtail_with(
    driver: LuxosMinerDriver,
    transport: TimedTransport,
    addresses: Sequence[str],
    concurrency: int,
    on_start: Callable[[], object] = lambda: None,
) -> Run:
    """Poll once (untimed), then time: plan + send sleep to all, poll until all confirmed.

    `on_start` runs just before the timed part (it marks the simulator processes' CPU)."""
    log = InMemoryCommandLog(len(addresses))
    dispatcher = Dispatcher(driver, log, concurrency=concurrency)
    polled = await driver.read_all(addresses)
    views = [
        _view(i, address, r) for i, (address, r) in enumerate(zip(addresses, polled, strict=True))
    ]
    transport.latencies_s.clear()
    waited_s = await drain_time_wait()
    settle_heap()  # as `hcp up` does after start-up
    run = Run(len(addresses))
    run.time_wait = {"waited_s": waited_s, "at_start": time_wait_sockets()}
    on_start()
    cpu_before = cpu_s()
    report = await _timed(run, "send", dispatcher.tick(CURTAIL_ALL, views, now()))
    run.errors = len(report.errors)
    while dispatcher.pending() and run.polls < MAX_CONFIRM_POLLS:
        await _confirm_once(run, driver, dispatcher)
    run.cpu_s = cpu_s() - cpu_before
    outcomes = (record.outcome for record in log.recent(len(addresses)))
    run.confirmed = sum(o is not None and o.status is OutcomeStatus.CONFIRMED for o in outcomes)
    run.exchanges = transport.summary()
    run.phases_s.update(_pure_costs(views))
    run.phases_s["send"] -= run.phases_s["plan (pure)"]
    gc.unfreeze()
    return run


TIME_WAIT_SETTLED = 1_000
"""TIME_WAIT sockets a timed run may start with (see `drain_time_wait`)."""
TIME_WAIT_PATIENCE_S = 75.0
"""Linux holds a TIME_WAIT socket 60 s."""


def time_wait_sockets() -> int | None:
    """The kernel's TIME_WAIT sockets now (Linux: /proc/net/sockstat), else None."""
    try:
        text = Path("/proc/net/sockstat").read_text()
    except OSError:
        return None
    fields = next((line.split() for line in text.splitlines() if line.startswith("TCP:")), [])
    return int(fields[fields.index("tw") + 1]) if "tw" in fields else None


async def drain_time_wait() -> float:
    """Wait (up to TIME_WAIT_PATIENCE_S) until the TIME_WAIT sockets left by what ran before
    are gone; the seconds waited.

    Why: the simulated miners close first, so each exchange leaves a TIME_WAIT socket on the
    miner's side for 60 s. On a site those are on 100,000 miners; here they all sit in this
    host's kernel, and a run that starts with the 100,000 of the untimed poll (or the
    300,000 of an earlier run) took 10-30 % more CPU than one started with none (2026-12-08,
    alternated). So each timed run starts as a site's controller would: with none of them.
    The ones the run makes itself stay in it."""
    started = time.perf_counter()
    while time.perf_counter() - started < TIME_WAIT_PATIENCE_S:
        count = time_wait_sockets()
        if count is None or count <= TIME_WAIT_SETTLED:
            break
        await asyncio.sleep(0.5)
    return round(time.perf_counter() - started, 1)


async def _confirm_once(run: Run, driver: LuxosMinerDriver, dispatcher: Dispatcher) -> None:
    in_flight = [command.address for command in dispatcher.pending()]
    polled = await _timed(run, "confirm polls", driver.read_all(in_flight))
    readings = [r for r in polled if isinstance(r, AsicReading)]
    started = time.perf_counter()
    await dispatcher.confirm(readings, now())
    run.phases_s["confirm (ledger)"] = run.phases_s.get("confirm (ledger)", 0.0)
    run.phases_s["confirm (ledger)"] += time.perf_counter() - started
    run.polls += 1


async def _timed(run: Run, phase: str, work: Awaitable[Any]) -> Any:
    started = time.perf_counter()
    result = await work
    run.phases_s[phase] = run.phases_s.get(phase, 0.0) + time.perf_counter() - started
    return result


def _pure_costs(views: list[MinerView]) -> dict[str, float]:
    """The plan's cost, measured apart on the same views (the tick ran it inside `send`)."""
    started = time.perf_counter()
    plan_commands(CURTAIL_ALL, views, now())
    return {"plan (pure)": time.perf_counter() - started}


def _view(index: int, address: str, polled: AsicReading | DeviceError) -> MinerView:
    reading = polled if isinstance(polled, AsicReading) else None
    return MinerView(f"asic-{index:06d}", MODEL, address, reading)


async def minimal_exchanges(addresses: Sequence[str], concurrency: int) -> dict[str, float]:
    """Connect, send nothing, take the miner's error reply, close: the TCP floor per exchange."""
    limiter = asyncio.Semaphore(concurrency)

    async def one(address: str) -> None:
        host, _, port = address.rpartition(":")
        async with limiter:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write_eof()
            await reader.read()
            writer.close()
            await writer.wait_closed()

    started, cpu_before = time.perf_counter(), cpu_s()
    await asyncio.gather(*(one(a) for a in addresses))
    wall = time.perf_counter() - started
    return {
        "exchanges": len(addresses),
        "seconds": round(wall, 3),
        "per_exchange_us": round(1e6 * wall / len(addresses), 1),
        "cpu_per_exchange_us": round(1e6 * (cpu_s() - cpu_before) / len(addresses), 1),
    }


async def naive_baseline(
    fleet: AsicFleetSimulator, count: int, scale_to: Sequence[int]
) -> dict[str, Any]:
    """One miner at a time over the fleet's first `count` miners (woken again first, untimed):
    a fresh client logs on, curtails, reads back. Extrapolated linearly."""
    for miner in fleet.miners[:count]:
        miner.wake(fleet.clock.now())
    started, cpu_before = time.perf_counter(), cpu_s()
    asleep = 0
    for host, port in fleet.addresses[:count]:
        client = LuxosClient(host, port)
        await client.curtail_sleep()
        asleep += (await client.read()).state is MinerState.SLEEPING
    wall = time.perf_counter() - started
    return {
        "label": f"naive: sequential, one miner at a time, first {count} miners, extrapolated",
        "miners_measured": count,
        "confirmed": asleep,
        "seconds_measured": round(wall, 3),
        "cpu_s_measured": round(cpu_s() - cpu_before, 3),
        **{f"extrapolated_{n // 1000}k_seconds": round(wall * n / count, 1) for n in scale_to if n},
    }


# --- where the miners live -------------------------------------------------------------------


def addresses_from(first_ip: str, count: int) -> list[str]:
    return [f"{host}:4028" for host in loopback_hosts(first_ip, count)]


async def in_process(args: argparse.Namespace) -> dict[str, Any]:
    """Simulator and dispatcher in this process and event loop; then, on the same fleet, the
    minimal TCP exchange and the naive baseline."""
    config = uniform_fleet(MODEL, args.miners, first_ip=FIRST_IP["in_process"])
    async with AsicFleetSimulator(config) as fleet:
        addresses = [f"{host}:{port}" for host, port in fleet.addresses]
        driver, transport = timed_driver(args.concurrency, args.timeout)
        run = await curtail_with(driver, transport, addresses, args.concurrency)
        minimal = await minimal_exchanges(addresses, args.concurrency)
        # Give the sessions of the baseline's miners back, so its fresh clients can log on.
        await asyncio.gather(*(driver.client(a).logoff() for a in addresses[: args.baseline]))
        naive = await naive_baseline(fleet, args.baseline, [args.miners, args.big])
    return {**run.as_json(), "minimal_tcp_exchange": minimal, "naive_baseline": naive}


async def with_reply_delay(args: argparse.Namespace) -> dict[str, Any]:
    """The same curtailment and naive loop when every exchange waits `--delay-ms` at the miner
    (firmware and network time, which loopback lacks): what the concurrency is for."""
    delay = Faults(reply_delay_s=args.delay_ms / 1000)
    count = args.delay_miners
    faults = dict.fromkeys(range(count), delay)
    config = uniform_fleet(MODEL, count, first_ip=FIRST_IP["delayed"], faults=faults)
    async with AsicFleetSimulator(config) as fleet:
        addresses = [f"{host}:{port}" for host, port in fleet.addresses]
        driver, transport = timed_driver(args.concurrency, args.timeout)
        run = await curtail_with(driver, transport, addresses, args.concurrency)
        naive_count = min(count, args.delay_baseline)
        await asyncio.gather(*(driver.client(a).logoff() for a in addresses[:naive_count]))
        naive = await naive_baseline(fleet, naive_count, [count, args.miners])
    return {"reply_delay_ms": args.delay_ms, "dispatcher": run.as_json(), "naive": naive}


def serve_slice(first_ip: str, count: int, conn: Connection) -> None:
    """Child process: serve `count` miners from `first_ip`; report CPU between mark and stop."""

    async def main() -> None:
        async with AsicFleetSimulator(uniform_fleet(MODEL, count, first_ip=first_ip)):
            settle_heap()  # as `hcp sim asic` does
            conn.send("ready")
            marked = cpu_s()
            while (message := await asyncio.to_thread(conn.recv)) != "stop":
                marked = cpu_s() if message == "mark" else marked
                conn.send("marked")
            conn.send(cpu_s() - marked)

    run_on_uvloop(main())


@dataclass
class Children:
    """Simulator processes and the pipes that drive them."""

    processes: Sequence[multiprocessing.process.BaseProcess]
    pipes: Sequence[Connection]

    def broadcast(self, message: str) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(message)
        return [pipe.recv() for pipe in self.pipes]

    def stop(self) -> float:
        """Stop every child; the CPU seconds they spent since the last mark."""
        spent = sum(self.broadcast("stop"))
        for process in self.processes:
            process.join(timeout=60)
        return float(spent)


def start_children(first_ip: str, count: int, per_process: int) -> Children:
    context = multiprocessing.get_context("spawn")
    hosts = list(loopback_hosts(first_ip, count))
    processes, pipes = [], []
    for start in range(0, count, per_process):
        ours, theirs = context.Pipe()
        chunk = min(per_process, count - start)
        process = context.Process(target=serve_slice, args=(hosts[start], chunk, theirs))
        process.start()
        processes.append(process)
        pipes.append(ours)
    for pipe in pipes:
        if not pipe.poll(600) or pipe.recv() != "ready":
            raise RuntimeError("a simulator process did not start")
    return Children(processes, pipes)


async def split_process(
    count: int,
    per_process: int,
    concurrency: int,
    timeout_s: float,
    first_ip: str,
    io_workers: int = 0,
) -> dict[str, Any]:
    """Simulator in child processes (as many as the open-file limit needs), dispatcher here;
    with `io_workers`, the dispatcher's sockets in that many device I/O worker processes."""
    children = await asyncio.to_thread(start_children, first_ip, count, per_process)
    pool = WorkerTransport(io_workers, timeout_s) if io_workers else None
    workers_cpu: dict[int, float] = {}

    def mark() -> None:
        children.broadcast("mark")
        workers_cpu.update({pid: process_cpu_s(pid) for pid in pool.pids} if pool else {})

    try:
        if pool is not None:
            await pool.start()
        addresses = addresses_from(first_ip, count)
        run = await curtail(addresses, concurrency, timeout_s, mark, pool)
        # A worker replaced during the run took its CPU figure with it: it is left out of the
        # sum, and the run says how many were lost.
        live = pool.pids if pool else []
        io_cpu_s = [process_cpu_s(p) - before for p, before in workers_cpu.items() if p in live]
        lost_workers = len(workers_cpu) - len(io_cpu_s)
    finally:
        if pool is not None:
            await pool.close()
        server_cpu_s = children.stop()
    cpu_split = {"dispatcher_and_client": round(run.cpu_s, 2)}
    found = run.as_json()
    if pool is not None:
        cpu_split["device_io_workers"] = round(sum(io_cpu_s), 2)
        found["cpu_per_wall"] = round((run.cpu_s + sum(io_cpu_s)) / run.seconds, 2)
        found["device_io_workers_lost"] = lost_workers
    cpu_split["simulated_miners"] = round(server_cpu_s, 2)
    return {
        **found,
        "simulator_processes": len(children.processes),
        "device_io_workers": io_workers,
        "cpu_split_s": cpu_split,
        "idle_machine_floor_s": idle_floor_s([run.cpu_s, *io_cpu_s], server_cpu_s),
    }


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_floor_s(client_cpu_s: Sequence[float], server_cpu_s: float) -> float:
    """The least wall time the measured CPU allows on this machine with nothing else running:
    each client process (the dispatcher, any device I/O workers) is one thread, and both sides
    share the cores."""
    cores = os.cpu_count() or 1
    return round(max(*client_cpu_s, (sum(client_cpu_s) + server_cpu_s) / cores), 2)


# --- the run ---------------------------------------------------------------------------------


def nofile_limits() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def per_process_capacity() -> int:
    """Miners one simulator process can serve under the hard open-file limit."""
    _, hard = nofile_limits()
    return 1_000_000 if hard == resource.RLIM_INFINITY else max(0, hard - HEADROOM_FDS)


async def big_run(
    count: int, concurrency: int, timeout_s: float, io_workers: int
) -> dict[str, Any]:
    """100k: what stops it, or how long it took; with the dispatcher's sockets in `io_workers`
    device I/O worker processes, then (for comparison) all in the dispatcher's process."""
    capacity = per_process_capacity()
    _, hard = nofile_limits()
    note = (
        f"one process cannot listen on {count:,} sockets: hard RLIMIT_NOFILE is {hard:,} "
        f"(ulimit -Hn), so the simulator runs in {math.ceil(count / capacity)} child processes "
        f"of <= {capacity:,} miners, the dispatcher in the parent, all on {os.cpu_count()} cores"
    )
    result: dict[str, Any] = {}
    if io_workers:
        # The comparison runs first, on other addresses: the run measured for the target then
        # comes after its 300,000 closed connections, not the other way round.
        ip = FIRST_IP["big_without_workers"]
        try:
            alone = await split_process(count, capacity, concurrency, timeout_s, ip)
            result["curtail_100k_without_io_workers_seconds"] = alone["seconds"]
            result["curtail_100k_without_io_workers"] = alone
        except (OSError, RuntimeError) as error:
            result["curtail_100k_without_io_workers_error"] = str(error)
        note += f"; the dispatcher's sockets in {io_workers} device I/O worker processes"
    ip = FIRST_IP["big"]
    try:
        found = await split_process(count, capacity, concurrency, timeout_s, ip, io_workers)
    except (OSError, RuntimeError) as error:
        failed = {"curtail_100k_seconds": None, "curtail_100k_note": f"{note}; failed: {error}"}
        return {**failed, **result}
    complete = found["confirmed"] == count
    return {
        "curtail_100k_seconds": found["seconds"] if complete else None,
        "curtail_100k_note": note if complete else f"{note}; only {found['confirmed']} confirmed",
        "curtail_100k": found,
        **result,
    }


def machine() -> dict[str, Any]:
    soft, hard = nofile_limits()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "nofile_soft_hard": [soft, hard],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every part asked for in `--parts`, in one JSON object."""
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"machine": machine(), "targets_s": TARGETS_S}
    result["concurrency"] = args.concurrency
    result["curtail_10k_seconds"] = None
    if "workers" in parts:
        # The configuration of the 100k run: the simulator in a child process, the dispatcher
        # here with its sockets in device I/O workers. The headline figure.
        ip = FIRST_IP["workers"]
        found = await split_process(
            args.miners, args.miners, args.concurrency, args.timeout, ip, args.io_workers
        )
        complete = found["confirmed"] == args.miners
        result["curtail_10k_seconds"] = found["seconds"] if complete else None
        result["curtail_10k_configuration"] = (
            f"simulator in a child process, the dispatcher here with {args.io_workers} device "
            "I/O worker processes (as the 100k run); before 2026-12-07 23:30 UTC this key "
            "measured the one-process run, now curtail_10k_one_process_seconds"
        )
        result["curtail_10k"] = found
    if "one" in parts:
        one = await in_process(args)
        result["naive_baseline"] = one.pop("naive_baseline")
        result["curtail_10k_one_process_seconds"] = one["seconds"]
        result["curtail_10k_one_process"] = one
    if "delay" in parts:
        result["with_reply_delay"] = await with_reply_delay(args)
    if "split" in parts:
        ip = FIRST_IP["split"]
        split = await split_process(args.miners, args.miners, args.concurrency, args.timeout, ip)
        result["curtail_10k_split_process_seconds"] = split["seconds"]
        result["curtail_10k_split_process"] = split
    result["curtail_100k_seconds"], result["curtail_100k_note"] = None, "not run"
    if "big" in parts and args.big:
        result.update(await big_run(args.big, args.concurrency, args.timeout, args.io_workers))
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--no-big", dest="big", action="store_const", const=0)
    parser.add_argument("--parts", default="workers,one,delay,split,big", help="comma-separated")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="reply delay, 'delay' part")
    parser.add_argument("--delay-miners", type=int, default=2_000)
    parser.add_argument("--delay-baseline", type=int, default=100)
    parser.add_argument("--baseline", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=5.0, help="per exchange, seconds")
    parser.add_argument(
        "--io-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="device I/O worker processes for the 'workers' and 'big' parts (0: none, sockets "
        "in the dispatcher)",
    )
    args = parser.parse_args()
    found = run_on_uvloop(bench(args))
    json.dump(found, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
