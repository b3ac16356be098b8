"""TCP servers for simulated miners: one asyncio server per miner, all in one event loop.

Each miner listens on its own loopback address (`127.x.y.z:4028`, as real miners and pyasic
expect) or its own port on 127.0.0.1. A connection carries one request and one reply (JSON and a
NUL byte, as CGMiner sends), then closes. Per-connection faults (garbage, delay, reset) and
`offline` (nothing listens) come from each miner's `Faults`.

Scale: a listening socket costs one file descriptor and a few KB, so 10,000 miners need about
10,000 descriptors plus two per open connection; `start()` raises the soft RLIMIT_NOFILE
towards the hard limit when it is too low for the fleet. Measured on a 2-core box: 10,000
miners start in about 1.7 s, use about 170 MB, and answer 10,000 `read()`s (a joined request
of five commands, client in the same process, 256 in flight) in about 6 s.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
from collections.abc import Callable
from types import TracebackType
from typing import cast

import orjson

from hcp.adapters.clock import SystemClock
from hcp.services.ports import Clock
from hcp.simulators.asic.config import Faults, FleetSimConfig
from hcp.simulators.asic.miner import MinerSim
from hcp.simulators.asic.rpc import answer, load_json

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
REQUEST_READ_TIMEOUT_S = 5.0
GARBAGE = b'\x8b\x1f\xffLUX<html>not json\x00\x13{"STATUS":[{'
"""What a miner with `malformed_replies` sends: binary junk, then a truncated JSON fragment."""


class MinerServer:
    """Serves one `MinerSim` over TCP."""

    def __init__(self, sim: MinerSim, clock: Clock) -> None:
        self.sim = sim
        self.clock = clock
        self._server: asyncio.Server | None = None
        self._port = sim.config.port
        self._open: set[_Connection] = set()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the miner answers on; the real port once started with port 0."""
        return self.sim.config.host, self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen, unless the miner is `offline`."""
        if self._server is not None or self.sim.faults.offline:
            return
        host, port = self.address
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        for sock in self._server.sockets:
            trim_segments(sock)

    async def stop(self) -> None:
        """Stop listening and hang up open connections; the port stays reserved for a later
        `start`."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._open):
            connection.hang_up()
        await self._server.wait_closed()
        self._server = None

    def reply_to(self, request: bytes) -> bytes:
        """The bytes a request gets: the RPC answer and its NUL, or garbage when so faulted."""
        if self.sim.faults.malformed_replies:
            return GARBAGE
        return orjson.dumps(answer(self.sim, request, self.clock.now())) + b"\x00"


class _Connection(asyncio.Protocol):
    """One client connection: read one request, answer it (after the miner's reply delay, or
    with a reset), hang up. A protocol rather than a stream handler, so a connection costs no
    task: at fleet scale that is a third of the simulator's CPU per exchange."""

    def __init__(self, server: MinerServer) -> None:
        self._server = server
        self._request: bytes | None = b""  # None once answered
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._server._open.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REQUEST_READ_TIMEOUT_S, self.hang_up)

    def data_received(self, data: bytes) -> None:
        if self._request is None:
            return  # answered already; a client that keeps talking is ignored
        self._request += data
        if len(self._request) >= MAX_REQUEST_BYTES or _complete(self._request):
            self._answer()

    def eof_received(self) -> bool:
        if self._request is not None:
            self._answer()  # whatever came, even nothing: CGMiner answers with an error
        return True  # keep our side open until the reply is written

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._open.discard(self)
        if self._timer is not None:
            self._timer.cancel()

    def hang_up(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _answer(self) -> None:
        request, self._request = self._request or b"", None
        if self._timer is not None:
            self._timer.cancel()
        delay = self._server.sim.faults.reply_delay_s
        if delay:
            self._timer = asyncio.get_running_loop().call_later(delay, self._send, request)
        else:
            self._send(request)

    def _send(self, request: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._server.sim.faults.reset_connections:
            reset(transport)
            return
        try:
            transport.write(self._server.reply_to(request))
            # The FIN now, with the reply: the close comes a loop turn later, and a close
            # with input unread (a request cut at MAX_REQUEST_BYTES, bytes after the JSON)
            # resets the connection, which would drop a reply still corked in the kernel.
            transport.write_eof()
        finally:
            transport.close()  # after the buffered reply is flushed; at once if none was made


def _complete(data: bytes) -> bool:
    text = data.rstrip(b"\x00\r\n ")
    if not text.lstrip().startswith(b"{"):
        return True  # not JSON at all: answer at once rather than wait for more
    try:
        load_json(text)
    except ValueError:
        return False
    return True


def trim_segments(sock: socket.socket) -> None:
    """Corks a listening socket, and so each connection it accepts (Linux): the reply waits
    in the kernel for the close and leaves with the FIN in one segment, one packet fewer per
    exchange for both ends to process (8 segments instead of 10 with a plain client). Off
    Linux, the exchange is as before."""
    if _TCP_CORK is not None:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)


_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


def reset(transport: asyncio.Transport) -> None:
    """Abort with a TCP RST (SO_LINGER 0), as a miner whose network stack gives up does."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class AsicFleetSimulator:
    """Many simulated miners in one process: `async with AsicFleetSimulator(config): ...`.

    `miners[i]` is the state of the i-th configured miner and `addresses[i]` where it answers.
    """

    def __init__(self, config: FleetSimConfig, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        start = self.clock.now()
        self.miners = [MinerSim(miner, start) for miner in config.miners]
        self._servers = [MinerServer(sim, self.clock) for sim in self.miners]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [server.address for server in self._servers]

    async def start(self) -> None:
        """Start every miner that is not offline; if one cannot listen (OSError), none does."""
        raise_fd_limit(len(self._servers))
        started = await asyncio.gather(
            *(server.start() for server in self._servers), return_exceptions=True
        )
        failure = next((r for r in started if isinstance(r, BaseException)), None)
        if failure is not None:
            await self.stop()
            raise failure

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self._servers))

    async def set_faults(self, index: int, faults: Faults) -> None:
        """Change miner `index`'s faults now; going offline or back on starts or stops it."""
        server = self._servers[index]
        server.sim.set_faults(faults, self.clock.now())
        if faults.offline:
            await server.stop()
        else:
            await server.start()

    async def __aenter__(self) -> AsicFleetSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def raise_fd_limit(miners: int) -> None:
    """Lift the soft open-file limit to fit `miners` listeners plus client traffic, if allowed."""
    # One descriptor per listener, two per open connection (both ends when the client shares
    # the process), plus headroom for the rest of the program.
    wanted = miners + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))
    if ceiling < wanted:
        log.warning("open-file limit %d is low for %d simulated miners", ceiling, miners)


async def serve_fleet(
    config: FleetSimConfig,
    clock: Clock | None = None,
    on_ready: Callable[[AsicFleetSimulator], None] | None = None,
) -> None:
    """Serve every miner of `config` until cancelled (the body of `hcp sim asic`);
    `on_ready` is called once every miner listens, e.g. to print the bound addresses."""
    async with AsicFleetSimulator(config, clock) as fleet:
        log.info("serving %d simulated LuxOS miners", len(fleet.miners))
        if on_ready is not None:
            on_ready(fleet)
        await asyncio.Event().wait()
