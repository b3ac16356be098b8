"""CGMiner exchanges carried out by worker processes: `WorkerTransport` hands each exchange to
one of N child processes, each carrying its exchanges on non-blocking sockets under one epoll
(`_Exchanger`: `TcpTransport`'s wire, replies and errors, without an event loop), and hands
the reply (or the typed error) back to the caller. Linux only (epoll).

Why: one exchange costs the client about 50 µs of CPU in the kernel and the event loop
(connect, write, read, close: scripts/bench_curtail.py), which at 100,000 miners and three
exchanges each is 15 s of one core beside the protocol work. One Python process runs on one
core; the sockets can run on the others. Sessions, retries, backoff and parsing stay in the
caller's process, so a `LuxosClient` behaves the same over either transport.

The wire between the processes: one socketpair per worker, carrying frames of a 4-byte
big-endian length and a pickled list. To a worker: `(id, host, port, request)` to make an
exchange, or a bare `id` to cancel one. Back: `(id, reply, None)` or `(id, None, (error class
name, device, message))`; a worker's first frame, an empty list, says it is ready. The
exchanges asked for in one turn of the caller's event loop travel in one frame, and so do the
replies.

Failures:
- A worker that dies fails the exchanges it had in flight (`DeviceUnreachable`, naming each
  device; the client's retry policy applies) and is started again, with a growing pause if it
  keeps dying; the others take the new exchanges meanwhile.
- A worker that stalls cannot hold an exchange: each one fails with `DeviceTimeout` a second
  after its own timeout, whatever the worker does; a worker that has said nothing since such an
  exchange was sent is killed, and so replaced.
- A cancelled exchange that has not left this process is never sent; one that has is
  cancelled in the worker, as `TcpTransport` would cancel it.
- Workers run in a session of their own and ignore SIGINT and SIGTERM (a terminal's Ctrl-C or a
  service manager's stop goes to the whole process group): the caller stops them by closing
  their socket, and a worker whose caller dies sees that socket close and exits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import heapq
import ipaddress
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from hcp.adapters.devices.cgminer import MAX_REPLY_BYTES, device_error
from hcp.adapters.devices.errors import (
    DeviceConnectionReset,
    DeviceIOError,
    DeviceTimeout,
    DeviceUnreachable,
    MalformedReply,
)
from hcp.gc_tuning import settle_heap

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
READY_WITHIN_S = 60.0
"""How long a new worker may take to import and connect."""
STALL_MARGIN_S = 1.0
"""How much longer than its own timeout an exchange waits on a worker."""
RESTART_PAUSES_S = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Pauses before each try to replace a dead worker; the last one repeats."""

Request = tuple[int, str, int, bytes]
Reply = tuple[int, bytes | None, tuple[str, str, str] | None]


def _frames(buffer: bytearray) -> list[list[Any]]:
    """The whole frames at the start of `buffer`, taken out of it (a partial one stays)."""
    frames, start = [], 0
    while len(buffer) - start >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer, start)
        end = start + _HEADER.size + size
        if len(buffer) < end:
            break
        frames.append(pickle.loads(memoryview(buffer)[start + _HEADER.size : end]))
        start = end
    del buffer[:start]
    return frames


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
        self._buffer += data
        for frame in _frames(self._buffer):
            self._on_frame(frame)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


@dataclass(eq=False)
class _Waiting:
    future: asyncio.Future[bytes]
    device: str
    deadline: float  # loop time


@dataclass(eq=False)
class _Worker:
    """The caller's handle on one worker process."""

    process: subprocess.Popen[bytes]
    link: _Link
    ready: asyncio.Future[None]
    waiting: dict[int, _Waiting] = field(default_factory=dict)
    outbox: list[Request | int] = field(default_factory=list)
    alive: bool = True
    heard_at: float = 0.0  # loop time of the last frame from the worker


