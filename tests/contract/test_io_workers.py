"""`WorkerTransport`: CGMiner exchanges run by worker processes, against simulated miners over
real TCP. The caller must not be able to tell it from `TcpTransport`, except by its CPU."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hcp.adapters.devices import io_workers
from hcp.adapters.devices.cgminer import TcpTransport, encode_request
from hcp.adapters.devices.errors import (
    DeviceConnectionReset,
    DeviceIOError,
    DeviceTimeout,
    DeviceUnreachable,
)
from hcp.adapters.devices.io_workers import WorkerTransport
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy
from hcp.adapters.devices.luxos_driver import LuxosMinerDriver
from hcp.aio import run_on_uvloop
from hcp.domain.catalog import asic_model
from hcp.domain.telemetry import MinerState
from hcp.simulators.asic import Addressing, AsicFleetSimulator, Faults, uniform_fleet

ONCE = RetryPolicy(attempts=1)


@pytest.fixture
async def fleet() -> AsyncIterator[AsicFleetSimulator]:
    config = uniform_fleet(asic_model("S21"), 40, addressing=Addressing.PORTS, first_port=0)
    async with AsicFleetSimulator(config) as simulator:
        yield simulator


@pytest.fixture
async def workers() -> AsyncIterator[WorkerTransport]:
    transport = WorkerTransport(2, timeout_s=0.5)
    await transport.start()
    yield transport
    await transport.close()


async def test_a_reply_is_the_bytes_the_miner_sent(
    fleet: AsicFleetSimulator, workers: WorkerTransport
) -> None:
    host, port = fleet.addresses[0]
    request = encode_request("version")
    direct = await TcpTransport(0.5).exchange(host, port, request)
    assert await workers.exchange(host, port, request) == direct
    assert direct.endswith(b"\x00") and b"LUXminer" in direct


async def test_a_driver_over_workers_curtails_and_reads_the_whole_fleet(
    fleet: AsicFleetSimulator, workers: WorkerTransport
) -> None:
    driver = LuxosMinerDriver(timeout_s=0.5, transport=workers)
    addresses = [f"{host}:{port}" for host, port in fleet.addresses]
    await asyncio.gather(*(driver.sleep(address) for address in addresses))
    readings = await driver.read_all(addresses)
    assert [getattr(r, "state", r) for r in readings] == [MinerState.SLEEPING] * len(addresses)
    assert {miner.state for miner in fleet.miners} == {MinerState.SLEEPING}
    assert workers.exchanges == 2 * len(addresses) + len(addresses)  # logon + sleep, read
    await driver.close()  # logs off every miner through the workers


async def test_errors_keep_their_types_and_name_the_device(
    fleet: AsicFleetSimulator, workers: WorkerTransport
) -> None:
    await fleet.set_faults(0, Faults(offline=True))
    await fleet.set_faults(1, Faults(reply_delay_s=2.0))
    await fleet.set_faults(2, Faults(reset_connections=True))
    request = encode_request("summary")
    expected = [DeviceUnreachable, DeviceTimeout, DeviceConnectionReset]
    for (host, port), kind in zip(fleet.addresses, expected, strict=False):
        with pytest.raises(kind, match=f"^{host}:{port}: "):
            await workers.exchange(host, port, request)


async def test_a_dead_worker_fails_its_exchanges_and_is_replaced(
    fleet: AsicFleetSimulator,
) -> None:
    await fleet.set_faults(0, Faults(reply_delay_s=1.0))
    transport = WorkerTransport(1, timeout_s=3.0)
    await transport.start()
    try:
        (first,) = transport.pids
        host, port = fleet.addresses[0]
        stuck = asyncio.ensure_future(transport.exchange(host, port, encode_request("summary")))
        await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(DeviceUnreachable, match=f"{host}:{port}: .*worker exited"):
            await stuck
        await _until(lambda: bool(transport.pids) and transport.pids != [first])
        client = LuxosClient(*fleet.addresses[1], transport=transport, retry=ONCE)
        assert (await client.read()).state is MinerState.MINING
    finally:
        await transport.close()


class Recorder:
    """A TCP server that writes down each request and never answers: the caller decides when
    the exchange ends, and the server sees when its connection closes."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()
        self.port = 0

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.read(1024))
        await reader.read()  # until the client hangs up
        self.closed.set()
        writer.close()


