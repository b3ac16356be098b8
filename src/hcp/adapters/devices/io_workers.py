"""CGMiner exchanges carried out by worker processes: `WorkerTransport` hands each exchange to
one of N child processes, each running `TcpTransport` on an event loop of its own, and hands
the reply (or the typed error) back to the caller.

Why: one exchange costs the client about 50 µs of CPU in the kernel and the event loop
(connect, write, read, close: scripts/bench_curtail.py), which at 100,000 miners and three
exchanges each is 15 s of one core beside the protocol work. One Python process runs on one
core; the sockets can run on the others. Sessions, retries, backoff and parsing stay in the
caller's process, so a `LuxosClient` behaves the same over either transport.

The wire between the processes: one socketpair per worker, carrying frames of a 4-byte
big-endian length and a pickled list. To a worker: `(id, host, port, request)`. Back:
`(id, reply, None)` or `(id, None, (error class name, device, message))`. The exchanges asked
for in one turn of the caller's event loop travel in one frame, and so do the replies.

A worker that dies fails the exchanges it had in flight (`DeviceUnreachable`, naming each
device; the client's retry policy applies) and is started again; the others take the new
exchanges meanwhile. A worker whose parent goes away sees its socket close, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, cast

from hcp.adapters.devices.cgminer import TcpTransport
from hcp.adapters.devices.errors import (
    DeviceConnectionReset,
    DeviceIOError,
    DeviceTimeout,
    DeviceUnreachable,
    MalformedReply,
)
from hcp.aio import run_on_uvloop

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_ERRORS: dict[str, type[DeviceIOError]] = {
    kind.__name__: kind
    for kind in (
        DeviceIOError,
        DeviceUnreachable,
        DeviceTimeout,
        DeviceConnectionReset,
        MalformedReply,
    )
}
Request = tuple[int, str, int, bytes]
Reply = tuple[int, bytes | None, tuple[str, str, str] | None]


class _Link(asyncio.Protocol):
    """One end of a socketpair: sends lists as frames; hands each frame received on."""

    def __init__(self, on_frame: Callable[[list[Any]], None], on_lost: Callable[[], None]):
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are only alike

    def send(self, items: list[Any]) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the link to the device I/O worker is closed")
        body = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        self._transport.write(_HEADER.pack(len(body)) + body)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            frame = pickle.loads(memoryview(buffer)[start + _HEADER.size : end])
            start = end
            self._on_frame(frame)
        del buffer[:start]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


@dataclass(eq=False)
class _Worker:
    """The caller's handle on one worker process."""

    process: BaseProcess
    link: _Link
    waiting: dict[int, tuple[asyncio.Future[bytes], str]] = field(default_factory=dict)
    outbox: list[Request] = field(default_factory=list)
    alive: bool = True


