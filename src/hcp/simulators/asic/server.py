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
import contextlib
import json
import logging
import resource
import socket
import struct
from types import TracebackType

from hcp.adapters.clock import SystemClock
from hcp.services.ports import Clock
from hcp.simulators.asic.config import Faults, FleetSimConfig
from hcp.simulators.asic.miner import MinerSim
from hcp.simulators.asic.rpc import answer

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
        self._handlers: set[asyncio.Task[None]] = set()

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
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening; the port stays reserved for a later `start`."""
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's wait_closed does not wait for open connections (a slow reply may be
        # sleeping); cancel them so no task outlives the server.
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            request = await read_request(reader)
            await self._reply(request, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _reply(self, request: bytes, writer: asyncio.StreamWriter) -> None:
        faults = self.sim.faults
        if faults.reply_delay_s:
            await asyncio.sleep(faults.reply_delay_s)
        if faults.reset_connections:
            reset(writer)
            return
        if faults.malformed_replies:
            writer.write(GARBAGE)
        else:
            payload = answer(self.sim, request, self.clock.now())
            writer.write(json.dumps(payload).encode() + b"\x00")
        await writer.drain()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the end of one JSON request (clients do not half-close, so parse as we go)."""
    data = b""
    async with asyncio.timeout(REQUEST_READ_TIMEOUT_S):
        while len(data) < MAX_REQUEST_BYTES:
            chunk = await reader.read(4096)
            data += chunk
            if not chunk or _complete(data):
                break
    return data


def _complete(data: bytes) -> bool:
    text = data.rstrip(b"\x00\r\n ")
    if not text.lstrip().startswith(b"{"):
        return True  # not JSON at all: answer at once rather than wait for more
    try:
        json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP RST (SO_LINGER 0), as a miner whose network stack gives up does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


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
        """Start every miner that is not offline."""
        raise_fd_limit(len(self._servers))
        await asyncio.gather(*(server.start() for server in self._servers))

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


async def serve_fleet(config: FleetSimConfig, clock: Clock | None = None) -> None:
    """Serve every miner of `config` until cancelled (the body of `hcp sim asic`)."""
    async with AsicFleetSimulator(config, clock) as fleet:
        log.info("serving %d simulated LuxOS miners", len(fleet.miners))
        await asyncio.Event().wait()