async def test_an_exchange_cancelled_before_it_left_is_never_sent(
    workers: WorkerTransport,
) -> None:
    async with Recorder() as miner:
        exchange = asyncio.ensure_future(workers.exchange("127.0.0.1", miner.port, b"{}"))
        await asyncio.sleep(0)  # queued for the workers, not yet sent
        exchange.cancel()
        with pytest.raises(asyncio.CancelledError):
            await exchange
        sent = asyncio.ensure_future(workers.exchange("127.0.0.1", miner.port, b"[]"))
        await asyncio.sleep(0.3)
        assert miner.requests == [b"[]"]
        sent.cancel()


async def test_an_exchange_cancelled_in_flight_is_hung_up_in_the_worker() -> None:
    patient = WorkerTransport(1, timeout_s=10.0)
    await patient.start()
    try:
        async with Recorder() as miner:
            exchange = asyncio.ensure_future(patient.exchange("127.0.0.1", miner.port, b"{}"))
            await _until(lambda: miner.requests == [b"{}"])
            exchange.cancel()
            await asyncio.wait_for(miner.closed.wait(), 2)  # long before the 10 s timeout
    finally:
        await patient.close()


HELLO_THEN_EXIT = (
    "import pickle, socket, struct, sys; s = socket.socket(fileno=int(sys.argv[1])); "
    "body = pickle.dumps([]); s.sendall(struct.pack('>I', len(body)) + body)"
)