class WorkerTransport:
    """A `Transport` whose exchanges run in `workers` child processes (see the module)."""

    def __init__(self, workers: int, timeout_s: float = 3.0) -> None:
        if workers < 1:
            raise ValueError(f"a WorkerTransport needs at least one worker, not {workers}")
        if not hasattr(select, "epoll"):
            raise ValueError("device I/O workers need Linux (epoll); set HCP_DEVICE_IO_WORKERS=0")
        self.workers = workers
        self.timeout_s = timeout_s
        self._live: list[_Worker] = []
        self._turn = 0
        self._next_id = 0
        self._flush_due = False
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._dead: list[subprocess.Popen[bytes]] = []  # out of turn, not yet reaped
        self.exchanges = 0
        """Exchanges handed to the workers so far."""

    async def start(self) -> None:
        """Start the worker processes (under a second: each imports only the transport)."""
        starts = [self._start_one() for _ in range(self.workers)]
        try:
            failed = [e for e in await asyncio.gather(*starts, return_exceptions=True) if e]
            if failed:
                raise failed[0]
        except BaseException:
            await self.close()
            raise
        self._keep(self._expire_stalled())

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids (for CPU accounting and tests)."""
        return [w.process.pid for w in self._live]

    async def exchange(self, host: str, port: int, request: bytes) -> bytes:
        device = f"{host}:{port}"
        if not self._live:
            raise DeviceUnreachable(device, "no device I/O worker is running")
        loop = asyncio.get_running_loop()
        if self._flush_soon():
            # The workers take turns by frame rather than by exchange: fewer, fuller frames
            # cost a worker about 6 % less CPU per exchange (fewer wake-ups).
            self._turn += 1
        worker = self._live[self._turn % len(self._live)]
        self._next_id += 1
        self.exchanges += 1
        ident = self._next_id
        future: asyncio.Future[bytes] = loop.create_future()
        deadline = loop.time() + self._patience_s
        worker.waiting[ident] = _Waiting(future, device, deadline)
        worker.outbox.append((ident, host, port, request))
        try:
            return await future
        finally:
            if worker.waiting.pop(ident, None) is not None and future.cancelled():
                self._cancel_in_worker(worker, ident)

    async def close(self) -> None:
        """Stop every worker: its socket closes, it exits; one that lingers is terminated."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers, self._live = self._live, []
        for worker in workers:
            worker.link.close()
        processes = [w.process for w in workers] + self._dead
        await asyncio.gather(*(asyncio.to_thread(_reap, p) for p in processes))
        self._dead.clear()

    # --- inside the caller's process ------------------------------------------------------

    async def _start_one(self) -> None:
        self._live.append(await self._spawn())  # no pause between: it cannot have died

    async def _spawn(self) -> _Worker:
        """Start a worker and wait for its first frame; nothing is left behind on failure."""
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), repr(self.timeout_s)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # out of the terminal's and the service's signals
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        worker: _Worker | None = None

        def on_frame(frame: list[Any]) -> None:
            assert worker is not None
            worker.heard_at = loop.time()
            if not worker.ready.done():
                worker.ready.set_result(None)  # the hello
            else:
                self._settle(worker, frame)

        def on_lost() -> None:
            assert worker is not None
            if not worker.ready.done():
                worker.ready.set_exception(ConnectionResetError("it exited while starting"))
            self._lost(worker)

        link = _Link(on_frame, on_lost)
        worker = _Worker(process, link, loop.create_future())
        try:
            await loop.connect_accepted_socket(lambda: link, ours)
            await asyncio.wait_for(asyncio.shield(worker.ready), READY_WITHIN_S)
            if not worker.alive:  # it said hello and died before this resumed
                raise ConnectionResetError("it exited as it started")
        except BaseException:
            worker.alive = False
            if not worker.ready.done():
                worker.ready.cancel()
            link.close()
            ours.close()
            await asyncio.shield(asyncio.to_thread(_reap, process))
            raise
        return worker

    def _flush_soon(self) -> bool:
        """Send what is queued at the end of this turn of the loop; True for a new frame."""
        if self._flush_due:
            return False
        self._flush_due = True
        asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_due = False
        for worker in list(self._live):  # a lost link leaves the list
            if not worker.outbox:
                continue
            batch, worker.outbox = worker.outbox, []
            # A request whose caller stopped waiting before it left is not sent at all.
            batch = [
                item
                for item in batch
                if isinstance(item, int) or self._still_wanted(worker, item[0])
            ]
            if not batch:
                continue
            try:
                worker.link.send(batch)
            except ConnectionResetError:
                self._lost(worker)

    @staticmethod
    def _still_wanted(worker: _Worker, ident: int) -> bool:
        waiting = worker.waiting.get(ident)
        return waiting is not None and not waiting.future.done()

    def _cancel_in_worker(self, worker: _Worker, ident: int) -> None:
        if worker.alive:
            worker.outbox.append(ident)
            self._flush_soon()

    def _settle(self, worker: _Worker, frame: list[Reply]) -> None:
        for ident, reply, error in frame:
            waiting = worker.waiting.pop(ident, None)
            if waiting is None or waiting.future.done():
                continue
            if error is None:
                waiting.future.set_result(cast(bytes, reply))
            else:
                kind, device, message = error
                waiting.future.set_exception(_ERRORS.get(kind, DeviceIOError)(device, message))

    def _lost(self, worker: _Worker) -> None:
        """The worker's socket closed: fail what it holds, take it out of turn, replace it."""
        worker.alive = False
        waiting, worker.waiting, worker.outbox = worker.waiting, {}, []
        for entry in waiting.values():
            if not entry.future.done():
                entry.future.set_exception(
                    DeviceUnreachable(entry.device, "the device I/O worker exited")
                )
        # Only a serving worker is replaced: one still starting fails its spawn instead.
        if worker in self._live:
            self._live.remove(worker)
            self._dead.append(worker.process)  # reaped by its replacement, or by close()
            if not self._closing:
                self._keep(self._replace(worker, len(waiting)))

    async def _replace(self, dead: _Worker, lost: int) -> None:
        await asyncio.to_thread(_reap, dead.process)
        if dead.process in self._dead:
            self._dead.remove(dead.process)
        log.error(
            "device I/O worker %d exited (code %s) with %d exchanges in flight; starting another",
            dead.process.pid,
            dead.process.returncode,
            lost,
        )
        for attempt in range(sys.maxsize):
            await asyncio.sleep(RESTART_PAUSES_S[min(attempt, len(RESTART_PAUSES_S) - 1)])
            try:
                self._live.append(await self._spawn())
            except Exception:
                log.exception("could not start a device I/O worker (try %d)", attempt + 1)
            else:
                return

    async def _expire_stalled(self) -> None:
        """Fail every exchange a worker has held past its deadline (a stopped or stuck worker
        must not hold its callers for ever)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.timeout_s))
            now = loop.time()
            for worker in list(self._live):
                late = [i for i, w in worker.waiting.items() if w.deadline <= now]
                if not late:
                    continue
                first_sent = min(worker.waiting[i].deadline for i in late) - self._patience_s
                for ident in late:
                    waiting = worker.waiting.pop(ident)
                    if not waiting.future.done():
                        waiting.future.set_exception(
                            DeviceTimeout(
                                waiting.device,
                                f"no reply within {self.timeout_s:g} s "
                                "(waiting on the device I/O worker)",
                            )
                        )
                    self._cancel_in_worker(worker, ident)
                if worker.heard_at < first_sent:
                    # Not a word since before that exchange left: stuck, not busy.
                    log.error(
                        "device I/O worker %d is not answering; killing it", worker.process.pid
                    )
                    worker.process.kill()  # its socket closes; `_lost` replaces it

    @property
    def _patience_s(self) -> float:
        return self.timeout_s + STALL_MARGIN_S

    def _keep(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# --- inside a worker process ----------------------------------------------------------------


def _serve(fd: int, timeout_s: float) -> None:
    """A worker's life: exchanges until its socket to the parent closes."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)  # the parent decides when workers stop
    exchanger = _Exchanger(socket.socket(fileno=fd), timeout_s)
    settle_heap()
    exchanger.run()