class WorkerTransport:
    """A `Transport` whose exchanges run in `workers` child processes (see the module)."""

    def __init__(self, workers: int, timeout_s: float = 3.0) -> None:
        if workers < 1:
            raise ValueError(f"a WorkerTransport needs at least one worker, not {workers}")
        self.workers = workers
        self.timeout_s = timeout_s
        self._live: list[_Worker] = []
        self._turn = 0
        self._next_id = 0
        self._flush_due = False
        self._closing = False
        self._restarts: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the worker processes (a second or so: each imports the transport afresh)."""
        self._live = list(await asyncio.gather(*(self._spawn() for _ in range(self.workers))))

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids (for CPU accounting and tests)."""
        return [w.process.pid for w in self._live if w.alive and w.process.pid is not None]

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        device = f"{host}:{port}"
        if not self._live:
            raise DeviceUnreachable(device, "no device I/O worker is running")
        self._turn = (self._turn + 1) % len(self._live)
        worker = self._live[self._turn]
        self._next_id += 1
        ident = self._next_id
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        worker.waiting[ident] = (future, device)
        worker.outbox.append((ident, host, port, request))
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        try:
            return await future
        finally:
            worker.waiting.pop(ident, None)  # a cancelled wait: the reply, if any, is dropped

    async def close(self) -> None:
        """Stop every worker: its socket closes, it exits; one that lingers is terminated."""
        self._closing = True
        for task in list(self._restarts):
            task.cancel()
        workers, self._live = self._live, []
        for worker in workers:
            worker.link.close()
        await asyncio.gather(*(asyncio.to_thread(_reap, w.process) for w in workers))

    # --- inside the caller's process ------------------------------------------------------

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=_serve, args=(theirs, self.timeout_s), name="hcp-device-io", daemon=True
        )
        try:
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        worker: _Worker | None = None

        def on_frame(frame: list[Any]) -> None:
            assert worker is not None
            self._settle(worker, frame)

        def on_lost() -> None:
            assert worker is not None
            self._lost(worker)

        link = _Link(on_frame, on_lost)
        worker = _Worker(process, link)
        await loop.connect_accepted_socket(lambda: link, ours)
        return worker

    def _flush(self) -> None:
        self._flush_due = False
        for worker in list(self._live):  # a lost link leaves the list
            if worker.outbox:
                batch, worker.outbox = worker.outbox, []
                try:
                    worker.link.send(batch)
                except ConnectionResetError:
                    self._lost(worker)

    def _settle(self, worker: _Worker, frame: list[Reply]) -> None:
        for ident, reply, error in frame:
            entry = worker.waiting.pop(ident, None)
            if entry is None or entry[0].done():
                continue
            future = entry[0]
            if error is None:
                future.set_result(cast(bytes, reply))
            else:
                kind, device, message = error
                future.set_exception(_ERRORS.get(kind, DeviceIOError)(device, message))

    def _lost(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        waiting, worker.waiting = worker.waiting, {}
        for future, device in waiting.values():
            if not future.done():
                future.set_exception(DeviceUnreachable(device, "the device I/O worker exited"))
        if worker in self._live:
            self._live.remove(worker)
        if self._closing:
            return
        log.error(
            "device I/O worker %s exited (code %s) with %d exchanges in flight; starting another",
            worker.process.pid,
            worker.process.exitcode,
            len(waiting),
        )
        task = asyncio.get_running_loop().create_task(self._replace(worker))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _replace(self, dead: _Worker) -> None:
        await asyncio.to_thread(_reap, dead.process)
        try:
            fresh = await self._spawn()
        except OSError:
            log.exception("could not start a device I/O worker")
            return
        if self._closing:
            fresh.link.close()
            await asyncio.to_thread(_reap, fresh.process)
        else:
            self._live.append(fresh)


def _reap(process: BaseProcess) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)


# --- inside a worker process ----------------------------------------------------------------


def _serve(sock: socket.socket, timeout_s: float) -> None:
    """A worker's life: exchanges until its socket to the parent closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    run_on_uvloop(_serve_async(sock, timeout_s))


async def _serve_async(sock: socket.socket, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    tcp = TcpTransport(timeout_s)
    gone: asyncio.Future[None] = loop.create_future()
    outbox: list[Reply] = []
    running: set[asyncio.Task[None]] = set()
    flush_due = False

    def flush() -> None:
        nonlocal flush_due
        flush_due = False
        batch = outbox[:]
        outbox.clear()
        with contextlib.suppress(ConnectionResetError):  # the parent is gone: `gone` ends us
            link.send(batch)

    async def one(ident: int, host: str, port: int, request: bytes) -> None:
        nonlocal flush_due
        result: Reply
        try:
            result = (ident, await tcp.exchange(host, port, request), None)
        except DeviceIOError as error:
            result = (ident, None, (type(error).__name__, error.device, error.message))
        except Exception as error:  # a bug here must still answer the caller
            log.exception("exchange with %s:%s failed", host, port)
            result = (ident, None, ("DeviceIOError", f"{host}:{port}", repr(error)))
        outbox.append(result)
        if not flush_due:
            flush_due = True
            loop.call_soon(flush)

    def on_frame(frame: list[Request]) -> None:
        for request in frame:
            task = loop.create_task(one(*request))
            running.add(task)
            task.add_done_callback(running.discard)

    def on_lost() -> None:
        if not gone.done():
            gone.set_result(None)

    link = _Link(on_frame, on_lost)
    await loop.connect_accepted_socket(lambda: link, sock)
    await gone
    for task in running:
        task.cancel()