async def test_workers_that_die_as_they_start_never_hold_an_exchange(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers that say they are ready and exit at once, and so does every replacement: an
    exchange fails as unreachable, whichever way the deaths and the start interleave."""
    popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def hello_then_exit(args: list[str], **options: Any) -> subprocess.Popen[bytes]:
        started.append(popen([sys.executable, "-c", HELLO_THEN_EXIT, *args[3:]], **options))
        return started[-1]

    monkeypatch.setattr(io_workers.subprocess, "Popen", hello_then_exit)
    transport = WorkerTransport(2, timeout_s=0.5)
    try:
        with contextlib.suppress(ConnectionResetError):  # when a death beats the start
            await transport.start()
        for _ in range(3):
            with pytest.raises(DeviceUnreachable):
                await asyncio.wait_for(transport.exchange("127.0.0.1", 9, b"{}"), 5)
    finally:
        await transport.close()
    assert transport.pids == []
    assert started and all(p.returncode is not None for p in started)  # every one reaped


async def test_a_stalled_worker_cannot_hold_an_exchange_and_is_replaced(
    fleet: AsicFleetSimulator,
) -> None:
    transport = WorkerTransport(1, timeout_s=0.3)
    await transport.start()
    (pid,) = transport.pids
    host, port = fleet.addresses[0]
    try:
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match="waiting on the device I/O worker"):
            await transport.exchange(host, port, encode_request("summary"))
        waited = time.monotonic() - started
        assert 0.3 + 1.0 <= waited < 5.0  # its timeout and the margin; then the sweep fails it
        await _until(lambda: bool(transport.pids) and transport.pids != [pid])
        assert b"SUMMARY" in await transport.exchange(host, port, encode_request("summary"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        await transport.close()


async def _until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_workers_ignore_a_stop_signal_sent_to_the_process_group(
    fleet: AsicFleetSimulator, workers: WorkerTransport
) -> None:
    before = list(workers.pids)
    for pid in before:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.3)
    host, port = fleet.addresses[0]
    assert b"SUMMARY" in await workers.exchange(host, port, encode_request("summary"))
    assert workers.pids == before


async def test_a_cancelled_wait_leaves_the_transport_working(
    fleet: AsicFleetSimulator, workers: WorkerTransport
) -> None:
    await fleet.set_faults(0, Faults(reply_delay_s=0.3))
    host, port = fleet.addresses[0]
    waiting = asyncio.ensure_future(workers.exchange(host, port, encode_request("summary")))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.4)  # the reply for the cancelled wait arrives and is dropped
    other_host, other_port = fleet.addresses[1]
    assert b"SUMMARY" in await workers.exchange(other_host, other_port, encode_request("summary"))


async def test_closing_stops_the_workers_and_later_exchanges_fail_cleanly(
    fleet: AsicFleetSimulator,
) -> None:
    transport = WorkerTransport(2, timeout_s=0.5)
    await transport.start()
    processes = list(transport.pids)
    await transport.close()
    for pid in processes:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # exited and reaped
    host, port = fleet.addresses[0]
    with pytest.raises(DeviceUnreachable, match="no device I/O worker"):
        await transport.exchange(host, port, encode_request("summary"))


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerTransport(0)


def test_a_uvloop_caller_gets_the_same_replies() -> None:
    """`hcp up` runs on uvloop, whose socket transports differ from asyncio's: the caller's end
    of the socketpair must work there too."""

    async def main() -> tuple[bytes, bytes]:
        config = uniform_fleet(asic_model("S21"), 2, addressing=Addressing.PORTS, first_port=0)
        async with AsicFleetSimulator(config) as fleet:
            transport = WorkerTransport(1, timeout_s=0.5)
            await transport.start()
            try:
                host, port = fleet.addresses[0]
                request = encode_request("version")
                direct = await TcpTransport(0.5).exchange(host, port, request)
                return direct, await transport.exchange(host, port, request)
            finally:
                await transport.close()

    pytest.importorskip("uvloop")
    direct, through_worker = run_on_uvloop(main())
    assert through_worker == direct and b"LUXminer" in direct


async def test_a_host_name_is_resolved_and_each_of_its_addresses_tried(
    fleet: AsicFleetSimulator, workers: WorkerTransport
) -> None:
    """`localhost` may resolve to ::1 first, where no miner listens: the next address is
    tried, as `TcpTransport` does. An address with nothing behind it is unreachable."""
    _, port = fleet.addresses[0]
    request = encode_request("version")
    for _ in range(2):  # resolved, then from what the worker keeps
        assert b"LUXminer" in await workers.exchange("localhost", port, request)
    with pytest.raises(DeviceUnreachable, match=r"^::1:\d+: cannot connect"):
        await workers.exchange("::1", port, request)


def test_the_next_address_of_a_name_is_tried_when_one_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's loop run in a thread of this process, so that the name's addresses can be
    chosen: the first refuses, the second is a miner that answers."""
    import pickle
    import socket
    import struct
    import threading

    async def serve_one(ready: Callable[[int], None]) -> None:
        config = uniform_fleet(asic_model("S21"), 1, addressing=Addressing.PORTS, first_port=0)
        async with AsicFleetSimulator(config) as simulator:
            ready(simulator.addresses[0][1])
            await asyncio.sleep(5)

    ports: list[int] = []
    miner = threading.Thread(target=run_on_uvloop, args=(serve_one(ports.append),), daemon=True)
    miner.start()
    assert _wait_for(lambda: bool(ports))
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound and not listening: a connect is refused
    closed_port = refused.getsockname()[1]

    def addresses(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "miner.example"
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET, stream, 6, "", ("127.0.0.1", closed_port)),
            (socket.AF_INET, stream, 6, "", ("127.0.0.1", ports[0])),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", addresses)
    ours, theirs = socket.socketpair()
    worker = threading.Thread(target=io_workers._Exchanger(theirs, 2.0).run, daemon=True)
    worker.start()
    try:
        body = pickle.dumps([(7, "miner.example", 4028, encode_request("version"))])
        ours.sendall(struct.pack(">I", len(body)) + body)
        frames = _frames(ours, count=2)  # the hello, then the reply
        assert frames[0] == []
        [(ident, reply, error)] = frames[1]
        assert (ident, error) == (7, None) and b"LUXminer" in reply
    finally:
        ours.close()  # the worker's loop ends with its link
        worker.join(5)
        refused.close()
    assert not worker.is_alive()


def _wait_for(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _frames(sock: Any, count: int) -> list[Any]:
    import pickle
    import struct

    sock.settimeout(5)
    buffer, frames = b"", []
    while len(frames) < count:
        buffer += sock.recv(65536)
        while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">I", buffer[:4])[0]:
            size = struct.unpack(">I", buffer[:4])[0]
            frames.append(pickle.loads(buffer[4 : 4 + size]))
            buffer = buffer[4 + size :]
    return frames


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 70_000), ("fe80::1%nosuchif", 4028)])
async def test_an_address_that_cannot_be_connected_to_fails_alone(
    workers: WorkerTransport, host: str, port: int
) -> None:
    """A port out of range or an unknown interface makes the socket call raise rather than
    return an error code: that exchange fails, and the worker (with what else it holds) lives."""
    pids = workers.pids
    async with Recorder() as silent_miner:  # holds its exchange until the timeout
        bystander = asyncio.ensure_future(workers.exchange("127.0.0.1", silent_miner.port, b"{}"))
        await _until(lambda: bool(silent_miner.requests))
        with pytest.raises(DeviceIOError, match=f"^{host}:{port}: ") as failed:
            await workers.exchange(host, port, b"{}")
        assert "worker exited" not in str(failed.value)
        with pytest.raises(DeviceTimeout):  # its own end, not the worker's
            await bystander
    assert workers.pids == pids