@dataclass(eq=False, slots=True)
class _Flight:
    """One exchange in a worker: the request still to send, the reply so far."""

    ident: int
    host: str
    port: int
    request: bytes
    deadline: float  # time.monotonic()
    addresses: list[tuple[int, Any]] = field(default_factory=list)  # (family, address) to try
    sock: socket.socket | None = None
    sent: bool = False
    reply: bytearray = field(default_factory=bytearray)

    @property
    def device(self) -> str:
        return f"{self.host}:{self.port}"


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
RESOLVED_FOR_S = 60.0
"""How long a worker keeps a host name's address."""


class _Exchanger:
    """A worker's exchanges on non-blocking sockets under one poller, with no event loop: at
    fleet scale an asyncio task, future, timer and protocol per exchange cost a worker as
    much CPU as the kernel's socket work (scripts/bench_curtail.py). The wire is
    `TcpTransport`'s: connect, send the request, read up to the NUL (or EOF), hang up; each
    failure comes back as the error `TcpTransport` raises, with its message. Host names are
    resolved on a thread, so a slow resolver holds up only the exchanges that need it."""

    def __init__(self, link: socket.socket, timeout_s: float) -> None:
        self._link = link
        self._timeout_s = timeout_s
        self._poller = select.epoll()
        self._flights: dict[int, _Flight] = {}  # by ident
        self._by_fd: dict[int, _Flight] = {}
        self._deadlines: list[tuple[float, int]] = []  # a heap; stale entries are skipped
        self._outbox: list[Reply] = []
        self._inbox = bytearray()
        # A host name's addresses, (family, address) each, and until when they hold.
        self._names: dict[tuple[str, int], tuple[float, list[tuple[int, Any]]]] = {}
        self._resolver: concurrent.futures.ThreadPoolExecutor | None = None
        self._resolved: list[tuple[_Flight, list[tuple[int, Any]], Exception | None]] = []
        self._resolved_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def run(self) -> None:
        poller = self._poller
        link_fd, wake_fd = self._link.fileno(), self._wake_r.fileno()
        poller.register(link_fd, select.EPOLLIN)
        poller.register(wake_fd, select.EPOLLIN)
        try:
            self._send([])  # ready
            while True:
                link_ready = wake_ready = False
                for fd, _ in poller.poll(self._until_next_deadline()):
                    flight = self._by_fd.get(fd)
                    if flight is not None:
                        self._guarded(flight, self._step)
                    elif fd == link_fd:
                        link_ready = True
                    elif fd == wake_fd:
                        wake_ready = True
                # New sockets only once this turn's events are handled: a socket closed by
                # a cancel may have an event further on, which must not reach a new socket
                # given the same descriptor.
                if wake_ready:
                    self._connect_resolved()
                if link_ready:
                    self._read_link()
                self._expire()
                if self._outbox:
                    batch, self._outbox = self._outbox, []
                    self._send(batch)
        except _ParentGone:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Hang up every exchange and let go of the poller and the sockets, the link too."""
        for flight in list(self._flights.values()):
            self._hang_up(flight)
        if self._resolver is not None:
            self._resolver.shutdown(wait=False, cancel_futures=True)
        self._poller.close()
        for sock in (self._wake_r, self._wake_w, self._link):
            sock.close()

    # --- the link to the parent

    def _send(self, items: list[Any]) -> None:
        body = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._link.sendall(_HEADER.pack(len(body)) + body)
        except OSError:
            raise _ParentGone from None

    def _read_link(self) -> None:
        try:
            data = self._link.recv(1 << 20)
        except OSError:
            raise _ParentGone from None
        if not data:
            raise _ParentGone
        self._inbox += data
        for frame in _frames(self._inbox):
            # Cancels first: a request cancelled in the frame that brings it is never sent
            # (a request goes out as soon as it begins).
            cancelled = {item for item in frame if isinstance(item, int)}
            for item in frame:
                if isinstance(item, int):  # cancelled by the caller: hang up, say nothing
                    flight = self._flights.get(item)
                    if flight is not None:
                        self._hang_up(flight)
                elif item[0] not in cancelled:
                    self._begin(item)

    # --- one exchange

    def _begin(self, item: Request) -> None:
        """Start one exchange; a failure of any kind fails that exchange, not the worker."""
        ident, host, port, _ = item
        try:
            self._start(*item)
        except Exception as error:
            flight = self._flights.get(ident)
            if flight is not None:
                self._fail(flight, device_error(flight.device, error))
            else:
                log.exception("exchange with %s:%s failed", host, port)
                described = ("DeviceIOError", f"{host}:{port}", repr(error))
                self._outbox.append((ident, None, described))

    def _guarded(self, flight: _Flight, step: Callable[[_Flight], None]) -> None:
        try:
            step(flight)
        except Exception as error:  # a bug here must fail the exchange, not the worker
            log.exception("exchange with %s failed", flight.device)
            if self._flights.get(flight.ident) is flight:
                self._fail(flight, device_error(flight.device, error))

    def _start(self, ident: int, host: str, port: int, request: bytes) -> None:
        flight = _Flight(ident, host, port, request, time.monotonic() + self._timeout_s)
        self._flights[ident] = flight
        heapq.heappush(self._deadlines, (flight.deadline, ident))
        literal = _literal_address(host, port)
        if literal is not None:
            flight.addresses = [literal]
            self._connect(flight)
            return
        known = self._names.get((host, port))
        if known is not None and known[0] > time.monotonic():
            flight.addresses = list(known[1])
            self._connect(flight)
            return
        if self._resolver is None:
            self._resolver = concurrent.futures.ThreadPoolExecutor(4, "resolve")
        self._resolver.submit(self._resolve, flight)

    def _resolve(self, flight: _Flight) -> None:
        """On a resolver thread: the host's TCP addresses, handed back to the loop."""
        found: tuple[_Flight, list[tuple[int, Any]], Exception | None]
        try:
            infos = socket.getaddrinfo(flight.host, flight.port, type=socket.SOCK_STREAM)
            found = (flight, [(info[0], info[4]) for info in infos], None)
        except Exception as error:  # also what is not an OSError: a name IDNA refuses
            found = (flight, [], error)
        with self._resolved_lock:
            self._resolved.append(found)
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            self._wake_w.send(b"!")

    def _connect_resolved(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._resolved_lock:
            resolved, self._resolved = self._resolved, []
        for flight, addresses, error in resolved:
            if self._flights.get(flight.ident) is not flight:
                continue  # timed out or cancelled meanwhile
            if error is not None:
                self._fail(flight, device_error(flight.device, error))
                continue
            until = time.monotonic() + RESOLVED_FOR_S
            self._names[(flight.host, flight.port)] = (until, addresses)
            flight.addresses = list(addresses)
            self._guarded(flight, self._connect)

    def _connect(self, flight: _Flight) -> None:
        """Connect to the flight's next address; when none is left, it fails with the last
        address's error (each is tried in turn, as `create_connection` does)."""
        error: Exception = OSError(errno.EHOSTUNREACH, "no address")
        while flight.addresses:
            family, address = flight.addresses.pop(0)
            try:
                # Non-blocking from its creation: one system call fewer than setblocking.
                sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            except OSError as refused:
                error = refused
                continue
            try:
                if _QUICKACK is not None:
                    # Delayed ACKs from the start: the handshake's last ACK rides on the
                    # request, one packet fewer per exchange (Linux).
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 0)
                code = sock.connect_ex(address)  # raises for some: a port out of range
            except Exception as refused:
                sock.close()
                error = refused
                continue
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                error = OSError(code, os.strerror(code))  # the subclass for the code
                continue
            # Often connected already (loopback, a fast network): send at once, and wait
            # only for the reply; else when the socket says it is writable.
            try:
                sent = self._send_request(flight, sock)
            except OSError as refused:  # the connect failed, and the send says so
                sock.close()
                error = refused
                continue
            flight.sock = sock
            self._by_fd[sock.fileno()] = flight
            self._poller.register(sock.fileno(), select.EPOLLIN if sent else select.EPOLLOUT)
            return
        self._fail(flight, device_error(flight.device, error))

    @staticmethod
    def _send_request(flight: _Flight, sock: socket.socket) -> bool:
        """Send what is left of the request; True once all of it is sent, False while the
        socket cannot take it yet (still connecting, or a full buffer). A failed connect
        raises its error."""
        try:
            sent = sock.send(flight.request)
        except BlockingIOError:
            return False
        flight.request = flight.request[sent:]
        if flight.request:
            return False
        flight.sent = True
        return True

    def _step(self, flight: _Flight) -> None:
        """The socket is ready: finish connecting and send, or read what came."""
        sock = flight.sock
        assert sock is not None
        if not flight.sent:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._drop_socket(flight)
                if flight.addresses:  # the next of the host's addresses
                    self._connect(flight)
                else:
                    error = OSError(code, os.strerror(code))  # the subclass for the code
                    self._fail(flight, device_error(flight.device, error))
                return
            try:
                if self._send_request(flight, sock):
                    self._poller.modify(sock.fileno(), select.EPOLLIN)
            except OSError as error:
                self._fail(flight, device_error(flight.device, error))
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(flight, device_error(flight.device, error))
            return
        reply = flight.reply
        if not data:  # EOF: a firmware that sends no NUL, or one that said nothing
            if reply:
                self._done(flight, bytes(reply))
            else:
                closed = ConnectionResetError("closed without a reply")
                self._fail(flight, device_error(flight.device, closed))
            return
        seen = len(reply)
        reply += data
        end = reply.find(b"\x00", seen)
        if end >= 0:
            self._done(flight, bytes(reply[: end + 1]))
        elif len(reply) > MAX_REPLY_BYTES:
            # Too big to be a miner's reply: garbage rather than a buffer without end.
            self._done(flight, b"\xff oversized reply")

    def _expire(self) -> None:
        deadlines, now = self._deadlines, time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            _, ident = heapq.heappop(deadlines)
            flight = self._flights.get(ident)
            if flight is not None:
                message = f"no reply within {self._timeout_s:g} s"
                self._fail(flight, DeviceTimeout(flight.device, message))

    def _until_next_deadline(self) -> float:
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._flights:
            heapq.heappop(deadlines)  # settled already
        if not deadlines:
            return -1  # no limit
        return max(0.0, deadlines[0][0] - time.monotonic())

    def _done(self, flight: _Flight, reply: bytes) -> None:
        self._hang_up(flight)
        self._outbox.append((flight.ident, reply, None))

    def _fail(self, flight: _Flight, error: DeviceIOError) -> None:
        self._hang_up(flight)
        self._outbox.append(
            (flight.ident, None, (type(error).__name__, error.device, error.message))
        )

    def _hang_up(self, flight: _Flight) -> None:
        self._flights.pop(flight.ident, None)
        self._drop_socket(flight)

    def _drop_socket(self, flight: _Flight) -> None:
        sock = flight.sock
        if sock is not None:
            flight.sock = None
            del self._by_fd[sock.fileno()]
            sock.close()  # which takes it out of the poller too: the socket is the only holder


class _ParentGone(Exception):
    """The socket to the parent closed: the worker's life is over."""


@functools.lru_cache(maxsize=1 << 17)
def _literal_address(host: str, port: int) -> tuple[int, Any] | None:
    """(family, address) for an IP address written out, else None (a name to resolve).
    Kept for the fleet's addresses: parsing one costs more than the rest of starting its
    exchange."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return socket.AF_INET, (host, port)
    return socket.AF_INET6, (host, port, 0, 0)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), float(sys.argv[2]))