async def test_a_name_the_resolver_refuses_fails_at_once(workers: WorkerTransport) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceIOError, match=r"^a{64}\.example:4028: "):
        await workers.exchange("a" * 64 + ".example", 4028, b"{}")  # a label IDNA refuses
    assert time.monotonic() - started < 0.4  # not by the 0.5 s timeout


def test_a_reset_as_the_request_arrives_is_a_reset_as_over_tcp_transport() -> None:
    """A miner that resets each connection as it accepts it, seen by a worker busy meanwhile
    (the request went out at the connect): the error is `TcpTransport`'s, a
    DeviceConnectionReset."""
    import socket
    import struct
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(10)
    port = listener.getsockname()[1]

    def reset_each() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted, _ = listener.accept()
                accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                accepted.close()

    threading.Thread(target=reset_each, daemon=True).start()
    ours, theirs = socket.socketpair()
    exchanger = io_workers._Exchanger(theirs, 1.0)
    try:
        exchanger._start(1, "127.0.0.1", port, b"{}")
        time.sleep(0.2)  # busy: the reset comes before the connect is looked at
        for fd, _ in exchanger._poller.poll(1):
            exchanger._step(exchanger._by_fd[fd])
        [(_, _, error)] = exchanger._outbox
        assert error is not None and error[:2] == ("DeviceConnectionReset", f"127.0.0.1:{port}")
    finally:
        listener.close()
        ours.close()
        exchanger.close()


def _frame(items: list[Any]) -> bytes:
    import pickle
    import struct

    body = pickle.dumps(items)
    return struct.pack(">I", len(body)) + body


def test_a_request_cancelled_in_the_frame_that_brings_it_is_never_sent() -> None:
    """A request goes out as soon as the worker begins it; a cancel that came in the same
    frame is read first, so that request is not begun at all."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    ours, theirs = socket.socketpair()
    exchanger = io_workers._Exchanger(theirs, 1.0)
    try:
        ours.sendall(_frame([(1, "127.0.0.1", port, b"{}"), 1, (2, "127.0.0.1", port, b"[]")]))
        exchanger._read_link()
        accepted, _ = listener.accept()  # the second request only
        with accepted:
            accepted.settimeout(1)
            assert accepted.recv(100) == b"[]"
        with pytest.raises(TimeoutError):
            listener.accept()
        assert list(exchanger._flights) == [2]
    finally:
        listener.close()
        ours.close()
        exchanger.close()


def test_a_request_the_socket_cannot_take_at_once_goes_when_it_turns_writable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the connection is not up when `connect` returns (a real network), the request
    waits for the socket to turn writable, and the reply comes back as usual."""
    import socket

    send_request = io_workers._Exchanger._send_request
    refusals = []

    def not_yet(flight: Any, sock: socket.socket) -> bool:
        if not refusals:
            refusals.append(flight.ident)
            return False  # as a socket still connecting answers
        return send_request(flight, sock)

    monkeypatch.setattr(io_workers._Exchanger, "_send_request", staticmethod(not_yet))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_one() -> None:
        accepted, _ = listener.accept()
        with accepted:
            request = accepted.recv(100)
            accepted.sendall(b'{"got":"' + request + b'"}\x00')

    import threading

    server = threading.Thread(target=answer_one, daemon=True)
    server.start()
    ours, theirs = socket.socketpair()
    exchanger = io_workers._Exchanger(theirs, 2.0)
    try:
        exchanger._start(7, "127.0.0.1", port, b"ping")
        assert refusals == [7] and not exchanger._flights[7].sent
        deadline = time.monotonic() + 2
        while not exchanger._outbox and time.monotonic() < deadline:
            for fd, _ in exchanger._poller.poll(0.1):
                exchanger._step(exchanger._by_fd[fd])
        assert exchanger._outbox == [(7, b'{"got":"ping"}\x00', None)]
    finally:
        server.join(2)
        listener.close()
        ours.close()
        exchanger.close()
